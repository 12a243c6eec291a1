/** The report's sections as HTML fragments, from the figures, the charts and the evidence pictures. */
import type { AlertSummary } from './alerts.js';
import type { EvidencePicture } from './evidence.js';
import type { CameraFigures, ClassificationFigures, DetectionFigures, ReportFigures } from './figures.js';
import { countOf, duration, esc, int, ratio, table, time } from './format.js';

export interface EvidenceItem {
  frameId: string;
  capturedAt: string;
  pPG: number;
  picture?: EvidencePicture;
  /** Why there is no picture (frame not on the topic any more, undecodable). */
  missing?: string;
}

export interface ReportView {
  figures: ReportFigures;
  /** Trend SVG per camera. */
  charts: Map<string, string>;
  /** Evidence per alert id, in the order shown. */
  evidence: Map<string, EvidenceItem[]>;
}

const ONSET_SOURCE: Record<string, string> = {
  'first-pg-labelled-frame': 'the first frame labelled PG (ground truth)',
  'alert-first-pg-frame': "the alert's first PG frame (detector evidence; no PG label for this camera)",
};

export function summarySection(f: ReportFigures): string {
  const rows = f.cameras.map((c) => [
    `<a href="#cam-${esc(c.camera)}">${esc(c.camera)}</a>`,
    int(c.frames),
    countOf(c.unusable, c.frames),
    int(c.predicted.pg),
    c.detection.alarmAt ? time(c.detection.alarmAt) : 'no PG alert',
    c.detection.onset ? time(c.detection.onset.at) : '–',
    duration(c.detection.delaySeconds),
    c.classification ? ratio(c.classification.f1) : '–',
  ]);
  const t = f.totals;
  return `<section id="summary"><h2>Summary</h2>
${table(['camera', 'frames', 'unusable', 'predicted PG', 'PG alarm at', 'onset', 'detection delay', 'F1 (PG)'], rows)}
<p>${int(t.frames)} frames from ${f.cameras.length} camera(s); ${countOf(t.unusable, t.frames)} unusable; ${int(t.deadLettered)} dead-lettered; ${int(t.duplicates)} duplicate prediction(s) ignored; ${f.alerts.length} alert(s), ${f.acknowledgements.length} acknowledged.</p>
</section>`;
}

function detectionBlock(d: DetectionFigures): string {
  const rows: [string, string][] = [];
  if (d.onset) rows.push(['onset', `${time(d.onset.at)} — frame <code>${esc(d.onset.frameId)}</code>; taken from ${esc(ONSET_SOURCE[d.onset.source])}`]);
  else rows.push(['onset', 'no PG onset seen (no PG-labelled frame, no PG alert)']);
  rows.push([
    'alarm',
    d.alarmAt
      ? `${time(d.alarmAt)} (alert <code>${esc(d.alertId)}</code> starts: capture time of the frame that tripped the detector)`
      : 'no PG alert in this run',
  ]);
  rows.push(['detection delay', d.delaySeconds === null ? '–' : `${duration(d.delaySeconds)} (alarm − onset)`]);
  if (d.emittedAfterSeconds !== null) {
    const odd = d.emittedAfterSeconds < 0 || d.emittedAfterSeconds > 3600 ? '; the camera and broker clocks differ, or the frames were replayed' : '';
    rows.push(['alert on the topic', `${duration(d.emittedAfterSeconds)} after the alarm frame's capture time (broker clock vs camera clock${odd})`]);
  }
  const note = d.note ? `<p class="note">${esc(d.note)}</p>` : '';
  return `<h3>Onset and detection</h3>${table(
    ['', ''],
    rows.map(([k, v]) => [esc(k), v]),
    'kv',
  )}${note}`;
}

export function classificationBlock(c: ClassificationFigures | null, labelled: { pg: number; cex: number }): string {
  if (!c) {
    const some = labelled.pg + labelled.cex;
    return `<h3>Precision and recall</h3><p>No usable frame has a label${some ? ` (${int(some)} unusable frame(s) do)` : ''}: precision and recall cannot be computed.</p>`;
  }
  const m = c.confusion;
  return `<h3>Precision and recall (PG positive, ${int(c.support)} labelled usable frames)</h3>
${table(['precision', 'recall', 'F1', 'accuracy'], [[ratio(c.precision), ratio(c.recall), ratio(c.f1), ratio(c.accuracy)]])}
${table(
  ['actual \\ predicted', 'cex', 'pg'],
  [
    ['cex', int(m.tn), int(m.fp)],
    ['pg', int(m.fn), int(m.tp)],
  ],
  'confusion',
)}`;
}

function qualityBlock(c: CameraFigures): string {
  const reasons = Object.entries(c.unusableByReason);
  const rows = reasons.map(([reason, n]) => [esc(reason), countOf(n, c.frames)]);
  return `<h3>Data quality</h3>
<p>${int(c.frames)} frames: ${countOf(c.usable, c.frames)} usable, ${countOf(c.unusable, c.frames)} unusable, ${int(c.deadLettered)} dead-lettered (never classified).</p>
${reasons.length ? table(['unusable: reason', 'frames'], rows, 'quality') : '<p>No unusable frames.</p>'}`;
}

