/** One JSON POST of an alert sink, with a timeout and the stage's abort signal; errors name the URL and the cause. */
export async function postJson(
  url: string,
  body: string,
  headers: Record<string, string>,
  timeoutMs: number,
  what: string,
  signal?: AbortSignal,
): Promise<void> {
  const timeout = AbortSignal.timeout(timeoutMs);
  let response: Response;
  try {
    response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
      signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
    });
  } catch (err) {
    if (signal?.aborted) throw new Error(`${what} ${url}: aborted (the stage is closing)`);
    if (timeout.aborted) throw new Error(`${what} ${url} did not answer within ${timeoutMs} ms`);
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message;
    throw new Error(`${what} ${url} unreachable (${cause})`);
  }
  const text = await response.text().catch(() => '');
  if (!response.ok) throw new Error(`${what} ${url} answered HTTP ${response.status}: ${text.slice(0, 200)}`);
}
