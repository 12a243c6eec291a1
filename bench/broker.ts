/**
 * Throughput of the embedded broker with kafkajs and with kcat (librdkafka) as
 * the reference client, for 20 KiB and 500 KiB records, plus the broker's own
 * produce capacity: a raw client that re-sends one pre-encoded batch with 8
 * requests in flight, so client-side encoding costs nothing.
 *
 * The broker runs as its own process (`node dist/src/broker/main.js --port 0`, fsync
 * 'interval', the defaults) so broker and client each get a core, as in a real
 * deployment. MB = 10^6 bytes of record values. Produce uses acks=all.
 *
 *   node dist/bench/broker.js [--quick]
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startBrokerProcess } from './broker-process.js';
import { connect } from 'node:net';
import { Kafka, logLevel } from 'kafkajs';
import { crc32c } from '../src/broker/protocol/crc32c.js';
import { Writer } from '../src/broker/protocol/writer.js';

const KiB = 1024;
const round = (x: number, digits = 1): number => Number(x.toFixed(digits));

interface Case {
  label: string;
  size: number;
  count: number;
  perSend: number;
}

function cases(quick: boolean): Case[] {
  return [
    { label: '20KiB', size: 20 * KiB, count: quick ? 2500 : 10_000, perSend: 100 },
    { label: '500KiB', size: 500 * KiB, count: quick ? 100 : 400, perSend: 8 },
  ];
}

async function kafkajsFigures(address: string, c: Case): Promise<Record<string, number>> {
  const kafka = new Kafka({ brokers: [address], clientId: 'bench', logLevel: logLevel.NOTHING });
  const topic = `bench-kafkajs-${c.label}`;
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] });
  await admin.disconnect();
  const value = Buffer.alloc(c.size, 0x61);
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  const started = process.hrtime.bigint();
  for (let sent = 0; sent < c.count; sent += c.perSend) {
    const n = Math.min(c.perSend, c.count - sent);
    await producer.send({ topic, acks: -1, messages: Array.from({ length: n }, (_, i) => ({ key: String(sent + i), value })) });
  }
  const produceSeconds = Number(process.hrtime.bigint() - started) / 1e9;
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId: `bench-${c.label}`, maxBytesPerPartition: 16 * 1024 * KiB, maxBytes: 64 * 1024 * KiB, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let received = 0;
  // Timed from the end of the group join (GROUP_JOIN) to the last record: fetch throughput, not rebalance latency.
  let joinedAt = 0n;
  consumer.on(consumer.events.GROUP_JOIN, () => {
    joinedAt = process.hrtime.bigint();
  });
  const consumeStarted = process.hrtime.bigint();
  await new Promise<void>((done) => {
    void consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        received += batch.messages.length;
        if (received >= c.count) done();
      },
    });
  });
  const ended = process.hrtime.bigint();
  await consumer.disconnect();
  const consumeSeconds = Number(ended - joinedAt) / 1e9;
  const bytes = c.size * c.count;
  return {
    [`broker.kafkajs.produce_${c.label}.mb_per_s`]: round(bytes / 1e6 / produceSeconds),
    [`broker.kafkajs.produce_${c.label}.msgs_per_s`]: round(c.count / produceSeconds, 0),
    [`broker.kafkajs.consume_${c.label}.mb_per_s`]: round(bytes / 1e6 / consumeSeconds),
    [`broker.kafkajs.consume_${c.label}.msgs_per_s`]: round(c.count / consumeSeconds, 0),
    [`broker.kafkajs.consume_${c.label}.group_join_s`]: round(Number(joinedAt - consumeStarted) / 1e9, 3),
  };
}

function timed(command: string, args: string[], stdinPath?: string): { seconds: number; stdout: string } {
  const input = stdinPath ? openSync(stdinPath, 'r') : 'ignore';
  const started = process.hrtime.bigint();
  const result = spawnSync(command, args, { stdio: [input, 'pipe', 'pipe'], maxBuffer: 256 * 1024 * 1024, timeout: 120_000 });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (typeof input === 'number') closeSync(input);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.status}: ${result.stderr?.toString().slice(-500)}`);
  return { seconds, stdout: result.stdout.toString() };
}

function kcatFigures(address: string, c: Case, scratch: string): Record<string, number> {
  const topic = `bench-kcat-${c.label}`;
  // Records are lines of 'a' (newline is kcat's default delimiter), so each is exactly c.size bytes.
  const line = Buffer.alloc(c.size + 1, 0x61);
  line[c.size] = 0x0a;
  const input = join(scratch, `kcat-${c.label}.txt`);
  writeFileSync(input, Buffer.concat(Array.from({ length: c.count }, () => line)));
  timed('kcat', ['-b', address, '-L', '-t', topic]); // auto-creates the topic outside the timing
  const produce = timed('kcat', ['-b', address, '-P', '-t', topic, '-X', 'acks=all', '-X', 'linger.ms=5'], input);
  const consume = timed('kcat', ['-b', address, '-C', '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%S\n']);
  const got = consume.stdout.trim().split('\n').length;
  if (got !== c.count) throw new Error(`kcat consumed ${got} records of ${c.count}`);
  const bytes = c.size * c.count;
  return {
    [`broker.kcat.produce_${c.label}.mb_per_s`]: round(bytes / 1e6 / produce.seconds),
    [`broker.kcat.produce_${c.label}.msgs_per_s`]: round(c.count / produce.seconds, 0),
    [`broker.kcat.consume_${c.label}.mb_per_s`]: round(bytes / 1e6 / consume.seconds),
    [`broker.kcat.consume_${c.label}.msgs_per_s`]: round(c.count / consume.seconds, 0),
  };
}

/** One uncompressed record batch v2 holding one record of `size` bytes. */
function encodedBatch(size: number): Buffer {
  const zigzag = (v: number): Buffer => {
    let z = v >= 0 ? v * 2 : -v * 2 - 1;
    const out: number[] = [];
    while (z >= 0x80) {
      out.push((z % 0x80) | 0x80);
      z = Math.floor(z / 0x80);
    }
    out.push(z);
    return Buffer.from(out);
  };
  const value = Buffer.alloc(size, 0x61);
  const inner = Buffer.concat([Buffer.from([0]), zigzag(0), zigzag(0), zigzag(-1), zigzag(size), value, zigzag(0)]);
  const record = Buffer.concat([zigzag(inner.length), inner]);
  const batch = Buffer.alloc(61 + record.length);
  const now = BigInt(Date.now());
  batch.writeInt32BE(batch.length - 12, 8);
  batch.writeInt32BE(-1, 12);
  batch.writeInt8(2, 16);
  batch.writeInt32BE(0, 23);
  batch.writeBigInt64BE(now, 27);
  batch.writeBigInt64BE(now, 35);
  batch.writeBigInt64BE(-1n, 43);
  batch.writeInt16BE(-1, 51);
  batch.writeInt32BE(-1, 53);
  batch.writeInt32BE(1, 57);
  record.copy(batch, 61);
  batch.writeUInt32BE(crc32c(batch, 21, batch.length), 17);
  return batch;
}

