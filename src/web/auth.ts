/**
 * Who may change state through the web server (acknowledge an alert) and who may read the
 * live feed from a browser. Acknowledging silences the alarm a plant relies on, so:
 *
 * - with a token (`web.token`): `Authorization: Bearer <token>`, on any address;
 * - without one: only on a loopback bind and from a loopback client, where reaching the port
 *   already means being on the machine; the live page says so ("acknowledgement without a
 *   token: loopback only"). On any other bind acknowledging is refused, and `crystalwatch run`
 *   does not start that way (`webExposureProblem`).
 *
 * Browsers from other origins get 403 either way (a cross-site "simple" POST needs no preflight).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

export const ACK_LOOPBACK_NOTICE = 'acknowledgement without a token: loopback only';
export const ACK_DISABLED_NOTICE = 'acknowledgement needs a token (web.token) on this address: disabled';

/** 127.0.0.0/8, ::1 (and IPv4-mapped forms) or the name `localhost`. Anything else may be reachable from elsewhere. */
export function isLoopbackHost(host: string): boolean {
  const h = host
    .trim()
    .toLowerCase()
    .replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice('::ffff:'.length) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

export type AckMode = 'token' | 'loopback-only' | 'disabled';

export interface AckRefusal {
  status: 401 | 403;
  message: string;
}

export class AckGuard {
  readonly mode: AckMode;
  private readonly tokenDigest: Buffer | undefined;

  constructor(private readonly options: { token?: string; host: string; allowedOrigins?: string[] }) {
    this.tokenDigest = options.token ? createHash('sha256').update(options.token).digest() : undefined;
    this.mode = this.tokenDigest ? 'token' : isLoopbackHost(options.host) ? 'loopback-only' : 'disabled';
  }

  /** The line the live page shows about acknowledging, or undefined with a token. */
  get notice(): string | undefined {
    return this.mode === 'loopback-only' ? ACK_LOOPBACK_NOTICE : this.mode === 'disabled' ? ACK_DISABLED_NOTICE : undefined;
  }

  /** Why this request may not acknowledge, or undefined when it may. */
  refusal(req: IncomingMessage): AckRefusal | undefined {
    if (!this.originAllowed(req))
      return { status: 403, message: `origin ${req.headers.origin} may not acknowledge alerts; add it to the web server's allowedOrigins` };
    if (this.mode === 'disabled') {
      return {
        status: 403,
        message: `acknowledging without a token is allowed only when the web server listens on loopback, and it listens on ${this.options.host}; set web.token (CRYSTALWATCH_WEB_TOKEN, at least 8 characters) or bind web.host to 127.0.0.1`,
      };
    }
    if (this.mode === 'loopback-only') {
      const from = req.socket.remoteAddress ?? '';
      // DNS rebinding: a page from evil.example resolved to 127.0.0.1 sends its own Host (and a
      // matching Origin); only a loopback Host proves the browser meant this machine.
      const host = hostOf(req.headers.host);
      if (!isLoopbackHost(host)) {
        return {
          status: 403,
          message: `acknowledging without a token needs a loopback Host header (127.0.0.1, [::1] or localhost), got ${JSON.stringify(req.headers.host ?? '')}; set web.token to acknowledge through another name`,
        };
      }
      if (isLoopbackHost(from)) return undefined;
      return {
        status: 403,
        message: `acknowledging without a token is allowed from this machine only, not from ${from}; set web.token (CRYSTALWATCH_WEB_TOKEN) to acknowledge from elsewhere`,
      };
    }
    const match = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    if (!match) return { status: 401, message: 'this endpoint needs Authorization: Bearer <token> (the token configured for the web server)' };
    const given = createHash('sha256').update(match[1]!.trim()).digest();
    if (!timingSafeEqual(given, this.tokenDigest!)) return { status: 401, message: 'the bearer token is not the one configured for the web server' };
    return undefined;
  }

  /** Same-origin (Origin's host equals Host), listed in allowedOrigins, or no Origin header at all. */
  originAllowed(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (!origin) return true;
    if (this.options.allowedOrigins?.includes(origin)) return true;
    try {
      return new URL(origin).host === req.headers.host;
    } catch {
      return false;
    }
  }
}

/**
 * Why a process with these settings must not start (for `crystalwatch run`): the web stage on
 * a non-loopback address without a token, next to the monitor stage (whose alerts it lets people
 * acknowledge), would let anyone who reaches the port silence an alarm. The web stage of an
 * ingest or classify process serves /metrics and health only, and has no alert to acknowledge.
 */
export function webExposureProblem(config: { stages: readonly string[]; web: { host: string; token?: string } }): string | undefined {
  if (!config.stages.includes('web') || !config.stages.includes('monitor')) return undefined;
  if (config.web.token || isLoopbackHost(config.web.host)) return undefined;
  return `web.host is "${config.web.host}", which is not a loopback address, and web.token is not set: anyone who can reach the port could acknowledge alerts. Set web.token (CRYSTALWATCH_WEB_TOKEN, at least 8 characters; e.g. \`openssl rand -hex 16\`) or bind web.host to 127.0.0.1`;
}

/** The host part of a Host header (`127.0.0.1:8080` → `127.0.0.1`, `[::1]:8080` → `::1`). */
function hostOf(header: string | undefined): string {
  if (!header) return '';
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(header);
  if (bracketed) return bracketed[1]!;
  return header.replace(/:\d+$/, '');
}
