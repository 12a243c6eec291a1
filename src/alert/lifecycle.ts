/**
 * The alert lifecycle, as pure decisions (no Kafka, no timers, no HTTP): one onset detector per
 * camera and run, PG alerts that fire, resolve after a run of clean frames (or a new run) and are
 * acknowledged by a person, and camera-silent alerts for a running camera that stopped sending
 * predictions. Every call returns the changes it made; the stage writes them to the outbox.
 *
 * `snapshots()` and `restore()` carry the state across restarts (src/alert/run-snapshot.ts).
 */
import type { Alert, Prediction } from '../bus/messages.js';
import { RecentKeys } from '../bus/recent-keys.js';
import { AlertBook } from './book.js';
import { pgAlertId, reasonOf, silentAlertId, type AlertChange } from './change.js';
import { OnsetDetector, type DetectorConfig } from './detector.js';
import { runKey, type EvidenceFrame, type RunSnapshot, type StateRecord } from './run-snapshot.js';

export interface LifecycleOptions {
  /** Default: CUSUM tuned for one false alarm per 100,000 CEX frames. */
  detector?: DetectorConfig;
  /** Consecutive clean frames that resolve a firing PG alert. Default 50. */
  resolveAfterCleanFrames?: number;
  /** A frame is clean when P(PG) is below this. Default 0.5. */
  cleanBelow?: number;
  /** Frame ids remembered to drop redelivered predictions. Default 100,000. */
  dedupCapacity?: number;
  /** Camera-runs tracked at once; beyond it the oldest quiet run is forgotten first. Default 10,000. */
  maxRuns?: number;
  /** A running camera with no prediction for this long raises camera-silent; 0 never. Default 0. */
  silentAfterMs?: number;
  /** A run whose state only aged (last frame seen) is re-written at most this often. Default 10 s. */
  snapshotIntervalMs?: number;
}

/** Where a prediction came from on the `predictions` topic. */
export interface RecordPosition {
  partition: number;
  offset: string;
}

export interface Observation {
  /** `duplicate`: the frame id was seen before; `replayed`: at or below the record its run had applied before a restart; `late`: classified after newer frames (overload catch-up). */
  skipped?: 'duplicate' | 'replayed' | 'late';
  changes: AlertChange[];
  /** The PG alert this prediction fired. */
  fired?: Alert;
  /** The first prediction of this camera the stage has seen. */
  newCamera: boolean;
}

interface RunState {
  key: string;
  camera: string;
  runId: string;
  detector: OnsetDetector;
  /** The latest usable frames, oldest first (evidence is taken from here). */
  recent: EvidenceFrame[];
  firing: Alert | undefined;
  silent: Alert | undefined;
  clean: number;
  lastSeenMs: number | undefined;
  lastFrameId: string | undefined;
  applied: RecordPosition | undefined;
  written: { substance: string; atMs: number } | undefined;
  dirty: boolean;
}

const RECENT_FRAMES = 64;
const EVIDENCE_FRAMES = 20;

export class AlertLifecycle {
  readonly book = new AlertBook();
  readonly detectorDescription: string;
  private readonly runs = new Map<string, RunState>();
  /** camera → its latest run id */
  private readonly latestRun = new Map<string, string>();
  private readonly seen: RecentKeys;
  private readonly forgotten: string[] = [];
  private readonly resolveAfter: number;
  private readonly cleanBelow: number;
  private readonly maxRuns: number;
  private readonly silentAfterMs: number;
  private readonly snapshotIntervalMs: number;
  /** Silence is counted from here at the earliest: a stage that was down heard nothing, which is not the camera's fault. */
  private silenceCountsFromMs = -Infinity;

  constructor(private readonly options: LifecycleOptions = {}) {
    this.resolveAfter = options.resolveAfterCleanFrames ?? 50;
    if (!Number.isInteger(this.resolveAfter) || this.resolveAfter < 1)
      throw new RangeError(`alert: resolveAfterCleanFrames must be a positive integer, got ${this.resolveAfter}`);
    this.cleanBelow = options.cleanBelow ?? 0.5;
    this.maxRuns = options.maxRuns ?? 10_000;
    this.silentAfterMs = options.silentAfterMs ?? 0;
    if (!(this.silentAfterMs >= 0)) throw new RangeError(`alert: silentAfterMs must be ≥ 0 (0 turns camera-silent alerts off), got ${this.silentAfterMs}`);
    this.snapshotIntervalMs = options.snapshotIntervalMs ?? 10_000;
    this.seen = new RecentKeys(options.dedupCapacity ?? 100_000);
    this.detectorDescription = new OnsetDetector(options.detector).description; // validates the configuration now
  }

