/**
 * The alert lifecycle's pure decisions: state that survives a restart (snapshot → restore gives
 * the same alert id for the same onset, a firing alert is neither forgotten nor fired again),
 * replayed records, camera-silent alerts; and the delivery helpers (backoff, offsets, signatures).
 */
import { assert, describe, expect, it } from 'vitest';
import type { Alert } from '../src/bus/messages.js';
import { AlertSchema } from '../src/bus/messages.js';
import {
  AlertBook,
  AlertLifecycle,
  OffsetTracker,
  OnsetDetector,
  backoffDelay,
  checkBackoff,
  signWebhook,
  webhookSignatureProblem,
  type RunSnapshot,
  type StateRecord,
} from '../src/alert/index.js';
import { alert as buildAlert, predictionSequence, T0 } from './helpers/messages.js';

/** Each call: camera `id`'s next frame, 100 ms after the last (frame ids `<id>-<runId>-<n>`). */
const camera = (id: string, runId = 'run-1') => predictionSequence({ camera: id, runId });

/** What restore() gets back from Kafka: the latest alert versions and the latest snapshot per run. */
function saved(alerts: Alert[], records: StateRecord[]): [Alert[], RunSnapshot[]] {
  const latest = new Map<string, RunSnapshot | null>();
  for (const r of records) latest.set(r.key, r.snapshot);
  return [alerts.map((a) => structuredClone(a)), [...latest.values()].filter((s): s is RunSnapshot => s !== null).map((s) => JSON.parse(JSON.stringify(s)))];
}

describe('AlertLifecycle across a restart', () => {
  it('resumes a CUSUM excursion: the onset split by the restart fires once, with the id an uninterrupted run gives', () => {
    const uninterrupted = new AlertLifecycle();
    const a = camera('cam-1');
    const stream = [...Array.from({ length: 30 }, () => a(0.02)), a(0.9), a(0.9), a(0.9)];
    const fired = stream.map((p, i) => uninterrupted.observe(p, T0 + i).fired).filter(Boolean);
    expect(fired).toHaveLength(1);

    const before = new AlertLifecycle();
    const records: StateRecord[] = [];
    stream.slice(0, 32).forEach((p, i) => {
      expect(before.observe(p, T0 + i, { partition: 0, offset: String(i) }).fired).toBeUndefined();
      records.push(...before.snapshots(T0 + i));
    });
    const after = new AlertLifecycle();
    expect(after.restore(...saved([], records))).toEqual({ runs: 1, resumed: 1, firing: 0 });
    const onset = after.observe(stream[32]!, T0 + 32, { partition: 0, offset: '32' });
    expect(onset.fired?.id).toBe(fired[0]!.id);
    expect(onset.fired?.evidence.firstPgFrameId).toBe(stream[30]!.frameId); // the evidence frames came back too
    expect(onset.fired?.evidence.frames.map((f) => f.pPG)).toEqual([0.9, 0.9, 0.9]);
  });

  it('keeps a firing alert: replayed records are skipped, more PG frames fire nothing new, clean frames resolve it', () => {
    const before = new AlertLifecycle({ resolveAfterCleanFrames: 3 });
    const a = camera('cam-1');
    const records: StateRecord[] = [];
    const alerts: Alert[] = [];
    const stream = [a(0.02), a(0.99), a(0.99)];
    stream.forEach((p, i) => {
      const seen = before.observe(p, T0 + i, { partition: 2, offset: String(10 + i) });
      alerts.push(...seen.changes.map((c) => c.alert));
      records.push(...before.snapshots(T0 + i));
    });
    expect(alerts).toHaveLength(1);
    expect(AlertSchema.parse(alerts[0])).toMatchObject({ state: 'firing', reason: 'pg-onset', action: 'stop-batch' });

    const after = new AlertLifecycle({ resolveAfterCleanFrames: 3 });
    expect(after.restore(...saved(alerts, records))).toMatchObject({ firing: 1 });
    expect(after.book.firing().map((x) => x.id)).toEqual([alerts[0]!.id]);
    // The uncommitted records come again after the restart: already applied, so skipped.
    expect(after.observe(stream[2]!, T0 + 5, { partition: 2, offset: '12' })).toMatchObject({ skipped: 'replayed', changes: [] });
    // The camera goes on filming PG: still the one alert.
    for (let i = 0; i < 5; i++) expect(after.observe(a(0.99), T0 + 10 + i, { partition: 2, offset: String(13 + i) }).changes).toEqual([]);
    const resolved = [a(0.01), a(0.01), a(0.01)].flatMap((p, i) => after.observe(p, T0 + 20 + i, { partition: 2, offset: String(18 + i) }).changes);
    expect(resolved).toMatchObject([{ kind: 'resolved', alert: { id: alerts[0]!.id, state: 'resolved' } }]);
  });

  it('the alerts topic wins over an older snapshot, and an acknowledgement survives', () => {
    const before = new AlertLifecycle();
    const a = camera('cam-1');
    before.observe(a(0.99), T0);
    const fired = before.observe(a(0.99), T0 + 1).fired!;
    const acked = before.acknowledge(fired.id, 'operator-7', T0 + 2)!;
    expect(acked.change?.kind).toBe('acknowledged');
    expect(before.acknowledge(fired.id, 'someone-else', T0 + 3)?.change).toBeUndefined(); // once

    const after = new AlertLifecycle();
    after.restore([acked.alert], []); // the snapshot never made it: the alert alone is enough
    expect(after.book.get(fired.id)).toMatchObject({ state: 'firing', acknowledgedBy: 'operator-7' });
    expect(after.observe(a(0.99), T0 + 4).changes).toEqual([]);
    expect(after.observe(a(0.99), T0 + 5).changes).toEqual([]);
  });

  it('does not resume a snapshot taken under another detector configuration', () => {
    const before = new AlertLifecycle({ detector: { kind: 'k-of-n', k: 2, n: 4 } });
    const a = camera('cam-1');
    before.observe(a(0.9), T0);
    const after = new AlertLifecycle({ detector: { kind: 'k-of-n', k: 2, n: 5 } });
    expect(after.restore([], saved([], before.snapshots(T0))[1])).toMatchObject({ runs: 1, resumed: 0 });
    expect(after.observe(a(0.9), T0 + 1).fired).toBeUndefined(); // the first hit was not carried over
  });
});

