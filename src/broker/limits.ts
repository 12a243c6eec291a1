/**
 * What one client may cost the broker: the size of one request, the time it
 * may take to send one, the connections open at once, and the bytes of
 * unread requests held across all connections. Each limit closes only the
 * offending connection (or refuses the new one); the others keep being served.
 */

const KiB = 1024;
const MiB = 1024 * KiB;

export interface ConnectionLimitOptions {
  /** Largest request (size prefix) accepted; default messageMaxBytes + 1 MiB (headers, names, several partitions). */
  maxRequestBytes?: number;
  /** Time a client has to send the rest of a request it has started; default 30 s. */
  requestReadTimeoutMs?: number;
  /** Client connections open at once; one more is closed at accept. Default 1000. */
  maxConnections?: number;
  /** Bytes of not-yet-complete requests held across all connections; default max(256 MiB, 2 × maxRequestBytes). */
  maxBufferedBytes?: number;
}

export type ConnectionLimits = Required<ConnectionLimitOptions>;

/** Room for the request header, topic names and partition framing around one batch of messageMaxBytes. */
export const REQUEST_OVERHEAD_BYTES = MiB;
const INT32_MAX = 2 ** 31 - 1;

function integerIn(name: string, value: number, min: number, max: number, what: string): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`broker options: ${name} must be an integer ${min}..${max} (${what}), got ${value}`);
  }
  return value;
}

/** The limits with defaults filled in and checked against each other. */
export function resolveLimits(options: ConnectionLimitOptions, messageMaxBytes: number): ConnectionLimits {
  const maxRequestBytes = integerIn(
    'maxRequestBytes',
    options.maxRequestBytes ?? Math.min(INT32_MAX, messageMaxBytes + REQUEST_OVERHEAD_BYTES),
    1 * KiB,
    INT32_MAX,
    'bytes in one request',
  );
  const requestReadTimeoutMs = integerIn(
    'requestReadTimeoutMs',
    options.requestReadTimeoutMs ?? 30_000,
    100,
    24 * 3600_000,
    'ms to send the rest of a started request',
  );
  const maxConnections = integerIn('maxConnections', options.maxConnections ?? 1000, 1, 1_000_000, 'client connections open at once');
  const maxBufferedBytes = integerIn(
    'maxBufferedBytes',
    options.maxBufferedBytes ?? Math.max(256 * MiB, 2 * maxRequestBytes),
    1 * KiB,
    Number.MAX_SAFE_INTEGER,
    'bytes of unread requests across connections',
  );
  if (maxBufferedBytes < maxRequestBytes) {
    throw new Error(
      `broker options: maxBufferedBytes (${maxBufferedBytes}) must be at least maxRequestBytes (${maxRequestBytes}), or a request of the largest allowed size could never be read; raise maxBufferedBytes or lower maxRequestBytes`,
    );
  }
  return { maxRequestBytes, requestReadTimeoutMs, maxConnections, maxBufferedBytes };
}

/** The bytes of unread requests held by all connections together, against one limit. */
export class BufferBudget {
  private held = 0;

  constructor(readonly limit: number) {}

  get used(): number {
    return this.held;
  }

  /** Takes `bytes` from the budget; false (and nothing taken) when that would go over the limit. */
  take(bytes: number): boolean {
    if (this.held + bytes > this.limit) return false;
    this.held += bytes;
    return true;
  }

  give(bytes: number): void {
    this.held -= bytes;
  }
}
