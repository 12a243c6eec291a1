/**
 * The bytes path alone, at the production target: 8 cameras × 10 frames/s of 1280×960 PNG
 * (~1 MB each) through one process: ingest (chokidar, checks, kafkajs produce) → the embedded
 * broker (in-process, as `npm start` runs it) → a kafkajs consumer that only reads the records.
 * The clients reach the broker in memory (src/broker/in-process.ts), as `npm start`'s do; the
 * same run is then repeated over loopback TCP (`...tcp.*`), as clients in other processes go.
 * The cameras write from a child process (camera-writer.ts), so their CPU is not counted.
 *
 * - `ingest.e2e_bytes.cameras_8_fps_10.cpu_ms_per_frame`: CPU (user + system, all threads of
 *   this process) over the measured window, per frame consumed in it.
 * - `...frames_per_s`, `...file_to_consumed_ms.p50` / `.p99` (sidecar `capturedAt`, taken just
 *   before the camera writes the frame, → the consumer holding the record), `...peak_rss_mib`.
 * - Beside it, in the same run, the floor: `ingest.bare.read_file_ms_per_frame` (CPU of readFile
 *   of the same files), `ingest.bare.crc32c_ms_per_mb` (the broker's CRC-32C),
 *   `ingest.bare.crc32c_kafkajs_js_ms_per_mb` (kafkajs' own JS CRC-32C), `ingest.bare.sha256_ms_per_mb`,
 *   `ingest.bare.kafkajs_encode_ms_per_frame` (kafkajs encoding one produce request of one frame, as
 *   src/bus/kafka.ts sets kafkajs up), `ingest.bare.copy_ms_per_mb` (one memcpy).
 *
 *   node dist/bench/ingest-bytes.js [--quick]        (BENCH_BYTES_SECONDS, BENCH_BYTES_CAMERAS, BENCH_BYTES_FPS)
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof dist/bench/ingest-bytes.js    for a profile of the same run
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Registry } from 'prom-client';
import { startBroker } from '../src/broker/index.js';
import { crc32c } from '../src/broker/protocol/crc32c.js';
import { createConsumer, createKafka, ensureTopics } from '../src/bus/kafka.js';
import { topicNames } from '../src/bus/topics.js';
import { IngestStage } from '../src/ingest/index.js';
import { startCameraWriter } from './camera-writer.js';
import { percentile, sleep, syntheticFrame } from './support.js';

const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;
const cpuMs = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
};

/** CPU of the bare work on the same bytes, in the same process and run. */
async function floor(pool: string[], images: Buffer[]): Promise<Record<string, number>> {
  const mb = images.reduce((sum, b) => sum + b.length, 0) / 1e6;
  const rounds = 20;
  let t = process.cpuUsage();
  for (let r = 0; r < rounds; r += 1) for (const path of pool) await readFile(path);
  const readMs = cpuMs(t) / (rounds * pool.length);
  const perMb = (work: (b: Buffer) => unknown) => {
    t = process.cpuUsage();
    for (let r = 0; r < rounds; r += 1) for (const b of images) work(b);
    return cpuMs(t) / (rounds * mb);
  };
  const require = createRequire(import.meta.url);
  const kafkajsCrc = require('kafkajs/src/protocol/recordBatch/crc32C/crc32C.js') as (b: Buffer) => number;
  type ProduceV3 = (o: object) => { encode: () => Promise<unknown> };
  const produceV3 = require('kafkajs/src/protocol/requests/produce/v3/request.js') as ProduceV3;
  const encodeFrame = (value: Buffer) =>
    produceV3({
      acks: -1,
      timeout: 30_000,
      compression: 0,
      topicData: [
        {
          topic: 'frames',
          partitions: [
            { partition: 0, firstSequence: 0, messages: [{ key: Buffer.from('cam-1'), value, headers: { camera: 'cam-1' }, timestamp: Date.now() }] },
          ],
        },
      ],
    }).encode();
  t = process.cpuUsage();
  for (let r = 0; r < rounds; r += 1) for (const b of images) await encodeFrame(b);
  const encodeMs = cpuMs(t) / (rounds * images.length);
  const copyTarget = Buffer.allocUnsafe(Math.max(...images.map((b) => b.length)));
  return {
    'ingest.bare.read_file_ms_per_frame': round(readMs, 3),
    'ingest.bare.crc32c_ms_per_mb': round(
      perMb((b) => crc32c(b)),
      3,
    ),
    'ingest.bare.crc32c_kafkajs_js_ms_per_mb': round(perMb(kafkajsCrc), 3),
    'ingest.bare.kafkajs_encode_ms_per_frame': round(encodeMs, 3),
    'ingest.bare.copy_ms_per_mb': round(
      perMb((b) => b.copy(copyTarget)),
      3,
    ),
    'ingest.bare.sha256_ms_per_mb': round(
      perMb((b) => createHash('sha256').update(b).digest()),
      3,
    ),
  };
}

interface BytesRun {
  cameras: number;
  fps: number;
  seconds: number;
  warmupS: number;
  pool: string[];
  /** `in-process`: the clients reach the broker in memory, as `npm start` runs them; `tcp`: over loopback. */
  clients: 'in-process' | 'tcp';
}

