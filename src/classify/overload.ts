/**
 * What the classify stage does with one fetched batch of one partition when frames come faster
 * than it classifies them (config `classify.overload`, src/config/overload.ts):
 *
 * - `in-order`: every frame, in offset order; a backlog grows in Kafka.
 * - `skip`: before each chunk, a frame with a newer frame of the same camera in the batch is
 *   stale when its age plus two chunk times (an average of the last chunks) is over
 *   `maxFrameAgeMs`: one chunk for itself, one for the newest frame that waits behind it, which
 *   must still make the bound. A stale frame is not classified, counted
 *   (`crystalwatch_frames_skipped_total{camera,reason="stale"}`), its offset committed with the
 *   rest. It stays in Kafka until retention; replay it with a new consumer group (README).
 * - `newest-first`: as `skip`, and the skipped offsets are remembered (at most
 *   `maxCatchUpFrames` per partition, oldest forgotten first). When a batch leaves the partition
 *   with nothing newer to do (high watermark = next live offset) and no frame of any partition was
 *   skipped for `maxFrameAgeMs` (the stage is keeping up: a catch-up pass under overload would take
 *   the cores from the fresh frames and fetch each old frame again and again), the consumer seeks
 *   back to the oldest remembered offset and classifies the remembered frames, marked `late`
 *   (`crystalwatch_frames_caught_up_total{camera}`); as soon as a fetch finds newer frames waiting,
 *   or a frame is skipped again anywhere, it seeks forward to the live position. A partition that
 *   goes idle while frames are still being skipped is sought back by a timer once the quiet time
 *   has passed (no new batch would come to do it). The committed offset stays before the oldest remembered
 *   frame, so a restart or a rebalance re-delivers the skipped frames (and, at least once, the
 *   frames after them, which the stage predicts again or skips again); only frames forgotten
 *   because the list was full are left behind (counted, and still in Kafka).
 *
 * The decisions are pure (`staleFrames`, `PartitionLedger`); `OverloadController.handle` runs
 * them against the kafkajs batch through the few operations of `BatchIO`.
 */
import type { KafkaMessage } from 'kafkajs';
import { headerString } from '../bus/messages.js';
import type { OverloadPolicy } from '../config/overload.js';
import { DEFAULT_MAX_CATCH_UP_FRAMES, DEFAULT_MAX_FRAME_AGE_MS, DEFAULT_OVERLOAD_POLICY } from '../config/overload.js';

export type { OverloadPolicy } from '../config/overload.js';

export interface OverloadOptions {
  policy?: OverloadPolicy;
  maxFrameAgeMs?: number;
  maxCatchUpFrames?: number;
}

/** What the policy needs to know of a fetched frame. */
export interface FrameInHand {
  offset: bigint;
  /** Undefined when the headers are broken: such a frame is never stale (it goes to dead-letter). */
  camera: string | undefined;
  /**
   * Ingest time (`completed-at`), else the record's timestamp (ms since epoch), both stamped by
   * the ingest host and compared with this host's clock: the hosts must keep time (NTP) when the
   * stages run apart; a frame stamped in the future is never stale. Never the capture time: a
   * camera PC whose clock is minutes off would make every frame but the newest stale.
   */
  atMs: number;
}

export function frameInHand(m: KafkaMessage): FrameInHand {
  const completed = Number(headerString(m.headers, 'completed-at'));
  const atMs = Number.isFinite(completed) && completed > 0 ? completed : Number(m.timestamp);
  return { offset: BigInt(m.offset), camera: headerString(m.headers, 'camera'), atMs };
}

/**
 * Indices of the frames that are stale at `nowMs`: older than `maxFrameAgeMs`, with a frame of the
 * same camera at a higher offset among the frames still to do (`done[i]` false). The newest frame
 * of each camera in hand is not stale while the batch reaches the log's end (`atHead`); behind it,
 * newer frames wait in Kafka, so an old frame is stale whatever comes after it in the batch — the
 * consumer skips to the head instead of crawling through a backlog one camera-frame per fetch.
 */
export function staleFrames(frames: readonly FrameInHand[], nowMs: number, maxFrameAgeMs: number, done: readonly boolean[] = [], atHead = true): number[] {
  const newest = new Map<string, number>();
  frames.forEach((f, i) => {
    if (!done[i] && f.camera !== undefined) newest.set(f.camera, i);
  });
  const stale: number[] = [];
  frames.forEach((f, i) => {
    if (done[i] || f.camera === undefined || (atHead && newest.get(f.camera) === i)) return;
    if (nowMs - f.atMs > maxFrameAgeMs) stale.push(i);
  });
  return stale;
}

