/**
 * The one way tests wait: for a condition, with a deadline and a message that says what
 * did not happen. Never a fixed sleep standing in for an event.
 *
 *   await waitFor(() => stage.stats.ingested >= 3, { timeout: 30_000, message: '3 frames ingested' });
 *   const all = await waitForQuiet(() => got.length, { atLeast: 1000, quietMs: 1500, timeout: 60_000, message: '1,000 frames' });
 *   await waitForEvent(item, 'initialized', { timeout: 10_000, message: 'the monitored item initialized' });
 */
import { once, type EventEmitter } from 'node:events';

export interface WaitOptions {
  /** Deadline in milliseconds. */
  timeout: number;
  /** What was awaited, for the error at the deadline. */
  message: string;
  /** Milliseconds between polls. Default 50. */
  interval?: number;
  /** More to say at the deadline (a child's stderr, what was seen so far). */
  detail?: () => string;
  /** Checked before every poll: a reason to stop waiting at once (the child exited), or undefined. */
  stopIf?: () => string | undefined;
}

function timedOut(options: WaitOptions, cause = ''): Error {
  const detail = options.detail?.() ?? '';
  return new Error(`timed out after ${options.timeout} ms waiting for ${options.message}${cause}${detail ? `\n${detail}` : ''}`);
}

function checkStop(options: WaitOptions): void {
  const reason = options.stopIf?.();
  if (reason === undefined) return;
  const detail = options.detail?.() ?? '';
  throw new Error(`stopped waiting for ${options.message}: ${reason}${detail ? `\n${detail}` : ''}`);
}

const pause = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` until it returns a value other than undefined/false/null; rejects at the deadline. */
export async function waitFor<T>(condition: () => T | undefined | null | false | Promise<T | undefined | null | false>, options: WaitOptions): Promise<T> {
  const deadline = Date.now() + options.timeout;
  let lastError: unknown;
  for (;;) {
    checkStop(options);
    try {
      const value = await condition();
      if (value !== undefined && value !== null && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) throw timedOut(options, lastError instanceof Error ? ` (last error: ${lastError.message})` : '');
    await pause(options.interval ?? 50);
  }
}

export interface QuietOptions extends WaitOptions {
  /** The count must reach this before quiet counts. Default 0. */
  atLeast?: number;
  /** The count must hold still this long (ms): time for a late duplicate to show up. */
  quietMs: number;
}

/**
 * Waits until `count()` has reached `atLeast` and then not changed for `quietMs`; resolves with
 * the final count. For "everything arrived, and nothing more (no duplicate) follows": the
 * quiet period is the thing checked, so it is a wait on an event (silence), not a sleep.
 */
export async function waitForQuiet(count: () => number | Promise<number>, options: QuietOptions): Promise<number> {
  const deadline = Date.now() + options.timeout;
  const atLeast = options.atLeast ?? 0;
  let last = await count();
  let since = Date.now();
  for (;;) {
    const now = Date.now();
    if (last >= atLeast && now - since >= options.quietMs) return last;
    if (now >= deadline) throw timedOut(options, ` (count ${last}, wanted at least ${atLeast} and then ${options.quietMs} ms without change)`);
    await pause(options.interval ?? 50);
    checkStop(options);
    const next = await count();
    if (next !== last) {
      last = next;
      since = Date.now();
    }
  }
}

/** Resolves with the child's exit code, or rejects if it has not exited by the deadline. */
export function waitForExit(child: import('node:child_process').ChildProcess, options: WaitOptions): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(timedOut(options)), options.timeout);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/**
 * Resolves with the arguments of the first `event` the emitter sends; rejects if it sends
 * 'error' first (with that error) or at the deadline. The listeners and the timer go either way.
 */
export async function waitForEvent(emitter: EventEmitter, event: string, options: WaitOptions): Promise<unknown[]> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), options.timeout);
  try {
    return await once(emitter, event, { signal: abort.signal });
  } catch (err) {
    if (abort.signal.aborted) throw timedOut(options);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves or rejects as `promise` does, or rejects at the deadline: for a promise a test made itself. */
export async function withDeadline<T>(promise: Promise<T>, options: WaitOptions): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(timedOut(options)), options.timeout);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