function frame(correlationId: number, apiKey: number, version: number, body: Buffer): Buffer {
  const head = Buffer.concat(new Writer().int16(apiKey).int16(version).int32(correlationId).string('bench-raw').finish());
  const size = Buffer.alloc(4);
  size.writeInt32BE(head.length + body.length);
  return Buffer.concat([size, head, body]);
}

/** Broker-only produce capacity: Produce v7, acks=all, one pre-encoded batch per request, 8 in flight. */
async function rawFigures(address: string, c: Case): Promise<Record<string, number>> {
  const topic = `bench-raw-${c.label}`;
  const [host, port] = address.split(':');
  const socket = connect(Number(port), host);
  await new Promise<void>((resolveConnect, reject) => {
    socket.once('connect', resolveConnect);
    socket.once('error', reject);
  });
  let pending = Buffer.alloc(0);
  const waiters: Array<() => void> = [];
  socket.on('data', (chunk: Buffer) => {
    pending = Buffer.concat([pending, chunk]);
    while (pending.length >= 4 && pending.length >= 4 + pending.readInt32BE(0)) {
      pending = pending.subarray(4 + pending.readInt32BE(0));
      waiters.shift()?.();
    }
  });
  const metadata = Buffer.concat(
    new Writer()
      .array([topic], (w, t) => {
        w.string(t);
      })
      .boolean(true)
      .finish(),
  );
  socket.write(frame(0, 3, 6, metadata));
  await new Promise<void>((r) => waiters.push(r));
  const produce = Buffer.concat(
    new Writer()
      .string(null)
      .int16(-1)
      .int32(10_000)
      .array([topic], (w, t) => {
        w.string(t).array([0], (p, i) => {
          p.int32(i).bytes(encodedBatch(c.size));
        });
      })
      .finish(),
  );
  let sent = 0;
  let done = 0;
  const started = process.hrtime.bigint();
  await new Promise<void>((finished) => {
    const pump = (): void => {
      while (sent < c.count && sent - done < 8) {
        socket.write(frame(++sent, 0, 7, produce));
        waiters.push(() => {
          done++;
          if (done === c.count) finished();
          else pump();
        });
      }
    };
    pump();
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  socket.destroy();
  return {
    [`broker.raw.produce_${c.label}.mb_per_s`]: round((c.size * c.count) / 1e6 / seconds),
    [`broker.raw.produce_${c.label}.msgs_per_s`]: round(c.count / seconds, 0),
  };
}

export async function bench(options: { quick: boolean }): Promise<Record<string, number | string>> {
  process.env.KAFKAJS_NO_PARTITIONER_WARNING = '1';
  const dataDir = mkdtempSync(join(tmpdir(), 'cw-bench-broker-'));
  const broker = await startBrokerProcess(join(dataDir, 'broker'));
  const out: Record<string, number | string> = { 'broker.setup': 'broker child process, fsync interval, 3 partitions, acks=all, MB=1e6 bytes' };
  try {
    for (const c of cases(options.quick)) {
      out[`broker.case_${c.label}.records`] = c.count;
      Object.assign(out, await kafkajsFigures(broker.address, c));
      Object.assign(out, kcatFigures(broker.address, c, dataDir));
      Object.assign(out, await rawFigures(broker.address, c));
    }
  } finally {
    await broker.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await bench({ quick: process.argv.includes('--quick') });
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}
