/**
 * What a camera remembers of a file that is still being written, and how much of a file it
 * reads at the first look: the inputs of the completeness judge (verdict.ts).
 */

/** A file seen but not yet complete: its last size and mtime, and when it last changed. */
export interface Tracker {
  size: number;
  mtimeMs: number;
  /** Last time we saw the file change (or its mtime, when first seen). */
  changedAt: number;
  timer?: NodeJS.Timeout;
}

/** Files up to this size are read whole at the first look; bigger ones are peeked at first. */
export const SMALL_FILE_BYTES = 256 * 1024;
/** Enough for the dimensions of any PNG (IHDR comes first) and of JPEGs with the usual EXIF/ICC segments before SOF. */
export const HEAD_BYTES = 64 * 1024;
