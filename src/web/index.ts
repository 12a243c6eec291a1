/**
 * What people look at: the HTTP API, `/metrics`, the WebSocket live feed and the live page.
 *
 * The app publishes LiveEvents (`publish`); the server keeps the latest state per camera from
 * them, so a browser that (re)connects gets the whole picture from `/api/cameras` and
 * `/api/alerts` and then follows the feed. Events are documented in src/web/README.md.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, WebSocket } from 'ws';
import type { Kafka } from 'kafkajs';
import type { Registry } from 'prom-client';
import type { Alert, Prediction } from '../bus/messages.js';
import type { Topics } from '../bus/topics.js';
import { silentLogger, type Logger } from '../config/logger.js';
import { AckGuard } from './auth.js';
import { createWebMetrics, type WebMetrics } from './metrics.js';
import { FrameThumbnailer, ThumbnailCache, type Thumbnail } from './thumbnails.js';

export { ThumbnailCache, makeThumbnail, type Thumbnail } from './thumbnails.js';
export { AckGuard, isLoopbackHost, webExposureProblem, ACK_LOOPBACK_NOTICE, ACK_DISABLED_NOTICE } from './auth.js';

export interface LiveEvent {
  type: 'prediction' | 'alert' | 'quality' | 'frame' | 'status';
  [k: string]: unknown;
}

export interface AlertActions {
  list(): Alert[];
  acknowledge(id: string, by?: string): Alert | undefined;
}

export interface WebOptions {
  /** Interface to bind; 127.0.0.1 unless the operator opens it on purpose (e.g. 0.0.0.0 in a container). */
  host?: string;
  /** 8080 by default; 0 = an ephemeral port (read `port` after start). */
  port?: number;
  registry: Registry;
  /**
   * When set, mutating endpoints require `Authorization: Bearer <token>`. Without it,
   * acknowledging works only on a loopback `host` from loopback clients (src/web/auth.ts).
   */
  token?: string;
  alerts?: AlertActions;
  health?: () => { ready: boolean; checks: Record<string, boolean | string> };
  /** Consume `frames` for thumbnails (own consumer group, from latest). */
  thumbnails?: { kafka: Kafka; topics: Topics; groupId?: string; cacheSize?: number; maxLagMs?: number };
  logger?: Logger;
  /** Folder with the live page; defaults to src/web/static of this package. */
  staticDir?: string;
  /**
   * Browser origins besides the server's own allowed to open /ws and POST (e.g. a reverse proxy's
   * public URL, "https://crystalwatch.plant.example"). Requests without an Origin header (curl,
   * scripts) are not affected.
   */
  allowedOrigins?: string[];
}

/** What the server remembers per camera, served by `GET /api/cameras`. */
export interface CameraState {
  camera: string;
  updatedAt: string;
  lastPrediction?: Prediction;
  /** Recent P(PG), oldest first, for the sparkline; null = unusable frame. */
  history: { t: string; pPG: number | null }[];
  /** Latest quality event per window (e.g. "5m", "1h"). */
  quality: Record<string, Record<string, unknown>>;
  /** Latest alert of this camera (firing, acknowledged or resolved). */
  alert?: Alert;
  thumbnail?: { frameId: string; capturedAt: string; width: number; height: number; sourceWidth: number; sourceHeight: number; url: string };
}

const HISTORY_LENGTH = 240;
const MAX_CAMERAS = 1024;
const MAX_ALERTS = 500;
/** Request bodies here are tiny JSON ({by}); anything bigger is a mistake or an attack. */
const MAX_BODY_BYTES = 16 * 1024;
/** A browser that stops reading gets events dropped rather than growing our memory. */
const MAX_WS_BUFFERED_BYTES = 1024 * 1024;
const WS_PING_MS = 15_000;

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};

