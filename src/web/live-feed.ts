/**
 * The WebSocket live feed on `/ws`: LiveEvents as JSON text messages, server → browser only.
 * Another site open in the operator's browser may not read it (403 on upgrade); a browser that
 * stops reading gets events dropped rather than growing our memory; pings find browsers that
 * vanished without a close frame (laptop lid, network change).
 */
import type { IncomingMessage, Server } from 'node:http';
import { WebSocket, WebSocketServer } from 'ws';
import type { LiveEvent, StatusLiveEvent } from './events.js';
import type { WebMetrics } from './metrics.js';

export const LIVE_FEED_PATH = '/ws';
/** Unsent bytes above which a browser's events are skipped. */
export const MAX_WS_BUFFERED_BYTES = 1024 * 1024;
export const WS_PING_MS = 15_000;

export interface LiveFeedOptions {
  metrics: WebMetrics;
  /** Whether a browser of this request's origin may open the feed (AckGuard.originAllowed). */
  originAllowed(req: IncomingMessage): boolean;
  /** The first message of every connection. */
  greeting(): StatusLiveEvent;
}

export class LiveFeed {
  private wss: WebSocketServer | undefined;
  private pingTimer: NodeJS.Timeout | undefined;
  /** Browsers that answered the last ping (or connected since). */
  private readonly alive = new WeakSet<WebSocket>();

  constructor(private readonly options: LiveFeedOptions) {}

  /** Answer WebSocket upgrades on `server`: `/ws` only, and only for allowed origins. */
  attach(server: Server): void {
    if (this.wss) throw new Error('web: live feed attached twice');
    const wss = new WebSocketServer({ noServer: true, maxPayload: 4096, perMessageDeflate: false });
    this.wss = wss;
    server.on('upgrade', (req, socket, head) => {
      socket.on('error', () => socket.destroy()); // a client that resets mid-handshake must not crash the process
      const path = (req.url ?? '').split('?')[0];
      if (path !== LIVE_FEED_PATH) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
        return;
      }
      if (!this.options.originAllowed(req)) {
        socket.end('HTTP/1.1 403 Forbidden\r\nConnection: close\r\n\r\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => this.onConnection(ws));
    });
    this.pingTimer = setInterval(() => this.ping(), WS_PING_MS);
    this.pingTimer.unref();
  }

  /** Send one event to every connected browser (counted even with none connected). */
  broadcast(event: LiveEvent): void {
    this.options.metrics.wsEvents.inc({ type: event.type });
    const clients = this.wss?.clients;
    if (!clients || clients.size === 0) return;
    const payload = JSON.stringify(event);
    for (const ws of clients) {
      if (ws.readyState !== WebSocket.OPEN) continue;
      if (ws.bufferedAmount > MAX_WS_BUFFERED_BYTES) {
        this.options.metrics.wsDropped.inc();
        // An alert must never be skipped silently: a browser too slow to take it is cut off, so
        // it reconnects and re-reads the alerts (the page does on every connect).
        if (event.type === 'alert') ws.terminate();
        continue;
      }
      ws.send(payload);
    }
  }

  /** Terminate every browser and stop answering upgrades; idempotent. */
  async close(): Promise<void> {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = undefined;
    const wss = this.wss;
    this.wss = undefined;
    if (!wss) return;
    for (const ws of wss.clients) ws.terminate();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
    this.options.metrics.wsClients.set(0);
  }

  private onConnection(ws: WebSocket): void {
    this.alive.add(ws);
    ws.on('pong', () => this.alive.add(ws));
    ws.on('error', () => ws.terminate());
    // The feed is one-way; a browser has nothing to say on it.
    ws.on('message', () => undefined);
    ws.on('close', () => this.countClients());
    this.countClients();
    ws.send(JSON.stringify(this.options.greeting()));
  }

  private ping(): void {
    for (const ws of this.wss?.clients ?? []) {
      if (!this.alive.has(ws)) {
        ws.terminate();
        continue;
      }
      this.alive.delete(ws);
      ws.ping();
    }
  }

  private countClients(): void {
    this.options.metrics.wsClients.set(this.wss?.clients.size ?? 0);
  }
}
