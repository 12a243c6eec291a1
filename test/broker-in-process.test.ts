/**
 * In-process connections to the embedded broker (src/broker/in-process.ts): the socket pair
 * behaves as a TCP socket where the broker and kafkajs rely on it (order, a later tick,
 * backpressure, end and close, EPIPE), and kafkajs clients of `createKafka({ inProcess })`
 * produce and consume through it byte for byte, without a TCP connection.
 */
import { randomBytes } from 'node:crypto';
import type { KafkaMessage } from 'kafkajs';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { InProcessSocket } from '../src/broker/in-process.js';
import { createConsumer, createKafka, createProducer, type InProcessBroker } from '../src/bus/kafka.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { waitFor, waitForEvent, withDeadline } from './helpers/wait.js';

const MiB = 1024 * 1024;

describe('InProcessSocket', () => {
  it('hands the bytes over in order, on a later tick than the write', async () => {
    const [client, server] = InProcessSocket.pair();
    const got: Buffer[] = [];
    server.on('data', (chunk: Buffer) => got.push(chunk));
    client.write(Buffer.from('one'));
    client.cork();
    client.write(Buffer.from('two'));
    client.write(Buffer.from('three'));
    client.uncork();
    expect(got).toEqual([]); // not inside write()
    await waitFor(() => got.length === 3, { timeout: 2000, message: 'three chunks at the server' });
    expect(Buffer.concat(got).toString()).toBe('onetwothree');
    client.destroy();
  });

  it('holds the writer while the reader is paused (writableNeedDrain, then drain), as TCP backpressure does', async () => {
    const [client, server] = InProcessSocket.pair();
    server.pause();
    const big = Buffer.alloc(MiB, 7);
    let written = false;
    client.write(big, () => (written = true));
    // Taken by the server's buffer, but not read: the write does not complete.
    await waitFor(() => server.readableLength === MiB, { timeout: 2000, message: 'the bytes in the paused reader' });
    expect(written).toBe(false);
    expect(client.writableNeedDrain).toBe(true); // still, a tick after the bytes were handed over
    const drained = waitForEvent(client, 'drain', { timeout: 2000, message: 'drain after the reader resumed' });
    let read = 0;
    server.on('data', (chunk: Buffer) => (read += chunk.length));
    server.resume();
    await drained;
    expect(written).toBe(true);
    expect(read).toBe(MiB);
    client.destroy();
  });

  it('ends and closes both sides when one ends, and a write to a side that is gone fails with EPIPE', async () => {
    const [client, server] = InProcessSocket.pair();
    server.resume();
    client.resume();
    const serverEnded = waitForEvent(server, 'end', { timeout: 2000, message: 'end at the server' });
    const bothClosed = Promise.all([
      waitForEvent(server, 'close', { timeout: 2000, message: 'server side closed' }),
      waitForEvent(client, 'close', { timeout: 2000, message: 'client side closed' }),
    ]);
    client.end();
    await serverEnded;
    await bothClosed;

    // A write in flight when the other side is destroyed: EPIPE, as a TCP write to a closed peer.
    const [a, b] = InProcessSocket.pair();
    a.resume();
    const failed = waitForEvent(a, 'error', { timeout: 2000, message: 'EPIPE on a write to a destroyed end' });
    b.destroy();
    a.write(Buffer.from('late'));
    const [err] = (await failed) as [NodeJS.ErrnoException];
    expect(err.code).toBe('EPIPE');
    await waitFor(() => a.destroyed, { timeout: 2000, message: 'the writing side closed too' });
  });

  it('fails a write held by a paused reader with EPIPE when that reader is destroyed', async () => {
    const [client, server] = InProcessSocket.pair();
    server.pause();
    client.resume();
    const outcome = new Promise<Error | null | undefined>((resolve) => client.write(Buffer.alloc(MiB), resolve));
    client.on('error', () => {}); // the same EPIPE, also emitted
    await waitFor(() => server.readableLength === MiB, { timeout: 2000, message: 'the bytes in the paused reader' });
    server.destroy();
    const err = (await withDeadline(outcome, { timeout: 2000, message: 'the held write to complete' })) as NodeJS.ErrnoException;
    expect(err?.code).toBe('EPIPE');
  });

  it('completes every write of a batch with EPIPE when the reader closes itself on the first chunk (a broker refusing a request)', async () => {
    const [client, server] = InProcessSocket.pair();
    server.on('data', () => server.destroy());
    client.on('error', () => {});
    client.cork();
    const outcomes = [Buffer.from('first'), Buffer.from('second')].map(
      (chunk) => new Promise<Error | null | undefined>((resolve) => client.write(chunk, resolve)),
    );
    client.uncork();
    const errors = (await withDeadline(Promise.all(outcomes), { timeout: 2000, message: 'both writes to complete' })) as NodeJS.ErrnoException[];
    expect(errors.map((e) => e?.code)).toEqual(['EPIPE', 'EPIPE']);
    await waitFor(() => client.destroyed, { timeout: 2000, message: 'the writing side closed' });
  });
});

