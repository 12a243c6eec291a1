/**
 * Raw Kafka wire helpers for broker tests: a socket client that sends framed
 * requests and reads framed responses, a record batch v2 builder, and the
 * request grammar of every API the broker answers with mutators for it. Used to
 * send what real clients never send (corrupt CRCs, fuzzed bytes, odd versions).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { crc32c } from '../../src/broker/protocol/crc32c.js';
import { Writer } from '../../src/broker/protocol/writer.js';

export class RawClient {
  private socket!: Socket;
  private pending: Buffer = Buffer.alloc(0);
  private waiters: Array<(frame: Buffer | null) => void> = [];
  private frames: Buffer[] = [];
  closed = false;
  private correlationId = 1;

  static async open(address: string): Promise<RawClient> {
    const client = new RawClient();
    const [host, port] = address.split(':');
    await new Promise<void>((resolve, reject) => {
      client.socket = connect(Number(port), host, () => resolve());
      client.socket.once('error', reject);
    });
    client.socket.on('error', () => {});
    client.socket.on('data', (chunk: Buffer) => client.onData(chunk));
    client.socket.on('close', () => {
      client.closed = true;
      for (const waiter of client.waiters.splice(0)) waiter(null);
    });
    return client;
  }

  private onData(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 4 && this.pending.length >= 4 + this.pending.readInt32BE(0)) {
      const size = this.pending.readInt32BE(0);
      const frame = this.pending.subarray(4, 4 + size);
      this.pending = this.pending.subarray(4 + size);
      const waiter = this.waiters.shift();
      if (waiter) waiter(frame);
      else this.frames.push(frame);
    }
  }

  writeRaw(bytes: Buffer): void {
    if (!this.closed) this.socket.write(bytes);
  }

  /** Sends a request with a v1 header (v2 with an empty tag buffer when `flexible`). */
  send(apiKey: number, version: number, body: Buffer, flexible = false): number {
    const correlationId = this.correlationId++;
    const header = new Writer().int16(apiKey).int16(version).int32(correlationId).string('raw-test');
    if (flexible) header.emptyTaggedFields();
    const head = Buffer.concat(header.finish());
    const size = Buffer.alloc(4);
    size.writeInt32BE(head.length + body.length);
    this.writeRaw(Buffer.concat([size, head, body]));
    return correlationId;
  }

  /** The next response frame (correlation id + body), or null once the broker closed the connection. */
  next(timeoutMs = 10_000): Promise<Buffer | null> {
    const ready = this.frames.shift();
    if (ready) return Promise.resolve(ready);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const waiter = (frame: Buffer | null): void => {
        clearTimeout(timer);
        resolve(frame);
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter); // the next frame is not this caller's any more
        reject(new Error(`no response within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push(waiter);
    });
  }

  async request(apiKey: number, version: number, body: Buffer, flexible = false, timeoutMs = 10_000): Promise<Buffer | null> {
    this.send(apiKey, version, body, flexible);
    return this.next(timeoutMs);
  }

  /** Resolves true once the broker has closed the connection, false if it is still open after `timeoutMs`. */
  waitClosed(timeoutMs: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * A whole ApiVersions v0 request frame (size prefix included) of `bodySize` bytes after the size:
 * header (api key 18, version 0, `correlationId`, null client id) and zero padding, which the
 * broker reads and ignores (ApiVersions v0 has an empty body).
 */
export function paddedApiVersionsFrame(bodySize: number, correlationId: number): Buffer {
  const frame = Buffer.alloc(4 + bodySize);
  frame.writeInt32BE(bodySize, 0);
  frame.writeInt16BE(18, 4);
  frame.writeInt16BE(0, 6);
  frame.writeInt32BE(correlationId, 8);
  frame.writeInt16BE(-1, 12); // null client id
  return frame;
}

export function body(build: (w: Writer) => void): Buffer {
  const writer = new Writer();
  build(writer);
  return Buffer.concat(writer.finish());
}

function zigzag(value: number): number[] {
  let v = value >= 0 ? value * 2 : -value * 2 - 1;
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

export interface TestRecord {
  key?: Buffer | null;
  value: Buffer | null;
  timestampDelta?: number;
}

/** An uncompressed record batch v2 with a correct CRC-32C. */
export function buildBatch(
  records: TestRecord[],
  options: { baseTimestamp?: number; producerId?: number; producerEpoch?: number; baseSequence?: number } = {},
): Buffer {
  const encoded = records.map((record, i) => {
    const key = record.key ?? null;
    const parts: Buffer[] = [
      Buffer.from([0]),
      Buffer.from(zigzag(record.timestampDelta ?? 0)),
      Buffer.from(zigzag(i)),
      Buffer.from(zigzag(key ? key.length : -1)),
      key ?? Buffer.alloc(0),
      Buffer.from(zigzag(record.value ? record.value.length : -1)),
      record.value ?? Buffer.alloc(0),
      Buffer.from(zigzag(0)),
    ];
    const inner = Buffer.concat(parts);
    return Buffer.concat([Buffer.from(zigzag(inner.length)), inner]);
  });
  const recordsBytes = Buffer.concat(encoded);
  const batch = Buffer.alloc(61 + recordsBytes.length);
  const baseTimestamp = options.baseTimestamp ?? 1_700_000_000_000;
  const maxDelta = Math.max(0, ...records.map((r) => r.timestampDelta ?? 0));
  batch.writeBigInt64BE(0n, 0);
  batch.writeInt32BE(batch.length - 12, 8);
  batch.writeInt32BE(-1, 12);
  batch.writeInt8(2, 16);
  batch.writeInt16BE(0, 21);
  batch.writeInt32BE(records.length - 1, 23);
  batch.writeBigInt64BE(BigInt(baseTimestamp), 27);
  batch.writeBigInt64BE(BigInt(baseTimestamp + maxDelta), 35);
  batch.writeBigInt64BE(BigInt(options.producerId ?? -1), 43);
  batch.writeInt16BE(options.producerEpoch ?? -1, 51);
  batch.writeInt32BE(options.baseSequence ?? -1, 53);
  batch.writeInt32BE(records.length, 57);
  recordsBytes.copy(batch, 61);
  batch.writeUInt32BE(crc32c(batch, 21, batch.length), 17);
  return batch;
}

/** A Produce v7 request body for one partition. */
export function produceBody(topic: string, partition: number, records: Buffer, acks = -1): Buffer {
  return body((w) => {
    w.string(null).int16(acks).int32(10_000);
    w.array([topic], (tw, name) => {
      tw.string(name).array([partition], (pw, index) => {
        pw.int32(index).bytes(records);
      });
    });
  });
}

/** Reads the error code and base offset of the first partition of a Produce v7 response. */
export function produceResult(frame: Buffer): { errorCode: number; baseOffset: number } {
  // correlation_id(4) [responses: count(4) name(2+n) [partitions: count(4) index(4) error(2) base_offset(8) ...]]
  let position = 4 + 4;
  const nameLength = frame.readInt16BE(position);
  position += 2 + nameLength + 4 + 4;
  return { errorCode: frame.readInt16BE(position), baseOffset: Number(frame.readBigInt64BE(position + 2)) };
}

/** Runs kcat (librdkafka) against `address`; killed after `timeoutMs`. */
export function kcat(address: string, args: string[], input = '', timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('kcat', ['-b', address, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(input);
  });
}

/** Resident memory of a process in MiB, from /proc (Linux). */
export function rssMiB(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS line in /proc/${pid}/status`);
  return Number(match[1]) / 1024;
}

/** Sends SIGTERM and waits up to `ms` for the exit; a process still running then is SIGKILLed and null returned. */
export async function terminateWithin(child: ChildProcess, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | null> {
  if (child.exitCode !== null || child.signalCode !== null) return { code: child.exitCode, signal: child.signalCode };
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  const result = await Promise.race([exited, late]);
  clearTimeout(timer);
  if (result === null) {
    child.kill('SIGKILL');
    await exited;
  }
  return result;
}