describe('camera-silent alerts', () => {
  it('fires once for a running camera that went quiet, with its own id and action, and resolves when frames return', () => {
    const life = new AlertLifecycle({ silentAfterMs: 60_000 });
    const a = camera('cam-1');
    const b = camera('cam-2');
    expect(life.checkSilence(T0 + 10 * 60_000)).toEqual([]); // no camera running yet: nothing to be silent
    life.observe(a(0.02), T0);
    life.observe(b(0.02), T0);
    life.observe(b(0.02), T0 + 50_000);
    expect(life.checkSilence(T0 + 59_999)).toEqual([]);
    const [silent, ...more] = life.checkSilence(T0 + 60_000);
    expect(more).toEqual([]);
    assert(silent, 'a camera-silent alert');
    expect(AlertSchema.parse(silent.alert)).toMatchObject({
      camera: 'cam-1',
      state: 'firing',
      reason: 'camera-silent',
      action: 'check-camera',
      evidence: { lastFrameId: 'cam-1-run-1-1', silentSeconds: 60 },
    });
    expect(silent.alert.id).toMatch(/^silent-[0-9a-f]{16}$/);
    expect(life.checkSilence(T0 + 120_000).map((c) => c.alert.camera)).toEqual(['cam-2']); // cam-1 is not raised twice
    const back = life.observe(a(0.02), T0 + 130_000).changes;
    expect(back).toMatchObject([{ kind: 'resolved', alert: { id: silent.alert.id, state: 'resolved' } }]);
  });

  it('is not raised for a camera whose PG alert fires (the batch was stopped), and survives a restart with its id', () => {
    const life = new AlertLifecycle({ silentAfterMs: 1000 });
    const a = camera('cam-1');
    life.observe(a(0.99), T0);
    expect(life.observe(a(0.99), T0).fired).toBeDefined();
    expect(life.checkSilence(T0 + 5000)).toEqual([]);

    const quiet = new AlertLifecycle({ silentAfterMs: 1000 });
    const c = camera('cam-3');
    quiet.observe(c(0.01), T0);
    const records = quiet.snapshots(T0);
    const [silent] = quiet.checkSilence(T0 + 1000);
    assert(silent, 'a camera-silent alert');
    records.push(...quiet.snapshots(T0 + 1000));
    const restarted = new AlertLifecycle({ silentAfterMs: 1000 });
    restarted.restore(...saved([silent.alert], records));
    expect(restarted.checkSilence(T0 + 9000)).toEqual([]); // restored as firing: not raised again
    // Restarted before the alert was written: raised again with the same id.
    const early = new AlertLifecycle({ silentAfterMs: 1000 });
    early.restore(...saved([], records.slice(0, 1)));
    expect(early.checkSilence(T0 + 9000).map((x) => x.alert.id)).toEqual([silent.alert.id]);
  });
});

describe('camera-silent after a restart', () => {
  it('counts silence from the restart, not from the last frame before a downtime longer than silentAfterMs', () => {
    const before = new AlertLifecycle({ silentAfterMs: 60_000 });
    const a = camera('cam-1');
    before.observe(a(0.02), T0);
    const records = before.snapshots(T0);
    const restartedAt = T0 + 3_600_000; // the stage was down an hour; the camera went on filming
    const after = new AlertLifecycle({ silentAfterMs: 60_000 });
    after.restore(...saved([], records), restartedAt);
    expect(after.checkSilence(restartedAt + 1000)).toEqual([]);
    expect(after.checkSilence(restartedAt + 59_999)).toEqual([]);
    expect(after.observe(a(0.02), restartedAt + 30_000).changes).toEqual([]); // its frames arrive: nothing to report

    const quiet = new AlertLifecycle({ silentAfterMs: 60_000 });
    quiet.restore(...saved([], records), restartedAt);
    const [silent, ...more] = quiet.checkSilence(restartedAt + 60_000); // still nothing a minute after the start: silent
    expect(more).toEqual([]);
    assert(silent, 'a camera-silent alert');
    expect(silent.alert.evidence.lastSeenAt).toBe(new Date(T0).toISOString()); // the evidence names the real last frame
  });
});

