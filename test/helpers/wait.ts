/**
 * The one way tests wait: for a condition, with a deadline and a message that says what
 * did not happen. Never a fixed sleep standing in for an event.
 */
export interface WaitOptions {
  /** Deadline in milliseconds. */
  timeout: number;
  /** What was awaited, for the error at the deadline. */
  message: string;
  /** Milliseconds between polls. Default 50. */
  interval?: number;
}

/** Polls `condition` until it returns a value other than undefined/false/null; rejects at the deadline. */
export async function waitFor<T>(condition: () => T | undefined | null | false | Promise<T | undefined | null | false>, options: WaitOptions): Promise<T> {
  const deadline = Date.now() + options.timeout;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await condition();
      if (value !== undefined && value !== null && value !== false) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const cause = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new Error(`timed out after ${options.timeout} ms waiting for ${options.message}${cause}`);
    }
    await new Promise((resolve) => setTimeout(resolve, options.interval ?? 50));
  }
}

/** Resolves with the child's exit code, or rejects if it has not exited by the deadline. */
export function waitForExit(child: import('node:child_process').ChildProcess, options: WaitOptions): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${options.timeout} ms waiting for ${options.message}`)), options.timeout);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}
