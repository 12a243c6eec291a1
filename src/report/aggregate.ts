/**
 * The run's predictions folded as they are read, in memory that does not grow with the run:
 * per camera the counts, the unusable frames by reason, the confusion cells where ground truth
 * is known, the first PG-labelled frame and a downsampled trend; per model the frames it scored.
 * Redelivered predictions (the same frame id again) are counted once.
 */
import { RecentKeys } from '../bus/recent-keys.js';
import type { Label, Prediction, Tile } from '../bus/messages.js';
import { LabelBook } from './labels.js';
import { TrendDownsampler } from './trend.js';

export interface Confusion {
  tp: number;
  fp: number;
  tn: number;
  fn: number;
}

export interface CameraAggregate {
  camera: string;
  frames: number;
  usable: number;
  predictedPg: number;
  predictedCex: number;
  unusable: number;
  unusableByReason: Map<string, number>;
  firstAtMs: number;
  lastAtMs: number;
  max?: { pPG: number; atMs: number; frameId: string };
  sumPPG: number;
  /** PG is the positive class; usable frames with a known label only. */
  confusion: Confusion;
  /** Frames with a known label, by label (usable or not). */
  labelled: Record<Label, number>;
  firstPgLabel?: { atMs: number; frameId: string };
  trend: TrendDownsampler;
}

export interface ModelUse {
  model: string;
  backend: string;
  device: string;
  /** The prediction's `calibration` field as it came (absent: the model's own threshold). */
  calibration?: unknown;
  frames: number;
  firstAtMs: number;
  lastAtMs: number;
}

/** Bounds: cameras and model variants per run kept; the rest is counted in `omitted`. */
export const MAX_CAMERAS = 256;
const MAX_MODELS = 50;
const MAX_REASONS = 30;
const MAX_CALIBRATION_CHARS = 4000;

export class RunAggregator {
  readonly cameras = new Map<string, CameraAggregate>();
  readonly models = new Map<string, ModelUse>();
  /** Kafka timestamps of the run's first and last prediction records. */
  firstRecordMs = Infinity;
  lastRecordMs = -Infinity;
  duplicates = 0;
  /** Frames of cameras beyond MAX_CAMERAS, and model variants beyond the bound. */
  omitted = { frames: 0, models: 0 };
  /** Predictions of the frames the report shows: their record time (to find the frame) and tiles. */
  readonly watched = new Map<string, { recordMs: number; capturedAtMs: number; tiles?: Tile[] }>();
  private readonly seen = new RecentKeys(50_000);

  constructor(
    readonly runId: string,
    readonly labels: LabelBook = new LabelBook(),
    private readonly watch: ReadonlySet<string> = new Set(),
    private readonly trendPoints = 2000,
  ) {}

  add(p: Prediction, raw: Record<string, unknown>, recordMs: number): void {
    if (p.runId !== this.runId) return;
    if (!this.seen.add(p.frameId)) {
      this.duplicates += 1;
      return;
    }
    const atMs = Date.parse(p.capturedAt);
    this.firstRecordMs = Math.min(this.firstRecordMs, recordMs);
    this.lastRecordMs = Math.max(this.lastRecordMs, recordMs);
    if (this.watch.has(p.frameId)) this.watched.set(p.frameId, { recordMs, capturedAtMs: atMs, ...(p.tiles ? { tiles: p.tiles } : {}) });
    this.countModel(p, raw.calibration, atMs);
    const cam = this.camera(p.camera, atMs);
    if (!cam) {
      this.omitted.frames += 1;
      return;
    }
    cam.frames += 1;
    cam.firstAtMs = Math.min(cam.firstAtMs, atMs);
    cam.lastAtMs = Math.max(cam.lastAtMs, atMs);
    const label = this.labels.labelFor(p, atMs);
    if (label) {
      cam.labelled[label] += 1;
      if (label === 'pg' && (!cam.firstPgLabel || atMs < cam.firstPgLabel.atMs)) cam.firstPgLabel = { atMs, frameId: p.frameId };
    }
    if (p.predicted === 'unusable' || p.pPG === null) {
      cam.unusable += 1;
      const reason = p.reason ?? 'unknown';
      const key = cam.unusableByReason.has(reason) || cam.unusableByReason.size < MAX_REASONS ? reason : '(other reasons)';
      cam.unusableByReason.set(key, (cam.unusableByReason.get(key) ?? 0) + 1);
      return;
    }
    cam.usable += 1;
    if (p.predicted === 'pg') cam.predictedPg += 1;
    else cam.predictedCex += 1;
    cam.sumPPG += p.pPG;
    if (!cam.max || p.pPG > cam.max.pPG) cam.max = { pPG: p.pPG, atMs, frameId: p.frameId };
    cam.trend.add(atMs, p.pPG);
    if (label) {
      const cell = label === 'pg' ? (p.predicted === 'pg' ? 'tp' : 'fn') : p.predicted === 'pg' ? 'fp' : 'tn';
      cam.confusion[cell] += 1;
    }
  }

  private camera(id: string, atMs: number): CameraAggregate | undefined {
    const known = this.cameras.get(id);
    if (known) return known;
    if (this.cameras.size >= MAX_CAMERAS) return undefined;
    const created: CameraAggregate = {
      camera: id,
      frames: 0,
      usable: 0,
      predictedPg: 0,
      predictedCex: 0,
      unusable: 0,
      unusableByReason: new Map(),
      firstAtMs: atMs,
      lastAtMs: atMs,
      sumPPG: 0,
      confusion: { tp: 0, fp: 0, tn: 0, fn: 0 },
      labelled: { pg: 0, cex: 0 },
      trend: new TrendDownsampler(this.trendPoints),
    };
    this.cameras.set(id, created);
    return created;
  }

  private countModel(p: Prediction, calibration: unknown, atMs: number): void {
    const calibrationText = calibration === undefined ? '' : JSON.stringify(calibration).slice(0, MAX_CALIBRATION_CHARS);
    const key = `${p.model}\u0000${p.backend}\u0000${p.device}\u0000${calibrationText}`;
    const use = this.models.get(key);
    if (use) {
      use.frames += 1;
      use.firstAtMs = Math.min(use.firstAtMs, atMs);
      use.lastAtMs = Math.max(use.lastAtMs, atMs);
      return;
    }
    if (this.models.size >= MAX_MODELS) {
      this.omitted.models += 1;
      return;
    }
    const kept = calibrationText.length < MAX_CALIBRATION_CHARS ? calibration : `${calibrationText}…`;
    this.models.set(key, {
      model: p.model,
      backend: p.backend,
      device: p.device,
      ...(calibration !== undefined ? { calibration: kept } : {}),
      frames: 1,
      firstAtMs: atMs,
      lastAtMs: atMs,
    });
  }
}
