/** Where a trail lives under a data dir. */
import { join, resolve } from 'node:path';

export interface AuditPaths {
  folder: string;
  /** The records, one canonical JSON line each. */
  log: string;
  /** Last durable {seq, hash} (head.ts). */
  head: string;
  /** pid of the one process appending. */
  lock: string;
  /** Last seq sent to the mirror (the `audit` topic). */
  mirrorCursor: string;
  /** Torn tails cut off at reopen, kept as evidence. */
  recovered: string;
}

export function auditPaths(dataDir: string): AuditPaths {
  const folder = join(resolve(dataDir), 'audit');
  return {
    folder,
    log: join(folder, 'audit.jsonl'),
    head: join(folder, 'audit.head'),
    lock: join(folder, 'audit.lock'),
    mirrorCursor: join(folder, 'audit.mirror'),
    recovered: join(folder, 'recovered'),
  };
}
