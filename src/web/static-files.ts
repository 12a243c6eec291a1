/**
 * The live page's files (src/web/static/): GET and HEAD only, never a path outside the folder,
 * no dot-files, and the page itself with a `default-src 'self'` CSP (no CDN, works offline).
 */
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { HttpError, type BytesAnswer } from './routes.js';

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

const PAGE_CSP = "default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; style-src 'self'; script-src 'self'; frame-ancestors 'none'";

/** Where index.html says how acknowledging works here, before any script runs. */
const ACK_POLICY_MARK = '<!-- ack-policy -->';

export class StaticFiles {
  private readonly dir: string;

  /** `ackNotice`: the line the page shows about acknowledging (AckGuard.notice), or undefined for none. */
  constructor(
    dir: string,
    private readonly ackNotice: string | undefined,
  ) {
    this.dir = resolve(dir);
  }

  /** Throws when the live page is missing (a package shipped without src/web/static). */
  checkPage(): void {
    const page = join(this.dir, 'index.html');
    if (!existsSync(page)) throw new Error(`web: live page not found at ${page}; the package's src/web/static folder must ship with it`);
  }

  /** The file for a request path (`/` is index.html); HttpError 400/404 otherwise. */
  async answer(path: string): Promise<BytesAnswer> {
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      throw new HttpError(400, `path ${JSON.stringify(path)} is not valid percent-encoding`);
    }
    if (decoded.includes('\0') || decoded.includes('\\') || decoded.split('/').some((seg) => seg === '..' || seg.startsWith('.'))) {
      throw new HttpError(404, `not found: ${path}`);
    }
    const relative = decoded === '/' ? 'index.html' : decoded.replace(/^\/+/, '');
    const file = resolve(this.dir, relative);
    // Belt and braces: whatever the string checks missed, never serve outside the static folder.
    if (!file.startsWith(this.dir + sep)) throw new HttpError(404, `not found: ${path}`);
    const info = await stat(file).catch(() => undefined);
    if (!info?.isFile()) throw new HttpError(404, `not found: ${path}`);
    const contentType = CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream';
    const bytes = await readFile(file);
    const headers: Record<string, string> = { 'cache-control': 'no-cache' };
    if (contentType.startsWith('text/html')) headers['content-security-policy'] = PAGE_CSP;
    if (relative !== 'index.html') return { status: 200, body: bytes, contentType, headers };
    const notice = this.ackNotice ? `<p id="ack-policy" class="notice" role="note">${this.ackNotice}</p>` : '';
    return { status: 200, body: bytes.toString('utf8').replace(ACK_POLICY_MARK, notice), contentType, headers };
  }
}