describe('AlertBook', () => {
  it('evicts the alert changed longest ago, not one just acknowledged; lists newest first', () => {
    const book = new AlertBook(3);
    const at = (minutes: number) => new Date(T0 + minutes * 60_000).toISOString();
    const old = buildAlert({ id: 'pg-old', state: 'resolved', startsAt: at(0) });
    book.put(old);
    book.put(buildAlert({ id: 'pg-b', state: 'resolved', startsAt: at(1) }));
    book.put(buildAlert({ id: 'pg-c', state: 'resolved', startsAt: at(2) }));
    book.put({ ...old, acknowledgedAt: at(3), acknowledgedBy: 'operator-7' }); // an operator acknowledges the oldest one now
    book.put(buildAlert({ id: 'pg-d', state: 'firing', startsAt: at(4) }));
    expect(book.get('pg-old')).toMatchObject({ acknowledgedBy: 'operator-7' });
    expect(book.get('pg-b')).toBeUndefined(); // the one untouched longest went
    expect(book.list().map((a) => a.id)).toEqual(['pg-d', 'pg-c', 'pg-old']);
  });
});

describe('delivery helpers', () => {
  it('backs off 250 ms doubling to the 30 s cap, spread by the jitter', () => {
    const fixed = checkBackoff({ jitter: 0 });
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9, 20].map((n) => backoffDelay(n, fixed))).toEqual([250, 500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    const spread = checkBackoff({ baseDelayMs: 1000, maxDelayMs: 60_000, jitter: 0.2 });
    expect(backoffDelay(1, spread, () => 0)).toBe(800);
    expect(backoffDelay(1, spread, () => 0.999999)).toBe(1200);
    expect(backoffDelay(10, spread, () => 0.999999)).toBe(60_000);
    expect(() => checkBackoff({ baseDelayMs: 100, maxDelayMs: 50 })).toThrow(/maxDelayMs must be ≥ baseDelayMs \(100\), got 50/);
  });

  it('commits past a record only when it and every record before it finished', () => {
    const t = new OffsetTracker();
    const g = [t.track(0, '5'), t.track(0, '6'), t.track(0, '7'), t.track(1, '0')];
    expect(t.track(0, '6')).toBeUndefined(); // redelivered while tracked
    expect(t.complete(0, '6', g[1]!)).toBeUndefined();
    expect(t.complete(0, '5', g[0]!)).toBe('7');
    expect(t.complete(1, '0', g[3]!)).toBe('1');
    t.reset();
    expect(t.complete(0, '7', g[2]!)).toBeUndefined(); // from before the rebalance: ignored
    expect(t.pending).toBe(0);
  });

  it('signs timestamp and body; a receiver refuses a changed body, another secret or a stale timestamp', () => {
    const body = '{"id":"pg-1"}';
    const ts = Math.floor(T0 / 1000);
    const headers = { 'x-crystalwatch-timestamp': String(ts), 'x-crystalwatch-signature': signWebhook(body, 'k', ts) };
    expect(headers['x-crystalwatch-signature']).toMatch(/^v1=[0-9a-f]{64}$/);
    expect(webhookSignatureProblem(body, headers, 'k', { nowMs: T0 + 1000 })).toBeUndefined();
    expect(webhookSignatureProblem(body.replace('1', '2'), headers, 'k', { nowMs: T0 })).toMatch(/does not match/);
    expect(webhookSignatureProblem(body, headers, 'other', { nowMs: T0 })).toMatch(/does not match/);
    expect(webhookSignatureProblem(body, headers, 'k', { nowMs: T0 + 600_000 })).toMatch(/600 s away from now/);
    expect(webhookSignatureProblem(body, {}, 'k')).toMatch(/missing/);
  });

  it('a k-of-n detector resumes its window from a snapshot', () => {
    const d = new OnsetDetector({ kind: 'k-of-n', k: 3, n: 5 });
    [0.9, 0.1, 0.9].forEach((p) => d.update(p));
    const copy = new OnsetDetector({ kind: 'k-of-n', k: 3, n: 5 });
    expect(copy.restore(JSON.parse(JSON.stringify(d.snapshot())))).toBe(true);
    expect(copy.statistic).toBe(2);
    expect(copy.update(0.9).alarm).toBe(true);
    expect(new OnsetDetector({ kind: 'cusum' }).restore(d.snapshot())).toBe(false);
  });
});