  get cameras(): string[] {
    return [...this.latestRun.keys()];
  }

  observe(prediction: Prediction, nowMs: number, position?: RecordPosition): Observation {
    if (this.seen.has(prediction.frameId)) return { skipped: 'duplicate', changes: [], newCamera: false };
    this.seen.add(prediction.frameId);
    // Out of capture order (classify's overload catch-up): a late clean frame must not resolve, nor a late PG frame fire, a live alert.
    if (prediction.late) return { skipped: 'late', changes: [], newCamera: false };
    const key = runKey(prediction.camera, prediction.runId);
    const known = this.runs.get(key);
    // Before the run lookup: a replayed record of an earlier run must not end the camera's current run.
    if (position && known?.applied && atOrBelow(position, known.applied)) return { skipped: 'replayed', changes: [], newCamera: false };

    const changes: AlertChange[] = [];
    const newCamera = !this.latestRun.has(prediction.camera);
    const state = known ?? this.startRun(prediction.camera, prediction.runId, nowMs, changes);
    if (position) state.applied = position;
    state.lastSeenMs = Math.max(state.lastSeenMs ?? nowMs, nowMs);
    state.lastFrameId = prediction.frameId;
    state.dirty = true;
    this.endSilence(prediction.camera, nowMs, changes);

    if (prediction.pPG === null || prediction.predicted === 'unusable') return { changes, newCamera }; // neither for nor against
    state.recent.push({
      frameId: prediction.frameId,
      capturedAt: prediction.capturedAt,
      pPG: prediction.pPG,
      ...(prediction.tiles ? { tiles: prediction.tiles } : {}),
    });
    if (state.recent.length > RECENT_FRAMES) state.recent.shift();

    if (state.firing) {
      state.clean = prediction.pPG < this.cleanBelow ? state.clean + 1 : 0;
      if (state.clean >= this.resolveAfter) changes.push(this.resolvePg(state, isoOr(prediction.capturedAt, nowMs)));
      return { changes, newCamera };
    }
    const step = state.detector.update(prediction.pPG);
    if (!step.alarm) return { changes, newCamera };

    const excursion = state.recent.slice(-Math.max(1, Math.min(step.evidenceFrames, RECENT_FRAMES)));
    const firstPg = excursion.find((f) => f.pPG >= this.cleanBelow) ?? excursion[0];
    if (!firstPg) return { changes, newCamera }; // cannot happen: the frame that raised the alarm is in `recent`
    const id = pgAlertId(state.camera, state.runId, firstPg.frameId);
    state.detector.reset();
    if (this.book.get(id)) return { changes, newCamera }; // the same onset replayed
    const alert: Alert = {
      id,
      camera: state.camera,
      runId: state.runId,
      state: 'firing',
      reason: 'pg-onset',
      startsAt: isoOr(prediction.capturedAt, nowMs),
      evidence: {
        firstPgFrameId: firstPg.frameId,
        frames: excursion.slice(-EVIDENCE_FRAMES),
        statistic: step.statistic,
        detector: state.detector.description,
      },
      action: 'stop-batch',
    };
    state.firing = alert;
    state.clean = 0;
    this.book.put(alert);
    changes.push({ alert, kind: 'firing' });
    return { changes, fired: alert, newCamera };
  }

  /**
   * Camera-silent alerts for every camera whose latest run has sent nothing for `silentAfterMs`.
   * A camera whose PG alert fires is not silent: its batch was stopped. After a restart silence
   * counts from the restore at the earliest (a grace of `silentAfterMs` from start).
   */
  checkSilence(nowMs: number): AlertChange[] {
    if (this.silentAfterMs <= 0) return [];
    const changes: AlertChange[] = [];
    for (const [camera, runId] of this.latestRun) {
      const state = this.runs.get(runKey(camera, runId));
      if (!state || state.silent || state.lastSeenMs === undefined || state.lastFrameId === undefined) continue;
      if (nowMs - Math.max(state.lastSeenMs, this.silenceCountsFromMs) < this.silentAfterMs || this.book.firingOn(camera, 'pg-onset') > 0) continue;
      const id = silentAlertId(camera, runId, state.lastFrameId);
      const known = this.book.get(id);
      if (known) {
        if (known.state === 'firing') state.silent = known;
        continue;
      }
      const seconds = this.silentAfterMs / 1000;
      const alert: Alert = {
        id,
        camera,
        runId,
        state: 'firing',
        reason: 'camera-silent',
        startsAt: new Date(nowMs).toISOString(),
        evidence: {
          frames: [],
          lastFrameId: state.lastFrameId,
          lastSeenAt: new Date(state.lastSeenMs).toISOString(),
          silentSeconds: seconds,
          detector: `camera-silent after ${seconds} s`,
        },
        action: 'check-camera',
      };
      state.silent = alert;
      state.dirty = true;
      this.book.put(alert);
      changes.push({ alert, kind: 'firing' });
    }
    return changes;
  }

