/**
 * The PDF of the report: headless Chromium (Debian's, through playwright-core) prints the HTML
 * as it is, A4, with the run id and page numbers in every page's footer.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { esc } from './format.js';

export const DEFAULT_CHROMIUM = '/usr/bin/chromium';

/** Chromium to use: `CRYSTALWATCH_CHROMIUM` when set, else Debian's. */
export function chromiumPath(env: NodeJS.ProcessEnv = process.env): string {
  return env.CRYSTALWATCH_CHROMIUM || DEFAULT_CHROMIUM;
}

export class ChromiumMissingError extends Error {
  constructor(readonly executablePath: string) {
    super(
      `report: no Chromium at ${executablePath}, so no PDF was printed (report.html and report.json are written); install Debian's package "chromium" (apt-get install chromium), set CRYSTALWATCH_CHROMIUM to a Chromium binary, or pass --no-pdf`,
    );
    this.name = 'ChromiumMissingError';
  }
}

/** The promise, or the signal's reason as soon as it aborts (the work goes on: its owner cleans up after it). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  let onAbort!: () => void;
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([work, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}

export async function printPdf(
  html: string,
  path: string,
  options: { runId: string; version: string; executablePath?: string; timeoutMs?: number; signal?: AbortSignal },
): Promise<void> {
  const { signal } = options;
  signal?.throwIfAborted();
  const executablePath = options.executablePath ?? chromiumPath();
  if (!existsSync(executablePath)) throw new ChromiumMissingError(executablePath);
  const timeout = options.timeoutMs ?? 120_000;
  const launching = chromium.launch({
    executablePath,
    headless: true,
    timeout,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  let browser: Browser;
  try {
    // An abort does not wait for Chromium to start: it is closed once it has.
    browser = await untilAborted(launching, signal);
  } catch (err) {
    void launching.then(
      (late) => late.close().catch(() => undefined),
      () => undefined,
    );
    throw err;
  }
  // An abort closes Chromium, which fails the step in progress; the print rejects with the reason.
  const onAbort = () => void browser.close().catch(() => undefined);
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    signal?.throwIfAborted();
    const page = await browser.newPage();
    // Nothing to fetch: the document is self-contained, so 'load' means everything is there.
    await page.setContent(html, { waitUntil: 'load', timeout });
    await page.emulateMedia({ media: 'print' });
    await page.pdf({
      path,
      format: 'A4',
      printBackground: true,
      preferCSSPageSize: true,
      displayHeaderFooter: true,
      headerTemplate: '<span></span>',
      footerTemplate: `<div style="font: 7pt sans-serif; color: #555; width: 100%; padding: 0 12mm; display: flex; justify-content: space-between;"><span>crystalwatch ${esc(options.version)} · run ${esc(options.runId)}</span><span>page <span class="pageNumber"></span> of <span class="totalPages"></span></span></div>`,
    });
  } catch (err) {
    if (signal?.aborted) throw signal.reason as Error;
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    await browser.close();
  }
}