function evidenceBlock(alert: AlertSummary, items: EvidenceItem[]): string {
  if (alert.evidence.frames.length === 0) return '';
  const figures = items.map((e) => {
    const body = e.picture
      ? `<img src="${e.picture.dataUri}" width="${e.picture.width}" height="${e.picture.height}" alt="evidence frame ${esc(e.frameId)}">`
      : `<div class="missing">${esc(e.missing ?? 'no picture')}</div>`;
    const tiles = e.picture ? `, ${e.picture.tiles} PG tile(s) outlined` : '';
    return `<figure class="evidence">${body}<figcaption><code>${esc(e.frameId)}</code><br>${time(e.capturedAt)} · P(PG) ${e.pPG.toFixed(3)}${tiles}</figcaption></figure>`;
  });
  const shown = items.length < alert.evidence.frames.length ? ` (${items.length} of ${alert.evidence.frames.length} shown)` : '';
  return `<h3>Evidence of alert <code>${esc(alert.id)}</code>${shown}</h3><div class="evidence-grid">${figures.join('\n')}</div>`;
}

export function cameraSection(c: CameraFigures, view: ReportView): string {
  const alerts = view.figures.alerts.filter((a) => a.camera === c.camera);
  const max = c.maxPPG ? `highest P(PG) ${c.maxPPG.pPG.toFixed(3)} at ${time(c.maxPPG.at)}` : 'no usable frame';
  return `<section class="camera" id="cam-${esc(c.camera)}"><h2>Camera ${esc(c.camera)}</h2>
<p>${time(c.from)} → ${time(c.to)} · ${int(c.frames)} frames · ${max}${c.meanPPG === null ? '' : ` · mean P(PG) ${c.meanPPG.toFixed(3)}`}</p>
<div class="chart">${view.charts.get(c.camera) ?? ''}</div>
<p class="legend">Blue: P(PG)${c.trend.framesPerPoint > 1 ? ` (highest of every ${c.trend.framesPerPoint} frames)` : ''}; grey: mean; dashed: threshold 0.5; red band: alarm; orange: onset.</p>
${detectionBlock(c.detection)}
${classificationBlock(c.classification, c.labelled)}
${qualityBlock(c)}
${alerts.map((a) => evidenceBlock(a, view.evidence.get(a.id) ?? [])).join('\n')}
</section>`;
}

export function alertsSection(f: ReportFigures): string {
  const rows = f.alerts.map((a) => [
    `<code>${esc(a.id)}</code>`,
    esc(a.camera),
    esc(a.reason),
    esc(a.action),
    time(a.startsAt),
    time(a.endsAt),
    esc(a.state),
    a.changes.map((c) => `${esc(c.kind)} ${time(c.recordedAt)}`).join('<br>'),
  ]);
  const acks = f.acknowledgements.map((a) => [
    `<code>${esc(a.alertId)}</code>`,
    esc(a.camera),
    a.by ? `<strong class="ack-by">${esc(a.by)}</strong>` : '<em>not recorded</em>',
    time(a.at),
    esc(a.comment ?? ''),
    esc(a.via ?? ''),
    esc(a.source === 'alerts+audit' ? 'alerts topic, audit trail' : a.source === 'audit' ? 'audit trail' : 'alerts topic'),
  ]);
  return `<section id="alerts"><h2>Alerts and acknowledgements</h2>
${rows.length ? table(['alert', 'camera', 'reason', 'action', 'starts', 'ends', 'state', 'changes (on the alerts topic)'], rows) : '<p>No alerts in this run.</p>'}
<h3>Acknowledgements</h3>
${acks.length ? table(['alert', 'camera', 'acknowledged by', 'at', 'comment', 'via', 'recorded in'], acks, 'acks') : '<p>No alert was acknowledged.</p>'}
</section>`;
}

export function qualitySection(f: ReportFigures): string {
  const byReason = new Map<string, number>();
  for (const c of f.cameras) for (const [r, n] of Object.entries(c.unusableByReason)) byReason.set(r, (byReason.get(r) ?? 0) + n);
  const unusable = [...byReason].sort((a, b) => b[1] - a[1]).map(([r, n]) => [esc(r), countOf(n, f.totals.frames)]);
  const d = f.deadLetters;
  const stages = Object.entries(d.byStage).map(([s, n]) => [esc(s), int(n)]);
  const reasons = d.byReason.slice(0, 20).map((r) => [esc(r.reason), int(r.count)]);
  return `<section id="quality"><h2>Data quality</h2>
<h3>Unusable frames by reason (all cameras)</h3>
${unusable.length ? table(['reason', 'frames'], unusable, 'quality') : '<p>No unusable frames.</p>'}
<h3>Dead-lettered and skipped records</h3>
<p>${int(d.total)} record(s) of this run went to the dead-letter topic${d.byCameraAndTime ? ` (${int(d.byCameraAndTime)} of them matched by camera and time, having no run id)` : ''}; ${int(f.totals.duplicates)} duplicate prediction(s) (redeliveries) were counted once.</p>
${stages.length ? table(['stage', 'records'], stages) : ''}
${reasons.length ? table(['reason', 'records'], reasons) : ''}
</section>`;
}

