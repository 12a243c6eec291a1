/**
 * Cuts one connection's byte stream into request frames:
 *
 *   frame => size:INT32 payload:BYTES(size)
 *
 * Every byte held is counted against the broker-wide BufferBudget, and a size
 * prefix out of bounds is refused as soon as its 4 bytes are in, before any
 * body is held. Small frames are held as the chunks the socket delivered. A
 * frame bigger than SPILL_BYTES that is not complete yet is copied into a
 * buffer from RequestBuffers (memory that goes back to the OS) and the
 * socket's chunks are let go at once.
 */
import type { BufferBudget } from './limits.js';
import { MAPPING_BYTES, type RequestBuffers } from './request-buffers.js';

/** Why the reader refused input; the connection is closed for it. */
export type FrameRefusal = 'size' | 'buffer_full';

export class FrameRefused extends Error {
  constructor(
    readonly reason: FrameRefusal,
    message: string,
    readonly size?: number,
  ) {
    super(message);
    this.name = 'FrameRefused';
  }
}

const KiB = 1024;
/** The smallest request: api_key, api_version and correlation_id. */
const MIN_FRAME_BYTES = 8;
/** An incomplete frame with a bigger payload is read into a buffer of its own. */
const SPILL_BYTES = 64 * KiB;

export class FrameReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Payload size of the frame being read, -1 until its prefix is in. */
  private expected = -1;
  /** The incomplete big frame (prefix included) and how much of it has arrived. */
  private own: Buffer | null = null;
  private ownFilled = 0;
  /** performance.now() when the incomplete frame now held started arriving; 0 when none is. */
  private partialSince = 0;

  constructor(
    private readonly maxFrameBytes: number,
    private readonly budget: BufferBudget,
    private readonly buffers: RequestBuffers,
  ) {}

  /** Bytes received and not yet handed out as frames. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Holds `chunk`; throws FrameRefused when the broker's buffers are full. */
  push(chunk: Buffer, now: number): void {
    if (!this.budget.take(chunk.length)) {
      throw new FrameRefused(
        'buffer_full',
        `the broker already holds ${this.budget.used} bytes of unread requests (maxBufferedBytes ${this.budget.limit}); this connection's ${this.buffered + chunk.length} bytes do not fit`,
      );
    }
    this.buffered += chunk.length;
    if (this.partialSince === 0) this.partialSince = now;
    if (this.own) {
      const n = Math.min(chunk.length, 4 + this.expected - this.ownFilled);
      chunk.copy(this.own, this.ownFilled, 0, n);
      this.ownFilled += n;
      if (n < chunk.length) this.chunks.push(chunk.subarray(n));
    } else {
      this.chunks.push(chunk);
    }
  }

  /** The next complete frame's payload, or null while it is incomplete; throws FrameRefused on a bad size prefix. */
  next(now: number): Buffer | null {
    let frame: Buffer;
    if (this.own) {
      if (this.ownFilled < 4 + this.expected) return null;
      frame = this.finishOwn(now);
    } else {
      if (this.expected < 0) {
        if (this.buffered < 4) return null;
        const size = this.peekSize();
        if (size < MIN_FRAME_BYTES || size > this.maxFrameBytes) {
          throw new FrameRefused(
            'size',
            `request size ${size} is outside ${MIN_FRAME_BYTES}..${this.maxFrameBytes} bytes (raise maxRequestBytes / messageMaxBytes for bigger requests)`,
            size,
          );
        }
        this.expected = size;
      }
      if (this.buffered < 4 + this.expected) {
        if (this.expected > SPILL_BYTES) this.spill();
        return null;
      }
      frame = this.take(4 + this.expected).subarray(4);
    }
    this.expected = -1;
    // The next request, if any of it is here, started arriving now.
    this.partialSince = this.buffered > 0 ? now : 0;
    return frame;
  }

  /** Whether an incomplete frame has been arriving for longer than `ms`. */
  overdue(now: number, ms: number): boolean {
    return this.partialSince !== 0 && this.buffered > 0 && now - this.partialSince > ms;
  }

  /** Restarts the clock of the incomplete frame (after the broker itself stopped reading). */
  restartClock(now: number): void {
    this.partialSince = this.buffered > 0 ? now : 0;
  }

  /** Size prefix and bytes received of the incomplete frame, for log lines. */
  describe(): { expectedBytes: number; receivedBytes: number } {
    return { expectedBytes: this.expected, receivedBytes: this.buffered };
  }

  /** Drops everything held, frees the big frame's memory now and returns it all to the budget. */
  release(): void {
    if (this.own) this.buffers.give(this.own, performance.now());
    this.own = null;
    this.ownFilled = 0;
    this.budget.give(this.buffered);
    this.buffered = 0;
    this.chunks = [];
    this.expected = -1;
    this.partialSince = 0;
  }

  /** Moves the incomplete big frame's bytes (all that is held) into a buffer of its own. */
  private spill(): void {
    const bytes = 4 + this.expected;
    try {
      this.own = this.buffers.take(bytes);
    } catch (err) {
      throw new FrameRefused('buffer_full', `cannot allocate ${bytes} bytes for a request: ${(err as Error).message}`, this.expected);
    }
    for (const chunk of this.chunks) this.ownFilled += chunk.copy(this.own, this.ownFilled);
    this.chunks = [];
  }

  /** The complete big frame's payload, copied out so its buffer can serve the next big request. */
  private finishOwn(now: number): Buffer {
    const own = this.own!;
    const bytes = 4 + this.expected;
    this.own = null;
    this.ownFilled = 0;
    this.buffered -= bytes;
    this.budget.give(bytes);
    if (own.length > bytes + 4096 || own.length <= MAPPING_BYTES) {
      const frame = Buffer.allocUnsafeSlow(this.expected);
      own.copy(frame, 0, 4, bytes);
      this.buffers.give(own, now);
      return frame;
    }
    return own.subarray(4, bytes); // a buffer of the frame's own size (over MAPPING_BYTES): handed on, freed by the GC
  }

  /** The INT32 at the front, read across chunk boundaries without joining the chunks. */
  private peekSize(): number {
    const first = this.chunks[0]!;
    if (first.length >= 4) return first.readInt32BE(0);
    const prefix = Buffer.allocUnsafe(4);
    let copied = 0;
    for (const chunk of this.chunks) {
      copied += chunk.copy(prefix, copied, 0, Math.min(chunk.length, 4 - copied));
      if (copied === 4) break;
    }
    return prefix.readInt32BE(0);
  }

  private take(bytes: number): Buffer {
    const first = this.chunks[0]!;
    let out: Buffer;
    if (first.length >= bytes) {
      out = first.subarray(0, bytes);
      if (first.length === bytes) this.chunks.shift();
      else this.chunks[0] = first.subarray(bytes);
    } else {
      out = Buffer.allocUnsafeSlow(bytes);
      let copied = 0;
      while (copied < bytes) {
        const head = this.chunks[0]!;
        const n = Math.min(head.length, bytes - copied);
        head.copy(out, copied, 0, n);
        copied += n;
        if (n === head.length) this.chunks.shift();
        else this.chunks[0] = head.subarray(n);
      }
    }
    this.buffered -= bytes;
    this.budget.give(bytes);
    return out;
  }
}
