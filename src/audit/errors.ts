/** Named errors of the audit trail, so callers can tell "closed" from "the disk failed". */

/** `append` or `read` after `close()`. */
export class AuditTrailClosedError extends Error {
  override readonly name = 'AuditTrailClosedError';
  constructor(folder: string) {
    super(`audit trail ${folder} is closed; open it again with AuditTrail.open`);
  }
}

/**
 * A write or fsync failed. The trail stops taking records: after a failed fsync the kernel may
 * have dropped the pages, so only a reopen (which rereads the file and cuts a torn tail) knows
 * where the chain really ends.
 */
export class AuditTrailFailedError extends Error {
  override readonly name = 'AuditTrailFailedError';
  constructor(folder: string, cause: unknown) {
    super(
      `audit trail ${folder} failed to write (${(cause as Error).message ?? String(cause)}); records are refused until the process reopens it (fix the disk: space, permissions)`,
      { cause },
    );
  }
}

/** The caller's record is not valid for its kind, or cannot be written as JSON. */
export class AuditRecordError extends Error {
  override readonly name = 'AuditRecordError';
}
