/**
 * What a complete image file becomes on `frames`: its stable frame id and its headers
 * (DESIGN.md contracts). Pure: the caller has read the bytes and the sidecar, and hashed the
 * bytes once (`frameDigestOffThread` of src/bus/frame-id.ts).
 */
import { frameIdFor } from '../bus/frame-id.js';
import type { FrameHeaders } from '../bus/messages.js';
import { labelFromPath, type Sidecar } from './files.js';
import { CONTENT_TYPES, type ImageKind } from './image.js';

export interface FrameFacts {
  camera: string;
  runId: string;
  /** Path relative to the watched folder, `/`-separated (folder names may carry the label). */
  rel: string;
  kind: ImageKind;
  /** Hex SHA-256 of the file's bytes. */
  sha256: string;
  /** The file's mtime: the capture time when the sidecar has none. */
  mtimeMs: number;
  /** When ingest saw the file complete (ms since the epoch). */
  completedAt: number;
  sidecar?: Sidecar;
}

export function describeFrame(f: FrameFacts): { frameId: string; capturedAt: string; sha256: string; headers: FrameHeaders } {
  // Ground truth: sidecar first, folder names second.
  const capturedAt = new Date(f.sidecar?.capturedAt ?? f.mtimeMs).toISOString();
  const label = f.sidecar?.label ?? labelFromPath(f.rel);
  const sha256 = f.sha256;
  const frameId = frameIdFor(f.camera, capturedAt, sha256);
  const headers: FrameHeaders = {
    'frame-id': frameId,
    camera: f.camera,
    'captured-at': capturedAt,
    'content-type': CONTENT_TYPES[f.kind],
    'run-id': f.runId,
    'completed-at': String(f.completedAt),
  };
  if (label) headers.label = label;
  return { frameId, capturedAt, sha256, headers };
}
