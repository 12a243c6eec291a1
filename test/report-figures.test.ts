/** The report's pure parts: trend downsampling, folding alerts and predictions, attribution, figures. */
import { assert, describe, expect, it } from 'vitest';
import { deadLetterRecord } from '../src/bus/dead-letter.js';
import { decodeDeadLetter, type Alert, type Prediction } from '../src/bus/messages.js';
import { RunAggregator } from '../src/report/aggregate.js';
import { AlertHistory, type AlertSummary } from '../src/report/alerts.js';
import { inForce, readAudit, type AuditEntry } from '../src/report/audit.js';
import { scopeSvgIds } from '../src/report/charts.js';
import { attribution, DeadLetterTally, reasonClass } from '../src/report/dead-letters.js';
import { chooseEvidence } from '../src/report/evidence.js';
import { acknowledgements, classification, detection } from '../src/report/figures.js';
import { duration, esc, time } from '../src/report/format.js';
import { LabelBook } from '../src/report/labels.js';
import { TrendDownsampler } from '../src/report/trend.js';
import { alert as buildAlert, prediction as buildPrediction } from './helpers/messages.js';

const T0 = Date.UTC(2026, 0, 1);
const at = (s: number) => new Date(T0 + s * 1000).toISOString();

describe('TrendDownsampler', () => {
  it('keeps 100,000 frames in at most 2,000 points and never loses the one spike', () => {
    const trend = new TrendDownsampler(2000);
    for (let i = 0; i < 100_000; i += 1) trend.add(T0 + i * 100, i === 73_456 ? 0.97 : 0.02);
    const points = trend.points();
    expect(points.length).toBeLessThanOrEqual(2000);
    expect(points.length).toBeGreaterThan(1000);
    expect(points.reduce((n, p) => n + p.frames, 0)).toBe(100_000);
    const top = points.reduce((a, b) => (b.max > a.max ? b : a));
    expect(top).toMatchObject({ max: 0.97, at: T0 + 73_456 * 100 });
    expect(trend.framesPerPoint).toBe(64);
    expect(points[0]!.mean).toBeCloseTo(0.02, 10);
  });

  it('stays within an odd bound, and keeps every frame while the run is short', () => {
    const odd = new TrendDownsampler(7);
    for (let i = 0; i < 1000; i += 1) odd.add(i, i / 1000);
    expect(odd.points().length).toBeLessThanOrEqual(7);
    expect(odd.points().reduce((n, p) => n + p.frames, 0)).toBe(1000);
    const short = new TrendDownsampler(10);
    [0.1, 0.5, 0.2].forEach((p, i) => short.add(i, p));
    expect(short.points().map((p) => p.max)).toEqual([0.1, 0.5, 0.2]);
  });
});

const prediction = (i: number, over: Partial<Prediction> = {}): Prediction =>
  buildPrediction({ frameId: `cam-1-${i}`, runId: 'r1', capturedAt: at(i), pPG: 0.1, predicted: 'cex', ...over });

describe('RunAggregator and LabelBook', () => {
  it('counts confusion cells from the frame label, a frame lab result or a camera span, in that order', () => {
    const labels = new LabelBook();
    labels.add({ camera: 'cam-1', from: at(10), to: at(19), label: 'pg' });
    labels.add({ frameId: 'cam-1-12', label: 'cex' });
    const agg = new RunAggregator('r1', labels);
    for (let i = 0; i < 20; i += 1) agg.add(prediction(i, i >= 11 ? { pPG: 0.9, predicted: 'pg' } : {}), {}, T0);
    agg.add(prediction(3, { label: 'pg' }), {}, T0); // a redelivery: not counted again
    agg.add(prediction(99, { runId: 'r2' }), {}, T0);
    const cam = agg.cameras.get('cam-1')!;
    // 10..19 span-labelled pg except 12 (its own lab result: cex); predicted pg from 11.
    expect(cam.confusion).toEqual({ tp: 8, fn: 1, fp: 1, tn: 0 });
    expect(cam.labelled).toEqual({ pg: 9, cex: 1 });
    expect(cam.firstPgLabel).toEqual({ atMs: T0 + 10_000, frameId: 'cam-1-10' });
    expect(agg.duplicates).toBe(1);
    expect(cam.frames).toBe(20);
  });

  it('bounds the reasons of unusable frames and the label book', () => {
    const agg = new RunAggregator('r1');
    for (let i = 0; i < 100; i += 1) agg.add(prediction(i, { pPG: null, predicted: 'unusable', reason: `reason-${i}` }), {}, T0);
    const reasons = agg.cameras.get('cam-1')!.unusableByReason;
    expect(reasons.size).toBe(31);
    expect(reasons.get('(other reasons)')).toBe(70);
    const book = new LabelBook(2, 1);
    for (const id of ['a', 'b', 'c']) book.add({ frameId: id, label: 'pg' });
    book.add({ camera: 'x', from: at(0), to: at(1), label: 'pg' });
    book.add({ camera: 'x', from: at(2), to: at(3), label: 'pg' });
    expect(book.dropped).toBe(2);
  });
});

