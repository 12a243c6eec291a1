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
 * Bad input closes that one connection: a size prefix that is negative or over
 * the limit, a header or body that does not parse, an unknown api key, or a
 * version we do not implement (except ApiVersions, which answers
 * UNSUPPORTED_VERSION in the v0 layout so the client can retry lower).
 */
import type { Socket } from 'node:net';
import type { Logger } from '../config/logger.js';
import { API_BY_KEY, writeApiVersionsV0, type RequestContext } from './api/index.js';
import type { BrokerCore } from './core.js';
import { ErrorCode } from './errors.js';
import type { RejectReason } from './metrics.js';
import { ProtocolError, Reader } from './protocol/reader.js';
import { Writer } from './protocol/writer.js';

const API_VERSIONS_KEY = 18;
/** Requests started but not yet answered before we stop reading from the socket. */
const MAX_IN_FLIGHT = 64;

interface Slot { ready: boolean; chunks: Buffer[] | null; api: string; started: bigint }

export class Connection {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private expected = -1;
  private queue: Slot[] = [];
  private readonly abort = new AbortController();
  private closed = false;
  private readonly clientHost: string;

  constructor(
    private readonly socket: Socket,
    private readonly core: BrokerCore,
    private readonly maxRequestBytes: number,
    private readonly logger: Logger,
    private readonly onClose: (connection: Connection) => void,
  ) {
    this.clientHost = `/${socket.remoteAddress ?? 'unknown'}`;
    socket.setNoDelay(true);
    core.metrics.connections.inc();
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => this.logger.debug({ err: err.message }, 'client socket error'));
    socket.on('close', () => this.close());
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
    this.core.metrics.connections.dec();
    this.socket.destroy();
    this.chunks = [];
    this.queue = [];
    this.onClose(this);
  }

  private reject(kind: RejectReason, reason: string, detail: Record<string, unknown> = {}): void {
    this.core.metrics.rejected.inc({ reason: kind });
    this.logger.warn({ client: this.clientHost, ...detail }, `closing connection: ${reason}`);
    this.close();
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    while (!this.closed) {
      if (this.expected < 0) {
        if (this.buffered < 4) return;
        const size = this.peekSize();
        if (size < 8 || size > this.maxRequestBytes) {
          this.reject('size', `request size ${size} is outside 8..${this.maxRequestBytes} bytes (raise messageMaxBytes for bigger requests)`);
          return;
        }
        this.expected = size;
      }
      if (this.buffered < 4 + this.expected) return;
      const frame = this.take(4 + this.expected).subarray(4);
      this.expected = -1;
      try {
        this.dispatch(frame);
      } catch (err) {
        // A bug must cost this client its connection, never the broker its process.
        this.logger.error({ err }, 'request dispatch failed');
        this.core.metrics.rejected.inc({ reason: 'internal' });
        this.close();
        return;
      }
      if (this.queue.length >= MAX_IN_FLIGHT) this.socket.pause();
    }
  }

  private peekSize(): number {
    if (this.chunks[0].length < 4) {
      const joined = Buffer.concat(this.chunks);
      this.chunks = [joined];
    }
    return this.chunks[0].readInt32BE(0);
  }

  private take(bytes: number): Buffer {
    const first = this.chunks[0];
    let out: Buffer;
    if (first.length >= bytes) {
      out = first.subarray(0, bytes);
      if (first.length === bytes) this.chunks.shift();
      else this.chunks[0] = first.subarray(bytes);
    } else {
      out = Buffer.allocUnsafe(bytes);
      let copied = 0;
      while (copied < bytes) {
        const head = this.chunks[0];
        const n = Math.min(head.length, bytes - copied);
        head.copy(out, copied, 0, n);
        copied += n;
        if (n === head.length) this.chunks.shift();
        else this.chunks[0] = head.subarray(n);
      }
    }
    this.buffered -= bytes;
    return out;
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
        this.reject('unsupported_version', `${api.name} v${version} is not implemented (this broker speaks v${api.minVersion}-v${api.maxVersion}; check ApiVersions)`, { apiKey, version, clientId });
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
        .then((sent) => this.complete(slot, correlationId, sent === false ? null : response), (err: unknown) => this.fail(api.name, version, err))
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
    while (this.queue.length > 0 && this.queue[0].ready) {
      const slot = this.queue.shift()!;
      if (!slot.chunks) continue;
      if (!wrote) { this.socket.cork(); wrote = true; }
      for (const chunk of slot.chunks) this.socket.write(chunk);
    }
    if (wrote) this.socket.uncork();
    if (this.queue.length < MAX_IN_FLIGHT && this.socket.isPaused()) this.socket.resume();
  }
}