const SECURITY_HEADERS: Record<string, string> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/** The package root: the nearest folder upwards holding crystalwatch's package.json (works from src/ and dist/src/). */
export function packageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    const candidate = join(dir, 'package.json');
    if (existsSync(candidate)) {
      try {
        if ((JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string }).name === 'crystalwatch') return dir;
      } catch {
        // not ours; keep walking up
      }
    }
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`web: cannot find the crystalwatch package root above ${from}; pass staticDir explicitly`);
    dir = parent;
  }
}

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export class WebServer {
  private readonly options: WebOptions;
  private readonly logger: Logger;
  private readonly metrics: WebMetrics;
  private readonly staticDir: string;
  private readonly cameras = new Map<string, CameraState>();
  /** Alerts seen through `publish`, used when no AlertActions were given. */
  private readonly seenAlerts = new Map<string, Alert>();
  private readonly cache: ThumbnailCache;
  private readonly ack: AckGuard;
  private server: Server | undefined;
  private wss: WebSocketServer | undefined;
  private thumbnailer: FrameThumbnailer | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  private readonly sockets = new Set<Socket>();
  private closing: Promise<void> | undefined;
  private boundPort = -1;

  constructor(options: WebOptions) {
    if (!options.registry) throw new Error('web: options.registry is required (the process prom-client Registry)');
    const port = options.port ?? 8080;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`web: port must be an integer 0..65535, got ${String(options.port)}`);
    if (options.token !== undefined && options.token.length < 8) throw new Error(`web: token must be at least 8 characters (got ${options.token.length}); generate one with \`openssl rand -hex 16\``);
    this.options = { ...options, port };
    this.logger = options.logger ?? silentLogger; // the app passes a child logger already named for this stage
    this.metrics = createWebMetrics(options.registry);
    this.staticDir = resolve(options.staticDir ?? join(packageRoot(), 'src', 'web', 'static'));
    this.cache = new ThumbnailCache(options.thumbnails?.cacheSize ?? 512);
    this.ack = new AckGuard({ token: options.token, host: options.host ?? '127.0.0.1', allowedOrigins: options.allowedOrigins });
  }

  get port(): number {
    if (this.boundPort < 0) throw new Error('web: port is known only after start()');
    return this.boundPort;
  }

  get url(): string {
    const host = this.options.host ?? '127.0.0.1';
    const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
    return `http://${shown}:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.server) throw new Error('web: start() called twice');
    if (!existsSync(join(this.staticDir, 'index.html'))) throw new Error(`web: live page not found at ${join(this.staticDir, 'index.html')}; the package's src/web/static folder must ship with it`);
    const server = createServer((req, res) => void this.handle(req, res));
    server.requestTimeout = 30_000;
    server.headersTimeout = 10_000;
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    const wss = new WebSocketServer({ noServer: true, maxPayload: 4096, perMessageDeflate: false });
    server.on('upgrade', (req, socket, head) => {
      socket.on('error', () => socket.destroy()); // a client that resets mid-handshake must not crash the process
      const path = (req.url ?? '').split('?')[0];
      if (path !== '/ws') {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
        return;
      }
      if (!this.ack.originAllowed(req)) {
        // Another site open in the operator's browser must not read the plant's live feed.
        socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => this.onWsConnection(ws));
    });
    this.server = server;
    this.wss = wss;
    await new Promise<void>((resolvePromise, reject) => {
      const onError = (err: Error) => reject(new Error(`web: cannot listen on ${this.options.host ?? '127.0.0.1'}:${this.options.port}: ${err.message}; pick another port (CRYSTALWATCH_WEB_PORT, or 0 for any) or stop what holds it`));
      server.once('error', onError);
      server.listen(this.options.port, this.options.host ?? '127.0.0.1', () => {
        server.off('error', onError);
        resolvePromise();
      });
    });
    const address = server.address();
    this.boundPort = typeof address === 'object' && address ? address.port : -1;
    // Pings find browsers that vanished without a close frame (laptop lid, network change).
    this.pingTimer = setInterval(() => {
      for (const ws of wss.clients) {
        const alive = ws as WebSocket & { isAlive?: boolean };
        if (alive.isAlive === false) {
          ws.terminate();
          continue;
        }
        alive.isAlive = false;
        ws.ping();
      }
    }, WS_PING_MS);
    this.pingTimer.unref();
    if (this.options.thumbnails) {
      const { kafka, topics, groupId, maxLagMs } = this.options.thumbnails;
      this.thumbnailer = new FrameThumbnailer({
        kafka, topics, groupId, maxLagMs, cache: this.cache, metrics: this.metrics, logger: this.logger,
        onThumbnail: (thumb) => this.onThumbnail(thumb),
      });
      try {
        await this.thumbnailer.start();
      } catch (err) {
        await this.close();
        throw new Error(`web: thumbnails consumer could not start on topic ${topics.frames}: ${(err as Error).message}`);
      }
    }
    this.logger.info({ url: this.url, acknowledge: this.ack.mode }, 'web: listening');
    if (this.ack.mode === 'disabled') this.logger.info({ host: this.options.host }, 'web: no token and not on loopback: acknowledging alerts is refused here (set web.token to allow it)');
  }

  /** Broadcast a live event to every connected browser and fold it into the per-camera state. */
  publish(event: LiveEvent): void {
    this.absorb(event);
    const payload = JSON.stringify(event);
    this.metrics.wsEvents.inc({ type: event.type });
    const clients = this.wss?.clients;
    if (!clients) return;
    for (const ws of clients) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      if (ws.bufferedAmount > MAX_WS_BUFFERED_BYTES) {
        this.metrics.wsDropped.inc();
        continue;
      }
      ws.send(payload);
    }
  }

  /** The thumbnail cache (the app may add thumbnails itself when it already has the decoded frame). */
  get thumbnailCache(): ThumbnailCache {
    return this.cache;
  }

  /** Add a thumbnail made elsewhere and tell the browsers (same path as the frames consumer). */
  addThumbnail(thumb: Thumbnail): void {
    this.cache.add(thumb);
    this.onThumbnail(thumb);
  }

  async close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
    await this.thumbnailer?.close();
    this.thumbnailer = undefined;
    const wss = this.wss;
    if (wss) {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
      this.metrics.wsClients.set(0);
    }
    const server = this.server;
    if (server?.listening) {
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      // Keep-alive and hung requests must not hold the process open after close().
      for (const socket of this.sockets) socket.destroy();
      await closed;
    }
    this.sockets.clear();
    this.logger.info('web: closed');
  }

  // --- state from events -------------------------------------------------

  private cameraState(camera: string): CameraState | undefined {
    let state = this.cameras.get(camera);
    if (!state) {
      if (this.cameras.size >= MAX_CAMERAS) return undefined; // a runaway camera id must not grow memory
      state = { camera, updatedAt: new Date().toISOString(), history: [], quality: {} };
      this.cameras.set(camera, state);
    }
    state.updatedAt = new Date().toISOString();
    return state;
  }

  private absorb(event: LiveEvent): void {
    switch (event.type) {
      case 'prediction': {
        const prediction = event.prediction as Prediction | undefined;
        if (!prediction || typeof prediction.camera !== 'string') return;
        const state = this.cameraState(prediction.camera);
        if (!state) return;
        state.lastPrediction = prediction;
        state.history.push({ t: prediction.capturedAt, pPG: prediction.pPG });
        if (state.history.length > HISTORY_LENGTH) state.history.splice(0, state.history.length - HISTORY_LENGTH);
        return;
      }
      case 'alert': {
        const alert = event.alert as Alert | undefined;
        if (!alert || typeof alert.id !== 'string' || typeof alert.camera !== 'string') return;
        this.rememberAlert(alert);
        this.cache.pin([alert.evidence?.firstPgFrameId, ...(alert.evidence?.frames ?? []).map((f) => f.frameId)].filter((id): id is string => typeof id === 'string'));
        return;
      }
      case 'quality': {
        if (typeof event.camera !== 'string') return;
        const state = this.cameraState(event.camera);
        if (!state) return;
        const window = typeof event.window === 'string' ? event.window : 'default';
        const { type: _type, ...rest } = event;
        state.quality[window] = rest;
        return;
      }
      default:
        return;
    }
  }

  private rememberAlert(alert: Alert): void {
    this.seenAlerts.delete(alert.id);
    this.seenAlerts.set(alert.id, alert);
    while (this.seenAlerts.size > MAX_ALERTS) this.seenAlerts.delete(this.seenAlerts.keys().next().value as string);
    const state = this.cameraState(alert.camera);
    if (state) state.alert = alert;
  }

  private onThumbnail(thumb: Thumbnail): void {
    const state = this.cameraState(thumb.camera);
    if (state && this.cache.latestFor(thumb.camera) === thumb) state.thumbnail = this.thumbnailInfo(thumb);
    this.publish({ type: 'frame', camera: thumb.camera, ...this.thumbnailInfo(thumb) });
  }

  private thumbnailInfo(thumb: Thumbnail): NonNullable<CameraState['thumbnail']> {
    return {
      frameId: thumb.frameId, capturedAt: thumb.capturedAt, width: thumb.width, height: thumb.height,
      sourceWidth: thumb.sourceWidth, sourceHeight: thumb.sourceHeight,
      url: `/api/frames/${encodeURIComponent(thumb.frameId)}/thumbnail`,
    };
  }

  private listAlerts(): Alert[] {
    const alerts = this.options.alerts ? this.options.alerts.list() : [...this.seenAlerts.values()];
    return [...alerts].sort((a, b) => (a.startsAt < b.startsAt ? 1 : a.startsAt > b.startsAt ? -1 : 0));
  }

  // --- WebSocket -----------------------------------------------------------

  private onWsConnection(ws: WebSocket): void {
    const alive = ws as WebSocket & { isAlive?: boolean };
    alive.isAlive = true;
    ws.on('pong', () => { alive.isAlive = true; });
    ws.on('error', () => ws.terminate());
    // The feed is one-way; a browser has nothing to say on it.
    ws.on('message', () => undefined);
    ws.on('close', () => this.metrics.wsClients.set(this.wss?.clients.size ?? 0));
    this.metrics.wsClients.set(this.wss?.clients.size ?? 0);
    ws.send(JSON.stringify({ type: 'status', connected: true, at: new Date().toISOString(), cameras: this.cameras.size }));
  }

  // --- HTTP ----------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let route = 'other';
    res.once('finish', () => this.metrics.httpRequests.inc({ route, code: String(res.statusCode) }));
    try {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
      const url = new URL(req.url ?? '/', 'http://localhost');
      const path = url.pathname;
      const method = req.method ?? 'GET';
      const isRead = method === 'GET' || method === 'HEAD';

      if (path === '/metrics') {
        route = '/metrics';
        this.requireMethod(isRead, method, 'GET');
        const body = await this.options.registry.metrics();
        return this.send(res, 200, body, this.options.registry.contentType, method);
      }
      if (path === '/healthz') {
        route = '/healthz';
        this.requireMethod(isRead, method, 'GET');
        return this.json(res, 200, { status: 'ok' }, method);
      }
      if (path === '/readyz') {
        route = '/readyz';
        this.requireMethod(isRead, method, 'GET');
        const health = this.options.health ? this.options.health() : { ready: true, checks: {} };
        return this.json(res, health.ready ? 200 : 503, health, method);
      }
      if (path === '/api/alerts') {
        route = '/api/alerts';
        this.requireMethod(isRead, method, 'GET');
        return this.json(res, 200, this.listAlerts(), method);
      }
      let m = /^\/api\/alerts\/([^/]+)\/ack$/.exec(path);
      if (m) {
        route = '/api/alerts/:id/ack';
        this.requireMethod(method === 'POST', method, 'POST');
        const refusal = this.ack.refusal(req);
        if (refusal) throw new HttpError(refusal.status, refusal.message);
        const body = await readJsonBody(req);
        const by = body.by === undefined ? undefined : String(body.by).slice(0, 100);
        const id = decodeURIComponent(m[1]);
        const acked = this.acknowledge(id, by);
        if (!acked) throw new HttpError(404, `no alert with id ${JSON.stringify(id)}; GET /api/alerts lists the known ones`);
        this.publish({ type: 'alert', alert: acked });
        return this.json(res, 200, acked, method);
      }
      if (path === '/api/cameras') {
        route = '/api/cameras';
        this.requireMethod(isRead, method, 'GET');
        const cameras = [...this.cameras.values()].sort((a, b) => a.camera.localeCompare(b.camera));
        return this.json(res, 200, cameras, method);
      }
      m = /^\/api\/frames\/([^/]+)\/thumbnail$/.exec(path);
      if (m) {
        route = '/api/frames/:frameId/thumbnail';
        this.requireMethod(isRead, method, 'GET');
        const frameId = decodeURIComponent(m[1]);
        const thumb = this.cache.get(frameId);
        if (!thumb) throw new HttpError(404, `no thumbnail for frame ${JSON.stringify(frameId)} (only recent frames and alert evidence are kept)`);
        res.setHeader('cache-control', 'private, max-age=3600, immutable'); // a frame id names fixed content
        return this.send(res, 200, thumb.jpeg, 'image/jpeg', method);
      }
      m = /^\/api\/cameras\/([^/]+)\/latest\.jpg$/.exec(path);
      if (m) {
        route = '/api/cameras/:camera/latest.jpg';
        this.requireMethod(isRead, method, 'GET');
        const camera = decodeURIComponent(m[1]);
        const thumb = this.cache.latestFor(camera);
        if (!thumb) throw new HttpError(404, `no frame seen yet from camera ${JSON.stringify(camera)}`);
        res.setHeader('cache-control', 'no-store');
        res.setHeader('x-frame-id', encodeURIComponent(thumb.frameId));
        return this.send(res, 200, thumb.jpeg, 'image/jpeg', method);
      }
      if (path.startsWith('/api/')) {
        route = '/api/*';
        throw new HttpError(404, `no API endpoint ${path}`);
      }
      route = 'static';
      this.requireMethod(isRead, method, 'GET');
      return await this.serveStatic(path, res, method);
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) this.logger.error({ err, url: req.url }, 'web: request failed');
      if (status === 401) res.setHeader('www-authenticate', 'Bearer realm="crystalwatch"');
      if (!res.headersSent) this.json(res, status, { error: status === 500 ? 'internal error (see the server log)' : (err as Error).message }, req.method ?? 'GET');
      else res.destroy();
    }
  }

  private acknowledge(id: string, by: string | undefined): Alert | undefined {
    if (this.options.alerts) {
      const acked = this.options.alerts.acknowledge(id, by);
      if (acked) this.rememberAlert(acked);
      return acked;
    }
    const known = this.seenAlerts.get(id);
    if (!known) return undefined;
    const acked: Alert = { ...known, acknowledgedAt: known.acknowledgedAt ?? new Date().toISOString(), acknowledgedBy: known.acknowledgedBy ?? by };
    this.rememberAlert(acked);
    return acked;
  }

  private requireMethod(ok: boolean, method: string, allowed: string): void {
    if (!ok) throw new HttpError(405, `method ${method} not allowed here; use ${allowed}`);
  }

  private async serveStatic(path: string, res: ServerResponse, method: string): Promise<void> {
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      throw new HttpError(400, `path ${JSON.stringify(path)} is not valid percent-encoding`);
    }
    if (decoded.includes('\0') || decoded.includes('\\') || decoded.split('/').some((seg) => seg === '..' || seg.startsWith('.') && seg.length > 0)) {
      throw new HttpError(404, `not found: ${path}`);
    }
    const relative = decoded === '/' ? 'index.html' : decoded.replace(/^\/+/, '');
    const file = resolve(this.staticDir, relative);
    // Belt and braces: whatever the string checks missed, never serve outside the static folder.
    if (!file.startsWith(this.staticDir + sep)) throw new HttpError(404, `not found: ${path}`);
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) throw new HttpError(404, `not found: ${path}`);
    const type = CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
    let body: Buffer | string = await readFile(file);
    // The page says how acknowledging works here (no token: loopback only), before any script runs.
    if (relative === 'index.html') body = body.toString('utf8').replace('<!-- ack-policy -->', this.ack.notice ? `<p id="ack-policy" class="notice" role="note">${this.ack.notice}</p>` : '');
    res.setHeader('cache-control', 'no-cache');
    if (type.startsWith('text/html')) {
      // Everything the page needs is served from here: no CDN, works offline.
      res.setHeader('content-security-policy', "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'");
    }
    this.send(res, 200, body, type, method);
  }

  private json(res: ServerResponse, status: number, value: unknown, method: string): void {
    res.setHeader('cache-control', 'no-store');
    this.send(res, status, JSON.stringify(value), 'application/json; charset=utf-8', method);
  }

  private send(res: ServerResponse, status: number, body: string | Buffer, contentType: string, method: string): void {
    const bytes = typeof body === 'string' ? Buffer.from(body) : body;
    res.writeHead(status, { 'content-type': contentType, 'content-length': bytes.length });
    res.end(method === 'HEAD' ? undefined : bytes);
  }
}

async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, `request body of ${declared} bytes is over the ${MAX_BODY_BYTES}-byte limit`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `request body is over the ${MAX_BODY_BYTES}-byte limit`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return {};
  try {
    const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object');
    return parsed as Record<string, unknown>;
  } catch (err) {
    throw new HttpError(400, `request body must be a JSON object like {"by":"operator name"}: ${(err as Error).message}`);
  }
}