/** One partition's live position and the skipped offsets waiting to be caught up, oldest first. */
export class PartitionLedger {
  /** Next offset of the live path; undefined until the first batch after an assignment. */
  live: bigint | undefined;
  /** The last offset committed as done (commit = this + 1); the oldest remembered offset is after it. */
  committed: bigint | undefined;
  /** A batch below the live position with nothing to catch up already sent the consumer back to it once. */
  soughtLive = false;
  private readonly pending: { offset: bigint; camera: string }[] = [];
  /** Offsets forgotten because the list was full (still counted as skipped, still in Kafka). */
  forgotten = 0;

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.pending.length;
  }

  /** The oldest remembered offset. */
  first(): bigint | undefined {
    return this.pending[0]?.offset;
  }

  has(offset: bigint): boolean {
    return this.indexOf(offset) >= 0;
  }

  /** Remembers a skipped offset (a re-delivered one once); forgets the oldest beyond the capacity. Whether it was new. */
  remember(offset: bigint, camera: string): boolean {
    if (this.capacity === 0) return true;
    if (this.has(offset)) return false;
    let at = this.pending.length;
    while (at > 0 && this.pending[at - 1]!.offset > offset) at--;
    this.pending.splice(at, 0, { offset, camera });
    while (this.pending.length > this.capacity) {
      this.pending.shift();
      this.forgotten++;
    }
    return true;
  }

  /** Removes a remembered offset; its camera, or undefined when it was not remembered. */
  take(offset: bigint): string | undefined {
    const i = this.indexOf(offset);
    return i < 0 ? undefined : this.pending.splice(i, 1)[0]!.camera;
  }

  /** Forgets remembered offsets below `offset` (gone from Kafka: retention deleted them); how many. */
  dropBelow(offset: bigint): number {
    let n = 0;
    while (this.pending.length > 0 && this.pending[0]!.offset < offset) {
      this.pending.shift();
      n++;
    }
    return n;
  }

  private indexOf(offset: bigint): number {
    let lo = 0;
    let hi = this.pending.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const at = this.pending[mid]!.offset;
      if (at === offset) return mid;
      if (at < offset) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }
}

/** The operations on one kafkajs batch the controller needs (index.ts binds them). */
export interface BatchIO {
  partition: number;
  messages: KafkaMessage[];
  highWatermark: string;
  /** Classify these frames and produce their predictions (marked late when `late`), in offset order. */
  process(messages: KafkaMessage[], late: boolean): Promise<void>;
  /** resolveOffset(offset) and commit offset + 1: everything up to `offset` is done. */
  commit(offset: string): Promise<void>;
  /** Commit offset + 1 only (no resolveOffset): the fetch goes on from where it was resolved. */
  commitOnly(offset: bigint): Promise<void>;
  /** resolveOffset(offset) only: the fetch goes on after it, the commit stays where it is. */
  resolve(offset: string): void;
  seek(offset: bigint): void;
  /** The consumer is stopping, or the partition was reassigned or sought meanwhile. */
  stopped(): boolean;
}

export interface OverloadEvents {
  skipped(camera: string, reason: 'stale'): void;
  caughtUp(camera: string): void;
  /** Remembered offsets forgotten (list full, or deleted from Kafka): they stay counted as skipped. */
  forgotten?(partition: number, count: number, why: 'list-full' | 'deleted'): void;
}

/** Skipped frames classified per catch-up fetch (a few full frames: ~0.2 s on 2 cores). */
const CATCH_UP_CHUNK = 4;

/** Weight of the latest chunk in the chunk-time average: about the last 5 chunks count. */
const CHUNK_TIME_WEIGHT = 0.2;

