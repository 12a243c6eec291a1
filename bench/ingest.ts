/**
 * Ingest benchmark: files dropped into a camera folder → Kafka ack.
 *
 * - `ingest.crop150.frames_per_s`, `ingest.frame1280x960.frames_per_s`: files written
 *   as fast as possible (atomic rename), frames/s from the first file complete to the
 *   last Kafka ack.
 * - `ingest.rate30.<size>.p50_ms` / `p99_ms`: frames written at 30 frames/s; per frame,
 *   from the rename that completes the file to the ack record in the ingest ledger.
 * - `ingest.kafkajs_only.frame1280x960.frames_per_s`: kafkajs alone, same records, for scale.
 * - `ingest.e2e_bytes.*` and `ingest.bare.*`: the production target (8 cameras × 10 frames/s of
 *   1280×960 PNG, in-process broker, a consumer), CPU per frame beside its floor (ingest-bytes.ts).
 * The broker runs as its own process (as in production), fsync interval.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startBrokerProcess } from './broker-process.js';
import { benchBytesPath } from './ingest-bytes.js';
import { percentile, sleep, syntheticFrame } from './support.js';
import { Registry } from 'prom-client';
import { CompressionTypes } from 'kafkajs';
import { createKafka, createProducer, ensureTopics } from '../src/bus/kafka.js';
import { topicNames } from '../src/bus/topics.js';
import { IngestStage } from '../src/ingest/index.js';

export async function bench(options: { quick: boolean }): Promise<Record<string, number | string>> {
  const root = mkdtempSync(join(tmpdir(), 'cw-bench-ingest-'));
  const broker = await startBrokerProcess(join(root, 'broker'));
  const out: Record<string, number | string> = {
    'ingest.setup': 'broker child process, 1 partition, one camera, atomic rename writes, after=delete, ledger fsync per batch',
  };
  try {
    const kafka = createKafka({ brokers: [broker.address], clientId: 'bench-ingest' });
    const topics = topicNames('bench-ingest.');
    await ensureTopics(kafka, topics, 1);

    const run = async (label: string, images: Buffer[], count: number, intervalMs: number) => {
      const watch = join(root, label);
      await mkdir(watch, { recursive: true });
      const ledgerPath = join(root, `${label}.ledger.jsonl`);
      const stage = new IngestStage({
        kafka,
        topics,
        registry: new Registry(),
        cameras: [{ camera: label, watch }],
        after: 'delete',
        ledgerPath,
        reconcileIntervalMs: 2_000,
      });
      await stage.start();
      const completedAt = new Map<string, number>();
      const started = Date.now();
      for (let i = 0; i < count; i += 1) {
        const name = `f${String(i).padStart(6, '0')}.png`;
        const due = started + i * intervalMs;
        if (intervalMs > 0 && Date.now() < due) await sleep(due - Date.now());
        await writeFile(join(watch, `${name}.tmp`), images[i % images.length]!);
        await rename(join(watch, `${name}.tmp`), join(watch, name));
        completedAt.set(name, Date.now());
      }
      while (stage.stats.ingested + stage.stats.rejected < count) await sleep(5);
      const seconds = (Date.now() - started) / 1000;
      await stage.close();
      const latencies: number[] = [];
      const sendAt = new Map<string, string>();
      for (const line of (await readFile(ledgerPath, 'utf8')).split('\n')) {
        if (!line) continue;
        const r = JSON.parse(line) as { t: string; path?: string; frameId: string; at: string };
        if (r.t === 'send' && r.path) sendAt.set(r.frameId, r.path);
        if (r.t === 'ack') {
          const path = sendAt.get(r.frameId);
          const done = path ? completedAt.get(path) : undefined;
          if (done !== undefined) latencies.push(Date.parse(r.at) - done);
        }
      }
      latencies.sort((a, b) => a - b);
      return { seconds, latencies, rejected: stage.stats.rejected };
    };

    // 150-px crops, as fast as possible.
    const crops = await Promise.all(Array.from({ length: 16 }, (_, i) => syntheticFrame(150, 150, i + 1)));
    const cropCount = options.quick ? 300 : 2000;
    const a = await run('crop150', crops, cropCount, 0);
    out['ingest.crop150.frames'] = cropCount;
    out['ingest.crop150.bytes_per_frame'] = Math.round(crops.reduce((s, b) => s + b.length, 0) / crops.length);
    out['ingest.crop150.frames_per_s'] = Math.round((cropCount / a.seconds) * 10) / 10;
    out['ingest.crop150.p50_ms'] = percentile(a.latencies, 50);

    // Full 1280×960 frames, as fast as possible.
    const frames = await Promise.all(Array.from({ length: 4 }, (_, i) => syntheticFrame(1280, 960, i + 101)));
    const fullCount = options.quick ? 60 : 300;
    const b = await run('frame1280x960', frames, fullCount, 0);
    out['ingest.frame1280x960.frames'] = fullCount;
    out['ingest.frame1280x960.bytes_per_frame'] = Math.round(frames.reduce((s, f) => s + f.length, 0) / frames.length);
    out['ingest.frame1280x960.frames_per_s'] = Math.round((fullCount / b.seconds) * 10) / 10;
    out['ingest.frame1280x960.mb_per_s'] = Math.round(((fullCount * (out['ingest.frame1280x960.bytes_per_frame'] as number)) / 1e6 / b.seconds) * 10) / 10;

    // 30 frames/s: latency file complete → Kafka ack, for crops and for full frames.
    const rateCount = options.quick ? 90 : 600;
    const c = await run('rate30crop', crops, rateCount, 1000 / 30);
    out['ingest.rate30.crop150.frames'] = rateCount;
    out['ingest.rate30.crop150.p50_ms'] = percentile(c.latencies, 50);
    out['ingest.rate30.crop150.p99_ms'] = percentile(c.latencies, 99);
    const d = await run('rate30full', frames, rateCount, 1000 / 30);
    out['ingest.rate30.frame1280x960.frames'] = rateCount;
    out['ingest.rate30.frame1280x960.p50_ms'] = percentile(d.latencies, 50);
    out['ingest.rate30.frame1280x960.p99_ms'] = percentile(d.latencies, 99);
    out['ingest.rejected'] = a.rejected + b.rejected + c.rejected + d.rejected;

    // Ceiling for comparison: kafkajs alone producing the same 1280×960 records, one per request.
    const producer = createProducer(kafka);
    await producer.connect();
    const ceilingCount = options.quick ? 20 : 100;
    const t0 = Date.now();
    for (let i = 0; i < ceilingCount; i += 1) {
      await producer.send({
        topic: topics.frames,
        acks: -1,
        compression: CompressionTypes.None,
        messages: [{ key: 'ceiling', value: frames[i % frames.length]! }],
      });
    }
    out['ingest.kafkajs_only.frame1280x960.frames_per_s'] = Math.round((ceilingCount / ((Date.now() - t0) / 1000)) * 10) / 10;
    await producer.disconnect();
  } finally {
    await broker.stop();
    rmSync(root, { recursive: true, force: true });
  }
  Object.assign(out, await benchBytesPath(options));
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const result = await bench({ quick: process.argv.includes('--quick') });
  process.stdout.write(JSON.stringify(result, null, 2) + '\n');
}
