/**
 * The web stage's server: the route table (api.ts plus the app's extra routes), the static live
 * page, the live feed and the per-camera state, on one `node:http` server with one lifecycle.
 *
 * The app publishes LiveEvents (`publish`); the server folds them into the camera state, so a
 * browser that (re)connects gets the whole picture from `/api/cameras` and `/api/alerts` and
 * then follows the feed. Alerts are the alert stage's: listed and acknowledged through
 * `alerts`, and announced by it through `publish` (once per change).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Kafka } from 'kafkajs';
import type { Registry } from 'prom-client';
import type { Topics } from '../bus/topics.js';
import { DEFAULT_WEB_HOST, DEFAULT_WEB_PORT } from '../config/defaults.js';
import { silentLogger, type Logger } from '../config/logger.js';
import { packageRoot } from '../config/paths.js';
import { coreRoutes, type AlertActions, type Health } from './api.js';
import { AckGuard } from './auth.js';
import { CameraStore } from './camera-state.js';
import type { LiveEvent, ThumbnailInfo } from './events.js';
import { LiveFeed } from './live-feed.js';
import { createWebMetrics, type WebMetrics } from './metrics.js';
import { HttpError, readJsonBody, RouteTable, type Route, type RouteAnswer } from './routes.js';
import { StaticFiles } from './static-files.js';
import { FrameThumbnailer, ThumbnailCache, type Thumbnail } from './thumbnails.js';

export interface WebOptions {
  /** Interface to bind; 127.0.0.1 (DEFAULT_WEB_HOST) unless the operator opens it on purpose (e.g. 0.0.0.0 in a container). */
  host?: string;
  /** 8080 (DEFAULT_WEB_PORT) by default; 0 = an ephemeral port (read `port` after start). */
  port?: number;
  registry: Registry;
  /**
   * When set, mutating routes require `Authorization: Bearer <token>`. Without it, they answer
   * only on a loopback `host` to loopback clients (src/web/auth.ts).
   */
  token?: string;
  /** The alert stage's list and acknowledge; absent in a process without one. */
  alerts?: AlertActions;
  health?: () => Health;
  /** More routes (e.g. `GET /api/audit`, `POST /api/runs`); `mutating: true` puts one behind the token check. */
  routes?: readonly Route[];
  /** Consume `frames` for thumbnails (own consumer group, from latest). */
  thumbnails?: { kafka: Kafka; topics: Topics; groupId?: string; cacheSize?: number; maxLagMs?: number; intervalMs?: number };
  logger?: Logger;
  /** Folder with the live page; defaults to src/web/static of this package. */
  staticDir?: string;
  /**
   * Browser origins besides the server's own allowed to open /ws and call mutating routes (e.g. a
   * reverse proxy's public URL, "https://crystalwatch.plant.example"). Requests without an Origin
   * header (curl, scripts) are not affected.
   */
  allowedOrigins?: string[];
}

const SECURITY_HEADERS: Record<string, string> = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

export class WebServer {
  private readonly host: string;
  private readonly requestedPort: number;
  private readonly logger: Logger;
  private readonly metrics: WebMetrics;
  private readonly cameras = new CameraStore();
  private readonly cache: ThumbnailCache;
  private readonly ack: AckGuard;
  private readonly routes: RouteTable;
  private readonly staticFiles: StaticFiles;
  private readonly feed: LiveFeed;
  private server: Server | undefined;
  private thumbnailer: FrameThumbnailer | undefined;
  private readonly sockets = new Set<Socket>();
  private closing: Promise<void> | undefined;
  private boundPort = -1;

