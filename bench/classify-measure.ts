/**
 * How the classify benches measure a Classifier: throughput over a number of images in calls of
 * one size, per-call latency percentiles and the process's CPU time per image. Shared by
 * bench/classify.ts and bench/device-check.ts; it imports no simulator, so the device check runs
 * where @napi-rs/canvas is not carried.
 */
import type { Classifier } from '../src/classify/classifier.js';
import { MicroBatcher } from '../src/classify/batcher.js';
import { DEFAULT_MAX_BATCH_WAIT_MS } from '../src/config/defaults.js';
import { fetchBounds } from '../src/config/overload.js';

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Throughput over `total` images in calls of `batch`, and per-call latency percentiles. */
export async function measure(
  classifier: Classifier,
  images: Buffer[],
  batch: number,
  total: number,
): Promise<{ fps: number; p50: number; p99: number; cpuMs: number }> {
  await classifier.classify(images.slice(0, batch)); // warm-up: first run allocates
  const latencies: number[] = [];
  // CPU time of the whole process (main thread, inference worker, libuv/sharp threads): on a
  // shared machine it says what a frame costs better than wall time does.
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let done = 0, k = 0; done < total; done += batch, k++) {
    const call = Array.from({ length: batch }, (_, i) => images[(k * batch + i) % images.length]!);
    const s = performance.now();
    await classifier.classify(call);
    latencies.push(performance.now() - s);
  }
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const frames = Math.ceil(total / batch) * batch;
  latencies.sort((a, b) => a - b);
  return { fps: frames / seconds, p50: percentile(latencies, 50), p99: percentile(latencies, 99), cpuMs: (cpu.user + cpu.system) / 1000 / frames };
}

/**
 * Throughput of the classify stage's own batching over a backlog of `total` images: each
 * submitted alone, as records of many partitions are, all at once (a saturated stage; the queue
 * is not bounded here as the stage's is), through the stage's MicroBatcher (`maxBatchSize` images
 * and the stage's default `maxBatchBytes` a call, two calls in flight, so one batch is decoded while
 * the worker runs the other). What the stage can deliver when it never waits for Kafka, beside
 * `measure`'s one call at a time.
 */
export async function measureStage(classifier: Classifier, images: Buffer[], maxBatchSize: number, total: number): Promise<{ fps: number; cpuMs: number }> {
  await classifier.classify(images.slice(0, Math.min(maxBatchSize, images.length))); // warm-up
  const { maxBatchBytes } = fetchBounds({}, { maxBatchSize });
  const batcher = new MicroBatcher(classifier, maxBatchSize, DEFAULT_MAX_BATCH_WAIT_MS, undefined, undefined, { maxBatchBytes });
  try {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await Promise.all(Array.from({ length: total }, (_, i) => batcher.classify([images[i % images.length]!])));
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    return { fps: total / seconds, cpuMs: (cpu.user + cpu.system) / 1000 / total };
  } finally {
    batcher.close();
  }
}