describe('kafkajs over in-process connections to the embedded broker', () => {
  let broker: TestBroker | undefined;
  let registry: Registry;

  afterEach(async () => {
    await broker?.close();
    broker = undefined;
  });

  async function start(options: { maxConnections?: number } = {}): Promise<{ inProcess: InProcessBroker; calls: () => number }> {
    registry = new Registry();
    broker = await startTestBroker({ registry, ...options });
    let calls = 0;
    const b = broker.broker;
    return {
      inProcess: {
        address: b.address,
        connectInProcess: () => {
          calls++;
          return b.connectInProcess();
        },
      },
      calls: () => calls,
    };
  }

  const connections = async (transport: string) =>
    (await registry.getSingleMetric('crystalwatch_broker_connections')!.get()).values.find((v) => v.labels.transport === transport)?.value ?? -1;

  it('produces and consumes frame-sized records byte for byte, with no TCP connection', async () => {
    const { inProcess, calls } = await start();
    const kafka = createKafka({ brokers: [inProcess.address], clientId: 'in-process-test', inProcess });
    const values = [randomBytes(1.2 * MiB), randomBytes(10), Buffer.alloc(0), randomBytes(3 * MiB)];
    const producer = createProducer(kafka);
    const consumer = createConsumer(kafka, 'in-process-test');
    try {
      await producer.connect();
      await producer.send({ topic: 'frames', messages: values.map((value, i) => ({ key: `cam-${i}`, value, headers: { n: String(i) } })) });
      const got: KafkaMessage[] = [];
      await consumer.connect();
      await consumer.subscribe({ topic: 'frames', fromBeginning: true });
      await consumer.run({ eachMessage: async ({ message }) => void got.push(message) });
      await waitFor(() => got.length === values.length, { timeout: 20_000, message: 'every record consumed' });
      got.sort((a, b) => Number(a.headers!.n!.toString()) - Number(b.headers!.n!.toString()));
      got.forEach((m, i) => {
        expect(m.key!.toString()).toBe(`cam-${i}`);
        expect(Buffer.compare(m.value ?? Buffer.alloc(0), values[i]!)).toBe(0);
      });
      expect(calls()).toBeGreaterThanOrEqual(2);
      expect(await connections('tcp')).toBe(0);
      expect(await connections('in-process')).toBeGreaterThanOrEqual(2);
    } finally {
      await consumer.disconnect();
      await producer.disconnect();
    }
    // kafkajs' disconnect ends its sockets: the broker sees every connection close.
    await waitFor(async () => (await connections('in-process')) === 0, { timeout: 5000, message: 'the broker to see the in-process connections close' });
  });

  it("connects any other address with kafkajs' own TCP socket", async () => {
    await start();
    const elsewhere: InProcessBroker = {
      address: '127.0.0.1:1',
      connectInProcess: () => {
        throw new Error('not this address');
      },
    };
    const kafka = createKafka({ brokers: [broker!.address], clientId: 'in-process-test', inProcess: elsewhere });
    const producer = createProducer(kafka);
    try {
      await producer.connect();
      await producer.send({ topic: 'frames', messages: [{ value: Buffer.from('over tcp') }] });
      expect(await connections('tcp')).toBeGreaterThanOrEqual(1);
      expect(await connections('in-process')).toBe(0);
    } finally {
      await producer.disconnect();
    }
  });

  it('refuses in-process connections over maxConnections, as at a TCP accept', async () => {
    const { inProcess } = await start({ maxConnections: 1 });
    const first = inProcess.connectInProcess();
    first.resume();
    const refused = inProcess.connectInProcess();
    refused.resume();
    await waitForEvent(refused, 'close', { timeout: 2000, message: 'the connection over maxConnections closed' });
    const metric = await registry.getSingleMetric('crystalwatch_broker_connections_refused_total')!.get();
    expect(metric.values[0]?.value).toBe(1);
    expect(first.destroyed).toBe(false);
    first.destroy();
  });

  it('ends open in-process connections when the broker closes, and refuses new ones after', async () => {
    const { inProcess } = await start();
    const socket = inProcess.connectInProcess();
    socket.resume();
    const ended = waitForEvent(socket, 'end', { timeout: 5000, message: 'end-of-stream when the broker closes' });
    await broker!.close();
    await ended;
    expect(() => inProcess.connectInProcess()).toThrow(/ECONNREFUSED .*not listening/);
  });
});
