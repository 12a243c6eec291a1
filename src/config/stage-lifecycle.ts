/**
 * The lifecycle every stage shares, written once (after undici's DispatcherBase):
 *
 *   class MyStage extends StageLifecycle {
 *     constructor() { super({ stage: 'my-stage' }); }
 *     protected async open() { ... }     // connect, subscribe, start timers
 *     protected async shut() { ... }     // let go of what open() took; runs once
 *   }
 *
 * - start() runs open() once; a second start() returns the first one's promise.
 * - close() is idempotent: a second call returns the first call's promise, so every caller
 *   awaits the same, complete, close.
 * - close() during start(): interrupt() runs at once (a subclass wakes what start() waits on),
 *   then close waits (at most `startWaitMs`) for open() to settle before shut() lets go.
 * - A start() whose open() fails closes the stage (nothing is left held) and rejects with that error.
 * - start() after close(), and work a subclass guards with throwIfClosed(), fail with StageClosedError.
 *
 * Lives in src/config because every folder (bus and stages alike) may import config.
 */
import { EventEmitter } from 'node:events';

/** Work asked of a stage after close() was called: it does nothing (start a new stage instead). */
export class StageClosedError extends Error {
  override readonly name: string = 'StageClosedError';
  constructor(
    readonly stage: string,
    readonly what: string,
  ) {
    super(`${stage}: ${what} after close(); a closed stage does nothing, create and start a new one`);
  }
}

export interface StageLifecycleOptions {
  /** The stage's name in errors and logs (`ingest`, `classify`, ...). */
  stage: string;
  /** How long close() waits for a start() under way to settle before letting go anyway (default 5 s). */
  startWaitMs?: number;
}

const DEFAULT_START_WAIT_MS = 5_000;

export abstract class StageLifecycle extends EventEmitter {
  readonly #stage: string;
  readonly #startWaitMs: number;
  #opening: Promise<void> | undefined;
  #starting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  #closeRequested = false;

  constructor(options: StageLifecycleOptions) {
    super();
    this.#stage = options.stage;
    this.#startWaitMs = options.startWaitMs ?? DEFAULT_START_WAIT_MS;
  }

  /** Acquires the stage's resources; called once, by the first start(). */
  protected abstract open(): Promise<void>;

  /** Lets go of what open() acquired (whatever part of it ran); called once, by the first close(). */
  protected abstract shut(): Promise<void>;

  /** Runs synchronously the moment close() is first called, before waiting for start(): wake what start() waits on. */
  protected interrupt(): void {}

  /** The error start() after close() and throwIfClosed() throw; a stage may keep its own subclass of StageClosedError. */
  protected closedError(what: string): Error {
    return new StageClosedError(this.#stage, what);
  }

  /** True from the moment close() is called. */
  get closeRequested(): boolean {
    return this.#closeRequested;
  }

  /** True once start() was called (it may still be under way, or have failed). */
  get startRequested(): boolean {
    return this.#starting !== undefined;
  }

  start(): Promise<void> {
    if (this.#closeRequested && !this.#starting) return Promise.reject(this.closedError('start()'));
    if (!this.#starting) {
      const opening = (async () => this.open())();
      this.#opening = opening;
      this.#starting = opening.catch(async (err: unknown) => {
        await this.close().catch(() => undefined);
        throw err;
      });
    }
    return this.#starting;
  }

  close(): Promise<void> {
    if (!this.#closing) {
      this.#closeRequested = true;
      this.interrupt();
      this.#closing = this.#closeOnce();
    }
    return this.#closing;
  }

  /** Throws the closed error once close() was called; for work (sends, API calls) that must not run after it. */
  protected throwIfClosed(what: string): void {
    if (this.#closeRequested) throw this.closedError(what);
  }

  async #closeOnce(): Promise<void> {
    if (this.#opening) await settleWithin(this.#opening, this.#startWaitMs);
    await this.shut();
  }
}

/** Waits for `work` to settle, at most `ms`; true when it settled in time. Never rejects. */
export async function settleWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
    timer.unref();
  });
  try {
    return await Promise.race([
      work.then(
        () => true,
        () => true,
      ),
      timedOut,
    ]);
  } finally {
    clearTimeout(timer);
  }
}