/** A card's calibration (`{status, camera?, calibratedAt?, note?}`) in words, anything else as JSON. */
function calibrationCell(calibration: unknown): string {
  if (calibration === undefined) return "<em>none recorded: the model card's default operating threshold (uncalibrated for this plant)</em>";
  const c = calibration as Record<string, unknown>;
  if (c && typeof c === 'object' && typeof c.status === 'string') {
    const words = [
      c.status === 'calibrated'
        ? '<strong>calibrated</strong>'
        : `<strong>${esc(c.status)}</strong>${c.status === 'uncalibrated' ? " (the default card: not refitted on this plant's frames)" : ''}`,
      typeof c.camera === 'string' ? `for camera ${esc(c.camera)}` : '',
      typeof c.calibratedAt === 'string' ? `on ${time(c.calibratedAt)}` : '',
    ]
      .filter(Boolean)
      .join(' ');
    return `${words}${typeof c.note === 'string' ? `<br>${esc(c.note)}` : ''}`;
  }
  return `<pre>${esc(JSON.stringify(calibration, null, 2))}</pre>`;
}

export function modelSection(f: ReportFigures): string {
  const rows = f.models.map((m) => [
    esc(m.model),
    esc(`${m.backend} (${m.device})`),
    calibrationCell(m.calibration),
    int(m.frames),
    `${time(m.from)} →<br>${time(m.to)}`,
  ]);
  return `<section id="model"><h2>Model and calibration</h2>
${rows.length ? table(['model', 'backend', 'calibration', 'frames', 'used'], rows) : '<p>No predictions: no model was used in this run.</p>'}
</section>`;
}

export function notesSection(f: ReportFigures): string {
  if (f.notes.length === 0) return '';
  return `<section id="notes"><h2>Notes</h2><ul>${f.notes.map((n) => `<li>${esc(n)}</li>`).join('')}</ul></section>`;
}

export function auditSection(f: ReportFigures): string {
  const a = f.audit;
  if (!a)
    return `<section id="audit"><h2>Run record (audit trail)</h2><p>No audit trail was given to this report; acknowledgements are as the alerts topic carries them.</p></section>`;
  const run: [string, string][] = [
    ['run started', a.run.startedAt ? `${time(a.run.startedAt)}${a.run.source ? ` (by ${esc(a.run.source)})` : ''}` : 'not recorded'],
    ['run ended', a.run.endedAt ? `${time(a.run.endedAt)}${a.run.endReason ? ` (${esc(a.run.endReason)})` : ''}` : 'not recorded'],
    ['records consulted', a.consulted.records ? `${int(a.consulted.records)} (seq ${a.consulted.firstSeq}–${a.consulted.lastSeq})` : 'the trail is empty'],
  ];
  const configs = a.configs.map((c) => [
    time(c.at),
    esc(`${c.modelName} ${c.modelVersion}`),
    c.calibrated === undefined ? '–' : c.calibrated ? 'yes' : '<strong>no (uncalibrated default)</strong>',
    `<code>${esc(c.modelCardSha256)}</code>`,
    `<code>${esc(c.configSha256)}</code>`,
  ]);
  const calibrations = a.calibrations.map((c) => [
    time(c.at),
    esc(c.camera ?? 'all cameras'),
    esc(`${c.modelName} ${c.modelVersion}`),
    c.frames === undefined ? '–' : int(c.frames),
    `<code>${esc(c.modelCardSha256)}</code>`,
  ]);
  const deliveries = a.deliveries.map((d) => [
    `<code>${esc(d.alertId)}</code>`,
    esc(d.sink),
    esc(d.state ?? ''),
    d.attempts === undefined ? '–' : int(d.attempts),
    time(d.at),
  ]);
  return `<section id="audit"><h2>Run record (audit trail)</h2>
${table(
  ['', ''],
  run.map(([k, v]) => [esc(k), v]),
  'kv',
)}
<h3>Configuration and model card in force</h3>
${configs.length ? table(['loaded', 'model', 'calibrated', 'model card sha256', 'configuration sha256'], configs) : '<p>No configuration record before or during the run.</p>'}
<h3>Calibrations</h3>
${calibrations.length ? table(['written', 'camera', 'model', 'frames', 'model card sha256'], calibrations) : '<p>No calibration was written before or during the run: the model runs on its default (uncalibrated) operating threshold.</p>'}
<h3>Alert deliveries</h3>
${deliveries.length ? table(['alert', 'sink', 'state', 'attempts', 'delivered'], deliveries) : '<p>No delivery recorded.</p>'}
</section>`;
}
