/**
 * Which `dead-letter` records belong to a run, and their tally. A letter keeps the original
 * record's headers (frames carry `run-id` and `camera`) and, when small, its value (a rejected
 * prediction is JSON with `runId`). A letter that names a camera but no run is counted for the
 * run when its camera is one of the run's and it was written during the run; one that names
 * neither cannot be attributed and is left out.
 */
import type { DeadLetter, DeadLetterBytes } from '../bus/messages.js';

export interface DeadLetterTallyFigures {
  total: number;
  /** Letters matched by camera and time only (no run id in them). */
  byCameraAndTime: number;
  byStage: Record<string, number>;
  /** Reason classes (frame ids taken out), most frequent first. */
  byReason: Array<{ reason: string; count: number }>;
  byCamera: Record<string, number>;
}

const MAX_REASON_CLASSES = 50;
const MAX_CAMERAS = 256;

function decoded(bytes: DeadLetterBytes | null | undefined): string | undefined {
  if (!bytes || bytes.truncated) return undefined;
  return Buffer.from(bytes.base64, 'base64').toString('utf8');
}

function header(letter: DeadLetter, name: string): string | undefined {
  return decoded(letter.headers.find((h) => h.name === name)?.value);
}

/** What the letter says about the record's run and camera. */
export function attribution(letter: DeadLetter): { runId?: string; camera?: string } {
  let runId = header(letter, 'run-id');
  let camera = header(letter, 'camera') ?? decoded(letter.key);
  const value = decoded(letter.value);
  if (value && value.startsWith('{')) {
    try {
      const parsed = JSON.parse(value) as Record<string, unknown>;
      if (!runId && typeof parsed.runId === 'string') runId = parsed.runId;
      if (!camera && typeof parsed.camera === 'string') camera = parsed.camera;
    } catch {
      // not JSON after all: the headers and key are all there is
    }
  }
  return { ...(runId ? { runId } : {}), ...(camera ? { camera } : {}) };
}

/** The reason without what differs per record: the `frame <id>: ` prefix, quoted values, numbers. */
export function reasonClass(reason: string): string {
  return reason
    .replace(/^frame \S*-\S*: /, '') // a frame id (camera-time-hash), not "frame headers: "
    .replace(/"[^"]*"/g, '"…"')
    .replace(/\d+(\.\d+)?/g, 'N')
    .slice(0, 120);
}

interface Counted {
  stage: string;
  reason: string;
  camera: string;
}

export interface RunScope {
  runId: string;
  /** The cameras that sent predictions for the run. */
  cameras: ReadonlySet<string>;
  /** When the run's letters may have been written (its first to last prediction, with margin), ms since the epoch. */
  fromMs: number;
  toMs: number;
}

export class DeadLetterTally {
  private total = 0;
  private byCameraAndTime = 0;
  private readonly byStage = new Map<string, number>();
  private readonly byReason = new Map<string, number>();
  private readonly byCamera = new Map<string, number>();

  constructor(readonly scope: RunScope) {}

  add(letter: DeadLetter): void {
    const { runId, camera } = attribution(letter);
    const entry: Counted = { stage: letter.stage, reason: reasonClass(letter.reason), camera: camera ?? '(unknown)' };
    if (runId === this.scope.runId) {
      this.count(entry);
      return;
    }
    if (runId || !camera || !this.scope.cameras.has(camera)) return;
    const atMs = Date.parse(letter.at);
    if (atMs >= this.scope.fromMs && atMs <= this.scope.toMs) {
      this.count(entry);
      this.byCameraAndTime += 1;
    }
  }

  figures(): DeadLetterTallyFigures {
    return {
      total: this.total,
      byCameraAndTime: this.byCameraAndTime,
      byStage: Object.fromEntries(this.byStage),
      byReason: [...this.byReason].map(([reason, count]) => ({ reason, count })).sort((a, b) => b.count - a.count),
      byCamera: Object.fromEntries(this.byCamera),
    };
  }

  private count(entry: Counted): void {
    this.total += 1;
    bump(this.byStage, entry.stage);
    bump(this.byCamera, this.byCamera.has(entry.camera) || this.byCamera.size < MAX_CAMERAS ? entry.camera : '(other cameras)');
    const reason = this.byReason.has(entry.reason) || this.byReason.size < MAX_REASON_CLASSES ? entry.reason : '(other reasons)';
    bump(this.byReason, reason);
  }
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}
