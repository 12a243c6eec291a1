/**
 * What one client may cost the broker (src/broker/limits.ts), in process so the
 * metrics and log lines can be read: a size prefix over maxRequestBytes, a
 * request not complete within requestReadTimeoutMs, bytes over
 * maxBufferedBytes and connections over maxConnections each close only the
 * offending connection, are counted by reason, and the broker keeps serving.
 */
import { connect } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { BrokerOptions } from '../src/broker/index.js';
import { resolveLimits } from '../src/broker/limits.js';
import { MAPPING_BYTES, RequestBuffers } from '../src/broker/request-buffers.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { body, buildBatch, paddedApiVersionsFrame, produceBody, produceResult, RawClient } from './helpers/broker-wire.js';
import { waitFor, waitForEvent, waitForQuiet } from './helpers/wait.js';

const KiB = 1024;
const MiB = 1024 * KiB;

let server: TestBroker | undefined;
const clients: RawClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await server?.close();
  server = undefined;
});

/** A broker with `options`, its registry and the warning lines it logged. */
async function brokerWith(
  options: Partial<BrokerOptions>,
): Promise<{ address: string; metric: (name: string, labels?: Record<string, string>) => Promise<number>; warnings: string[] }> {
  const registry = new Registry();
  const warnings: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      warnings.push(String(JSON.parse(chunk.toString()).msg));
      done();
    },
  });
  server = await startTestBroker({ registry, logger: pino({ level: 'warn' }, sink), ...options });
  const metric = async (name: string, labels: Record<string, string> = {}): Promise<number> => {
    const found = (await registry.getSingleMetric(name)!.get()).values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l));
    return found?.value ?? 0;
  };
  return { address: server.address, metric, warnings };
}

async function open(address: string): Promise<RawClient> {
  const client = await RawClient.open(address);
  clients.push(client);
  return client;
}

/** A size prefix and the start of a request header: the broker knows how much is coming and waits for it. */
function prefix(size: number): Buffer {
  const head = Buffer.alloc(12);
  head.writeInt32BE(size, 0);
  head.writeInt16BE(3, 4); // Metadata
  head.writeInt16BE(0, 6);
  head.writeInt32BE(1, 8);
  return head;
}

async function answersApiVersions(address: string): Promise<boolean> {
  const client = await open(address);
  const frame = await client.request(18, 0, Buffer.alloc(0));
  return frame !== null && frame.readInt16BE(4) === 0;
}

