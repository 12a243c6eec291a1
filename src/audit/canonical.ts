/**
 * Canonical JSON: the one byte form a record is hashed and stored in, so that anyone can
 * recompute a digest from the parsed record (in any language) and get the same bytes.
 *
 * It is the JSON Canonicalization Scheme (RFC 8785) for the values a record holds: object keys
 * sorted by UTF-16 code units (JavaScript's default sort), no whitespace, strings and numbers
 * as ECMAScript's JSON.stringify writes them. Values JSON cannot carry exactly are refused, not
 * silently changed: NaN, ±Infinity, bigint, functions, symbols, `undefined` in an array, cycles.
 * `undefined` object properties are left out (as JSON.stringify does) and objects with a
 * `toJSON` (Date) are written as what it returns.
 */
import { createHash } from 'node:crypto';

export class CanonicalJsonError extends Error {
  override readonly name = 'CanonicalJsonError';
}

/** `root` names the value in error messages (`data.latency is NaN`). */
export function canonicalJson(value: unknown, root = '$'): string {
  return write(value, root, new Set());
}

function write(value: unknown, path: string, ancestors: Set<object>): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new CanonicalJsonError(`${path} is ${value}, which JSON cannot hold; write null or a string instead`);
      return JSON.stringify(value);
    case 'object':
      break;
    default:
      throw new CanonicalJsonError(`${path} is a ${typeof value}, which JSON cannot hold; convert it to a string or number first`);
  }
  const object = value as object;
  if (typeof (object as { toJSON?: unknown }).toJSON === 'function') {
    return write((object as { toJSON: () => unknown }).toJSON(), path, ancestors);
  }
  if (ancestors.has(object)) throw new CanonicalJsonError(`${path} refers back to one of its parents (a cycle); records must be trees`);
  ancestors.add(object);
  let out: string;
  if (Array.isArray(object)) {
    out = `[${object
      .map((item, i) => {
        if (item === undefined) throw new CanonicalJsonError(`${path}[${i}] is undefined; write null instead`);
        return write(item, `${path}[${i}]`, ancestors);
      })
      .join(',')}]`;
  } else {
    const entries = Object.keys(object)
      .filter((key) => (object as Record<string, unknown>)[key] !== undefined)
      .sort()
      .map((key) => `${JSON.stringify(key)}:${write((object as Record<string, unknown>)[key], `${path}.${key}`, ancestors)}`);
    out = `{${entries.join(',')}}`;
  }
  ancestors.delete(object);
  return out;
}

export function sha256Hex(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
}

/** `prev` of the first record: there is no previous record. */
export const GENESIS_HASH = '0'.repeat(64);

export const HEX_DIGEST = /^[0-9a-f]{64}$/;
