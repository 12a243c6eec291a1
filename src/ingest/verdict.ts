/**
 * The pure decisions of a file check: from what was read (the head and tail, then the whole
 * file) and how long the file has been quiet, whether to reject it, wait, or go on. No I/O,
 * so every branch is unit-tested without a disk (test/ingest-verdict.test.ts).
 */
import { headerDimensions, inspectImage, pixelLimit, sniffKind, tailLooksComplete, type ImageKind, type RejectReason } from './image.js';

export type Verdict =
  | { do: 'reject'; reason: RejectReason; detail: string }
  /** Not finished yet: look again after `delayMs` (or the poll interval). */
  | { do: 'wait'; delayMs?: number }
  | { do: 'go'; kind: ImageKind };

export interface Quiet {
  maxPixels: number;
  /** How long the file has not changed, and whether that is past the stall time. */
  quietMs: number;
  stalled: boolean;
}

/** On the first bytes and the last ones: an image at all, a header within the pixel limit, an end marker. */
export function judgeHead(head: Buffer, tail: Buffer, size: number, q: Quiet): Verdict {
  const kind = sniffKind(head);
  if (!kind) {
    const full = inspectImage(head, { maxPixels: q.maxPixels });
    if (full.state === 'invalid') return { do: 'reject', reason: full.reason, detail: full.detail };
    if (q.stalled) return { do: 'reject', reason: 'not-an-image', detail: `only ${size} bytes, unchanged for ${q.quietMs} ms, not a PNG, JPEG or TIFF header` };
    return { do: 'wait' };
  }
  // A header claiming too many pixels is refused before the file is read whole or decoded.
  const claimed = headerDimensions(head);
  const refused = claimed && pixelLimit(claimed.width, claimed.height, q.maxPixels);
  if (refused) return { do: 'reject', reason: refused.reason, detail: refused.detail };
  if (!tailLooksComplete(kind, tail) && !q.stalled) return { do: 'wait' };
  return { do: 'go', kind };
}

/** On the whole file: complete, still being written, or broken (and how). */
export function judgeWhole(bytes: Buffer, tail: Buffer, kind: ImageKind, q: Quiet & { stableSizeMs: number }): Verdict {
  const inspection = inspectImage(bytes, { maxPixels: q.maxPixels });
  if (inspection.state === 'invalid') return { do: 'reject', reason: inspection.reason, detail: inspection.detail };
  if (inspection.state === 'incomplete') {
    if (!q.stalled) return { do: 'wait' };
    // It ends like a complete image, yet a chunk/segment runs past the end: damaged, not cut short.
    if (tailLooksComplete(inspection.kind ?? kind, tail))
      return { do: 'reject', reason: 'corrupt', detail: `${inspection.detail}, although the file ends with the end marker` };
    return { do: 'reject', reason: 'truncated', detail: `${inspection.detail}; unchanged for ${q.quietMs} ms` };
  }
  if (inspection.state === 'needs-stable-size') {
    if (q.quietMs < q.stableSizeMs) return { do: 'wait', delayMs: Math.max(10, q.stableSizeMs - q.quietMs) };
    if (inspection.width === undefined || inspection.height === undefined)
      return { do: 'reject', reason: 'corrupt', detail: 'TIFF: no ImageWidth/ImageLength in the first directory' };
    return { do: 'go', kind: 'tiff' };
  }
  return { do: 'go', kind: inspection.kind };
}
