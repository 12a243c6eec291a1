/**
 * Sends durable records on, in seq order, to a second home (the `audit` topic when Kafka is
 * external). The local file is the queue: the mirror keeps only a cursor (the last seq sent,
 * in audit.mirror), reads what follows from the trail, and retries a failed send with
 * exponential backoff for as long as it takes. A record is never skipped and the local record
 * never depends on the mirror; after a restart the mirror resumes from its cursor, so a record
 * may be sent twice (at least once): receivers de-duplicate by seq and hash.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';
import type { Logger } from '../config/logger.js';
import type { AuditRecord } from './record.js';

export type MirrorSend = (record: AuditRecord) => Promise<void>;

export interface MirrorOptions {
  send: MirrorSend;
  cursorPath: string;
  read: (after: number, limit: number) => Promise<{ records: AuditRecord[] }>;
  logger: Logger;
  /** First retry delay; doubles per failure up to retryMaxMs. Default 200. */
  retryMinMs?: number;
  /** Default 30,000. */
  retryMaxMs?: number;
  /** How long close() waits for a send in flight. Default 5,000. */
  closeTimeoutMs?: number;
}

export class AuditMirror {
  private cursor = 0;
  private savedCursor = 0;
  private pumping: Promise<void> | undefined;
  private more = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  private closed = false;

  constructor(private readonly options: MirrorOptions) {}

  /** Reads the cursor and starts sending what is not yet mirrored. */
  async start(): Promise<void> {
    try {
      const saved = JSON.parse(await readFile(this.options.cursorPath, 'utf8')) as { seq?: unknown };
      if (Number.isSafeInteger(saved.seq) && (saved.seq as number) >= 0) this.cursor = saved.seq as number;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.options.logger.warn(
          { cursorPath: this.options.cursorPath, err },
          'audit mirror cursor unreadable; sending the whole trail again (receivers de-duplicate by seq)',
        );
      }
    }
    this.savedCursor = this.cursor;
    this.notify();
  }

  /** The last seq the mirror took. */
  get sent(): number {
    return this.cursor;
  }

  /** New durable records exist. */
  notify(): void {
    this.more = true;
    if (this.closed || this.pumping || this.retryTimer) return;
    this.pumping = this.pump()
      .catch((err: unknown) => this.options.logger.error({ err }, 'audit mirror stopped reading the trail; it resumes at the next record'))
      .finally(() => {
        this.pumping = undefined;
        if (this.more) this.notify();
      });
  }

  private async pump(): Promise<void> {
    while (this.more && !this.closed) {
      this.more = false;
      for (;;) {
        if (this.closed) return;
        const { records } = await this.options.read(this.cursor, 100);
        if (records.length === 0 || this.closed) break;
        for (const record of records) {
          if (this.closed) return;
          try {
            await this.options.send(record);
          } catch (err) {
            this.retryLater(record, err);
            return;
          }
          if (this.failures > 0) this.options.logger.info({ seq: record.seq, failures: this.failures }, 'audit mirror sending again');
          this.failures = 0;
          this.cursor = record.seq;
        }
        if (!this.closed) await this.saveCursor(); // close() saves it otherwise
      }
    }
  }

  private retryLater(record: AuditRecord, err: unknown): void {
    this.failures += 1;
    const min = this.options.retryMinMs ?? 200;
    const max = this.options.retryMaxMs ?? 30_000;
    const delayMs = Math.round(Math.min(max, min * 2 ** (this.failures - 1)) * (0.75 + Math.random() * 0.5));
    this.options.logger.warn(
      { seq: record.seq, failures: this.failures, delayMs, err },
      'audit mirror could not send a record; the local trail has it, retrying',
    );
    void this.saveCursor().catch(() => undefined);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.notify();
    }, delayMs);
    this.retryTimer.unref();
  }

  private async saveCursor(): Promise<void> {
    if (this.cursor === this.savedCursor) return;
    const seq = this.cursor;
    // Rename over the old cursor: a crash leaves the old one or the new one, and an old one only means re-sending.
    const tmp = `${this.options.cursorPath}.tmp`;
    await writeFile(tmp, `${JSON.stringify({ seq })}\n`);
    await rename(tmp, this.options.cursorPath);
    this.savedCursor = seq;
  }

  /** Idempotent: stops retrying, waits up to closeTimeoutMs for a send in flight, saves the cursor. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.pumping) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.options.closeTimeoutMs ?? 5000);
      });
      await Promise.race([this.pumping, timeout]);
      clearTimeout(timer);
    }
    await this.saveCursor().catch((err: unknown) =>
      this.options.logger.warn({ err }, 'audit mirror cursor not saved; records since the last save are sent again at the next start'),
    );
    if (this.failures > 0)
      this.options.logger.warn(
        { sent: this.cursor, failures: this.failures },
        'audit mirror closed while failing; the records after its cursor are sent at the next start',
      );
  }
}
