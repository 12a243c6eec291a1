/**
 * No client can freeze or bloat the broker process. Against `crystalwatch broker`
 * as a child process: Fetch requests naming no partition with max_wait 10 s (once
 * a busy loop that froze the process) are answered while kafkajs produces and
 * consumes; many connections holding big partial requests are closed at the
 * buffer limit and the read deadline, the broker keeps serving, and its RSS goes
 * back near where it was; SIGTERM still stops it. And an HTTP server living in
 * the broker's process (as /healthz does in `crystalwatch run`) answers every
 * probe within 1 s while both attacks run, so the event loop never stalls.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import { Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BrokerProcess } from './helpers/broker.js';
import { body, RawClient, rssMiB, terminateWithin } from './helpers/broker-wire.js';
import { waitFor, withDeadline } from './helpers/wait.js';

process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';

const MiB = 1024 * 1024;
const children = new Set<ChildProcess>();
const sockets = new Set<Socket>();

afterAll(() => {
  for (const socket of sockets) socket.destroy();
  for (const child of children) child.kill('SIGKILL');
});

/** Topic array of a fetch naming no partition: no entries (0), null (-1), or one topic with no partitions. */
type NoPartitions = 0 | -1 | 'topic without partitions';

/** Fetch v4 or v8 with max_wait 10 s naming no partition. */
function emptyFetch(version: 4 | 8, topics: NoPartitions): Buffer {
  return body((w) => {
    w.int32(-1).int32(10_000).int32(1).int32(MiB).int8(0);
    if (version >= 7) w.int32(0).int32(-1);
    if (topics === 'topic without partitions') w.int32(1).string('beside-empty-fetches').int32(0);
    else w.int32(topics);
    if (version >= 7) w.int32(0); // forgotten_topics_data
  });
}

/** Answers must come at once: well before max_wait. Checks the answer names no partition and has no error. */
async function expectEmptyFetchAnswered(client: RawClient, version: 4 | 8, topics: NoPartitions): Promise<void> {
  const frame = await client.request(1, version, emptyFetch(version, topics), false, 5000);
  expect(frame, `Fetch v${version} with topics ${topics}: connection closed`).not.toBeNull();
  const responsesAt = 4 + 4 + (version >= 7 ? 6 : 0); // correlation id, throttle, (error, session id)
  if (version >= 7) expect(frame!.readInt16BE(8)).toBe(0);
  if (topics !== 'topic without partitions') {
    expect(frame!.readInt32BE(responsesAt)).toBe(0);
    return;
  }
  expect(frame!.readInt32BE(responsesAt)).toBe(1);
  expect(frame!.readInt32BE(responsesAt + 4 + 2 + 'beside-empty-fetches'.length)).toBe(0); // its partitions
}

/** A Produce v7 head whose size prefix claims `claimed` bytes, then `sent` bytes of body, minding back-pressure. */
async function writePartialRequest(socket: Socket, claimed: number, sent: number, piece: Buffer): Promise<void> {
  const head = Buffer.alloc(12);
  head.writeInt32BE(claimed, 0);
  head.writeInt16BE(0, 4); // Produce v7
  head.writeInt16BE(7, 6);
  head.writeInt32BE(1, 8);
  socket.write(head);
  for (let written = 0; written < sent && !socket.destroyed; written += piece.length) {
    if (!socket.write(piece))
      await new Promise((r) => {
        socket.once('drain', r);
        socket.once('close', r);
      });
  }
}

/** Connections that each send a `claimed`-byte size prefix and `sent` bytes of it, then hold. */
function holdPartialRequests(port: number, count: number, claimed: number, sent: number): { closed: () => number; sentAll: Promise<void> } {
  let closed = 0;
  const piece = Buffer.alloc(64 * 1024, 0x41);
  const sends = Array.from(
    { length: count },
    () =>
      new Promise<void>((resolveSent, failSent) => {
        const socket = connect(port, '127.0.0.1', () => {
          writePartialRequest(socket, claimed, sent, piece).then(resolveSent, failSent);
        });
        sockets.add(socket);
        socket.on('error', () => {});
        socket.on('close', () => {
          closed++;
          sockets.delete(socket);
          resolveSent();
        });
      }),
  );
  return { closed: () => closed, sentAll: Promise.all(sends).then(() => undefined) };
}

