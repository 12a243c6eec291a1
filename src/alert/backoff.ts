/**
 * Exponential backoff between delivery attempts: base, 2·base, 4·base, … up to the cap, each
 * spread by ±jitter so that many deliveries failing together do not retry in lock-step.
 */
export interface BackoffOptions {
  /** Wait after the first failed attempt. Default 250 ms. */
  baseDelayMs?: number;
  /** Longest wait between attempts. Default 30 s. */
  maxDelayMs?: number;
  /** Relative spread of every wait, in [0, 1). Default 0.2. */
  jitter?: number;
}

export function checkBackoff(options: BackoffOptions): Required<BackoffOptions> {
  const baseDelayMs = options.baseDelayMs ?? 250;
  const maxDelayMs = options.maxDelayMs ?? 30_000;
  const jitter = options.jitter ?? 0.2;
  if (!(baseDelayMs > 0)) throw new RangeError(`alert delivery: baseDelayMs must be > 0, got ${baseDelayMs}`);
  if (!(maxDelayMs >= baseDelayMs)) throw new RangeError(`alert delivery: maxDelayMs must be ≥ baseDelayMs (${baseDelayMs}), got ${maxDelayMs}`);
  if (!(jitter >= 0 && jitter < 1)) throw new RangeError(`alert delivery: jitter must be in [0, 1), got ${jitter}`);
  return { baseDelayMs, maxDelayMs, jitter };
}

/** The wait after failed attempt number `attempt` (1 = the first attempt failed). */
export function backoffDelay(attempt: number, options: Required<BackoffOptions>, random: () => number = Math.random): number {
  const nominal = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.min(attempt - 1, 30));
  return Math.min(options.maxDelayMs, Math.max(1, Math.round(nominal * (1 - options.jitter + 2 * options.jitter * random()))));
}

/** Waits `ms`, or less when `signal` aborts (it resolves either way; the caller checks the signal). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
