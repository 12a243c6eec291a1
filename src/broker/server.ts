/**
 * The TCP side: framing, request headers, dispatch, and answering in order.
 *
 * Request  => size:INT32 api_key:INT16 api_version:INT16 correlation_id:INT32 client_id:NULLABLE_STRING
 *             TAG_BUFFER (flexible versions only) body
 * Response => size:INT32 correlation_id:INT32 body          (header v0; ApiVersions always uses v0)
 *
 * Requests on one connection are started in arrival order (so produce appends
 * keep their order) and may finish out of order (a long-polling fetch, a
 * JoinGroup waiting for the rebalance), but responses are written strictly in
 * request order, as Kafka clients expect.
 *
 * Bad input closes that one connection: a size prefix under 8 or over
 * maxRequestBytes, a header or body that does not parse, an unknown api key, or a
 * version we do not implement (except ApiVersions, which answers
 * UNSUPPORTED_VERSION in the v0 layout so the client can retry lower). So does a
 * request not complete within requestReadTimeoutMs of its first byte, and bytes
 * that would take the broker's unread requests over maxBufferedBytes (limits.ts).
 *
 * Reading stops (socket paused) while MAX_IN_FLIGHT requests are unanswered or
 * the client is not reading its responses, so neither grows without bound.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from '../config/logger.js';
import { API_BY_KEY, writeApiVersionsV0, type RequestContext } from './api/index.js';
import type { BrokerCore } from './core.js';
import { ErrorCode } from './errors.js';
import { FrameReader, FrameRefused } from './frame-reader.js';
import type { BufferBudget, ConnectionLimits } from './limits.js';
import type { RejectReason, RequestRefusal } from './metrics.js';
import type { RequestBuffers } from './request-buffers.js';
import { ProtocolError, Reader } from './protocol/reader.js';
import { Writer } from './protocol/writer.js';

const API_VERSIONS_KEY = 18;
/** Requests started but not yet answered before we stop reading from the socket. */
const MAX_IN_FLIGHT = 64;

/** How a client reached the broker: over TCP, or from this process (`Broker.connectInProcess`). */
export type ConnectionTransport = 'tcp' | 'in-process';

/** What a Connection needs of its socket: a TCP socket, or an in-process one (in-process.ts). */
export type ClientSocket = Duplex & { readonly remoteAddress?: string; setNoDelay(noDelay?: boolean): unknown };

interface Slot {
  ready: boolean;
  chunks: Buffer[] | null;
  api: string;
  started: bigint;
}

export class Connection {
  private readonly frames: FrameReader;
  private queue: Slot[] = [];
  private readonly abort = new AbortController();
  private closed = false;
  /** Not reading: too many requests in flight, or the client is not reading its responses. */
  private paused = false;
  private writeBlocked = false;
  private draining = false;
  private readonly clientHost: string;

