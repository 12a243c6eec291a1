/**
 * The report's figures (what `report.json` holds and the HTML shows), computed from what was
 * read. Pure: no Kafka, no files, so every number here is unit-tested.
 */
import type { Label, RunEvent } from '../bus/messages.js';
import type { CameraAggregate, Confusion, ModelUse, RunAggregator } from './aggregate.js';
import type { AlertSummary } from './alerts.js';
import type { AuditFigures } from './audit.js';
import type { DeadLetterTallyFigures } from './dead-letters.js';
import type { TrendPoint } from './trend.js';

export interface ClassificationFigures {
  confusion: Confusion;
  /** PG is the positive class; null where the denominator is 0. */
  precision: number | null;
  recall: number | null;
  f1: number | null;
  accuracy: number | null;
  /** Usable frames with a known label. */
  support: number;
}

export type OnsetSource = 'first-pg-labelled-frame' | 'alert-first-pg-frame';

export interface DetectionFigures {
  /** The camera's first PG-onset alert in the run, if any. */
  alertId: string | null;
  onset: { at: string; frameId: string; source: OnsetSource } | null;
  /** When the alert starts (the capture time of the frame that tripped the detector). */
  alarmAt: string | null;
  /** alarmAt − onset, seconds; negative when the alarm came before the first PG-labelled frame. */
  delaySeconds: number | null;
  /** Alert's first record on the topic − alarmAt, seconds (clock of the broker vs the camera). */
  emittedAfterSeconds: number | null;
  note?: string;
}

export interface CameraFigures {
  camera: string;
  frames: number;
  usable: number;
  unusable: number;
  unusableByReason: Record<string, number>;
  predicted: Record<Label, number>;
  labelled: Record<Label, number>;
  from: string;
  to: string;
  maxPPG: { pPG: number; at: string; frameId: string } | null;
  meanPPG: number | null;
  classification: ClassificationFigures | null;
  detection: DetectionFigures;
  deadLettered: number;
  trend: { framesPerPoint: number; points: TrendPoint[] };
}

export interface ModelFigures extends Omit<ModelUse, 'firstAtMs' | 'lastAtMs'> {
  from: string;
  to: string;
}

export interface ReportFigures {
  runId: string;
  generatedAt: string;
  version: string;
  span: { from: string | null; to: string | null };
  /** The run's start and end events (`runs` topic): the earliest start, the latest end, and all of them. */
  run: { startedAt: string | null; endedAt: string | null; events: RunEvent[] };
  cameras: CameraFigures[];
  totals: { frames: number; usable: number; unusable: number; duplicates: number; deadLettered: number; classification: ClassificationFigures | null };
  models: ModelFigures[];
  alerts: AlertSummary[];
  acknowledgements: Acknowledgement[];
  deadLetters: DeadLetterTallyFigures;
  /** What the audit trail says of the run; null when no trail was given. */
  audit: AuditFigures | null;
  /** What could not be included, in words (bounds reached, frames not found, topics missing). */
  notes: string[];
}

export interface Acknowledgement {
  alertId: string;
  camera: string;
  /** Who acknowledged; null when neither the alert nor the audit trail recorded a name. */
  by: string | null;
  at: string;
  comment?: string;
  via?: string;
  /** Where it was read: the alert's record on the alerts topic, the audit trail, or both. */
  source: 'alerts' | 'audit' | 'alerts+audit';
}

