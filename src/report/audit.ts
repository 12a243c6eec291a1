/**
 * What the audit trail says about a run: when it started and ended, who acknowledged its alerts
 * (with their comments), where the alerts were delivered, and the configuration, model card and
 * calibrations in force. The trail is read page by page (any object with `AuditTrail.read`'s
 * shape will do); only the run's records are kept, each list bounded.
 */

/** The part of `AuditTrail` (src/audit) the report reads. */
export interface AuditSource {
  read(options: { after?: number; limit: number }): Promise<{ records: AuditEntry[]; next?: number }>;
}

export interface AuditEntry {
  seq: number;
  at: string;
  kind: string;
  actor?: string;
  data: Record<string, unknown>;
}

export interface AuditFigures {
  /** The trail's records read, and the seq range. */
  consulted: { records: number; firstSeq: number | null; lastSeq: number | null };
  run: { startedAt?: string; endedAt?: string; source?: string; endReason?: string };
  acknowledgements: Array<{ alertId: string; who: string; when: string; comment?: string; via?: string; seq: number }>;
  deliveries: Array<{ alertId: string; sink: string; state?: string; attempts?: number; at: string }>;
  /** config.loaded records in force during the run: the last one before it started, then any during it. */
  configs: Array<{ at: string; configSha256: string; modelCardSha256: string; modelName: string; modelVersion: string; calibrated?: boolean; seq: number }>;
  /** calibration.written up to the run's end: the last one before it started (per camera), then any during it. */
  calibrations: Array<{ at: string; camera?: string; modelName: string; modelVersion: string; modelCardSha256: string; frames?: number; seq: number }>;
}

const MAX_KEPT = 1000;
const PAGE = 1000;

const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);

function push<T>(list: T[], item: T): void {
  if (list.length >= MAX_KEPT) list.shift();
  list.push(item);
}

/** In force over [fromMs, toMs]: the last entry at or before `fromMs` (per `group`), then those after it up to `toMs`. */
export function inForce<T extends { at: string }>(entries: T[], fromMs: number, toMs: number, group: (e: T) => string = () => ''): T[] {
  const before = new Map<string, T>();
  const during: T[] = [];
  for (const e of entries) {
    const at = Date.parse(e.at);
    if (at <= fromMs) before.set(group(e), e);
    else if (at <= toMs) during.push(e);
  }
  return [...before.values(), ...during];
}

export async function readAudit(
  source: AuditSource,
  runId: string,
  alertIds: ReadonlySet<string>,
  span: { fromMs: number; toMs: number },
): Promise<AuditFigures> {
  const figures: AuditFigures = {
    consulted: { records: 0, firstSeq: null, lastSeq: null },
    run: {},
    acknowledgements: [],
    deliveries: [],
    configs: [],
    calibrations: [],
  };
  const configs: AuditFigures['configs'] = [];
  const calibrations: AuditFigures['calibrations'] = [];
  let after = 0;
  for (;;) {
    const page = await source.read({ after, limit: PAGE });
    for (const r of page.records) {
      figures.consulted.records += 1;
      figures.consulted.firstSeq ??= r.seq;
      figures.consulted.lastSeq = r.seq;
      const d = r.data;
      const alertId = str(d.alertId);
      switch (r.kind) {
        case 'run.started':
          if (d.runId === runId && !figures.run.startedAt)
            figures.run = { ...figures.run, startedAt: r.at, ...(str(d.source) ? { source: str(d.source) } : {}) };
          break;
        case 'run.ended':
          if (d.runId === runId) figures.run = { ...figures.run, endedAt: r.at, ...(str(d.reason) ? { endReason: str(d.reason) } : {}) };
          break;
        case 'alert.acknowledged':
          if (alertId && alertIds.has(alertId)) {
            push(figures.acknowledgements, {
              alertId,
              who: str(d.who) ?? r.actor ?? 'unknown',
              when: str(d.when) ?? r.at,
              seq: r.seq,
              ...(str(d.comment) ? { comment: str(d.comment) } : {}),
              ...(str(d.via) ? { via: str(d.via) } : {}),
            });
          }
          break;
        case 'alert.delivered':
          if (alertId && alertIds.has(alertId) && str(d.sink)) {
            push(figures.deliveries, {
              alertId,
              sink: str(d.sink)!,
              at: r.at,
              ...(str(d.state) ? { state: str(d.state) } : {}),
              ...(num(d.attempts) ? { attempts: num(d.attempts) } : {}),
            });
          }
          break;
        case 'config.loaded':
          push(configs, {
            at: r.at,
            seq: r.seq,
            configSha256: str(d.configSha256) ?? '',
            modelCardSha256: str(d.modelCardSha256) ?? '',
            modelName: str(d.modelName) ?? '',
            modelVersion: str(d.modelVersion) ?? '',
            ...(typeof d.calibrated === 'boolean' ? { calibrated: d.calibrated } : {}),
          });
          break;
        case 'calibration.written':
          push(calibrations, {
            at: r.at,
            seq: r.seq,
            modelName: str(d.modelName) ?? '',
            modelVersion: str(d.modelVersion) ?? '',
            modelCardSha256: str(d.modelCardSha256) ?? '',
            ...(str(d.camera) ? { camera: str(d.camera) } : {}),
            ...(num(d.frames) !== undefined ? { frames: num(d.frames) } : {}),
          });
          break;
        default:
          break;
      }
    }
    if (page.next === undefined || page.records.length === 0) break;
    after = page.next;
  }
  const fromMs = figures.run.startedAt ? Date.parse(figures.run.startedAt) : span.fromMs;
  const toMs = figures.run.endedAt ? Date.parse(figures.run.endedAt) : span.toMs;
  figures.configs = inForce(configs, fromMs, toMs);
  figures.calibrations = inForce(calibrations, fromMs, toMs, (c) => c.camera ?? '');
  return figures;
}