describe('crystalwatch broker against empty fetches and held partial requests', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cw-broker-freeze-'));
  // Default limits except a short read deadline (the default is 30 s) and a 192 MiB buffer bound (default 256 MiB).
  const broker = new BrokerProcess(dataDir, ['--request-read-timeout-ms', '3000', '--max-buffered-bytes', String(192 * MiB)]);
  let kafka: Kafka;

  beforeAll(async () => {
    await broker.start();
    children.add(broker.child!);
    kafka = new Kafka({ brokers: [broker.address], clientId: 'freeze-test', logLevel: logLevel.NOTHING });
  });
  afterAll(async () => {
    await broker.kill();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers Fetch naming no partition (v4, v8; empty and null arrays, a topic without partitions; max_wait 10 s) at once while kafkajs produces and consumes', async () => {
    // Settled at once so a failure is reported by the assertion below, not as an unhandled rejection.
    const attack = (async () => {
      const client = await RawClient.open(broker.address);
      for (let round = 0; round < 25; round++) {
        for (const version of [4, 8] as const) {
          for (const topics of [0, -1, 'topic without partitions'] as const) await expectEmptyFetchAnswered(client, version, topics);
        }
      }
      client.close();
    })().then(
      () => 'answered',
      (err: Error) => err.message,
    );
    const producer = kafka.producer();
    await producer.connect();
    const consumer = kafka.consumer({ groupId: 'beside-empty-fetches', sessionTimeout: 6000, heartbeatInterval: 500, maxWaitTimeInMs: 200 });
    await consumer.connect();
    await consumer.subscribe({ topic: 'beside-empty-fetches', fromBeginning: true });
    const seen: string[] = [];
    await consumer.run({
      eachMessage: async ({ message }) => {
        seen.push(message.value!.toString());
      },
    });
    for (let i = 0; i < 20; i++) await producer.send({ topic: 'beside-empty-fetches', messages: [{ value: `m${i}` }] });
    expect(await attack).toBe('answered');
    await waitFor(() => seen.length >= 20, { timeout: 30_000, message: 'kafkajs to consume the 20 records produced during the empty fetches' });
    await consumer.disconnect();
    await producer.disconnect();
    expect(seen.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`).sort());
  });

  it('closes 20 connections holding 16 MiB partial requests at the buffer bound and the deadline, keeps serving, and its RSS comes back', async () => {
    const pid = broker.child!.pid!;
    const baseline = rssMiB(pid);
    const attack = holdPartialRequests(broker.port, 20, 16 * MiB, 12 * MiB);
    await withDeadline(attack.sentAll, { timeout: 60_000, message: 'the 20 partial requests to be sent or closed' });
    const peak = rssMiB(pid);
    const client = await RawClient.open(broker.address);
    expect(await client.request(18, 0, Buffer.alloc(0)), 'ApiVersions while the partial requests are held').not.toBeNull();
    client.close();
    await waitFor(() => attack.closed() === 20, { timeout: 30_000, message: 'the broker to close all 20 connections (buffer bound or 3 s deadline)' });
    // Freed buffers are kept 1 s for reuse before they go back to the OS: wait for RSS to settle, then hold it to the bound.
    let after = rssMiB(pid);
    await waitFor(() => (after = rssMiB(pid)) < baseline + 50, { timeout: 15_000, message: 'RSS to settle' }).catch(() => {});
    console.log(JSON.stringify({ rssMiB: { baseline: Math.round(baseline), heldPeak: Math.round(peak), afterRelease: Math.round(after) } }));
    expect(after).toBeLessThan(baseline + 100);
    expect(broker.stderr).toContain('maxBufferedBytes');
    expect(broker.stderr).toContain('not complete within requestReadTimeoutMs 3000');
    const again = await RawClient.open(broker.address);
    expect(await again.request(18, 0, Buffer.alloc(0))).not.toBeNull();
    again.close();
  });

  it('still stops within 3 s of SIGTERM, exit code 0', async () => {
    const exit = await terminateWithin(broker.child!, 3000);
    expect(exit, 'the broker did not exit within 3 s of SIGTERM').not.toBeNull();
    expect(exit!.code).toBe(0);
  });
});

/** A process holding the embedded broker and a node:http /healthz, like `crystalwatch run`. */
const BROKER_AND_HTTP = `
import { createServer } from 'node:http';
const { startBroker } = await import(process.env.BROKER_MODULE);
const broker = await startBroker({ port: 0, dataDir: process.env.DATA_DIR, requestReadTimeoutMs: 2000 });
const http = createServer((req, res) => { res.end('ok'); });
await new Promise((r) => http.listen(0, '127.0.0.1', r));
console.log(JSON.stringify({ broker: broker.address, http: http.address().port }));
process.once('SIGTERM', async () => { http.close(); await broker.close(); process.exit(0); });
`;

describe("an HTTP server in the broker's process", () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cw-broker-http-'));
  let child: ChildProcess;
  let address = '';
  let httpPort = 0;

  beforeAll(async () => {
    child = spawn(process.execPath, ['--input-type=module', '-e', BROKER_AND_HTTP], {
      env: { ...process.env, DATA_DIR: dataDir, BROKER_MODULE: pathToFileURL(resolve(import.meta.dirname, '../dist/src/broker/index.js')).href },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.add(child);
    const ready = await withDeadline(
      new Promise<{ broker: string; http: number }>((resolveReady, reject) => {
        child.once('exit', (code) => reject(new Error(`broker+http process exited with ${code} before listening (npm run build first)`)));
        createInterface({ input: child.stdout! }).once('line', (line) => resolveReady(JSON.parse(line)));
      }),
      { timeout: 30_000, message: 'the broker+http process to print its listening line' },
    );
    address = ready.broker;
    httpPort = ready.http;
  });
  afterAll(() => {
    child?.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('answers every /healthz probe within 1 s while a client sends empty fetches and held partial requests', async () => {
    let attacking = true;
    const emptyFetches = Array.from({ length: 4 }, async (_, i) => {
      const client = await RawClient.open(address);
      while (attacking) await expectEmptyFetchAnswered(client, i % 2 ? 8 : 4, i < 2 ? 0 : -1);
      client.close();
    }).map((attack) =>
      attack.then(
        () => 'answered',
        (err: Error) => err.message,
      ),
    );
    const partial = holdPartialRequests(Number(address.split(':')[1]), 10, 16 * MiB, 4 * MiB);
    const probes: string[] = []; // 'ok' or what went wrong
    for (let i = 0; i < 30; i++) {
      try {
        const response = await fetch(`http://127.0.0.1:${httpPort}/healthz`, { signal: AbortSignal.timeout(1000) });
        probes.push(response.ok ? 'ok' : `status ${response.status}`);
      } catch (err) {
        probes.push((err as Error).message);
      }
      await new Promise((r) => setTimeout(r, 100)); // probe pacing, not synchronisation
    }
    attacking = false;
    expect(await Promise.all(emptyFetches)).toEqual(['answered', 'answered', 'answered', 'answered']);
    await withDeadline(partial.sentAll, { timeout: 30_000, message: 'the held partial requests to be sent or closed' });
    expect(probes.filter((p) => p !== 'ok')).toEqual([]);
    expect(probes.length).toBe(30);
    await waitFor(() => partial.closed() === 10, { timeout: 20_000, message: 'the 2 s read deadline to close the held partial requests' });
    const exit = await terminateWithin(child, 3000);
    expect(exit?.code).toBe(0);
  });
});