/** Every acknowledgement of the run's alerts, from the alerts topic and the audit trail (which adds comments). */
export function acknowledgements(alerts: AlertSummary[], audit: AuditFigures | null): Acknowledgement[] {
  const camera = new Map(alerts.map((a) => [a.id, a.camera]));
  const fromAudit = new Map<string, AuditFigures['acknowledgements'][number]>();
  for (const a of audit?.acknowledgements ?? []) if (!fromAudit.has(a.alertId)) fromAudit.set(a.alertId, a);
  const out: Acknowledgement[] = [];
  for (const a of alerts) {
    const recorded = fromAudit.get(a.id);
    if (!a.acknowledgedAt && !recorded) continue;
    fromAudit.delete(a.id);
    const comment = recorded?.comment ?? a.acknowledgedComment;
    out.push({
      alertId: a.id,
      camera: a.camera,
      by: a.acknowledgedBy ?? recorded?.who ?? null,
      at: a.acknowledgedAt ?? recorded!.when,
      ...(comment ? { comment } : {}),
      ...(recorded?.via ? { via: recorded.via } : {}),
      source: a.acknowledgedAt && recorded ? 'alerts+audit' : recorded ? 'audit' : 'alerts',
    });
  }
  for (const r of fromAudit.values()) {
    out.push({
      alertId: r.alertId,
      camera: camera.get(r.alertId) ?? '',
      by: r.who,
      at: r.when,
      ...(r.comment ? { comment: r.comment } : {}),
      ...(r.via ? { via: r.via } : {}),
      source: 'audit',
    });
  }
  return out.sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
}

const ratio = (num: number, den: number): number | null => (den === 0 ? null : num / den);

export function classification(c: Confusion): ClassificationFigures | null {
  const support = c.tp + c.fp + c.tn + c.fn;
  if (support === 0) return null;
  const precision = ratio(c.tp, c.tp + c.fp);
  const recall = ratio(c.tp, c.tp + c.fn);
  // 2PR/(P+R) written in counts: defined (0) even when no PG was predicted or none was there.
  const f1 = ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn);
  return { confusion: { ...c }, precision, recall, f1, accuracy: ratio(c.tp + c.tn, support), support };
}

const iso = (ms: number) => new Date(ms).toISOString();
/** Orders model variants that came into use at the same time (partitions are read in any order). */
const modelKey = (m: ModelUse) => `${m.model}\u0000${m.backend}\u0000${m.device}\u0000${m.calibration === undefined ? '' : JSON.stringify(m.calibration)}`;

export function detection(cam: CameraAggregate, alerts: AlertSummary[]): DetectionFigures {
  const pgAlert = alerts.filter((a) => a.camera === cam.camera && a.reason === 'pg-onset').sort((a, b) => Date.parse(a.startsAt) - Date.parse(b.startsAt))[0];
  const hasLabels = cam.labelled.pg + cam.labelled.cex > 0;
  const labelled = cam.firstPgLabel ? { at: iso(cam.firstPgLabel.atMs), frameId: cam.firstPgLabel.frameId, source: 'first-pg-labelled-frame' as const } : null;
  if (!pgAlert) {
    return {
      alertId: null,
      onset: labelled,
      alarmAt: null,
      delaySeconds: null,
      emittedAfterSeconds: null,
      ...(labelled ? { note: `PG-labelled frames from ${labelled.at} but no PG alert in this run (missed)` } : {}),
    };
  }
  const firstPg = pgAlert.evidence.frames.find((f) => f.frameId === pgAlert.evidence.firstPgFrameId);
  const fromAlert = firstPg ? { at: firstPg.capturedAt, frameId: firstPg.frameId, source: 'alert-first-pg-frame' as const } : null;
  const onset = labelled ?? fromAlert;
  const alarmMs = Date.parse(pgAlert.startsAt);
  const figures: DetectionFigures = {
    alertId: pgAlert.id,
    onset,
    alarmAt: pgAlert.startsAt,
    delaySeconds: onset ? (alarmMs - Date.parse(onset.at)) / 1000 : null,
    emittedAfterSeconds: (pgAlert.firstRecordedMs - alarmMs) / 1000,
  };
  if (hasLabels && !labelled) figures.note = 'the alert fired but no frame of this camera is labelled PG (false alarm?)';
  else if (figures.delaySeconds !== null && figures.delaySeconds < 0) figures.note = 'the alert fired before the first PG-labelled frame';
  return figures;
}