export class OverloadController {
  readonly policy: OverloadPolicy;
  readonly maxFrameAgeMs: number;
  /** How long a chunk takes from submission to produced predictions (EWMA, ms). */
  private chunkMs = 0;
  private readonly capacity: number;
  private readonly ledgers = new Map<number, PartitionLedger>();
  /** When a frame was last skipped (any partition; `clock`): catch-up waits for `maxFrameAgeMs` without one. */
  private lastSkipAtMs = Number.NEGATIVE_INFINITY;
  private closed = false;
  /** Idle partitions with frames to catch up, waiting for the quiet time: how to seek each. */
  private readonly deferred = new Map<number, (offset: bigint) => void>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    options: OverloadOptions,
    private readonly maxBatchSize: number,
    private readonly events: OverloadEvents,
    /** Wall clock (ms since epoch): frame ages are against the ingest host's stamps. */
    private readonly now: () => number = Date.now,
    /** Monotonic clock (ms): the quiet time before a catch-up, which a clock step must not stretch. */
    private readonly clock: () => number = () => performance.now(),
  ) {
    this.policy = options.policy ?? DEFAULT_OVERLOAD_POLICY;
    this.maxFrameAgeMs = options.maxFrameAgeMs ?? DEFAULT_MAX_FRAME_AGE_MS;
    this.capacity = this.policy === 'newest-first' ? (options.maxCatchUpFrames ?? DEFAULT_MAX_CATCH_UP_FRAMES) : 0;
  }

  /** The next offset of a partition's live path (undefined before its first batch). */
  livePosition(partition: number): bigint | undefined {
    return this.ledgers.get(partition)?.live;
  }

  /** Skipped frames waiting to be caught up, over the partitions held. */
  get pending(): number {
    let n = 0;
    for (const l of this.ledgers.values()) n += l.size;
    return n;
  }

  /**
   * After a (re)join: ledgers of partitions no longer held go (their frames stay in Kafka); the
   * held ones keep their lists but learn their live position again (kafkajs resumes from the commit).
   */
  assigned(partitions: readonly number[]): void {
    const held = new Set(partitions);
    for (const p of [...this.ledgers.keys()]) if (!held.has(p)) this.ledgers.delete(p);
    this.deferred.clear();
    for (const l of this.ledgers.values()) {
      l.live = undefined;
      l.committed = undefined;
    }
  }

  /** Stops the deferred catch-up timer (the stage is closing); idempotent. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.deferred.clear();
  }

  async handle(io: BatchIO): Promise<void> {
    if (io.messages.length === 0) return;
    this.deferred.delete(io.partition); // a batch came: it decides for its partition
    const ledger = this.ledger(io.partition);
    const first = BigInt(io.messages[0]!.offset);
    ledger.live ??= first;
    if (first < ledger.live) return this.catchUp(io, ledger);
    ledger.soughtLive = false;
    return this.consumeLive(io, ledger);
  }

  private ledger(partition: number): PartitionLedger {
    let l = this.ledgers.get(partition);
    if (!l) this.ledgers.set(partition, (l = new PartitionLedger(this.capacity)));
    return l;
  }

  /** Frames at or after the live position: stale ones skipped (policy permitting), the rest classified, committed chunk by chunk. */
  private async consumeLive(io: BatchIO, ledger: PartitionLedger): Promise<void> {
    const { messages } = io;
    const frames = this.policy === 'in-order' ? [] : messages.map(frameInHand);
    const done: boolean[] = messages.map(() => false);
    let prefix = 0; // messages[0..prefix) are done
    while (prefix < messages.length) {
      if (io.stopped()) return;
      if (this.policy !== 'in-order') {
        // Older than this, it or the newer frame behind it would be predicted past maxFrameAgeMs.
        const ageBudgetMs = Math.max(0, this.maxFrameAgeMs - 2 * this.chunkMs);
        const atHead = BigInt(messages[messages.length - 1]!.offset) + 1n >= BigInt(io.highWatermark);
        for (const i of staleFrames(frames, this.now(), ageBudgetMs, done, atHead)) {
          done[i] = true;
          this.skip(io.partition, ledger, frames[i]!);
        }
      }
      const chunk: number[] = [];
      for (let i = prefix; i < messages.length && chunk.length < this.maxBatchSize; i++) if (!done[i]) chunk.push(i);
      if (chunk.length > 0) {
        const started = this.now();
        await io.process(
          chunk.map((i) => messages[i]!),
          false,
        );
        this.chunkMs += CHUNK_TIME_WEIGHT * (this.now() - started - this.chunkMs);
        if (io.stopped()) return; // reassigned meanwhile: the new owner re-processes from the committed offset
        for (const i of chunk) {
          done[i] = true;
          // Re-delivered (after a rebalance or restart) and predicted on the live path this time.
          const camera = ledger.size > 0 ? ledger.take(BigInt(messages[i]!.offset)) : undefined;
          if (camera !== undefined) this.events.caughtUp(camera);
        }
      }
      while (prefix < messages.length && done[prefix]) prefix++;
      const last = messages[prefix - 1]!.offset;
      const waiting = ledger.first();
      if (waiting === undefined) {
        await io.commit(last);
        ledger.committed = BigInt(last);
      } else {
        // Skipped frames still to catch up: the commit stays before the oldest, so a crash or a
        // rebalance re-delivers them (and, at least once, the frames after them) instead of losing them.
        io.resolve(last);
        await this.commitThrough(io, ledger, waiting - 1n);
      }
      ledger.live = BigInt(last) + 1n;
    }
    if (ledger.size > 0 && BigInt(io.highWatermark) <= ledger.live!) this.catchUpWhenQuiet(io); // idle: catch up
  }

  /** No frame skipped for `maxFrameAgeMs`: the stage keeps up, and catching up costs the fresh frames nothing. */
  private quiet(): boolean {
    return this.clock() - this.lastSkipAtMs >= this.maxFrameAgeMs;
  }

  /** Seek back to the oldest frame to catch up now if quiet, else once it is (unless a batch of the partition comes first). */
  private catchUpWhenQuiet(io: BatchIO): void {
    const ledger = this.ledger(io.partition);
    if (this.quiet()) io.seek(ledger.first()!);
    else this.defer(io);
  }

  /** The partition is sought back to its oldest frame to catch up once quiet, unless a batch of it comes first. */
  private defer(io: BatchIO): void {
    this.deferred.set(io.partition, io.seek);
    this.schedule();
  }

  private schedule(): void {
    if (this.closed || this.timer || this.deferred.size === 0) return;
    const waitMs = Math.max(10, this.lastSkipAtMs + this.maxFrameAgeMs - this.clock());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.quiet()) return this.schedule();
      for (const [partition, seek] of this.deferred) {
        const first = this.ledgers.get(partition)?.first();
        try {
          if (first !== undefined) seek(first);
        } catch {
          // The consumer stopped meanwhile: the commit still sits before these frames; the next start catches them up.
        }
      }
      this.deferred.clear();
    }, waitMs);
    this.timer.unref();
  }

  /** A batch behind the live position: the consumer sought back to catch up. */
  private async catchUp(io: BatchIO, ledger: PartitionLedger): Promise<void> {
    const live = ledger.live!;
    if (ledger.size === 0) {
      // Nothing to catch up: back to the live position once; if the log then still answers below it
      // (the topic was recreated or truncated), this is the live path now (at least once).
      if (!ledger.soughtLive) {
        ledger.soughtLive = true;
        io.seek(live);
        return;
      }
      ledger.live = BigInt(io.messages[0]!.offset);
      return this.consumeLive(io, ledger);
    }
    if (BigInt(io.highWatermark) > live) {
      io.seek(live); // newer frames wait: they come first
      return;
    }
    if (!this.quiet()) {
      // Frames are being skipped again (any partition): back to the live position, catch up later.
      io.seek(live);
      this.defer(io);
      return;
    }
    // One small chunk per fetch, so the next fetch soon tells whether newer frames wait and a fresh
    // frame that arrives meanwhile waits for at most CATCH_UP_CHUNK old ones.
    const due = io.messages.filter((m) => ledger.has(BigInt(m.offset))).slice(0, Math.min(this.maxBatchSize, CATCH_UP_CHUNK));
    if (due.length > 0) {
      await io.process(due, true);
      if (io.stopped()) return;
      for (const m of due) {
        const camera = ledger.take(BigInt(m.offset));
        if (camera !== undefined) this.events.caughtUp(camera);
      }
    }
    // Done through the chunk (or the whole batch, when nothing of it was due); remembered offsets below that are gone from Kafka.
    const handled = due.length > 0 ? due : io.messages;
    const through = BigInt(handled[handled.length - 1]!.offset);
    const deleted = ledger.dropBelow(through + 1n);
    if (deleted > 0) this.events.forgotten?.(io.partition, deleted, 'deleted');
    io.resolve(through.toString());
    const next = ledger.first();
    await this.commitThrough(io, ledger, (next === undefined || next > live ? live : next) - 1n);
    if (next === undefined || next >= live) io.seek(live);
    else if (next > through + 1n) io.seek(next); // over frames already done
  }

  /** Commit through `offset` (everything up to it predicted, or gone) when that moves the commit forward. */
  private async commitThrough(io: BatchIO, ledger: PartitionLedger, offset: bigint): Promise<void> {
    if (offset < 0n || offset <= (ledger.committed ?? -1n)) return;
    await io.commitOnly(offset);
    ledger.committed = offset;
  }

  private skip(partition: number, ledger: PartitionLedger, frame: FrameInHand): void {
    this.lastSkipAtMs = this.clock();
    const before = ledger.forgotten;
    // A frame re-delivered after a rebalance or restart was counted when it was first skipped.
    if (ledger.remember(frame.offset, frame.camera!)) this.events.skipped(frame.camera!, 'stale');
    if (ledger.forgotten > before) this.events.forgotten?.(partition, ledger.forgotten - before, 'list-full');
  }
}
