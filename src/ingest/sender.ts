/**
 * The sending half of a camera: complete frames wait in `ready` until they go to `frames`,
 * per camera in capture order, in requests of a few MiB, retried with backoff on a fresh
 * producer after looking up whether the failed request was appended after all. The ledger's
 * `send` record precedes each request and its `ack` record follows; the camera's hooks decide
 * what happens to a file once its frame is in Kafka, refused by Kafka, or left unsent at close.
 */
import { CompressionTypes, type Producer } from 'kafkajs';
import { createProducer } from '../bus/kafka.js';
import { encodeFrameHeaders, type FrameHeaders } from '../bus/messages.js';
import type { Logger } from '../config/logger.js';
import type { CameraContext } from './context.js';
import type { AckRecord, SendRecord } from './ledger.js';
import { findFrameIds } from './recovery.js';

export interface ReadyFrame {
  rel: string;
  abs: string;
  bytes: Buffer;
  size: number;
  mtimeMs: number;
  sha256: string;
  frameId: string;
  capturedAt: string;
  headers: FrameHeaders;
  completedAt: number;
}

export interface SenderHooks {
  /** The frame is in Kafka and in the ledger (`sentNow` false: recovery had found it there already). */
  finished(frame: ReadyFrame, sentNow: boolean): Promise<void>;
  /** Kafka refused the single record as too large. */
  refused(frame: ReadyFrame, detail: string): Promise<void>;
  /** Closed before it was acknowledged: the ledger's `send` record lets the next start sort it out. */
  abandoned(frame: ReadyFrame): void;
}

const MAX_BATCH_FRAMES = 256;
/**
 * Bytes per produce request, at most. One frame per request while a camera keeps up; a camera
 * behind (a slow broker, a burst) catches up with several per request. kafkajs keeps large values
 * by reference (src/bus/kafkajs-encoder.ts), so a large request costs no more per byte.
 */
const MAX_BATCH_BYTES = 8 * 1024 * 1024;

export class FrameSender {
  private ready: ReadyFrame[] = [];
  private wake: (() => void) | undefined;
  private done: Promise<void> | undefined;
  private producer: Producer | undefined;
  private readonly sleepers = new Set<() => void>();
  private closed = false;

  constructor(
    private readonly camera: string,
    private readonly ctx: CameraContext,
    private readonly log: Logger,
    private readonly hooks: SenderHooks,
  ) {}

  start(): void {
    this.done ??= this.loop();
  }

  push(frame: ReadyFrame): void {
    this.ready.push(frame);
    this.wake?.();
  }

  /**
   * Stops sending. A send stuck on an unreachable broker would hold close() for kafkajs's
   * whole retry budget; disconnecting fails it now. Its frames stay `send` without `ack` in
   * the ledger, and the next start looks them up in Kafka.
   */
  async stop(): Promise<void> {
    this.closed = true;
    for (const wake of [...this.sleepers]) wake();
    this.wake?.();
    const producer = this.producer;
    this.producer = undefined;
    await producer?.disconnect().catch(() => undefined);
    await this.done;
  }

  /** After stop() and once no check can push any more: frames left unsent give their bytes back. */
  async discard(): Promise<void> {
    for (const f of this.ready) this.ctx.budget.release(f.size);
    this.ready = [];
    // The loop may have made a new producer while retrying.
    const last = this.producer;
    this.producer = undefined;
    await last?.disconnect().catch(() => undefined);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((done) => {
      const finish = () => {
        clearTimeout(timer);
        this.sleepers.delete(finish);
        done();
      };
      const timer = setTimeout(finish, ms);
      this.sleepers.add(finish);
    });
  }

  private async loop(): Promise<void> {
    await this.ctx.recovered.catch(() => undefined);
    while (!this.closed) {
      if (this.ready.length === 0) {
        await new Promise<void>((wake) => {
          this.wake = wake;
        });
        this.wake = undefined;
        continue;
      }
      const batch = this.takeBatch();
      if (batch.length === 0) {
        // The earliest frame is younger than the reorder window: an event for an
        // earlier capture may still be on its way (events from sibling folders race).
        const youngest = Math.min(...this.ready.map((f) => f.completedAt));
        await this.sleep(Math.max(1, this.ctx.reorderWindowMs - (Date.now() - youngest)));
        continue;
      }
      await this.sendBatch(batch);
    }
  }

