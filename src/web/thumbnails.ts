/**
 * Thumbnails for the live page: every frame on the `frames` topic, downscaled to a
 * small JPEG, kept as the latest per camera and in a bounded LRU by frameId so an
 * alert can show its evidence frames. Alert evidence is pinned so a busy camera
 * cannot evict the frames an operator is about to look at.
 */
import sharp from 'sharp';
import type { Consumer, Kafka } from 'kafkajs';
import { hostname } from 'node:os';
import { createConsumer } from '../bus/kafka.js';
import { decodeFrameHeaders } from '../bus/messages.js';
import type { Topics } from '../bus/topics.js';
import type { Logger } from '../config/logger.js';
import type { WebMetrics } from './metrics.js';

export interface Thumbnail {
  frameId: string;
  camera: string;
  capturedAt: string;
  jpeg: Buffer;
  /** Size of the thumbnail. */
  width: number;
  height: number;
  /** Size of the original frame: prediction tiles are in these pixel coordinates. */
  sourceWidth: number;
  sourceHeight: number;
}

export const THUMBNAIL_MAX_SIDE = 320;
export const DEFAULT_MAX_LAG_MS = 10_000;
/**
 * libvips refuses larger inputs: a corrupt or hostile header claiming 100k×100k
 * would otherwise make it allocate gigabytes. 64 Mpx covers any industrial camera.
 */
export const THUMBNAIL_PIXEL_LIMIT = 64 * 1024 * 1024;

/** Decode any image sharp reads and re-encode it as a JPEG no larger than `maxSide` on each side. */
export async function makeThumbnail(
  image: Buffer,
  maxSide = THUMBNAIL_MAX_SIDE,
): Promise<{ jpeg: Buffer; width: number; height: number; sourceWidth: number; sourceHeight: number }> {
  const input = sharp(image, { limitInputPixels: THUMBNAIL_PIXEL_LIMIT, failOn: 'error' });
  const meta = await input.metadata();
  if (!meta.width || !meta.height) throw new Error(`thumbnail: image has no dimensions (format ${meta.format ?? 'unknown'})`);
  // EXIF orientation would swap width and height; camera frames have none, but tiles would be wrong if they did.
  const { data, info } = await input
    .resize(maxSide, maxSide, { fit: 'inside', withoutEnlargement: true })
    .jpeg({ quality: 75, mozjpeg: false })
    .toBuffer({ resolveWithObject: true });
  return { jpeg: data, width: info.width, height: info.height, sourceWidth: meta.width, sourceHeight: meta.height };
}

/** Latest thumbnail per camera + LRU by frameId + pinned evidence frames. */
export class ThumbnailCache {
  private readonly byFrame = new Map<string, Thumbnail>();
  private readonly pinned = new Map<string, Thumbnail>();
  private readonly latest = new Map<string, Thumbnail>();
  private readonly wantedPins = new Set<string>();

  constructor(
    private readonly capacity = 512,
    private readonly pinCapacity = 256,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new Error(`thumbnail cache: capacity must be a positive integer, got ${capacity}`);
  }

  add(thumb: Thumbnail): void {
    this.byFrame.delete(thumb.frameId); // re-insert = most recently used
    this.byFrame.set(thumb.frameId, thumb);
    while (this.byFrame.size > this.capacity) {
      const oldest = this.byFrame.keys().next().value as string;
      this.byFrame.delete(oldest);
    }
    const current = this.latest.get(thumb.camera);
    if (!current || current.capturedAt <= thumb.capturedAt) this.latest.set(thumb.camera, thumb);
    if (this.wantedPins.delete(thumb.frameId)) this.pinNow(thumb);
  }

  /** Keep these frames beyond the LRU (alert evidence); frames not seen yet are pinned when they arrive. */
  pin(frameIds: Iterable<string>): void {
    for (const id of frameIds) {
      const thumb = this.byFrame.get(id);
      if (thumb) this.pinNow(thumb);
      else if (!this.pinned.has(id)) {
        this.wantedPins.add(id);
        while (this.wantedPins.size > this.pinCapacity) this.wantedPins.delete(this.wantedPins.values().next().value as string);
      }
    }
  }