const alert = (over: Partial<Alert> = {}): Alert =>
  buildAlert({
    id: 'pg-1',
    runId: 'r1',
    startsAt: at(42),
    evidence: { firstPgFrameId: 'cam-1-40', frames: [40, 41, 42].map((i) => ({ frameId: `cam-1-${i}`, capturedAt: at(i), pPG: 0.9 })) },
    ...over,
  });

describe('AlertHistory', () => {
  it('reads firing, acknowledged and resolved off successive records, once each, for the run only', () => {
    const history = new AlertHistory('r1');
    const ack = alert({ acknowledgedAt: at(50), acknowledgedBy: 'op' });
    history.add(alert(), {}, T0 + 1);
    history.add(alert({ runId: 'r2', id: 'pg-2' }), {}, T0 + 1);
    history.add(ack, { acknowledgedComment: 'stopped' }, T0 + 2);
    history.add(ack, {}, T0 + 3);
    history.add({ ...ack, state: 'resolved', endsAt: at(60) }, {}, T0 + 4);
    const [one, ...rest] = history.list();
    expect(rest).toEqual([]);
    assert(one, 'the alert in the history');
    expect(one.changes.map((c) => c.kind)).toEqual(['firing', 'acknowledged', 'resolved']);
    expect(one).toMatchObject({ state: 'resolved', acknowledgedBy: 'op', acknowledgedComment: 'stopped', endsAt: at(60), firstRecordedMs: T0 + 1 });
    expect([...history.evidenceFrameIds()]).toEqual(['cam-1-40', 'cam-1-41', 'cam-1-42']);
  });
});

describe('dead letters', () => {
  const letter = (headers: Record<string, string>, value: string | null, atMs = T0, key: string | null = 'cam-1') =>
    decodeDeadLetter(
      deadLetterRecord({
        sourceTopic: 't',
        stage: 'classify',
        reason: 'frame cam-1-20260101T0000Z-ab12: empty value (no image bytes)',
        key,
        value,
        headers,
        at: new Date(atMs),
      }).value as Buffer,
    );

  it('attributes a letter by its run-id header or its JSON value, else by camera within the run', () => {
    const byHeader = letter({ 'run-id': 'r1', camera: 'cam-1' }, null);
    const byValue = letter({}, JSON.stringify({ runId: 'r1', camera: 'cam-2' }), T0, null);
    expect(byHeader.ok && attribution(byHeader.value)).toEqual({ runId: 'r1', camera: 'cam-1' });
    expect(byValue.ok && attribution(byValue.value)).toEqual({ runId: 'r1', camera: 'cam-2' });
    const tally = new DeadLetterTally({ runId: 'r1', cameras: new Set(['cam-1']), fromMs: T0 - 1000, toMs: T0 + 1000 });
    for (const l of [byHeader, byValue, letter({}, null), letter({}, null, T0 + 5000), letter({ 'run-id': 'r2' }, null)]) if (l.ok) tally.add(l.value);
    expect(tally.figures()).toEqual({
      total: 3,
      byCameraAndTime: 1,
      byStage: { classify: 3 },
      byCamera: { 'cam-1': 2, 'cam-2': 1 },
      byReason: [{ reason: 'empty value (no image bytes)', count: 3 }],
    });
  });

  it('classes reasons without what differs per record', () => {
    expect(reasonClass('frame headers: run-id: run id "a b" must be 1–64 letters')).toBe('frame headers: run-id: run id "…" must be N–N letters');
  });
});

