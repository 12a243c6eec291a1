/**
 * What the web stage costs: thumbnail encoding per frame size, WebSocket broadcast throughput to
 * several browsers, and /metrics scrape time for a registry the size of a multi-camera line.
 *
 *   node dist/bench/web.js [--quick]    → JSON on stdout
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import sharp from 'sharp';
import WebSocket from 'ws';
import { WebServer, makeThumbnail } from '../src/web/index.js';
import type { Prediction } from '../src/bus/messages.js';

async function thumbnailFigures(quick: boolean): Promise<Record<string, number>> {
  const figures: Record<string, number> = {};
  const sizes: [string, number, number][] = [
    ['640x480', 640, 480],
    ['1920x1080', 1920, 1080],
  ];
  for (const [name, width, height] of sizes) {
    // Noise compresses like a real sensor frame; a flat image would flatter the decoder.
    const raw = Buffer.alloc(width * height);
    let seed = 12345;
    for (let i = 0; i < raw.length; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      raw[i] = 40 + (seed >> 24);
    }
    const png = await sharp(raw, { raw: { width, height, channels: 1 } })
      .png({ compressionLevel: 3 })
      .toBuffer();
    const n = quick ? 10 : 50;
    await makeThumbnail(png); // warm-up
    const started = performance.now();
    for (let i = 0; i < n; i++) await makeThumbnail(png);
    const ms = (performance.now() - started) / n;
    figures[`web.thumbnail.png_${name}.ms_per_frame`] = round(ms, 2);
    figures[`web.thumbnail.png_${name}.frames_per_s`] = round(1000 / ms, 1);
  }
  return figures;
}

async function broadcastFigures(quick: boolean): Promise<Record<string, number>> {
  const server = new WebServer({ registry: new Registry(), port: 0 });
  await server.start();
  const clients: WebSocket[] = [];
  try {
    const nClients = 10;
    const nEvents = quick ? 2_000 : 10_000;
    const received = new Array<number>(nClients).fill(0);
    let resolveAll: () => void = () => undefined;
    const allDone = new Promise<void>((r) => {
      resolveAll = r;
    });
    for (let c = 0; c < nClients; c++) {
      const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`);
      clients.push(ws);
      await new Promise<void>((resolve) => ws.once('message', () => resolve())); // the status greeting
      ws.on('message', () => {
        received[c]!++;
        if (received.every((r) => r >= nEvents)) resolveAll();
      });
    }
    const prediction: Prediction = {
      frameId: 'cam1-2026-11-22T10:00:00.000Z-abcdef',
      camera: 'cam1',
      runId: 'run-1',
      capturedAt: '2026-11-22T10:00:00.000Z',
      pPG: 0.12,
      predicted: 'cex',
      tiles: [{ x: 0, y: 0, width: 224, height: 224, pPG: 0.12 }],
      model: 'm',
      backend: 'onnxruntime',
      device: 'cpu',
      latencyMs: 10,
    };
    const started = performance.now();
    for (let i = 0; i < nEvents; i++) {
      server.publish({ type: 'prediction', prediction: { ...prediction, pPG: (i % 100) / 100 } });
      if (i % 200 === 199) await new Promise((r) => setImmediate(r)); // let the sockets drain, like a real event loop
    }
    await allDone;
    const seconds = (performance.now() - started) / 1000;
    return {
      'web.ws.broadcast_10_clients.events_per_s': round(nEvents / seconds, 0),
      'web.ws.broadcast_10_clients.deliveries_per_s': round((nEvents * nClients) / seconds, 0),
    };
  } finally {
    for (const ws of clients) ws.terminate();
    await server.close();
  }
}

async function scrapeFigures(quick: boolean): Promise<Record<string, number>> {
  const registry = new Registry();
  const cameras = 16;
  const counter = new Counter({ name: 'crystalwatch_confusion_total', help: 'h', labelNames: ['camera', 'actual', 'predicted'], registers: [registry] });
  const gauge = new Gauge({ name: 'crystalwatch_ppg', help: 'h', labelNames: ['camera'], registers: [registry] });
  const histogram = new Histogram({ name: 'crystalwatch_file_to_prediction_seconds', help: 'h', labelNames: ['camera'], registers: [registry] });
  for (let c = 0; c < cameras; c++) {
    const camera = `camera-${c}`;
    for (const a of ['cex', 'pg']) for (const p of ['cex', 'pg']) counter.inc({ camera, actual: a, predicted: p }, c + 1);
    gauge.set({ camera }, 0.1);
    for (let i = 0; i < 100; i++) histogram.observe({ camera }, i / 100);
  }
  const server = new WebServer({ registry, port: 0 });
  await server.start();
  try {
    const n = quick ? 50 : 300;
    await (await fetch(`${server.url}/metrics`)).text();
    const started = performance.now();
    let bytes = 0;
    for (let i = 0; i < n; i++) bytes = (await (await fetch(`${server.url}/metrics`)).text()).length;
    const ms = (performance.now() - started) / n;
    return { 'web.metrics_scrape_16_cameras.ms': round(ms, 2), 'web.metrics_scrape_16_cameras.bytes': bytes };
  } finally {
    await server.close();
  }
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export async function bench(options: { quick: boolean }): Promise<Record<string, number | string>> {
  return {
    ...(await thumbnailFigures(options.quick)),
    ...(await broadcastFigures(options.quick)),
    ...(await scrapeFigures(options.quick)),
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const quick = process.argv.includes('--quick');
  process.stderr.write(`bench web${quick ? ' (quick)' : ''}…\n`);
  console.log(JSON.stringify(await bench({ quick }), null, 2));
}
