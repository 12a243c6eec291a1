/**
 * The HTTP API as a table: method + path pattern → handler. A pattern is literal segments and
 * `:name` segments (`/api/alerts/:id/ack`); each `:name` matches one non-empty segment and
 * reaches the handler percent-decoded in `params`. The pattern is also the `route` label of
 * `crystalwatch_web_http_requests_total`, never the raw path.
 *
 * A route marked `mutating` answers only requests that AckGuard (src/web/auth.ts) lets through:
 * the bearer token when `web.token` is set, else loopback only; and never another site's browser.
 *
 *   const audit = auditApi(trail);
 *   new WebServer({ ..., routes: [{ method: 'GET', path: '/api/audit', mutating: true, handle: ({ url }) => audit(url) }] });
 */
import type { IncomingMessage } from 'node:http';

export const ROUTE_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
export type RouteMethod = (typeof ROUTE_METHODS)[number];

/** Request bodies here are small JSON objects ({by}, a run's fields); anything bigger is a mistake or an attack. */
export const MAX_BODY_BYTES = 16 * 1024;

/** An answer with a JSON body (`cache-control: no-store`); `{ status, body }`, as src/audit/api.ts answers. */
export interface JsonAnswer {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

/** An answer with bytes of a given type (a JPEG, the Prometheus text format, a static file). */
export interface BytesAnswer {
  status: number;
  body: string | Buffer;
  contentType: string;
  headers?: Record<string, string>;
}

export type RouteAnswer = JsonAnswer | BytesAnswer;

export interface RouteRequest {
  req: IncomingMessage;
  /** The request URL, parsed (`url.searchParams` for query parameters). */
  url: URL;
  /** The `:name` segments of the pattern, percent-decoded. */
  params: Readonly<Record<string, string>>;
  /** The body as a JSON object, `{}` when empty; 413 over 16 KiB, 400 when it is not a JSON object. */
  readJson(): Promise<Record<string, unknown>>;
}

export interface Route {
  /** GET routes answer HEAD too. */
  method: RouteMethod;
  /** `/literal/:param/...`, starting with `/`. */
  path: string;
  /** Behind the token / AckGuard check (every route that changes state, and reads that must not be public). */
  mutating?: boolean;
  handle(request: RouteRequest): RouteAnswer | Promise<RouteAnswer>;
}

/** An answer with this status and `{ error: message }`; the server sends it as JSON. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export type RouteMatch =
  | { kind: 'route'; route: Route; params: Record<string, string> }
  /** The path is a route's, the method is not: 405 with these methods in `Allow`. */
  | { kind: 'method'; pattern: string; allowed: string[] }
  | { kind: 'none' };

interface CompiledPattern {
  pattern: string;
  regex: RegExp;
  names: string[];
  routes: Route[];
}

export class RouteTable {
  private readonly patterns: CompiledPattern[] = [];

  constructor(routes: readonly Route[]) {
    for (const route of routes) this.add(route);
  }

  match(method: string, path: string): RouteMatch {
    for (const compiled of this.patterns) {
      const m = compiled.regex.exec(path);
      if (!m) continue;
      const wanted = method === 'HEAD' ? 'GET' : method;
      const route = compiled.routes.find((r) => r.method === wanted);
      if (!route) {
        const allowed = compiled.routes.flatMap((r) => (r.method === 'GET' ? ['GET', 'HEAD'] : [r.method]));
        return { kind: 'method', pattern: compiled.pattern, allowed };
      }
      const params: Record<string, string> = {};
      compiled.names.forEach((name, i) => {
        params[name] = decodeSegment(m[i + 1] ?? '');
      });
      return { kind: 'route', route, params };
    }
    return { kind: 'none' };
  }

  private add(route: Route): void {
    if (!(ROUTE_METHODS as readonly string[]).includes(route.method)) {
      throw new Error(`web: route ${route.path}: method must be one of ${ROUTE_METHODS.join(', ')}, got ${JSON.stringify(route.method)}`);
    }
    if (!/^\/[A-Za-z0-9._~:/-]*$/.test(route.path) || route.path.includes('//')) {
      throw new Error(`web: route path must start with "/" and hold only path segments or ":name" parameters, got ${JSON.stringify(route.path)}`);
    }
    let compiled = this.patterns.find((p) => p.pattern === route.path);
    if (!compiled) {
      const names: string[] = [];
      const source = route.path.split('/').map((segment) => {
        if (!segment.startsWith(':')) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        names.push(segment.slice(1));
        return '([^/]+)';
      });
      compiled = { pattern: route.path, regex: new RegExp(`^${source.join('/')}$`), names, routes: [] };
      this.patterns.push(compiled);
    }
    if (compiled.routes.some((r) => r.method === route.method))
      throw new Error(`web: route ${route.method} ${route.path} is defined twice; each method and path may have one handler`);
    compiled.routes.push(route);
  }
}

function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, `path segment ${JSON.stringify(segment)} is not valid percent-encoding`);
  }
}

/** The body of `req` as a JSON object (`{}` when empty), at most MAX_BODY_BYTES. */
export async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) throw new HttpError(413, `request body of ${declared} bytes is over the ${MAX_BODY_BYTES}-byte limit`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new HttpError(413, `request body is over the ${MAX_BODY_BYTES}-byte limit`);
    chunks.push(chunk);
  }
  if (size === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch (err) {
    throw new HttpError(400, `request body must be a JSON object like {"by":"operator name"}: ${(err as Error).message}`);
  }
  if (!isJsonObject(parsed)) throw new HttpError(400, 'request body must be a JSON object like {"by":"operator name"}: not an object');
  return parsed;
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
