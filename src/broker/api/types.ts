import type { Reader } from '../protocol/reader.js';
import type { Writer } from '../protocol/writer.js';
import type { BrokerCore } from '../core.js';

/** What a handler knows about the request it answers. */
export interface RequestContext {
  broker: BrokerCore;
  version: number;
  correlationId: number;
  clientId: string;
  clientHost: string;
  /** Aborted when the connection closes: long polls stop waiting. */
  signal: AbortSignal;
}

/**
 * One Kafka API the broker answers. `handle` reads the request body and writes
 * the response body; it returns `false` when no response is sent (Produce with acks=0).
 */
export interface ApiHandler {
  key: number;
  name: string;
  minVersion: number;
  maxVersion: number;
  /** First version using the flexible (compact + tagged fields) encoding, if any version we implement does. */
  flexibleFrom?: number;
  handle(context: RequestContext, request: Reader, response: Writer): void | boolean | Promise<void | boolean>;
}
