/**
 * A client connection to the embedded broker that never leaves the process.
 *
 * `npm start` runs the broker and its clients (ingest, classify, monitor) in one process. Over
 * loopback TCP every 1.2 MB frame crosses the kernel twice (produce, then fetch): a copy into
 * the socket and a copy out, in 64 KiB reads that each become a Buffer to join again. Measured
 * with 8 cameras × 10 frames/s (README, "Benchmarks"), that was nearly a quarter of the bytes
 * path's CPU (15.5 against 11.8 ms a frame).
 * An `InProcessSocket` pair hands each written Buffer to the other end as it is: the broker
 * and kafkajs read and write the same bytes as over TCP (the same framing, the same Connection,
 * maxConnections and read limits), only the kernel is left out.
 *
 * Like a TCP socket: bytes arrive in order, on a later tick than the write (a reply never runs
 * inside the write that asked for it); a reader that does not read (a paused broker connection)
 * holds the writer's callback, so `writableNeedDrain` and 'drain' work as they do over TCP; an
 * end or a destroy reaches the other side as end-of-stream, and a write to a side that is gone
 * fails with EPIPE. It holds no handle, so `ref`/`unref` change nothing.
 */
import { Duplex } from 'node:stream';

type WriteDone = (err?: Error | null) => void;

function brokenPipe(): NodeJS.ErrnoException {
  return Object.assign(new Error('write EPIPE: the other end of the in-process connection is closed'), { code: 'EPIPE' });
}

export class InProcessSocket extends Duplex {
  private peer!: InProcessSocket;
  /** The other end's write whose bytes this end has taken but not read yet (over its high-water mark). */
  private peerWriteDone: WriteDone | undefined;
  /** This end has sent its end-of-stream (end or destroy): nothing more goes to the other end. */
  private sentEnd = false;

  /** Two connected ends: what one writes, the other reads. */
  static pair(): [client: InProcessSocket, server: InProcessSocket] {
    const client = new InProcessSocket('in-process client');
    const server = new InProcessSocket('in-process');
    client.peer = server;
    server.peer = client;
    return [client, server];
  }

  /** `remoteAddress`: what the broker logs for the client (a TCP socket gives its IP). */
  private constructor(readonly remoteAddress: string) {
    // An end that reads end-of-stream ends its own side too, as a TCP socket does by default.
    super({ allowHalfOpen: false });
  }

  // net.Socket's settings the broker and kafkajs call: nothing here is delayed, kept alive or holds the event loop.
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: WriteDone): void {
    this.handOver([chunk], done);
  }

  override _writev(chunks: { chunk: Buffer }[], done: WriteDone): void {
    this.handOver(
      chunks.map((c) => c.chunk),
      done,
    );
  }

  /** The other end has room again: the write it held may complete. */
  override _read(): void {
    const done = this.peerWriteDone;
    this.peerWriteDone = undefined;
    done?.();
  }

  override _final(done: WriteDone): void {
    process.nextTick(() => {
      this.sendEnd();
      done();
    });
  }

  override _destroy(err: Error | null, done: WriteDone): void {
    const held = this.peerWriteDone;
    this.peerWriteDone = undefined;
    process.nextTick(() => {
      held?.(brokenPipe());
      this.sendEnd();
    });
    done(err);
  }

  /** On the next tick, as the kernel would: the other end reads them then; the write completes once it has room. */
  private handOver(chunks: Buffer[], done: WriteDone): void {
    process.nextTick(() => {
      const peer = this.peer;
      if (this.sentEnd || peer.destroyed) return done(brokenPipe());
      let room = true;
      for (const chunk of chunks) {
        room = peer.push(chunk);
        // Its 'data' handler may have closed it (the broker refusing a request): the rest is not read.
        if (peer.destroyed) return done(brokenPipe());
      }
      if (room) done();
      else peer.peerWriteDone = done;
    });
  }

  private sendEnd(): void {
    if (this.sentEnd) return;
    this.sentEnd = true;
    if (!this.peer.destroyed) this.peer.push(null);
  }
}
