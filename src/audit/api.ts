/**
 * `GET /api/audit?after=SEQ&limit=N` for the web stage (mounted behind its token check):
 * a page of records in file order, `next` to pass as `after` for the following page, and the
 * last durable record (`last`) so a client knows how far the trail reaches.
 */
import type { AuditPage, AuditTrail } from './trail.js';

export const AUDIT_API_DEFAULT_LIMIT = 100;
export const AUDIT_API_MAX_LIMIT = 1000;

export interface AuditApiAnswer {
  status: number;
  body: (AuditPage & { last: { seq: number; hash: string } }) | { error: string };
}

export function auditApi(trail: Pick<AuditTrail, 'read' | 'last'>): (url: URL) => Promise<AuditApiAnswer> {
  return async (url) => {
    const after = integerParam(url, 'after', 0, Number.MAX_SAFE_INTEGER, 0);
    const limit = integerParam(url, 'limit', 1, AUDIT_API_MAX_LIMIT, AUDIT_API_DEFAULT_LIMIT);
    if (typeof after === 'string') return { status: 400, body: { error: after } };
    if (typeof limit === 'string') return { status: 400, body: { error: limit } };
    try {
      const page = await trail.read({ after, limit });
      return { status: 200, body: { ...page, last: trail.last } };
    } catch (err) {
      return { status: 500, body: { error: `audit trail could not be read: ${(err as Error).message}` } };
    }
  };
}

/** The parameter's value, its default when absent, or the error message when it is not an integer in range. */
function integerParam(url: URL, name: string, min: number, max: number, fallback: number): number | string {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return fallback;
  const value = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) return `${name} must be an integer ${min}..${max}, got ${JSON.stringify(raw.slice(0, 40))}`;
  return value;
}