describe('figures', () => {
  it('precision, recall and F1 with PG positive, defined where the counts allow', () => {
    expect(classification({ tp: 19, fp: 1, tn: 36, fn: 1 })).toMatchObject({ precision: 0.95, recall: 0.95, accuracy: 55 / 57, support: 57 });
    expect(classification({ tp: 0, fp: 0, tn: 10, fn: 0 })).toMatchObject({ precision: null, recall: null, f1: null, accuracy: 1 });
    expect(classification({ tp: 0, fp: 0, tn: 10, fn: 2 })).toMatchObject({ precision: null, recall: 0, f1: 0 });
    expect(classification({ tp: 0, fp: 0, tn: 0, fn: 0 })).toBeNull();
  });

  it('onset from the first PG-labelled frame, else from the alert; missed onsets and early alarms are said', () => {
    const agg = new RunAggregator('r1');
    for (let i = 0; i < 60; i += 1) agg.add(prediction(i, { label: i >= 38 ? 'pg' : 'cex' }), {}, T0);
    const cam = agg.cameras.get('cam-1')!;
    const summary = (a: Alert): AlertSummary => ({ ...a, reason: 'pg-onset', changes: [], firstRecordedMs: Date.parse(a.startsAt) + 1500 });
    expect(detection(cam, [summary(alert())])).toEqual({
      alertId: 'pg-1',
      onset: { at: at(38), frameId: 'cam-1-38', source: 'first-pg-labelled-frame' },
      alarmAt: at(42),
      delaySeconds: 4,
      emittedAfterSeconds: 1.5,
    });
    expect(detection(cam, [summary(alert({ startsAt: at(30) }))])).toMatchObject({
      delaySeconds: -8,
      note: 'the alert fired before the first PG-labelled frame',
    });
    expect(detection(cam, [])).toMatchObject({ alertId: null, note: `PG-labelled frames from ${at(38)} but no PG alert in this run (missed)` });
    const unlabelled = new RunAggregator('r1');
    unlabelled.add(prediction(0), {}, T0);
    expect(detection(unlabelled.cameras.get('cam-1')!, [summary(alert())])).toMatchObject({
      onset: { at: at(40), source: 'alert-first-pg-frame' },
      delaySeconds: 2,
    });
  });

  it('acknowledgements from the alerts topic and the audit trail, merged by alert', () => {
    const a = { ...alert({ acknowledgedAt: at(50), acknowledgedBy: 'op' }), reason: 'pg-onset' as const, changes: [], firstRecordedMs: 0 };
    const b = { ...alert({ id: 'pg-2' }), reason: 'pg-onset' as const, changes: [], firstRecordedMs: 0 };
    const audit = {
      consulted: { records: 2, firstSeq: 1, lastSeq: 2 },
      run: {},
      deliveries: [],
      configs: [],
      calibrations: [],
      acknowledgements: [
        { alertId: 'pg-1', who: 'op', when: at(50), comment: 'stopped', seq: 1 },
        { alertId: 'pg-2', who: 'qa-lead', when: at(70), via: 'opcua', seq: 2 },
      ],
    };
    expect(acknowledgements([a, b], audit)).toEqual([
      { alertId: 'pg-1', camera: 'cam-1', by: 'op', at: at(50), comment: 'stopped', source: 'alerts+audit' },
      { alertId: 'pg-2', camera: 'cam-1', by: 'qa-lead', at: at(70), via: 'opcua', source: 'audit' },
    ]);
    expect(acknowledgements([a], null)).toEqual([{ alertId: 'pg-1', camera: 'cam-1', by: 'op', at: at(50), source: 'alerts' }]);
  });

  it('chooses a bounded set of evidence frames: the first PG frame, the tripping frame and the most confident', () => {
    const frames = Array.from({ length: 20 }, (_, i) => ({ frameId: `f${i}`, capturedAt: at(i), pPG: i === 7 ? 0.99 : 0.5 + i / 100 }));
    const big = { ...alert({ evidence: { firstPgFrameId: 'f2', frames } }), reason: 'pg-onset' as const, changes: [], firstRecordedMs: 0 };
    const chosen = chooseEvidence([big, { ...big, id: 'pg-2' }], 4, 6).get('pg-1')!;
    expect(chosen).toEqual(['f2', 'f7', 'f18', 'f19']);
    expect(chooseEvidence([big, { ...big, id: 'pg-2' }], 4, 6).get('pg-2')).toHaveLength(2);
  });
});

