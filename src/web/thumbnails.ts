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
 * One thumbnail per camera per second: decoding and re-encoding a 1280×960 frame costs ~11 ms of
 * CPU, so thumbnails of every frame of 8 cameras at 10 fps would take most of a core for a page
 * that shows one picture per camera. Frames wanted as alert evidence are always made.
 */
export const DEFAULT_THUMBNAIL_INTERVAL_MS = 1_000;
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

  /** An alert asked for this frame before its thumbnail was made: make it whatever the interval. */
  isWanted(frameId: string): boolean {
    return this.wantedPins.has(frameId);
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
  /** At most one thumbnail per camera this often (default DEFAULT_THUMBNAIL_INTERVAL_MS); 0 makes one of every frame. */
  intervalMs?: number;
  /**
   * The newest frames skipped by the interval are kept, compressed, up to this many bytes in all
   * (default DEFAULT_HELD_BYTES), so an alert's evidence frames can still be made when it fires.
   */
  holdBytes?: number;
}

/** 64 MiB: the last ~0.7 s of 8 cameras × 10 fps of 1280×960 PNGs — an alert names its evidence within that. */
export const DEFAULT_HELD_BYTES = 64 * 2 ** 20;

interface HeldFrame {
  camera: string;
  capturedAt: string;
  bytes: Buffer;
}

const MAX_TRACKED_CAMERAS = 4096;

/**
 * Consumes `frames` from the latest offset (a live view has no use for history) with its own
 * consumer group, so it never takes partitions away from classify.
 */
export class FrameThumbnailer {
  private consumer: Consumer | undefined;
  private closed = false;
  /** When each camera's last thumbnail was made (insertion order = least recently made first). */
  private readonly madeAt = new Map<string, number>();
  /** Frames skipped by the interval, oldest first, by frameId. */
  private readonly held = new Map<string, HeldFrame>();
  private heldBytes = 0;

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
        const frameId = headers.value['frame-id'];
        const camera = headers.value.camera;
        const interval = this.options.intervalMs ?? DEFAULT_THUMBNAIL_INTERVAL_MS;
        const last = this.madeAt.get(camera);
        if (last !== undefined && Date.now() - last < interval && !cache.isWanted(frameId)) {
          metrics.thumbnails.inc({ result: 'skipped_interval' });
          this.hold(frameId, { camera, capturedAt: headers.value['captured-at'], bytes: message.value });
          return;
        }
        const end = metrics.thumbnailSeconds.startTimer();
        try {
          const made = await makeThumbnail(message.value);
          end();
          this.madeAt.delete(camera);
          this.madeAt.set(camera, Date.now());
          // Camera ids are checked by the header codec but not bounded in number: forget the stalest.
          if (this.madeAt.size > MAX_TRACKED_CAMERAS) this.madeAt.delete(this.madeAt.keys().next().value as string);
          const thumb: Thumbnail = { frameId, camera, capturedAt: headers.value['captured-at'], ...made };
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

  /** An alert names these frames: make the thumbnails of those still held (the others were made or are gone). */
  async want(frameIds: Iterable<string>): Promise<void> {
    for (const frameId of frameIds) {
      const frame = this.held.get(frameId);
      if (!frame || this.closed) continue;
      this.held.delete(frameId);
      this.heldBytes -= frame.bytes.length;
      try {
        const made = await makeThumbnail(frame.bytes);
        if (this.closed) return;
        const thumb: Thumbnail = { frameId, camera: frame.camera, capturedAt: frame.capturedAt, ...made };
        this.options.cache.add(thumb);
        this.options.metrics.thumbnails.inc({ result: 'ok' });
        this.options.onThumbnail(thumb);
      } catch (err) {
        this.options.metrics.thumbnails.inc({ result: 'decode_error' });
        this.options.logger.debug({ frameId, err: (err as Error).message }, 'thumbnail: evidence frame not decodable, skipped');
      }
    }
  }

  private hold(frameId: string, frame: HeldFrame): void {
    const limit = this.options.holdBytes ?? DEFAULT_HELD_BYTES;
    if (frame.bytes.length > limit) return;
    // A copy: kafkajs' value is a view of the whole fetch response, which must not be kept alive.
    const kept = { ...frame, bytes: Buffer.from(frame.bytes) };
    const previous = this.held.get(frameId);
    if (previous) this.heldBytes -= previous.bytes.length;
    this.held.delete(frameId);
    this.held.set(frameId, kept);
    this.heldBytes += kept.bytes.length;
    for (const [id, oldest] of this.held) {
      if (this.heldBytes <= limit) break;
      this.held.delete(id);
      this.heldBytes -= oldest.bytes.length;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.held.clear();
    this.heldBytes = 0;
    const consumer = this.consumer;
    this.consumer = undefined;
    if (consumer) await consumer.disconnect().catch(() => undefined);
  }
}
