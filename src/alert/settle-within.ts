/**
 * Waits for `work` at most `ms`: true when it settled in time (either way), false when the wait
 * gave up. Closing uses it so one slow disconnect (kafkajs waits for a fetch in flight) cannot
 * hold the process past its shutdown budget; the work goes on in the background.
 */
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