  constructor(private readonly options: WebOptions) {
    if (!options.registry) throw new Error('web: options.registry is required (the process prom-client Registry)');
    const port = options.port ?? DEFAULT_WEB_PORT;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`web: port must be an integer 0..65535, got ${String(options.port)}`);
    if (options.token !== undefined && options.token.length < 8)
      throw new Error(`web: token must be at least 8 characters (got ${options.token.length}); generate one with \`openssl rand -hex 16\``);
    this.host = options.host ?? DEFAULT_WEB_HOST;
    this.requestedPort = port;
    this.logger = options.logger ?? silentLogger; // the app passes a child logger already named for this stage
    this.metrics = createWebMetrics(options.registry);
    this.cache = new ThumbnailCache(options.thumbnails?.cacheSize ?? 512);
    this.ack = new AckGuard({ token: options.token, host: this.host, allowedOrigins: options.allowedOrigins });
    this.routes = new RouteTable([
      ...coreRoutes({ registry: options.registry, alerts: options.alerts, health: options.health, cameras: this.cameras, thumbnails: this.cache }),
      ...(options.routes ?? []),
    ]);
    this.staticFiles = new StaticFiles(options.staticDir ?? join(packageRoot(), 'src', 'web', 'static'), this.ack.notice);
    this.feed = new LiveFeed({
      metrics: this.metrics,
      originAllowed: (req) => this.ack.originAllowed(req),
      greeting: () => ({ type: 'status', connected: true, at: new Date().toISOString(), cameras: this.cameras.size }),
    });
  }

  get port(): number {
    if (this.boundPort < 0) throw new Error('web: port is known only after start()');
    return this.boundPort;
  }

  get url(): string {
    const shown = this.host === '0.0.0.0' || this.host === '::' ? '127.0.0.1' : this.host.includes(':') ? `[${this.host}]` : this.host;
    return `http://${shown}:${this.port}`;
  }

  async start(): Promise<void> {
    if (this.server) throw new Error('web: start() called twice');
    this.staticFiles.checkPage();
    const server = createServer((req, res) => void this.handle(req, res));
    server.requestTimeout = 30_000;
    server.headersTimeout = 10_000;
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    this.feed.attach(server);
    this.server = server;
    await new Promise<void>((resolvePromise, reject) => {
      const onError = (err: Error) =>
        reject(
          new Error(
            `web: cannot listen on ${this.host}:${this.requestedPort}: ${err.message}; pick another port (CRYSTALWATCH_WEB_PORT, or 0 for any) or stop what holds it`,
          ),
        );
      server.once('error', onError);
      server.listen(this.requestedPort, this.host, () => {
        server.off('error', onError);
        resolvePromise();
      });
    });
    const address = server.address();
    this.boundPort = typeof address === 'object' && address ? address.port : -1;
    if (this.options.thumbnails) {
      const { kafka, topics, groupId, maxLagMs, intervalMs } = this.options.thumbnails;
      this.thumbnailer = new FrameThumbnailer({
        kafka,
        topics,
        groupId,
        maxLagMs,
        intervalMs,
        cache: this.cache,
        metrics: this.metrics,
        logger: this.logger,
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
    if (this.ack.mode === 'disabled')
      this.logger.info({ host: this.host }, 'web: no token and not on loopback: acknowledging alerts is refused here (set web.token to allow it)');
  }

  /** Fold a live event into the per-camera state and send it to every connected browser. */
  publish(event: LiveEvent): void {
    this.cameras.absorb(event);
    if (event.type === 'alert') {
      // The operator is about to look at these frames: a busy camera must not evict them.
      const { firstPgFrameId, frames } = event.alert.evidence;
      const ids = [firstPgFrameId, ...frames.map((f) => f.frameId)].filter((id): id is string => typeof id === 'string');
      this.cache.pin(ids);
      // Frames the per-camera interval skipped are still held, compressed: make them now.
      void this.thumbnailer?.want(ids);
    }
    this.feed.broadcast(event);
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
    await this.thumbnailer?.close();
    this.thumbnailer = undefined;
    await this.feed.close();
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

  private onThumbnail(thumb: Thumbnail): void {
    const info: ThumbnailInfo = {
      frameId: thumb.frameId,
      capturedAt: thumb.capturedAt,
      width: thumb.width,
      height: thumb.height,
      sourceWidth: thumb.sourceWidth,
      sourceHeight: thumb.sourceHeight,
      url: `/api/frames/${encodeURIComponent(thumb.frameId)}/thumbnail`,
    };
    this.cameras.noteThumbnail(thumb.camera, info, this.cache.latestFor(thumb.camera) === thumb);
    this.publish({ type: 'frame', camera: thumb.camera, ...info });
  }

  // --- HTTP ----------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let route = 'other';
    res.once('finish', () => this.metrics.httpRequests.inc({ route, code: String(res.statusCode) }));
    const method = req.method ?? 'GET';
    try {
      for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
      const url = new URL(req.url ?? '/', 'http://localhost');
      const match = this.routes.match(method, url.pathname);
      if (match.kind === 'method') {
        route = match.pattern;
        res.setHeader('allow', match.allowed.join(', '));
        throw new HttpError(405, `method ${method} not allowed here; use ${match.allowed.filter((m) => m !== 'HEAD').join(' or ')}`);
      }
      if (match.kind === 'route') {
        route = match.route.path;
        if (match.route.mutating) {
          const refusal = this.ack.refusal(req);
          if (refusal) throw new HttpError(refusal.status, refusal.message);
        }
        const answer = await match.route.handle({ req, url, params: match.params, readJson: () => readJsonBody(req) });
        return this.send(res, answer, method);
      }
      if (url.pathname.startsWith('/api/')) {
        route = '/api/*';
        throw new HttpError(404, `no API endpoint ${url.pathname}`);
      }
      route = 'static';
      if (method !== 'GET' && method !== 'HEAD') {
        res.setHeader('allow', 'GET, HEAD');
        throw new HttpError(405, `method ${method} not allowed here; use GET`);
      }
      return this.send(res, await this.staticFiles.answer(url.pathname), method);
    } catch (err) {
      const status = err instanceof HttpError ? err.status : 500;
      if (status === 500) this.logger.error({ err, url: req.url }, 'web: request failed');
      if (status === 401) res.setHeader('www-authenticate', 'Bearer realm="crystalwatch"');
      if (res.headersSent) res.destroy();
      else this.send(res, { status, body: { error: status === 500 ? 'internal error (see the server log)' : (err as Error).message } }, method);
    }
  }

  private send(res: ServerResponse, answer: RouteAnswer, method: string): void {
    let bytes: Buffer;
    let contentType: string;
    if ('contentType' in answer) {
      bytes = typeof answer.body === 'string' ? Buffer.from(answer.body) : answer.body;
      contentType = answer.contentType;
    } else {
      bytes = Buffer.from(JSON.stringify(answer.body) ?? 'null');
      contentType = 'application/json; charset=utf-8';
      res.setHeader('cache-control', 'no-store');
    }
    for (const [k, v] of Object.entries(answer.headers ?? {})) res.setHeader(k, v);
    res.writeHead(answer.status, { 'content-type': contentType, 'content-length': bytes.length });
    res.end(method === 'HEAD' ? undefined : bytes);
  }
}