describe('broker limits', () => {
  it('fills in defaults tied to messageMaxBytes and refuses limits that contradict each other', () => {
    expect(resolveLimits({}, 16 * MiB)).toEqual({ maxRequestBytes: 17 * MiB, requestReadTimeoutMs: 30_000, maxConnections: 1000, maxBufferedBytes: 256 * MiB });
    expect(resolveLimits({}, 512 * MiB).maxBufferedBytes).toBe(2 * (513 * MiB));
    expect(() => resolveLimits({ maxRequestBytes: 8 * MiB, maxBufferedBytes: 4 * MiB }, MiB)).toThrow(
      /maxBufferedBytes \(4194304\) must be at least maxRequestBytes \(8388608\)/,
    );
    expect(() => resolveLimits({ requestReadTimeoutMs: 0 }, MiB)).toThrow(/requestReadTimeoutMs must be an integer 100\.\.86400000.*got 0/);
  });

  it('closes a connection whose size prefix is over maxRequestBytes before any body arrives, and reads one exactly at the limit', async () => {
    const { address, metric, warnings } = await brokerWith({ maxRequestBytes: 64 * KiB });
    const over = await open(address);
    over.writeRaw(prefix(64 * KiB + 1));
    expect(await over.waitClosed(5000)).toBe(true);
    // ApiVersions v0 has an empty body; the broker reads the whole frame and ignores what follows the header.
    const atLimit = await open(address);
    const frame = paddedApiVersionsFrame(64 * KiB, 7);
    atLimit.writeRaw(frame);
    const answer = await atLimit.next();
    expect(answer?.readInt32BE(0)).toBe(7);
    expect(await metric('crystalwatch_broker_requests_rejected_total', { reason: 'size' })).toBe(1);
    expect(await metric('crystalwatch_broker_connections_rejected_total', { reason: 'size' })).toBe(1);
    expect(warnings.some((w) => w.includes('request size 65537 is outside 8..65536 bytes'))).toBe(true);
  });

  it('closes a connection whose request is not complete within requestReadTimeoutMs, and leaves idle ones open', async () => {
    const { address, metric, warnings } = await brokerWith({ requestReadTimeoutMs: 300 });
    const idle = await open(address);
    expect(await idle.request(18, 0, Buffer.alloc(0))).not.toBeNull();
    const slow = await open(address);
    slow.writeRaw(prefix(10 * KiB));
    slow.writeRaw(Buffer.alloc(100));
    expect(await slow.waitClosed(10_000)).toBe(true);
    expect(await metric('crystalwatch_broker_requests_rejected_total', { reason: 'read_timeout' })).toBe(1);
    expect(warnings.some((w) => w.includes('not complete within requestReadTimeoutMs 300'))).toBe(true);
    // A connection with nothing half-sent is not on the clock.
    expect(idle.closed).toBe(false);
    expect(await idle.request(18, 0, Buffer.alloc(0))).not.toBeNull();
  });

  it('closes the connection whose bytes would take the held requests over maxBufferedBytes, keeps the others', async () => {
    const { address, metric } = await brokerWith({ maxRequestBytes: 200 * KiB, maxBufferedBytes: 512 * KiB });
    const held: RawClient[] = [];
    for (let i = 0; i < 3; i++) {
      const client = await open(address);
      client.writeRaw(Buffer.concat([prefix(200 * KiB), Buffer.alloc(150 * KiB - 12)]));
      held.push(client);
      await waitFor(async () => (await metric('crystalwatch_broker_buffered_request_bytes')) >= (i + 1) * 150 * KiB, {
        timeout: 10_000,
        message: `the broker to hold ${i + 1} partial requests`,
      });
    }
    const last = await open(address);
    last.writeRaw(Buffer.concat([prefix(200 * KiB), Buffer.alloc(150 * KiB - 12)]));
    expect(await last.waitClosed(10_000)).toBe(true);
    expect(await metric('crystalwatch_broker_requests_rejected_total', { reason: 'buffer_full' })).toBe(1);
    expect(held.every((c) => !c.closed)).toBe(true);
    expect(await answersApiVersions(address)).toBe(true);
    // Closing the holders gives their bytes back.
    for (const client of held) client.close();
    await waitFor(async () => (await metric('crystalwatch_broker_buffered_request_bytes')) === 0, {
      timeout: 10_000,
      message: 'the held bytes to be released',
    });
  });

  it('completes a big request sent in pieces (read into a buffer of its own) and answers it', async () => {
    const { address } = await brokerWith({});
    const client = await open(address);
    const frame = paddedApiVersionsFrame(3 * MiB, 42);
    for (let at = 0; at < frame.length; at += 100 * KiB) client.writeRaw(frame.subarray(at, at + 100 * KiB));
    client.send(18, 0, Buffer.alloc(0)); // pipelined behind it
    expect((await client.next())?.readInt32BE(0)).toBe(42);
    expect(await client.next()).not.toBeNull();
  });

  it('closes connections over maxConnections at accept with a log line and a metric, and accepts again when one closes', async () => {
    const { address, metric, warnings } = await brokerWith({ maxConnections: 4 });
    const accepted: RawClient[] = [];
    for (let i = 0; i < 4; i++) {
      const client = await open(address);
      expect(await client.request(18, 0, Buffer.alloc(0))).not.toBeNull();
      accepted.push(client);
    }
    for (let i = 0; i < 3; i++) {
      const refused = await open(address);
      expect(await refused.waitClosed(5000)).toBe(true);
    }
    expect(await metric('crystalwatch_broker_connections_refused_total')).toBe(3);
    expect(warnings.filter((w) => w.includes('refusing connection: maxConnections 4 are open')).length).toBe(1); // one line per 10 s under a flood
    accepted[0]!.close();
    await waitFor(async () => (await metric('crystalwatch_broker_connections', { transport: 'tcp' })) === 3, {
      timeout: 5000,
      message: 'the broker to see the connection close',
    });
    expect(await answersApiVersions(address)).toBe(true);
  });

  it('keeps a few big-request buffers for reuse and frees them once unused for a second', () => {
    const buffers = new RequestBuffers();
    const first = buffers.take(3 * MiB);
    expect(first.length).toBe(MAPPING_BYTES); // over glibc's mmap threshold ceiling: its pages go back to the OS when freed
    buffers.give(first, 1000);
    expect(buffers.take(MiB)).toBe(first); // reused, no fresh page faults
    buffers.give(first, 2000);
    buffers.trim(2999);
    expect(buffers.pooled).toBe(1);
    buffers.trim(3000);
    expect(buffers.pooled).toBe(0);
    expect(first.buffer.byteLength).toBe(0); // detached: freed now, not at some later GC
    const huge = buffers.take(MAPPING_BYTES + 1);
    buffers.give(huge, 0);
    expect(buffers.pooled).toBe(0);
    expect(huge.buffer.byteLength).toBe(0);
  });

  it('stops reading a client that does not read its responses, and serves it again when it does', async () => {
    const { address, metric } = await brokerWith({});
    const producer = await open(address);
    await producer.request(
      3,
      6,
      body((w) => {
        w.array(['unread'], (x, t) => {
          x.string(t);
        }).boolean(true);
      }),
    );
    const produced = await producer.request(0, 7, produceBody('unread', 0, buildBatch([{ value: Buffer.alloc(MiB, 0x55) }])));
    expect(produceResult(produced!).errorCode).toBe(0);
    // 200 fetches of the 1 MiB record on a socket that reads nothing: 200 MiB of answers if the broker kept writing.
    const fetchBody = body((w) => {
      w.int32(-1)
        .int32(0)
        .int32(1)
        .int32(2 * MiB)
        .int8(0)
        .int32(0)
        .int32(-1);
      w.array(['unread'], (x, t) => {
        x.string(t).array([0], (p, i) => {
          p.int32(i)
            .int32(-1)
            .int64(0)
            .int64(-1)
            .int32(2 * MiB);
        });
      });
      w.array([], () => {}).string('');
    });
    const header = body((w) => {
      w.int16(1).int16(11).int32(0).string('not-reading');
    });
    const frame = Buffer.alloc(4 + header.length + fetchBody.length);
    frame.writeInt32BE(header.length + fetchBody.length, 0);
    header.copy(frame, 4);
    fetchBody.copy(frame, 4 + header.length);
    const [host, port] = address.split(':');
    const socket = connect(Number(port), host);
    await waitForEvent(socket, 'connect', { timeout: 5_000, message: `a connection to the broker at ${address}` });
    socket.pause();
    for (let i = 0; i < 200; i++) socket.write(frame);
    const fetches = (): Promise<number> => metric('crystalwatch_broker_requests_total', { api: 'Fetch' });
    // Wait until the broker has stopped answering (the count holds still for 500 ms), then look at the count.
    const last = await waitForQuiet(fetches, {
      quietMs: 500,
      interval: 100,
      timeout: 30_000,
      message: 'the broker to stop answering the client that reads nothing',
    });
    expect(last).toBeLessThan(100);
    let received = 0;
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
    });
    socket.resume();
    await waitFor(async () => (await fetches()) === 200, { timeout: 30_000, message: 'all 200 fetches answered once the client reads' });
    await waitFor(() => received >= 200 * MiB, { timeout: 30_000, message: 'the 200 answers to arrive' });
    socket.destroy();
  });
});
