/**
 * `classify.overload` and `classify.fetch`: what the classify stage does when frames arrive
 * faster than it can classify them, and the bounds that keep its memory flat meanwhile.
 * The schema lives here (index.ts stays one screen of fields); `fetchBounds` derives every
 * bound that is left out from the frame size, for the app and for a stage built without config.
 */
import { z } from 'zod';
import { DEFAULT_MAX_BATCH_SIZE, DEFAULT_MAX_MESSAGE_BYTES } from './defaults.js';

/**
 * `newest-first` (default): under overload a camera's frames older than `maxFrameAgeMs` with a newer
 * frame of the same camera already fetched are skipped (counted), and classified later, marked
 * `late`, when the stage has nothing newer to do. `skip`: the same, without the later pass.
 * `in-order`: every frame in offset order, a backlog allowed (the behaviour before #15).
 */
export const OVERLOAD_POLICIES = ['newest-first', 'in-order', 'skip'] as const;
export type OverloadPolicy = (typeof OVERLOAD_POLICIES)[number];

/** An early-stop alarm is worth most on the newest frame; the skipped ones are still classified once load drops. */
export const DEFAULT_OVERLOAD_POLICY: OverloadPolicy = 'newest-first';
/** The latency bound (ms since ingest): a frame that would be predicted past it, with a newer one of its camera in hand, is stale (src/classify/overload.ts). */
export const DEFAULT_MAX_FRAME_AGE_MS = 1_000;
/** newest-first: skipped offsets remembered per partition for the catch-up pass (16 bytes each). */
export const DEFAULT_MAX_CATCH_UP_FRAMES = 10_000;
/** A 1280×960 8-bit probe frame as PNG is 0.6–1.5 MB; the fetch and queue bounds are multiples of this. */
export const DEFAULT_FRAME_BYTES = 2 * 1024 * 1024;
/** Frames per partition per fetch, by default: enough to see a camera's newer frame in hand, few enough to stay small. */
export const FRAMES_PER_PARTITION_FETCH = 8;
/** Partitions whose fetched frames one fetch response may hold, by default. */
export const PARTITIONS_PER_FETCH = 4;
/**
 * Frames' worth of bytes in one inference call. All frames of a fetch in one call decoded them all
 * before the first tile reached the worker, which then waited: on 2 cores, 8 cameras × 10 fps,
 * calls of 2–3 frames gave 13.9–14.3 predictions/s against 11.2–11.9 (alternating e2e runs).
 */
export const BATCH_FRAMES = 2;

export const OverloadSchema = z
  .object({
    policy: z.enum(OVERLOAD_POLICIES).default(DEFAULT_OVERLOAD_POLICY),
    maxFrameAgeMs: z.number().int().min(0).max(3_600_000).default(DEFAULT_MAX_FRAME_AGE_MS),
    maxCatchUpFrames: z.number().int().min(0).max(1_000_000).default(DEFAULT_MAX_CATCH_UP_FRAMES),
  })
  .strict()
  .prefault({});

export const FetchSchema = z
  .object({
    /** Typical size of one frame record; every bound left out below is derived from it. */
    frameBytes: z.number().int().min(1024).default(DEFAULT_FRAME_BYTES),
    /** kafkajs `maxBytesPerPartition` (default 8 × frameBytes); a larger record batch (ingest sends up to 8 MiB, several frames) still comes through whole (KIP-74). */
    maxBytesPerPartition: z.number().int().min(1024).optional(),
    /** kafkajs `maxBytes`, one fetch response (default 4 × maxBytesPerPartition). */
    maxBytes: z.number().int().min(1024).optional(),
    /** Images waiting in the micro-batcher, not yet in an inference call (default 2 × classify.maxBatchSize). */
    maxQueuedImages: z.number().int().min(1).optional(),
    /** Their bytes (default maxQueuedImages × frameBytes). */
    maxQueuedBytes: z.number().int().min(1024).optional(),
    /**
     * Image bytes in one inference call (default 2 × frameBytes: two or three full frames, and a
     * whole batch of crops). Calls of a few frames, two in flight, decode the next while the
     * worker runs the last. Above maxQueuedBytes only a lone oversized submission fills a call by
     * bytes: calls then go by count or after classify.maxBatchWaitMs.
     */
    maxBatchBytes: z.number().int().min(1024).optional(),
  })
  .strict()
  .prefault({});

export type OverloadConfig = z.infer<typeof OverloadSchema>;
export type FetchConfig = z.infer<typeof FetchSchema>;

export interface FetchBounds {
  maxBytesPerPartition: number;
  maxBytes: number;
  maxQueuedImages: number;
  maxQueuedBytes: number;
  maxBatchBytes: number;
}

/**
 * The bounds with every one left out derived from `frameBytes`. A fetch never asks for less than
 * one largest record (`maxMessageBytes`) in total, so an oversized frame cannot stall a partition.
 */
export function fetchBounds(fetch: Partial<FetchConfig> = {}, options: { maxBatchSize?: number; maxMessageBytes?: number } = {}): FetchBounds {
  const frameBytes = fetch.frameBytes ?? DEFAULT_FRAME_BYTES;
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const maxBytesPerPartition = fetch.maxBytesPerPartition ?? FRAMES_PER_PARTITION_FETCH * frameBytes;
  const maxBytes = Math.max(fetch.maxBytes ?? PARTITIONS_PER_FETCH * maxBytesPerPartition, maxMessageBytes);
  const maxQueuedImages = fetch.maxQueuedImages ?? 2 * (options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE);
  const maxQueuedBytes = fetch.maxQueuedBytes ?? maxQueuedImages * frameBytes;
  const maxBatchBytes = fetch.maxBatchBytes ?? BATCH_FRAMES * frameBytes;
  return { maxBytesPerPartition, maxBytes, maxQueuedImages, maxQueuedBytes, maxBatchBytes };
}