  private pinNow(thumb: Thumbnail): void {
    this.pinned.delete(thumb.frameId);
    this.pinned.set(thumb.frameId, thumb);
    while (this.pinned.size > this.pinCapacity) this.pinned.delete(this.pinned.keys().next().value as string);
  }

  get(frameId: string): Thumbnail | undefined {
    const thumb = this.byFrame.get(frameId);
    if (thumb) {
      this.byFrame.delete(frameId);
      this.byFrame.set(frameId, thumb);
      return thumb;
    }
    return this.pinned.get(frameId);
  }

  latestFor(camera: string): Thumbnail | undefined {
    return this.latest.get(camera);
  }

  get size(): number {
    return this.byFrame.size;
  }
}

export interface FrameThumbnailerOptions {
  kafka: Kafka;
  topics: Topics;
  cache: ThumbnailCache;
  metrics: WebMetrics;
  logger: Logger;
  /** Called after each thumbnail is cached (the web server turns it into a `frame` live event). */
  onThumbnail: (thumb: Thumbnail) => void;
  /** Consumer group; default is unique per host and process because every web instance needs every frame. */
  groupId?: string;
  /**
   * Frames produced longer ago than this are skipped (result="skipped_lag"): when the web process
   * falls behind the line, it catches up to the live picture instead of showing old frames slowly.
   */
  maxLagMs?: number;
}

/**
 * Consumes `frames` from the latest offset (a live view has no use for history) with its own
 * consumer group, so it never takes partitions away from classify.
 */
export class FrameThumbnailer {
  private consumer: Consumer | undefined;
  private closed = false;

  constructor(private readonly options: FrameThumbnailerOptions) {}

  get groupId(): string {
    return this.options.groupId ?? `crystalwatch-web-thumbnails-${hostname()}-${process.pid}`;
  }

  async start(): Promise<void> {
    const { kafka, topics, cache, metrics, logger, onThumbnail } = this.options;
    const consumer = createConsumer(kafka, this.groupId);
    this.consumer = consumer;
    await consumer.connect();
    await consumer.subscribe({ topic: topics.frames, fromBeginning: false });
    await consumer.run({
      autoCommit: true,
      eachMessage: async ({ message }) => {
        if (this.closed) return;
        const headers = decodeFrameHeaders(message.headers);
        if (!headers.ok || !message.value) {
          metrics.thumbnails.inc({ result: 'bad_headers' });
          return; // classify routes malformed frames to dead-letter; the page just skips them
        }
        const producedAt = Number(message.timestamp);
        if (Number.isFinite(producedAt) && Date.now() - producedAt > (this.options.maxLagMs ?? DEFAULT_MAX_LAG_MS)) {
          metrics.thumbnails.inc({ result: 'skipped_lag' });
          return;
        }
        const end = metrics.thumbnailSeconds.startTimer();
        try {
          const made = await makeThumbnail(message.value);
          end();
          const thumb: Thumbnail = { frameId: headers.value['frame-id'], camera: headers.value.camera, capturedAt: headers.value['captured-at'], ...made };
          cache.add(thumb);
          metrics.thumbnails.inc({ result: 'ok' });
          onThumbnail(thumb);
        } catch (err) {
          metrics.thumbnails.inc({ result: 'decode_error' });
          logger.debug({ frameId: headers.value['frame-id'], err: (err as Error).message }, 'thumbnail: frame not decodable, skipped');
        }
      },
    });
    logger.info({ topic: topics.frames, groupId: this.groupId }, 'thumbnails: consuming frames from latest');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const consumer = this.consumer;
    this.consumer = undefined;
    if (consumer) await consumer.disconnect().catch(() => undefined);
  }
}