  /** Sets acknowledgedAt/acknowledgedBy once; `change` is set the first time only. */
  acknowledge(id: string, by: string | undefined, nowMs: number, comment?: string): { alert: Alert; change?: AlertChange } | undefined {
    const alert = this.book.get(id);
    if (!alert) return undefined;
    if (alert.acknowledgedAt) return { alert };
    alert.acknowledgedAt = new Date(nowMs).toISOString();
    if (by) alert.acknowledgedBy = by;
    if (comment) alert.acknowledgedComment = comment.slice(0, 512);
    this.book.put(alert);
    return { alert, change: { alert, kind: 'acknowledged' } };
  }

  /**
   * State records to write with the next outbox flush: every run whose state changed in
   * substance, every run that only aged once per `snapshotIntervalMs`, and the forgotten runs.
   */
  snapshots(nowMs: number): StateRecord[] {
    const records: StateRecord[] = this.forgotten.splice(0).map((key) => ({ key, snapshot: null }));
    for (const state of this.runs.values()) {
      if (!state.dirty) continue;
      const snapshot = this.snapshotOf(state, nowMs);
      const substance = substanceOf(snapshot);
      if (state.written && state.written.substance === substance && nowMs - state.written.atMs < this.snapshotIntervalMs) continue;
      state.written = { substance, atMs: nowMs };
      state.dirty = false;
      records.push({ key: state.key, snapshot });
    }
    return records;
  }

  /**
   * Rebuilds the state after a restart from the `alerts` topic (latest version of every alert,
   * in topic order) and the state topic (latest snapshot of every run). Where the two disagree
   * the alerts topic wins: an alert firing there is firing, whatever the snapshot says.
   * `restoredAtMs` (the stage's start) is where camera-silent counts from for the restored runs:
   * the time the stage was down is not silence. Their `lastSeen` stays what the snapshot says.
   */
  restore(alerts: Alert[], snapshots: RunSnapshot[], restoredAtMs?: number): { runs: number; resumed: number; firing: number } {
    if (restoredAtMs !== undefined) this.silenceCountsFromMs = restoredAtMs;
    for (const alert of alerts) this.book.put(alert);
    let resumed = 0;
    for (const snapshot of snapshots) {
      const state = this.newRunState(snapshot.camera, snapshot.runId);
      if (snapshot.detector === state.detector.description && state.detector.restore(snapshot.state)) {
        resumed += 1;
        state.recent = snapshot.recent.slice(-RECENT_FRAMES);
      }
      const firing = snapshot.firingId ? this.book.get(snapshot.firingId) : undefined;
      if (firing?.state === 'firing') state.firing = firing;
      state.clean = state.firing ? snapshot.clean : 0;
      state.lastSeenMs = snapshot.lastSeenMs;
      state.lastFrameId = snapshot.lastFrameId;
      state.applied = snapshot.applied;
      state.written = { substance: substanceOf(this.snapshotOf(state, snapshot.writtenAtMs)), atMs: snapshot.writtenAtMs };
      this.runs.set(state.key, state);
    }
    const firing = this.book.firing();
    for (const alert of firing) {
      const key = runKey(alert.camera, alert.runId);
      let state = this.runs.get(key);
      if (!state) {
        state = this.newRunState(alert.camera, alert.runId);
        state.lastSeenMs = Date.parse(alert.startsAt);
        this.runs.set(key, state);
      }
      if (reasonOf(alert) === 'camera-silent') state.silent = alert;
      else state.firing = alert;
    }
    const latest = new Map<string, RunState>();
    for (const state of this.runs.values()) {
      const best = latest.get(state.camera);
      if (!best || (state.lastSeenMs ?? 0) > (best.lastSeenMs ?? 0)) latest.set(state.camera, state);
    }
    for (const [camera, state] of latest) this.latestRun.set(camera, state.runId);
    return { runs: this.runs.size, resumed, firing: firing.length };
  }