export interface FigureInputs {
  runId: string;
  version: string;
  generatedAt: Date;
  aggregator: RunAggregator;
  alerts: AlertSummary[];
  deadLetters: DeadLetterTallyFigures;
  audit?: AuditFigures | null;
  runEvents?: RunEvent[];
  notes: string[];
}

export function runTimes(events: RunEvent[]): ReportFigures['run'] {
  const times = (state: RunEvent['state']) => events.filter((e) => e.state === state).map((e) => Date.parse(e.at));
  const started = times('started');
  const ended = times('ended');
  return {
    startedAt: started.length ? iso(Math.min(...started)) : null,
    endedAt: ended.length ? iso(Math.max(...ended)) : null,
    events: [...events],
  };
}

export function buildFigures(input: FigureInputs): ReportFigures {
  const { aggregator, alerts } = input;
  const cameras = [...aggregator.cameras.values()]
    .sort((a, b) => a.camera.localeCompare(b.camera))
    .map((cam): CameraFigures => ({
      camera: cam.camera,
      frames: cam.frames,
      usable: cam.usable,
      unusable: cam.unusable,
      unusableByReason: Object.fromEntries([...cam.unusableByReason].sort((a, b) => b[1] - a[1])),
      predicted: { pg: cam.predictedPg, cex: cam.predictedCex },
      labelled: { ...cam.labelled },
      from: iso(cam.firstAtMs),
      to: iso(cam.lastAtMs),
      maxPPG: cam.max ? { pPG: cam.max.pPG, at: iso(cam.max.atMs), frameId: cam.max.frameId } : null,
      meanPPG: cam.usable ? cam.sumPPG / cam.usable : null,
      classification: classification(cam.confusion),
      detection: detection(cam, alerts),
      deadLettered: input.deadLetters.byCamera[cam.camera] ?? 0,
      trend: { framesPerPoint: cam.trend.framesPerPoint, points: cam.trend.points() },
    }));
  const sum = (pick: (c: CameraFigures) => number) => cameras.reduce((n, c) => n + pick(c), 0);
  const total: Confusion = { tp: 0, fp: 0, tn: 0, fn: 0 };
  for (const cam of aggregator.cameras.values()) for (const k of ['tp', 'fp', 'tn', 'fn'] as const) total[k] += cam.confusion[k];
  const froms = cameras.map((c) => Date.parse(c.from));
  const tos = cameras.map((c) => Date.parse(c.to));
  const notes = [...input.notes];
  if (aggregator.omitted.frames)
    notes.push(
      `${aggregator.omitted.frames} frames of cameras beyond the first ${aggregator.cameras.size} are counted nowhere (too many cameras for one report)`,
    );
  if (aggregator.omitted.models) notes.push(`${aggregator.omitted.models} frames of further model variants are not listed`);
  if (aggregator.labels.dropped) notes.push(`${aggregator.labels.dropped} lab results were not kept (too many); precision/recall may count fewer frames`);
  return {
    runId: input.runId,
    generatedAt: input.generatedAt.toISOString(),
    version: input.version,
    span: { from: froms.length ? iso(Math.min(...froms)) : null, to: tos.length ? iso(Math.max(...tos)) : null },
    run: runTimes(input.runEvents ?? []),
    cameras,
    totals: {
      frames: sum((c) => c.frames),
      usable: sum((c) => c.usable),
      unusable: sum((c) => c.unusable),
      duplicates: aggregator.duplicates,
      deadLettered: input.deadLetters.total,
      classification: classification(total),
    },
    models: [...aggregator.models.values()]
      .sort((x, y) => x.firstAtMs - y.firstAtMs || modelKey(x).localeCompare(modelKey(y)))
      .map(({ firstAtMs, lastAtMs, ...use }) => ({ ...use, from: iso(firstAtMs), to: iso(lastAtMs) })),
    alerts,
    acknowledgements: acknowledgements(alerts, input.audit ?? null),
    deadLetters: input.deadLetters,
    audit: input.audit ?? null,
    notes,
  };
}
