import { afterEach, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import sharp from 'sharp';
import { request } from 'node:http';
import WebSocket from 'ws';
import type { IncomingMessage } from 'node:http';
import {
  AckGuard,
  ACK_LOOPBACK_NOTICE,
  isLoopbackHost,
  webExposureProblem,
  WebServer,
  makeThumbnail,
  ThumbnailCache,
  type AlertActions,
  type LiveEvent,
  type LiveEventType,
} from '../src/web/index.js';
import type { Alert, Prediction } from '../src/bus/messages.js';
import { alert as buildAlert, prediction as buildPrediction } from './helpers/messages.js';
import { waitForEvent } from './helpers/wait.js';

const servers: WebServer[] = [];
const sockets: WebSocket[] = [];
afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  for (const s of servers.splice(0)) await s.close();
});

async function startServer(options: Partial<ConstructorParameters<typeof WebServer>[0]> = {}): Promise<WebServer> {
  const server = new WebServer({ registry: new Registry(), port: 0, ...options });
  servers.push(server);
  await server.start();
  return server;
}

/** Raw HTTP so paths like /../x are sent as written (fetch would normalise them). */
function raw(
  server: WebServer,
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string | Buffer,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: server.port, method, path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const alert = (overrides: Partial<Alert> = {}): Alert =>
  buildAlert({
    id: 'alert-cam1-1',
    camera: 'cam1',
    runId: 'run-7',
    startsAt: '2026-11-22T10:00:05.000Z',
    evidence: { firstPgFrameId: 'cam1-f3', frames: [{ frameId: 'cam1-f3', capturedAt: '2026-11-22T10:00:03.000Z', pPG: 0.91 }] },
    ...overrides,
  });

const prediction = (i: number, pPG: number): Prediction =>
  buildPrediction({
    frameId: `cam1-f${i}`,
    camera: 'cam1',
    runId: 'run-7',
    capturedAt: `2026-11-22T10:00:0${i}.000Z`,
    pPG,
    tiles: [{ x: 10, y: 20, width: 64, height: 64, pPG }],
    model: 'resnet18-cex-pg',
    backend: 'onnxruntime',
    latencyMs: 12,
  });

type EventOf<T extends LiveEventType> = Extract<LiveEvent, { type: T }>;

/** The next event of this type (that `match` accepts) on the feed. */
function nextMessage<T extends LiveEventType>(ws: WebSocket, type: T, match: (e: EventOf<T>) => boolean = () => true): Promise<EventOf<T>> {
  return new Promise((resolve) => {
    const onMessage = (data: WebSocket.RawData) => {
      // The server sends text frames, which ws hands over as one Buffer.
      const event = JSON.parse((data as Buffer).toString('utf8')) as LiveEvent;
      if (event.type !== type) return;
      const typed = event as EventOf<T>;
      if (match(typed)) {
        ws.off('message', onMessage);
        resolve(typed);
      }
    };
    ws.on('message', onMessage);
  });
}

/**
 * Like the alert stage: lists and acknowledges its alerts, and announces each change once
 * through `announce` (the app wires it to `web.publish`, as AlertStage's `publish` option).
 */
function alertStage(alerts: Alert[], announce: (alert: Alert) => void = () => undefined): AlertActions & { calls: { id: string; by?: string }[] } {
  const store = new Map(alerts.map((a) => [a.id, a]));
  const calls: { id: string; by?: string }[] = [];
  return {
    calls,
    list: () => [...store.values()],
    async acknowledge(id, by) {
      calls.push({ id, by });
      const found = store.get(id);
      if (!found) return undefined;
      if (found.acknowledgedAt) return found;
      const acked = { ...found, acknowledgedAt: '2026-11-22T10:01:00.000Z', acknowledgedBy: by };
      store.set(id, acked);
      announce(acked);
      return acked;
    },
  };
}

describe('WebServer HTTP', () => {
  it('binds 127.0.0.1 on an ephemeral port and answers health, readiness and /metrics', async () => {
    let ready = false;
    const registry = new Registry();
    const server = await startServer({ registry, health: () => ({ ready, checks: { kafka: ready, model: ready ? 'loaded' : 'loading' } }) });
    expect(server.url).toBe(`http://127.0.0.1:${server.port}`);
    expect(server.port).toBeGreaterThan(0);

    const healthz = await raw(server, 'GET', '/healthz');
    expect(healthz.status).toBe(200);
    expect(JSON.parse(healthz.body.toString())).toEqual({ status: 'ok' });

    const notReady = await raw(server, 'GET', '/readyz');
    expect(notReady.status).toBe(503);
    expect(JSON.parse(notReady.body.toString())).toEqual({ ready: false, checks: { kafka: false, model: 'loading' } });
    ready = true;
    expect((await raw(server, 'GET', '/readyz')).status).toBe(200);

    const metrics = await raw(server, 'GET', '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.headers['content-type']).toBe(registry.contentType);
    const text = metrics.body.toString();
    expect(text).toContain('crystalwatch_web_http_requests_total{route="/readyz",code="503"} 1');
    expect(text).toContain('crystalwatch_web_http_requests_total{route="/healthz",code="200"} 1');
  });

  it('serves the live page and refuses path traversal', async () => {
    const server = await startServer();
    const page = await raw(server, 'GET', '/');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toContain("default-src 'self'");
    expect(page.body.toString()).toContain('<script type="module" src="/app.js">');
    expect((await raw(server, 'GET', '/app.js')).headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect((await raw(server, 'HEAD', '/style.css')).body.length).toBe(0);

    for (const path of [
      '/../package.json',
      '/%2e%2e/package.json',
      '/..%2fpackage.json',
      '/%2e%2e%2f%2e%2e%2fpackage.json',
      '/static/../../index.ts',
      '/..\\index.ts',
      '/%00index.html',
      '/.hidden',
      '/nope.html',
    ]) {
      const res = await raw(server, 'GET', path);
      expect(res.status, path).toBe(404);
      expect(res.body.toString()).not.toContain('"name": "crystalwatch"');
    }
    expect((await raw(server, 'GET', '/%E0%A4%A')).status).toBe(400);
    expect((await raw(server, 'POST', '/')).status).toBe(405);
    expect((await raw(server, 'GET', '/api/nothing')).status).toBe(404);
  });

  it('protects acknowledge with the bearer token, limits the body, and calls AlertActions', async () => {
    const actions = alertStage([alert()]);
    const { calls } = actions;
    const server = await startServer({ token: 'operator-secret-1', alerts: actions });
    const listed = JSON.parse((await raw(server, 'GET', '/api/alerts')).body.toString()) as Alert[];
    expect(listed.map((a) => a.id)).toEqual(['alert-cam1-1']);

    const body = JSON.stringify({ by: 'shift lead' });
    const json = { 'content-type': 'application/json' };
    const noToken = await raw(server, 'POST', '/api/alerts/alert-cam1-1/ack', json, body);
    expect(noToken.status).toBe(401);
    expect(noToken.headers['www-authenticate']).toContain('Bearer');
    expect((await raw(server, 'POST', '/api/alerts/alert-cam1-1/ack', { ...json, authorization: 'Bearer wrong-token' }, body)).status).toBe(401);
    expect(calls).toEqual([]);

    const auth = { ...json, authorization: 'Bearer operator-secret-1' };
    expect((await raw(server, 'POST', '/api/alerts/alert-cam1-1/ack', auth, Buffer.alloc(17 * 1024, 0x20))).status).toBe(413);
    expect((await raw(server, 'POST', '/api/alerts/alert-cam1-1/ack', auth, '[1,2]')).status).toBe(400);
    const objectBy = await raw(server, 'POST', '/api/alerts/alert-cam1-1/ack', auth, '{"by":{"name":"shift lead"}}');
    expect(objectBy.status).toBe(400);
    expect(objectBy.body.toString()).toContain('by must be a string');
    expect((await raw(server, 'POST', '/api/alerts/no-such/ack', auth, body)).status).toBe(404);

    const ok = await raw(server, 'POST', '/api/alerts/alert-cam1-1/ack', auth, body);
    expect(ok.status).toBe(200);
    const acked = JSON.parse(ok.body.toString()) as Alert;
    expect(acked.acknowledgedBy).toBe('shift lead');
    expect(calls).toEqual([
      { id: 'no-such', by: 'shift lead' },
      { id: 'alert-cam1-1', by: 'shift lead' },
    ]);
    expect((await raw(server, 'GET', '/api/alerts/alert-cam1-1/ack')).status).toBe(405);
  });

  it('says which address is taken when the port is in use', async () => {
    const first = await startServer();
    const second = new WebServer({ registry: new Registry(), port: first.port });
    servers.push(second);
    await expect(second.start()).rejects.toThrow(new RegExp(`cannot listen on 127\\.0\\.0\\.1:${first.port}: .*EADDRINUSE`));
  });

  it('refuses a short token and a bad port with a clear message', () => {
    expect(() => new WebServer({ registry: new Registry(), token: 'abc' })).toThrow(/at least 8 characters/);
    expect(() => new WebServer({ registry: new Registry(), port: 70000 })).toThrow(/0\.\.65535, got 70000/);
  });
});

describe('extra routes', () => {
  it("mounts the app's routes with one line each; mutating ones need the token", async () => {
    const runs: Record<string, unknown>[] = [];
    const server = await startServer({
      token: 'operator-secret-1',
      routes: [
        // Shaped like src/audit/api.ts: ({ url }) => { status, body }.
        {
          method: 'GET',
          path: '/api/audit',
          mutating: true,
          handle: ({ url }) => ({ status: 200, body: { after: Number(url.searchParams.get('after') ?? 0), records: [] } }),
        },
        {
          method: 'POST',
          path: '/api/runs',
          mutating: true,
          handle: async ({ readJson }) => {
            runs.push(await readJson());
            return { status: 201, body: { ok: true } };
          },
        },
        {
          method: 'GET',
          path: '/api/runs/:runId/report.txt',
          handle: ({ params }) => ({ status: 200, body: `report of ${params.runId}`, contentType: 'text/plain; charset=utf-8' }),
        },
        {
          method: 'GET',
          path: '/api/broken',
          handle: () => {
            throw new Error('disk on fire');
          },
        },
      ],
    });
    const auth = { authorization: 'Bearer operator-secret-1', 'content-type': 'application/json' };

    expect((await raw(server, 'GET', '/api/audit?after=5')).status).toBe(401);
    const audit = await raw(server, 'GET', '/api/audit?after=5', auth);
    expect(audit.status).toBe(200);
    expect(audit.headers['cache-control']).toBe('no-store');
    expect(JSON.parse(audit.body.toString())).toEqual({ after: 5, records: [] });

    expect((await raw(server, 'POST', '/api/runs', { 'content-type': 'application/json' }, '{"runId":"batch-7"}')).status).toBe(401);
    expect((await raw(server, 'POST', '/api/runs', auth, '{"runId":"batch-7"}')).status).toBe(201);
    expect((await raw(server, 'POST', '/api/runs', auth, 'not json')).status).toBe(400);
    expect(runs).toEqual([{ runId: 'batch-7' }]);
    const wrongMethod = await raw(server, 'GET', '/api/runs', auth);
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.allow).toBe('POST');

    const report = await raw(server, 'GET', '/api/runs/batch%2D7/report.txt');
    expect([report.status, report.headers['content-type'], report.body.toString()]).toEqual([200, 'text/plain; charset=utf-8', 'report of batch-7']);
    const head = await raw(server, 'HEAD', '/api/runs/batch-7/report.txt');
    expect([head.status, head.headers['content-length'], head.body.length]).toEqual([200, String('report of batch-7'.length), 0]);

    const broken = await raw(server, 'GET', '/api/broken');
    expect(broken.status).toBe(500);
    expect(JSON.parse(broken.body.toString())).toEqual({ error: 'internal error (see the server log)' });

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toContain('crystalwatch_web_http_requests_total{route="/api/runs/:runId/report.txt",code="200"} 2');
    expect(metrics).toContain('crystalwatch_web_http_requests_total{route="/api/audit",code="401"} 1');
  });

  it('refuses a route defined twice or with a path it cannot match', () => {
    const handle = () => ({ status: 200, body: {} });
    expect(() => new WebServer({ registry: new Registry(), routes: [{ method: 'GET', path: '/api/alerts', handle }] })).toThrow(
      'web: route GET /api/alerts is defined twice',
    );
    expect(() => new WebServer({ registry: new Registry(), routes: [{ method: 'GET', path: 'api/x', handle }] })).toThrow(/must start with "\/"/);
  });
});

describe('acknowledging without a token', () => {
  /** Just what AckGuard reads from a request. */
  const request = (remoteAddress: string, headers: Record<string, string> = {}) => ({ headers, socket: { remoteAddress } }) as unknown as IncomingMessage;

  it('is allowed on a loopback bind, and the live page says so', async () => {
    const server = await startServer({ alerts: alertStage([alert()]) });
    const page = (await raw(server, 'GET', '/')).body.toString();
    expect(page).toContain(`<p id="ack-policy" class="notice" role="note">${ACK_LOOPBACK_NOTICE}</p>`);
    expect(ACK_LOOPBACK_NOTICE).toBe('acknowledgement without a token: loopback only');
    expect((await raw(server, 'POST', '/api/alerts/alert-cam1-1/ack', {}, '{"by":"op"}')).status).toBe(200);
  });

  it('is not mentioned when a token guards acknowledging', async () => {
    const server = await startServer({ token: 'operator-secret-1' });
    const page = (await raw(server, 'GET', '/')).body.toString();
    expect(page).not.toContain('ack-policy');
    expect(page).not.toContain('<!--');
  });

  it('is refused on a non-loopback bind, and from a non-loopback client', () => {
    const open = new AckGuard({ host: '0.0.0.0' });
    expect(open.mode).toBe('disabled');
    expect(open.notice).toMatch(/needs a token \(web\.token\)/);
    expect(open.refusal(request('127.0.0.1'))).toEqual({
      status: 403,
      message: expect.stringMatching(/listens on 0\.0\.0\.0; set web\.token \(CRYSTALWATCH_WEB_TOKEN/),
    });
    const local = new AckGuard({ host: '127.0.0.1' });
    const here = { host: '127.0.0.1:8080' };
    expect(local.refusal(request('127.0.0.1', here))).toBeUndefined();
    expect(local.refusal(request('::ffff:127.0.0.1', { host: 'localhost:8080' }))).toBeUndefined();
    expect(local.refusal(request('::1', { host: '[::1]:8080' }))).toBeUndefined();
    expect(local.refusal(request('10.1.2.3', here))).toEqual({ status: 403, message: expect.stringMatching(/from this machine only, not from 10\.1\.2\.3/) });
    // DNS rebinding: a page of evil.example resolved to 127.0.0.1, same-origin by its own Host.
    expect(local.refusal(request('127.0.0.1', { origin: 'http://evil.example:8080', host: 'evil.example:8080' }))).toEqual({
      status: 403,
      message: expect.stringMatching(/needs a loopback Host header/),
    });
    expect(local.refusal(request('127.0.0.1', { host: 'evil.example:8080' }))).toMatchObject({ status: 403 });
    expect(local.refusal(request('127.0.0.1', { origin: 'https://evil.example', host: '127.0.0.1:8080' }))).toMatchObject({ status: 403 });
    const guarded = new AckGuard({ host: '0.0.0.0', token: 'operator-secret-1' });
    expect(guarded.refusal(request('10.1.2.3', { authorization: 'Bearer operator-secret-1' }))).toBeUndefined();
    expect(guarded.refusal(request('127.0.0.1'))).toMatchObject({ status: 401 });
  });

  it('keeps `crystalwatch run` from serving acknowledgement publicly without a token', () => {
    const run = (stages: string[], host: string, token?: string) => webExposureProblem({ stages, web: { host, token } });
    expect(run(['ingest', 'classify', 'monitor', 'web'], '0.0.0.0')).toMatch(
      /^web\.host is "0\.0\.0\.0", which is not a loopback address, and web\.token is not set/,
    );
    expect(run(['monitor', 'web'], '0.0.0.0', 'operator-secret-1')).toBeUndefined();
    expect(run(['monitor', 'web'], '127.0.0.1')).toBeUndefined();
    // The web stage of an ingest or classify process serves /metrics only: no alert to acknowledge there.
    expect(run(['ingest', 'web'], '0.0.0.0')).toBeUndefined();
    expect(run(['monitor'], '0.0.0.0')).toBeUndefined();
  });

  it('knows loopback addresses', () => {
    for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.5', 'plant-gw', '127.0.0.1.example.com', '']) expect(isLoopbackHost(host), host).toBe(false);
  });
});

describe('WebServer live feed', () => {
  it('pushes published events over /ws and keeps the latest state per camera', async () => {
    const wired: { web?: WebServer } = {}; // as the app wires AlertStage's publish to the web stage
    const stage = alertStage([alert()], (changed) => wired.web?.publish({ type: 'alert', alert: changed }));
    const server = await startServer({ alerts: stage });
    wired.web = server;
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`);
    sockets.push(ws);
    const hello = await nextMessage(ws, 'status');
    expect(hello).toMatchObject({ type: 'status', connected: true, cameras: 0 });

    const got = nextMessage(ws, 'prediction');
    server.publish({ type: 'prediction', prediction: prediction(1, 0.12) });
    expect((await got).prediction.frameId).toBe('cam1-f1');

    server.publish({ type: 'prediction', prediction: prediction(2, 0.81) });
    server.publish({ type: 'quality', camera: 'cam1', window: '5m', precision: 0.97, recall: 0.94, f1: 0.955, accuracy: 0.96, support: 120 });
    server.publish({ type: 'quality', camera: 'cam1', window: '1h', precision: null, recall: null, f1: null, accuracy: null, support: 0 });
    const alertSeen = nextMessage(ws, 'alert');
    server.publish({ type: 'alert', alert: alert() });
    expect((await alertSeen).alert.state).toBe('firing');

    const cameras = JSON.parse((await raw(server, 'GET', '/api/cameras')).body.toString());
    expect(cameras).toHaveLength(1);
    expect(cameras[0].camera).toBe('cam1');
    expect(cameras[0].history).toEqual([
      { t: '2026-11-22T10:00:01.000Z', pPG: 0.12 },
      { t: '2026-11-22T10:00:02.000Z', pPG: 0.81 },
    ]);
    expect(cameras[0].lastPrediction.frameId).toBe('cam1-f2');
    expect(cameras[0].quality['5m']).toMatchObject({ precision: 0.97, recall: 0.94, support: 120 });
    expect(cameras[0].quality['1h'].precision).toBeNull();
    expect(cameras[0].alert.id).toBe('alert-cam1-1');

    // Acknowledging goes through the alert stage, which announces the change: one event, not two.
    const listed = JSON.parse((await raw(server, 'GET', '/api/alerts')).body.toString()) as Alert[];
    expect(listed.map((a) => a.id)).toEqual(['alert-cam1-1']);
    const ackEvent = nextMessage(ws, 'alert', (e) => Boolean(e.alert.acknowledgedAt));
    const ack = await raw(server, 'POST', '/api/alerts/alert-cam1-1/ack', { 'content-type': 'application/json' }, '{"by":"op"}');
    expect(ack.status).toBe(200);
    expect((await ackEvent).alert.acknowledgedBy).toBe('op');
    expect(stage.calls).toEqual([{ id: 'alert-cam1-1', by: 'op' }]);
    const afterAck = JSON.parse((await raw(server, 'GET', '/api/cameras')).body.toString());
    expect(afterAck[0].alert.acknowledgedBy).toBe('op');

    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toContain('crystalwatch_web_ws_clients 1');
    expect(metrics).toContain('crystalwatch_web_ws_events_total{type="prediction"} 2');
    expect(metrics).toContain('crystalwatch_web_ws_events_total{type="alert"} 2');
  });

  it('without an alert stage lists no alerts and acknowledges none', async () => {
    const server = await startServer();
    server.publish({ type: 'alert', alert: alert() }); // shown on the camera, but not the web stage's to acknowledge
    expect(JSON.parse((await raw(server, 'GET', '/api/alerts')).body.toString())).toEqual([]);
    const ack = await raw(server, 'POST', '/api/alerts/alert-cam1-1/ack', {}, '{"by":"op"}');
    expect(ack.status).toBe(404);
    expect(JSON.parse(ack.body.toString()).error).toMatch(/^no alert with id "alert-cam1-1"/);
  });

  it('refuses the live feed and acknowledgements to other sites in the browser', async () => {
    const server = await startServer({ allowedOrigins: ['https://crystalwatch.plant.example'], alerts: alertStage([alert()]) });
    const open = (origin: string) =>
      new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`, { origin });
        sockets.push(ws);
        ws.on('open', () => resolve());
        ws.on('error', reject);
      });
    await expect(open('https://evil.example')).rejects.toThrow(/403/);
    await expect(open(`http://127.0.0.1:${server.port}`)).resolves.toBeUndefined();
    await expect(open('https://crystalwatch.plant.example')).resolves.toBeUndefined();

    const crossSite = await raw(server, 'POST', '/api/alerts/alert-cam1-1/ack', { origin: 'https://evil.example', 'content-type': 'text/plain' }, '{"by":"x"}');
    expect(crossSite.status).toBe(403);
    const listed = JSON.parse((await raw(server, 'GET', '/api/alerts')).body.toString()) as Alert[];
    expect(listed[0]!.acknowledgedAt).toBeUndefined();
    const sameSite = await raw(server, 'POST', '/api/alerts/alert-cam1-1/ack', { origin: `http://127.0.0.1:${server.port}` }, '');
    expect(sameSite.status).toBe(200);
  });

  it('refuses WebSocket upgrades on other paths and closes clients on close()', async () => {
    const server = await startServer();
    const wrong = new WebSocket(`ws://127.0.0.1:${server.port}/other`);
    sockets.push(wrong);
    await expect(waitForEvent(wrong, 'open', { timeout: 5_000, message: 'the refused upgrade on /other to fail' })).rejects.toThrow(/404/);

    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`);
    sockets.push(ws);
    await nextMessage(ws, 'status');
    const closed = waitForEvent(ws, 'close', { timeout: 5_000, message: 'the server to close the live-feed socket on close()' });
    await server.close();
    await closed;
    await server.close(); // idempotent
    await expect(fetch(`${server.url}/healthz`)).rejects.toThrow();
  });
});

describe('thumbnails', () => {
  it('downscales a large frame to a ≤320 px JPEG and serves it by frame and by camera', async () => {
    // A 1280×960 grey frame with one bright plate, like a PG crop.
    const frame = await sharp({ create: { width: 1280, height: 960, channels: 3, background: { r: 20, g: 20, b: 20 } } })
      .composite([{ input: { create: { width: 300, height: 200, channels: 3, background: { r: 230, g: 230, b: 230 } } }, left: 500, top: 400 }])
      .png()
      .toBuffer();
    const made = await makeThumbnail(frame);
    expect([made.width, made.height]).toEqual([320, 240]);
    expect([made.sourceWidth, made.sourceHeight]).toEqual([1280, 960]);
    expect((await sharp(made.jpeg).metadata()).format).toBe('jpeg');

    const small = await makeThumbnail(
      await sharp({ create: { width: 200, height: 160, channels: 3, background: { r: 0, g: 0, b: 0 } } })
        .greyscale()
        .png()
        .toBuffer(),
    );
    expect([small.width, small.height]).toEqual([200, 160]); // never enlarged

    await expect(makeThumbnail(Buffer.from('not an image'))).rejects.toThrow();

    const server = await startServer();
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/ws`);
    sockets.push(ws);
    await nextMessage(ws, 'status');
    const frameEvent = nextMessage(ws, 'frame');
    server.addThumbnail({ frameId: 'cam2-2026-11-22T10:00:00Z-abc', camera: 'cam2', capturedAt: '2026-11-22T10:00:00.000Z', ...made });
    expect(await frameEvent).toMatchObject({
      camera: 'cam2',
      width: 320,
      height: 240,
      sourceWidth: 1280,
      sourceHeight: 960,
      url: '/api/frames/cam2-2026-11-22T10%3A00%3A00Z-abc/thumbnail',
    });

    const byFrame = await raw(server, 'GET', '/api/frames/cam2-2026-11-22T10%3A00%3A00Z-abc/thumbnail');
    expect(byFrame.status).toBe(200);
    expect(byFrame.headers['content-type']).toBe('image/jpeg');
    expect(byFrame.body.equals(made.jpeg)).toBe(true);
    const latest = await raw(server, 'GET', '/api/cameras/cam2/latest.jpg');
    expect(latest.status).toBe(200);
    expect(latest.body.equals(made.jpeg)).toBe(true);
    expect((await raw(server, 'GET', '/api/cameras/cam9/latest.jpg')).status).toBe(404);
    expect((await raw(server, 'GET', '/api/frames/unknown/thumbnail')).status).toBe(404);
  });

  it('keeps a bounded LRU but never evicts pinned alert evidence', () => {
    const cache = new ThumbnailCache(3, 10);
    const thumb = (i: number) => ({
      frameId: `f${i}`,
      camera: 'cam1',
      capturedAt: `2026-11-22T10:00:${String(i).padStart(2, '0')}.000Z`,
      jpeg: Buffer.from([i]),
      width: 1,
      height: 1,
      sourceWidth: 1,
      sourceHeight: 1,
    });
    cache.add(thumb(1));
    cache.pin(['f1', 'f5']); // f5 not seen yet: pinned when it arrives
    for (let i = 2; i <= 8; i++) cache.add(thumb(i));
    expect(cache.size).toBe(3);
    expect(cache.get('f2')).toBeUndefined();
    expect(cache.get('f1')?.jpeg[0]).toBe(1);
    expect(cache.get('f5')?.jpeg[0]).toBe(5);
    expect(cache.get('f8')?.jpeg[0]).toBe(8);
    expect(cache.latestFor('cam1')?.frameId).toBe('f8');
    expect(() => new ThumbnailCache(0)).toThrow(/positive integer, got 0/);
  });
});