  private startRun(camera: string, runId: string, nowMs: number, changes: AlertChange[]): RunState {
    const state = this.newRunState(camera, runId);
    this.runs.set(state.key, state);
    this.switchRun(state, nowMs, changes);
    if (this.runs.size > this.maxRuns) {
      for (const [key, run] of this.runs) {
        if (!run.firing && !run.silent && run !== state) {
          this.runs.delete(key);
          this.forgotten.push(key);
          break;
        }
      }
    }
    return state;
  }

  /** A new run on a camera ends its earlier run: its PG alert resolves (the batch was stopped or finished). */
  private switchRun(state: RunState, nowMs: number, changes: AlertChange[]): void {
    const previous = this.latestRun.get(state.camera);
    this.latestRun.set(state.camera, state.runId);
    if (previous === undefined || previous === state.runId) return;
    const old = this.runs.get(runKey(state.camera, previous));
    if (old?.firing) changes.push(this.resolvePg(old, new Date(nowMs).toISOString()));
  }

  /** Frames are back: the camera's silent alert (of any of its runs) resolves. */
  private endSilence(camera: string, nowMs: number, changes: AlertChange[]): void {
    for (const alert of this.book.firing('camera-silent')) {
      if (alert.camera !== camera) continue;
      const state = this.runs.get(runKey(alert.camera, alert.runId));
      if (state) {
        state.silent = undefined;
        state.dirty = true;
      }
      changes.push(this.resolved(alert, new Date(nowMs).toISOString()));
    }
  }

  private resolvePg(state: RunState, atIso: string): AlertChange {
    const alert = state.firing as Alert;
    state.firing = undefined;
    state.clean = 0;
    state.detector.reset();
    state.dirty = true;
    return this.resolved(alert, atIso);
  }

  private resolved(alert: Alert, atIso: string): AlertChange {
    alert.state = 'resolved';
    alert.endsAt = atIso;
    this.book.put(alert);
    return { alert, kind: 'resolved' };
  }

  private newRunState(camera: string, runId: string): RunState {
    return {
      key: runKey(camera, runId),
      camera,
      runId,
      detector: new OnsetDetector(this.options.detector),
      recent: [],
      firing: undefined,
      silent: undefined,
      clean: 0,
      lastSeenMs: undefined,
      lastFrameId: undefined,
      applied: undefined,
      written: undefined,
      dirty: false,
    };
  }

  private snapshotOf(state: RunState, nowMs: number): RunSnapshot {
    const evidence = state.detector.evidenceFrames;
    return {
      v: 1,
      camera: state.camera,
      runId: state.runId,
      detector: state.detector.description,
      state: state.detector.snapshot(),
      // Without tiles: the firing alert carries them; the state needs ids and P(PG), and stays small.
      recent: evidence > 0 ? state.recent.slice(-Math.min(evidence, RECENT_FRAMES)).map(({ frameId, capturedAt, pPG }) => ({ frameId, capturedAt, pPG })) : [],
      ...(state.firing ? { firingId: state.firing.id } : {}),
      ...(state.silent ? { silentId: state.silent.id } : {}),
      clean: state.firing ? state.clean : 0,
      ...(state.lastSeenMs !== undefined ? { lastSeenMs: state.lastSeenMs } : {}),
      ...(state.lastFrameId !== undefined ? { lastFrameId: state.lastFrameId } : {}),
      ...(state.applied ? { applied: state.applied } : {}),
      writtenAtMs: nowMs,
    };
  }
}

/** What decides the run's future; a snapshot that differs from the last written one only in age need not be written at once. */
function substanceOf(s: RunSnapshot): string {
  return JSON.stringify([s.state, s.recent.map((f) => f.frameId), s.firingId, s.silentId, s.clean]);
}

function atOrBelow(position: RecordPosition, applied: RecordPosition): boolean {
  return position.partition === applied.partition && BigInt(position.offset) <= BigInt(applied.offset);
}

function isoOr(value: string, fallbackMs: number): string {
  const ms = Date.parse(value);
  return new Date(Number.isFinite(ms) ? ms : fallbackMs).toISOString();
}