describe('audit trail reading', () => {
  it("pages through the trail and keeps the run's records and what was in force", async () => {
    const entries: AuditEntry[] = [
      { seq: 1, at: at(0), kind: 'config.loaded', data: { configSha256: 'c1', modelCardSha256: 'm1', modelName: 'x', modelVersion: '1' } },
      { seq: 2, at: at(5), kind: 'config.loaded', data: { configSha256: 'c2', modelCardSha256: 'm2', modelName: 'x', modelVersion: '2' } },
      { seq: 3, at: at(10), kind: 'run.started', data: { runId: 'r1', source: 'opcua' } },
      { seq: 4, at: at(20), kind: 'alert.delivered', data: { alertId: 'pg-1', sink: 'webhook', attempts: 2 } },
      { seq: 5, at: at(21), kind: 'alert.delivered', data: { alertId: 'pg-other', sink: 'webhook' } },
      { seq: 6, at: at(30), kind: 'run.ended', data: { runId: 'r1', reason: 'stopped by PG alert' } },
      { seq: 7, at: at(40), kind: 'config.loaded', data: { configSha256: 'c3', modelCardSha256: 'm3', modelName: 'x', modelVersion: '3' } },
    ];
    const source = {
      read: async ({ after = 0, limit }: { after?: number; limit: number }) => {
        const records = entries.filter((e) => e.seq > after).slice(0, Math.min(limit, 2));
        return records.length && records[records.length - 1]!.seq < 7 ? { records, next: records[records.length - 1]!.seq } : { records };
      },
    };
    const figures = await readAudit(source, 'r1', new Set(['pg-1']), { fromMs: 0, toMs: 0 });
    expect(figures.run).toEqual({ startedAt: at(10), source: 'opcua', endedAt: at(30), endReason: 'stopped by PG alert' });
    expect(figures.configs.map((c) => c.configSha256)).toEqual(['c2']);
    expect(figures.deliveries).toEqual([{ alertId: 'pg-1', sink: 'webhook', attempts: 2, at: at(20) }]);
    expect(figures.consulted).toEqual({ records: 7, firstSeq: 1, lastSeq: 7 });
    expect(
      inForce(
        [
          { at: at(1), k: 'a' },
          { at: at(2), k: 'b' },
          { at: at(3), k: 'a' },
        ],
        T0 + 2500,
        T0 + 9000,
        (e) => e.k,
      ).map((e) => e.at),
    ).toEqual([at(1), at(2), at(3)]);
  });
});

describe('formatting', () => {
  it('escapes HTML, writes times in UTC and durations a person reads', () => {
    expect(esc('<b a="1">&\'')).toBe('&lt;b a=&quot;1&quot;&gt;&amp;&#39;');
    expect(time(at(3.25))).toBe('2026-01-01 00:00:03.250 UTC');
    expect([duration(2), duration(-8), duration(200), duration(7300), duration(null)]).toEqual(['2.00 s', '−8.00 s', '3 min 20 s', '2 h 01 min', '–']);
    expect(scopeSvgIds('<clipPath id="clip3"/><g clip-path="url(#clip3)"/><use href="#clip3"/>', 'c1')).toBe(
      '<clipPath id="c1-clip3"/><g clip-path="url(#c1-clip3)"/><use href="#c1-clip3"/>',
    );
  });
});