  constructor(
    private readonly socket: ClientSocket,
    /** The `transport` label of crystalwatch_broker_connections. */
    private readonly transport: { transport: ConnectionTransport },
    private readonly core: BrokerCore,
    private readonly limits: ConnectionLimits,
    memory: { budget: BufferBudget; buffers: RequestBuffers },
    private readonly logger: Logger,
    private readonly onClose: (connection: Connection) => void,
  ) {
    this.clientHost = `/${socket.remoteAddress ?? 'unknown'}`;
    this.frames = new FrameReader(limits.maxRequestBytes, memory.budget, memory.buffers);
    socket.setNoDelay(true);
    core.metrics.connections.inc(this.transport);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => {
      this.writeBlocked = false;
      this.drain();
    });
    socket.on('error', (err) => this.logger.debug({ err: err.message }, 'client socket error'));
    socket.on('close', () => this.close());
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    this.core.metrics.connections.dec(this.transport);
    this.socket.destroy();
    this.frames.release();
    this.queue = [];
    this.onClose(this);
  }

  /**
   * Closes the connection if a request it started has been arriving for longer than
   * requestReadTimeoutMs. Not while the broker itself stopped reading for its own
   * backlog (MAX_IN_FLIGHT); it does when the client stopped reading its responses.
   */
  checkReadDeadline(now: number): void {
    if (this.closed || (this.paused && !this.writeBlocked) || !this.frames.overdue(now, this.limits.requestReadTimeoutMs)) return;
    this.refuse(
      'read_timeout',
      `a request was not complete within requestReadTimeoutMs ${this.limits.requestReadTimeoutMs} (raise it for slow links)`,
      this.frames.describe(),
    );
  }

  private reject(kind: RejectReason, reason: string, detail: Record<string, unknown> = {}): void {
    this.core.metrics.rejected.inc({ reason: kind });
    this.logger.warn({ client: this.clientHost, ...detail }, `closing connection: ${reason}`);
    this.close();
  }

  /** A request refused before it was read whole: counted as a rejected request and a rejected connection. */
  private refuse(kind: RequestRefusal, reason: string, detail: Record<string, unknown> = {}): void {
    this.core.metrics.requestsRejected.inc({ reason: kind });
    this.reject(kind, reason, detail);
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    try {
      this.frames.push(chunk, performance.now());
    } catch (err) {
      if (!(err instanceof FrameRefused)) throw err;
      this.refuse(err.reason, err.message);
      return;
    }
    this.drain();
  }

  /** Dispatches complete frames while the connection may take more work, then pauses or resumes reading. */
  private drain(): void {
    if (this.draining || this.closed) return;
    this.draining = true;
    try {
      while (!this.closed && !this.writeBlocked && this.queue.length < MAX_IN_FLIGHT) {
        let frame: Buffer | null;
        try {
          frame = this.frames.next(performance.now());
        } catch (err) {
          if (!(err instanceof FrameRefused)) throw err;
          this.refuse(err.reason, err.message, { size: err.size });
          return;
        }
        if (!frame) break;
        try {
          this.dispatch(frame);
        } catch (err) {
          // A bug must cost this client its connection, never the broker its process.
          this.logger.error({ err }, 'request dispatch failed');
          this.core.metrics.rejected.inc({ reason: 'internal' });
          this.close();
          return;
        }
      }
    } finally {
      this.draining = false;
    }
    if (this.closed) return;
    const busy = this.writeBlocked || this.queue.length >= MAX_IN_FLIGHT;
    if (busy && !this.paused) {
      this.paused = true;
      this.socket.pause();
    } else if (!busy && this.paused) {
      this.paused = false;
      // The client could not send while we were not reading: its request clock starts again.
      this.frames.restartClock(performance.now());
      this.socket.resume();
    }
  }

  private dispatch(frame: Buffer): void {
    const request = new Reader(frame);
    let apiKey: number;
    let version: number;
    let correlationId: number;
    let clientId: string;
    try {
      apiKey = request.int16();
      version = request.int16();
      correlationId = request.int32();
      clientId = request.nullableString() ?? '';
    } catch (err) {
      this.reject('header', `unreadable request header: ${(err as Error).message}`);
      return;
    }
    const api = API_BY_KEY.get(apiKey);
    if (!api) {
      this.reject('unknown_api', `unknown api key ${apiKey}`, { apiKey, version, clientId });
      return;
    }
    const slot: Slot = { ready: false, chunks: null, api: api.name, started: process.hrtime.bigint() };
    this.queue.push(slot);
    if (version < api.minVersion || version > api.maxVersion) {
      if (apiKey !== API_VERSIONS_KEY) {
        this.reject(
          'unsupported_version',
          `${api.name} v${version} is not implemented (this broker speaks v${api.minVersion}-v${api.maxVersion}; check ApiVersions)`,
          { apiKey, version, clientId },
        );
        return;
      }
      const response = new Writer();
      writeApiVersionsV0(response, ErrorCode.UNSUPPORTED_VERSION);
      this.complete(slot, correlationId, response);
      return;
    }
    const context: RequestContext = { broker: this.core, version, correlationId, clientId, clientHost: this.clientHost, signal: this.abort.signal };
    const response = new Writer();
    let outcome: void | boolean | Promise<void | boolean>;
    try {
      if (api.flexibleFrom !== undefined && version >= api.flexibleFrom) request.skipTaggedFields();
      outcome = api.handle(context, request, response);
    } catch (err) {
      this.fail(api.name, version, err);
      return;
    }
    if (outcome instanceof Promise) {
      outcome
        .then(
          (sent) => this.complete(slot, correlationId, sent === false ? null : response),
          (err: unknown) => this.fail(api.name, version, err),
        )
        .catch((err: unknown) => this.fail(api.name, version, err));
    } else {
      this.complete(slot, correlationId, outcome === false ? null : response);
    }
  }

  private fail(apiName: string, version: number, err: unknown): void {
    if (err instanceof ProtocolError) this.reject('malformed', `malformed ${apiName} v${version} request: ${err.message}`);
    else {
      this.logger.error({ err, api: apiName, version }, 'request handler failed');
      this.core.metrics.rejected.inc({ reason: 'internal' });
      this.close();
    }
  }

  private complete(slot: Slot, correlationId: number, body: Writer | null): void {
    if (this.closed) return;
    this.core.metrics.requests.inc({ api: slot.api });
    this.core.metrics.requestSeconds.observe({ api: slot.api }, Number(process.hrtime.bigint() - slot.started) / 1e9);
    if (body) {
      // The header is a Buffer of its own: a client joins it with the body, so no client (kafkajs over
      // an in-process socket included) ever holds a view of the body's stored buffers (tail cache).
      const header = Buffer.allocUnsafe(8);
      header.writeInt32BE(4 + body.length, 0);
      header.writeInt32BE(correlationId, 4);
      slot.chunks = [header, ...body.finish()];
    }
    slot.ready = true;
    this.flush();
  }

  private flush(): void {
    let wrote = false;
    while (this.queue.length > 0 && this.queue[0]!.ready) {
      const slot = this.queue.shift()!;
      if (!slot.chunks) continue;
      if (!wrote) {
        this.socket.cork();
        wrote = true;
      }
      for (const chunk of slot.chunks) this.socket.write(chunk);
    }
    if (wrote) {
      this.socket.uncork();
      // A client that does not read its responses gets no more requests read until it does ('drain').
      if (this.socket.writableNeedDrain) this.writeBlocked = true;
    }
    this.drain();
  }
}