  /** Sorted by capture time; the longest prefix of frames complete for at least the reorder window. */
  private takeBatch(): ReadyFrame[] {
    this.ready.sort((a, b) => (a.capturedAt < b.capturedAt ? -1 : a.capturedAt > b.capturedAt ? 1 : a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
    const batch: ReadyFrame[] = [];
    let bytes = 0;
    const now = Date.now();
    const limit = Math.min(this.ctx.maxMessageBytes, MAX_BATCH_BYTES);
    while (this.ready.length > 0 && batch.length < MAX_BATCH_FRAMES) {
      const next = this.ready[0]!;
      if (now - next.completedAt < this.ctx.reorderWindowMs) break;
      const size = next.size + 1024;
      if (batch.length > 0 && bytes + size > limit) break;
      batch.push(next);
      bytes += size;
      this.ready.shift();
    }
    return batch;
  }

  private async sendBatch(batch: ReadyFrame[]): Promise<void> {
    // Frames the ledger already has acknowledged (start-up recovery found them in Kafka) are not sent again.
    let pending: ReadyFrame[] = [];
    for (const f of batch) {
      const entry = this.ctx.ledger.byFrame(f.frameId);
      if (entry?.acked && entry.camera === this.camera && entry.path === f.rel) await this.hooks.finished(f, false);
      else pending.push(f);
    }
    if (pending.length === 0) return;

    const at = new Date().toISOString();
    const sends: SendRecord[] = pending.map((f) => ({
      t: 'send',
      camera: this.camera,
      path: f.rel,
      size: f.size,
      mtimeMs: f.mtimeMs,
      sha256: f.sha256,
      frameId: f.frameId,
      at,
    }));
    // Written, not fsynced: it survives a killed process (the page cache does), and the
    // ack record's fsync below makes it durable too. Only a power cut between the two could
    // lose it, and then the frame may be sent twice (same frame-id; consumers de-duplicate).
    await this.ctx.ledger.note(sends);

    for (let attempt = 0; pending.length > 0 && !this.closed; attempt += 1) {
      try {
        if (attempt > 0) {
          // The failed request may have been appended before the connection broke.
          const found = await findFrameIds(this.ctx.kafka, this.ctx.framesTopic, new Set(pending.map((f) => f.frameId)), {
            after: this.ctx.ledger.lastAckedOffsets(),
            maxMessageBytes: this.ctx.maxMessageBytes,
            logger: this.log,
          });
          if (found.size > 0) {
            const acks: AckRecord[] = [...found].map(([frameId, p]) => ({
              t: 'ack',
              frameId,
              partition: p.partition,
              offset: p.offset,
              at: new Date().toISOString(),
            }));
            await this.ctx.ledger.append(acks);
            for (const f of pending.filter((p) => found.has(p.frameId))) await this.hooks.finished(f, true);
            pending = pending.filter((p) => !found.has(p.frameId));
            if (pending.length === 0) break;
          }
        }
        if (!this.producer) {
          const producer = createProducer(this.ctx.kafka);
          await producer.connect();
          this.producer = producer;
        }
        const metadata = await this.producer.send({
          topic: this.ctx.framesTopic,
          acks: -1,
          compression: CompressionTypes.None, // PNG/JPEG are compressed already
          messages: pending.map((f) => ({ key: this.camera, value: f.bytes, headers: encodeFrameHeaders(f.headers) })),
        });
        const meta = metadata.find((m) => m.topicName === this.ctx.framesTopic) ?? metadata[0];
        if (!meta) throw new Error(`Kafka acknowledged ${pending.length} records to ${this.ctx.framesTopic} without saying where they went`);
        const base = BigInt(meta.baseOffset ?? '0');
        const ackAt = new Date().toISOString();
        await this.ctx.ledger.append(
          pending.map((f, i) => ({ t: 'ack', frameId: f.frameId, partition: meta.partition, offset: (base + BigInt(i)).toString(), at: ackAt })),
        );
        for (const f of pending) await this.hooks.finished(f, true);
        pending = [];
      } catch (err) {
        if (this.closed) break;
        this.ctx.metrics.sendErrors.inc({ camera: this.camera });
        const tooLarge = /too large|MESSAGE_TOO_LARGE|RECORD_LIST_TOO_LARGE/i.test(`${(err as Error).message} ${(err as { type?: string }).type ?? ''}`);
        if (tooLarge && pending.length === 1) {
          await this.hooks.refused(
            pending[0]!,
            `Kafka refused the record of ${pending[0]!.size} bytes (${(err as Error).message}); raise the topic's max.message.bytes or lower --max-bytes`,
          );
          return;
        }
        const backoffMs = Math.min(5_000, 100 * 2 ** Math.min(attempt, 6));
        this.log.warn(
          { err: (err as Error).message, frames: pending.length, attempt: attempt + 1, backoffMs },
          'sending frames to Kafka failed; retrying (reading of new files pauses when the memory budget is full)',
        );
        const old = this.producer;
        this.producer = undefined;
        await old?.disconnect().catch(() => undefined);
        if (tooLarge && pending.length > 1) {
          // Split: send the first half now, return the rest to the front of the queue.
          const rest = pending.splice(Math.ceil(pending.length / 2));
          this.ready.unshift(...rest);
        }
        await this.sleep(backoffMs);
      }
    }
    // Closed with frames unsent: their `send` records stay unacknowledged, recovery sorts them out on the next start.
    for (const f of pending) this.hooks.abandoned(f);
  }
}