/** One run of the bytes path in a folder of its own; figures without the key's prefix. */
async function bytesRun(run: BytesRun): Promise<Record<string, number>> {
  const { cameras, fps, seconds, warmupS, pool } = run;
  const root = mkdtempSync(join(tmpdir(), 'cw-bench-bytes-'));
  const broker = await startBroker({ port: 0, dataDir: join(root, 'broker'), registry: new Registry() });
  const kafka = createKafka({ brokers: [broker.address], clientId: 'bench-bytes', ...(run.clients === 'in-process' ? { inProcess: broker } : {}) });
  const topics = topicNames('bench-bytes.');
  const ids = Array.from({ length: cameras }, (_, i) => ({ camera: `cam-${i + 1}`, watch: join(root, 'cameras', `cam-${i + 1}`) }));
  for (const c of ids) await mkdir(c.watch, { recursive: true });
  let stage: IngestStage | undefined;
  let writer: ReturnType<typeof startCameraWriter> | undefined;
  const consumer = createConsumer(kafka, 'bench-bytes');
  try {
    await ensureTopics(kafka, topics, 3);
    stage = new IngestStage({ kafka, topics, registry: new Registry(), cameras: ids, after: 'delete', ledgerPath: join(root, 'ledger.jsonl') });
    await stage.start();

    let measuring = false;
    let consumed = 0;
    let consumedInWindow = 0;
    const latencies: number[] = [];
    await consumer.connect();
    await consumer.subscribe({ topic: topics.frames, fromBeginning: true });
    await consumer.run({
      eachBatch: async ({ batch }) => {
        const now = Date.now();
        for (const message of batch.messages) {
          consumed += 1;
          if (!measuring) continue;
          consumedInWindow += 1;
          const capturedAt = message.headers?.['captured-at'];
          if (capturedAt) latencies.push(now - Date.parse(String(capturedAt)));
        }
      },
    });

    writer = startCameraWriter({
      cameras: ids.map((c) => ({ id: c.camera, dir: c.watch })),
      cex: pool.map((path) => ({ path, truth: { label: 'cex' } })),
      fps,
      seconds,
    });
    const writerDone = writer.done.then((r) => {
      if (r.failures > 0) throw new Error(`camera writer: ${r.failures} writes failed (${r.lastError})`);
      return r.written;
    });
    writerDone.catch(() => undefined); // awaited after the warm-up; a failure before that is not unhandled
    await sleep(warmupS * 1000);
    measuring = true;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const written = await writerDone;
    const deadline = Date.now() + 60_000;
    while (consumed < written && Date.now() < deadline) await sleep(20);
    const windowMs = performance.now() - t0;
    const cpu = cpuMs(cpu0);
    measuring = false;
    if (consumed < written) throw new Error(`${run.clients}: only ${consumed} of ${written} frames consumed within 60 s of the last write`);
    latencies.sort((a, b) => a - b);
    return {
      frames: written,
      rejected: stage.stats.rejected,
      cpu_ms_per_frame: round(cpu / consumedInWindow),
      cpu_cores_used: round(cpu / windowMs),
      frames_per_s: round((consumedInWindow / windowMs) * 1000, 1),
      'file_to_consumed_ms.p50': percentile(latencies, 50),
      'file_to_consumed_ms.p99': percentile(latencies, 99),
    };
  } finally {
    writer?.stop();
    await writer?.done.catch(() => undefined);
    await consumer.disconnect().catch(() => undefined);
    await stage?.close();
    await broker.close();
    rmSync(root, { recursive: true, force: true });
  }
}

export async function benchBytesPath(options: { quick: boolean }): Promise<Record<string, number | string>> {
  const cameras = Number(process.env.BENCH_BYTES_CAMERAS ?? (options.quick ? 2 : 8));
  const fps = Number(process.env.BENCH_BYTES_FPS ?? 10);
  const seconds = Number(process.env.BENCH_BYTES_SECONDS ?? (options.quick ? 4 : 12));
  const warmupS = options.quick ? 1 : 2;
  const key = `ingest.e2e_bytes.cameras_${cameras}_fps_${fps}`;
  const root = mkdtempSync(join(tmpdir(), 'cw-bench-bytes-pool-'));
  const out: Record<string, number | string> = {
    [`${key}.setup`]: `in-process broker (fsync interval, 3 partitions), ${cameras} cameras × ${fps} frames/s for ${seconds} s (first ${warmupS} s not measured), sidecar + atomic rename from a child process, after=delete, one kafkajs consumer reading every record; the clients reach the broker in memory as npm start runs them (${key}.tcp.*: over loopback TCP, in the same run)`,
  };
  try {
    const images = await Promise.all(Array.from({ length: 8 }, (_, i) => syntheticFrame(1280, 960, i + 101)));
    const pool: string[] = [];
    for (const [i, image] of images.entries()) {
      pool.push(join(root, `p${i}.png`));
      await writeFile(pool[i]!, image);
    }
    out[`${key}.bytes_per_frame`] = Math.round(images.reduce((s, b) => s + b.length, 0) / images.length);
    const run = { cameras, fps, seconds, warmupS, pool };
    for (const [name, value] of Object.entries(await bytesRun({ ...run, clients: 'in-process' }))) out[`${key}.${name}`] = value;
    out[`${key}.peak_rss_mib`] = Math.round(process.resourceUsage().maxRSS / 1024);
    for (const [name, value] of Object.entries(await bytesRun({ ...run, clients: 'tcp' }))) out[`${key}.tcp.${name}`] = value;
    Object.assign(out, await floor(pool, images));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await benchBytesPath({ quick: process.argv.includes('--quick') });
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}
