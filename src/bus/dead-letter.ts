/**
 * The one writer of `dead-letter` records (the `DeadLetter` contract of messages.ts), used by
 * every stage. A malformed record can be as big as the topic it came from allows (a 13 MB
 * `predictions` value, say), and a dead letter that the broker refuses helps nobody: the
 * letter keeps the original key, value and headers whole only while they are small, and
 * otherwise their sha256, their size and their first bytes, so it always fits `maxBytes`.
 */
import { createHash } from 'node:crypto';
import type { Message } from 'kafkajs';
import { approximateRecordBytes } from './kafka.js';
import type { DeadLetter, DeadLetterBytes, RawHeaders } from './messages.js';

/**
 * Default size bound of a dead letter: under a stock Kafka's `message.max.bytes` (1,048,588),
 * since the dead-letter topic is created without raising it.
 */
export const DEFAULT_DEAD_LETTER_MAX_BYTES = 1_000_000;

export interface DeadLetterSource {
  sourceTopic: string;
  partition?: number;
  offset?: string;
  /** What was wrong, for a person; cut to 1000 characters. */
  reason: string;
  stage: string;
  key?: Buffer | string | null;
  value?: Buffer | string | null;
  headers?: RawHeaders;
  /** When it was dead-lettered; default now. */
  at?: Date;
}

export interface DeadLetterLimits {
  /** Largest record written, key, value and headers together. Default 1,000,000 bytes. */
  maxBytes?: number;
  /** A value up to this size is kept whole; a larger one as digest, size and prefix. Default 64 KiB. */
  maxInlineBytes?: number;
  /** Bytes of a large value kept as its prefix. Default 4 KiB. */
  prefixBytes?: number;
}

const MAX_REASON_CHARS = 1000;
/** Kafka headers of the letter itself carry a short reason (header values are for filters, not prose). */
const MAX_HEADER_REASON_CHARS = 200;
const MAX_KEY_BYTES = 256;
const MAX_HEADERS = 32;
const MAX_HEADER_NAME_CHARS = 64;
const MAX_HEADER_VALUE_BYTES = 256;
/** Whatever the inputs, the letter without its value stays below this (32 headers of ~700 bytes as JSON, the reason, the key). */
const MIN_MAX_BYTES = 64 * 1024;

/** `bytes` whole when at most `keep` long, else its digest, size and first `keep` bytes. */
export function summarizeBytes(bytes: Buffer, keep: number): DeadLetterBytes {
  const truncated = bytes.length > keep;
  return {
    bytes: bytes.length,
    sha256: createHash('sha256').update(bytes).digest('hex'),
    base64: (truncated ? bytes.subarray(0, keep) : bytes).toString('base64'),
    truncated,
  };
}

/** The `dead-letter` record for a malformed record: key, JSON value (DeadLetter) and short headers. */
export function deadLetterRecord(source: DeadLetterSource, limits: DeadLetterLimits = {}): Message {
  const maxBytes = limits.maxBytes ?? DEFAULT_DEAD_LETTER_MAX_BYTES;
  const maxInline = limits.maxInlineBytes ?? 64 * 1024;
  const prefixBytes = limits.prefixBytes ?? 4096;
  if (!Number.isInteger(maxBytes) || maxBytes < MIN_MAX_BYTES)
    throw new RangeError(`deadLetterRecord: maxBytes must be an integer ≥ ${MIN_MAX_BYTES}, got ${maxBytes}`);
  if (!Number.isInteger(maxInline) || maxInline < 0 || !Number.isInteger(prefixBytes) || prefixBytes < 0) {
    throw new RangeError(`deadLetterRecord: maxInlineBytes and prefixBytes must be integers ≥ 0, got ${maxInline} and ${prefixBytes}`);
  }
  const key = toBuffer(source.key);
  const value = toBuffer(source.value);
  const { headers, omitted } = summarizeHeaders(source.headers);
  const letter: DeadLetter = {
    sourceTopic: source.sourceTopic,
    ...(source.partition !== undefined ? { partition: source.partition } : {}),
    ...(source.offset !== undefined ? { offset: source.offset } : {}),
    reason: cut(source.reason, MAX_REASON_CHARS),
    stage: source.stage,
    at: (source.at ?? new Date()).toISOString(),
    key: key ? summarizeBytes(key, MAX_KEY_BYTES) : null,
    value: null,
    headers,
    ...(omitted > 0 ? { headersOmitted: omitted } : {}),
  };
  const record = (body: DeadLetter): Message => ({
    // The original key when it is a sensible key; a giant one would be refused with the letter.
    key: key && key.length <= MAX_KEY_BYTES ? key : null,
    value: Buffer.from(JSON.stringify(body)),
    headers: { 'source-topic': source.sourceTopic, stage: source.stage, reason: cut(source.reason, MAX_HEADER_REASON_CHARS) },
  });
  if (value) {
    const room = maxBytes - approximateRecordBytes(record(letter)) - 256; // the summary's own fields
    const inline = value.length <= maxInline && base64Length(value.length) <= room;
    const keep = inline ? value.length : Math.max(0, Math.min(prefixBytes, Math.floor((room * 3) / 4)));
    letter.value = summarizeBytes(value, keep);
  }
  const out = record(letter);
  const size = approximateRecordBytes(out);
  if (size > maxBytes) throw new Error(`deadLetterRecord: letter of ${size} bytes is over maxBytes ${maxBytes} (a bug: the bounds above should prevent it)`);
  return out;
}

function toBuffer(data: Buffer | string | null | undefined): Buffer | undefined {
  if (data === null || data === undefined) return undefined;
  return typeof data === 'string' ? Buffer.from(data) : data;
}

function summarizeHeaders(headers: RawHeaders): { headers: DeadLetter['headers']; omitted: number } {
  const out: DeadLetter['headers'] = [];
  let omitted = 0;
  for (const [name, raw] of Object.entries(headers ?? {})) {
    for (const one of Array.isArray(raw) ? raw : [raw]) {
      if (one === undefined) continue;
      if (out.length >= MAX_HEADERS) {
        omitted += 1;
        continue;
      }
      out.push({ name: cut(name, MAX_HEADER_NAME_CHARS), value: summarizeBytes(Buffer.from(one), MAX_HEADER_VALUE_BYTES) });
    }
  }
  return { headers: out, omitted };
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function base64Length(bytes: number): number {
  return 4 * Math.ceil(bytes / 3);
}
