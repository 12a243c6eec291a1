/**
 * One builder per message contract (DESIGN.md "Contracts"), so a test writes only the fields it
 * is about: `prediction({ pPG: 0.9 })`, `frameHeaders({ camera: 'cam-2' })`, `alert({ state: 'resolved' })`.
 * Every builder returns a value its zod schema accepts.
 */
import type { Alert, FrameHeaders, Prediction } from '../../src/bus/messages.js';

/** The instant the builders' timestamps count from. */
export const T0 = Date.parse('2026-01-01T00:00:00Z');

/** What the classifier calls a frame of this P(PG): unusable (null), pg (≥ 0.5) or cex. */
export const predictedFor = (pPG: number | null): Prediction['predicted'] => (pPG === null ? 'unusable' : pPG >= 0.5 ? 'pg' : 'cex');

/** A prediction of camera `cam-1`, run `run-1`; `predicted` follows `pPG` unless given. */
export function prediction(over: Partial<Prediction> = {}): Prediction {
  const pPG = over.pPG === undefined ? 0.02 : over.pPG;
  return {
    frameId: 'cam-1-run-1-0',
    camera: 'cam-1',
    runId: 'run-1',
    capturedAt: new Date(T0).toISOString(),
    pPG,
    predicted: predictedFor(pPG),
    model: 'test',
    backend: 'none',
    device: 'cpu',
    latencyMs: 1,
    ...over,
  };
}

export interface SequenceOptions {
  camera?: string;
  runId?: string;
  /** Capture time of frame 1 (ms since the epoch). Default T0 + stepMs. */
  startMs?: number;
  /** Milliseconds between frames. Default 100. */
  stepMs?: number;
  /** The frame id of frame `n` (1-based). Default `<camera>-<runId>-<n>`. */
  frameId?: (n: number) => string;
  /** Fields every prediction of the sequence carries (model, backend, label …). */
  defaults?: Partial<Prediction>;
}

/** One camera's frames in capture order: each call is the next frame, `stepMs` after the last. */
export function predictionSequence(options: SequenceOptions = {}): (pPG: number | null, over?: Partial<Prediction>) => Prediction {
  const camera = options.camera ?? 'cam-1';
  const runId = options.runId ?? 'run-1';
  const stepMs = options.stepMs ?? 100;
  const startMs = options.startMs ?? T0 + stepMs;
  const frameId = options.frameId ?? ((n: number) => `${camera}-${runId}-${n}`);
  let n = 0;
  return (pPG, over = {}) => {
    n += 1;
    return prediction({
      frameId: frameId(n),
      camera,
      runId,
      capturedAt: new Date(startMs + (n - 1) * stepMs).toISOString(),
      pPG,
      ...options.defaults,
      ...over,
    });
  };
}

/** Predictions of one camera-run: `clean` CEX frames (P(PG) 0.02), then `pg` PG frames (0.98), frame ids `<camera>-<runId>-<i>` from 0. */
export function onsetStream(camera: string, runId: string, clean: number, pg: number, startMs = Date.now() - 60_000): Prediction[] {
  const next = predictionSequence({ camera, runId, startMs, frameId: (n) => `${camera}-${runId}-${n - 1}` });
  return Array.from({ length: clean + pg }, (_, i) => next(i < clean ? 0.02 : 0.98));
}

/** Headers of a `frames` record as ingest writes them: camera `cam-1`, run `run-1`, a PNG. */
export function frameHeaders(over: Partial<FrameHeaders> = {}): FrameHeaders {
  return {
    'frame-id': 'cam-1-20260101T000000000-0',
    camera: 'cam-1',
    'captured-at': new Date(T0).toISOString(),
    'content-type': 'image/png',
    'run-id': 'run-1',
    ...over,
  };
}

/** A firing PG-onset alert of camera `cam-1`, run `run-1`, with one evidence frame. */
export function alert(over: Partial<Alert> = {}): Alert {
  const camera = over.camera ?? 'cam-1';
  const startsAt = over.startsAt ?? new Date(T0 + 5_000).toISOString();
  return {
    id: `pg-${camera}-1`,
    camera,
    runId: 'run-1',
    state: 'firing',
    startsAt,
    reason: 'pg-onset',
    action: 'stop-batch',
    evidence: { firstPgFrameId: `${camera}-f1`, frames: [{ frameId: `${camera}-f1`, capturedAt: startsAt, pPG: 0.91 }] },
    ...over,
  };
}
