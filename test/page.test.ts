/**
 * The live page in a real browser (Debian's chromium through playwright-core): a simulated
 * PG onset turns the banner red, the acknowledge button asks for the token and calls
 * AlertActions, and the page reconnects after the server restarts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { Registry } from 'prom-client';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { WebServer, makeThumbnail, type AlertActions } from '../src/web/index.js';
import type { Alert, Prediction, Tile } from '../src/bus/messages.js';
import { renderCrop } from '../simulator/index.js';
import { alert as buildAlert, prediction as buildPrediction } from './helpers/messages.js';

const TOKEN = 'page-test-token-42';
const ARTIFACTS = join(process.cwd(), 'test-artifacts');

let browser: Browser;
let page: Page;
let server: WebServer;
const store = new Map<string, Alert>();
const ackCalls: { id: string; by?: string }[] = [];
const consoleErrors: string[] = [];
const actions: AlertActions = {
  list: () => [...store.values()],
  async acknowledge(id, by) {
    ackCalls.push({ id, by });
    const found = store.get(id);
    if (!found) return undefined;
    const acked: Alert = { ...found, acknowledgedAt: new Date().toISOString(), acknowledgedBy: by };
    store.set(id, acked);
    // As AlertStage does: it announces the change itself (the web stage does not broadcast it).
    server.publish({ type: 'alert', alert: acked });
    return acked;
  },
};

function at(seconds: number): string {
  return new Date(Date.UTC(2026, 10, 22, 10, 0, 0) + seconds * 1000).toISOString();
}

const prediction = (camera: string, i: number, pPG: number, tiles: Tile[]): Prediction =>
  buildPrediction({
    frameId: `${camera}-${i}`,
    camera,
    runId: 'batch-2026-11-22-A',
    capturedAt: at(i),
    pPG,
    tiles,
    model: 'resnet18-cex-pg@1',
    backend: 'onnxruntime',
    latencyMs: 18,
  });

/** Frames from the simulator (fixed seeds): CEX needles before the onset, a PG plate after. */
async function publishFrame(camera: string, i: number, label: 'cex' | 'pg', pPG: number): Promise<void> {
  const crop = await renderCrop({ label, seed: 1000 + i, width: 480, height: 360 });
  const thumb = await makeThumbnail(crop.png);
  server.addThumbnail({ frameId: `${camera}-${i}`, camera, capturedAt: at(i), ...thumb });
  const tiles: Tile[] = label === 'pg' ? [{ x: 150, y: 90, width: 180, height: 180, pPG }] : [{ x: 40, y: 40, width: 120, height: 120, pPG }];
  server.publish({ type: 'prediction', prediction: prediction(camera, i, pPG, tiles) });
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  server = new WebServer({ registry: new Registry(), port: 0, token: TOKEN, alerts: actions });
  await server.start();
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on('pageerror', (err) => consoleErrors.push(`pageerror: ${err.message}`));
  // CSP violations, failed requests and script errors all show up as console errors.
  page.on('console', (msg) => {
    if (msg.type() === 'error') consoleErrors.push(msg.text());
  });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe('live page', () => {
  it('turns the banner red within 2 s of a PG onset and acknowledges with the token', async () => {
    // State that exists before the browser connects arrives through the snapshot.
    for (let i = 1; i <= 6; i++) await publishFrame('reactor-2', i, 'cex', 0.03 + 0.01 * i);
    await page.goto(server.url);
    await page.waitForSelector('#connection[data-state="open"]');
    await page.waitForSelector('.camera[data-camera="reactor-2"] .ppg:text("0.090")');

    // Live: CEX frames, then the PG onset on reactor-1.
    const ppg = [0.04, 0.06, 0.05, 0.08, 0.07, 0.12, 0.1, 0.35, 0.62, 0.81, 0.9, 0.94];
    for (let i = 0; i < ppg.length; i++) await publishFrame('reactor-1', i + 1, ppg[i]! >= 0.5 ? 'pg' : 'cex', ppg[i]!);
    server.publish({ type: 'quality', camera: 'reactor-1', window: '5m', precision: 0.984, recall: 0.962, f1: 0.973, accuracy: 0.981, support: 412 });
    server.publish({ type: 'quality', camera: 'reactor-1', window: '1h', precision: 0.991, recall: 0.978, f1: 0.984, accuracy: 0.988, support: 4810 });
    server.publish({ type: 'quality', camera: 'reactor-2', window: '5m', precision: null, recall: null, f1: null, accuracy: 1, support: 96 });
    await page.waitForSelector('.camera[data-camera="reactor-1"] .precision:text("0.984")');
    expect(await page.locator('.camera[data-camera="reactor-1"] .camera-banner').getAttribute('data-state')).toBe('ok');
    expect(await page.locator('.camera[data-camera="reactor-1"] .tiles rect.pg').count()).toBe(1);

    const alert: Alert = buildAlert({
      id: 'reactor-1-batch-A-1',
      camera: 'reactor-1',
      runId: 'batch-2026-11-22-A',
      startsAt: at(11),
      evidence: {
        firstPgFrameId: 'reactor-1-9',
        frames: [9, 10, 11].map((i) => ({ frameId: `reactor-1-${i}`, capturedAt: at(i), pPG: ppg[i - 1]! })),
        detector: 'cusum',
        statistic: 5.2,
      },
    });
    store.set(alert.id, alert);
    server.publish({ type: 'alert', alert });
    const banner = page.locator('.camera[data-camera="reactor-1"] .camera-banner');
    await banner.and(page.locator('[data-state="firing"]')).waitFor({ timeout: 2000 });
    await page.locator('#global-banner[data-state="firing"]').waitFor({ timeout: 2000 });
    expect(await page.locator('#global-banner').textContent()).toContain('reactor-1');
    // The evidence frames were cached and pinned: the alert list shows them as images.
    await page.waitForFunction(() => {
      // Runs in the page: its document, typed as far as this check reads it (the Node code has no DOM lib).
      const { document } = globalThis as unknown as { document: { querySelectorAll(selector: string): ArrayLike<{ naturalWidth: number }> } };
      return Array.from(document.querySelectorAll('.evidence img')).filter((img) => img.naturalWidth > 0).length === 3;
    });
    await page.screenshot({ path: join(ARTIFACTS, 'live-page.png') });

    // Acknowledge: the first POST answers 401, the page asks for the token, the second succeeds.
    await banner.locator('button.ack').click();
    await page.locator('#token-dialog[open]').waitFor();
    await page.fill('#token-input', TOKEN);
    await page.click('#token-ok');
    await banner.and(page.locator('[data-state="acknowledged"]')).waitFor({ timeout: 5000 });
    expect(ackCalls).toEqual([{ id: 'reactor-1-batch-A-1', by: 'live page' }]);
    expect(store.get(alert.id)?.acknowledgedAt).toBeDefined();
    expect(await page.locator('#global-banner').getAttribute('data-state')).toBe('acknowledged');
    expect(await page.locator('.alert-item[data-alert-id="reactor-1-batch-A-1"]').getAttribute('data-state')).toBe('acknowledged');
    await page.screenshot({ path: join(ARTIFACTS, 'live-page-acknowledged.png') });
    // The one expected error: the first acknowledge answered 401 before the token was given.
    expect(consoleErrors.filter((e) => !/status of 401/.test(e))).toEqual([]);
  });

  it('reconnects after the server restarts and shows what happened meanwhile', async () => {
    const port = server.port;
    await server.close();
    await page.waitForSelector('#connection[data-state="closed"]');
    server = new WebServer({ registry: new Registry(), port, token: TOKEN, alerts: actions });
    await server.start();
    await publishFrame('reactor-3', 1, 'cex', 0.02);
    await page.waitForSelector('#connection[data-state="open"]', { timeout: 15_000 });
    await page.waitForSelector('.camera[data-camera="reactor-3"]', { timeout: 5000 });
    server.publish({ type: 'prediction', prediction: prediction('reactor-3', 2, 0.07, []) });
    await page.waitForSelector('.camera[data-camera="reactor-3"] .ppg:text("0.070")', { timeout: 5000 });
  });
});
