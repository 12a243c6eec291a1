/**
 * The batch report of a synthetic run produced into a real embedded broker: two cameras, a PG
 * onset with an alert that is acknowledged and resolved, unusable frames, a dead letter, a
 * redelivered prediction and another run's records that must not count. Rendered with
 * writeRunReport (HTML, JSON, PDF by Chromium) and by the real `crystalwatch report` command.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, assert, beforeAll, describe, expect, it } from 'vitest';
import type { Message } from 'kafkajs';
import { renderFrame } from '../simulator/index.js';
import { startTestBus, noisePng, type TestBus } from './helpers/bus.js';
import { waitForExit } from './helpers/wait.js';
import { createProducer, ensureTopics } from '../src/bus/kafka.js';
import { topicNames } from '../src/bus/topics.js';
import { deadLetterRecord } from '../src/bus/dead-letter.js';
import type { Alert, Prediction } from '../src/bus/messages.js';
import { silentLogger } from '../src/config/logger.js';
import { writeRunReport, ChromiumMissingError, type AuditEntry, type AuditSource, type ReportFigures } from '../src/report/index.js';

const RUN = 'batch-0042';
const T0 = Date.UTC(2026, 2, 3, 10, 0, 0);
const topics = topicNames('crystalwatch.');
const root = path.resolve(import.meta.dirname, '..');
const at = (i: number) => new Date(T0 + i * 1000).toISOString();
const frameId = (camera: string, i: number) => `${camera}-${at(i).replace(/[-:.]/g, '')}-${String(i).padStart(4, '0')}`;

/** cam-a: PG from frame 40 (labelled), a CEX spike at 20, a miss at 45, unusable 10, 11 (out-of-focus) and 12 (black). */
function camA(i: number): Pick<Prediction, 'pPG' | 'predicted' | 'reason' | 'label'> {
  const label = i >= 40 ? 'pg' : 'cex';
  if (i === 10 || i === 11) return { pPG: null, predicted: 'unusable', reason: 'out-of-focus', label };
  if (i === 12) return { pPG: null, predicted: 'unusable', reason: 'black', label };
  const pPG = i === 20 ? 0.7 : i === 45 ? 0.3 : i >= 40 ? 0.95 : 0.03;
  return { pPG, predicted: pPG >= 0.5 ? 'pg' : 'cex', label };
}
/** cam-b: clean, no labels; 3 saturated and 1 blank frame. */
function camB(i: number): Pick<Prediction, 'pPG' | 'predicted' | 'reason'> {
  if (i < 3) return { pPG: null, predicted: 'unusable', reason: 'saturated' };
  if (i === 30) return { pPG: null, predicted: 'unusable', reason: 'blank' };
  return { pPG: 0.02 + (i % 5) * 0.01, predicted: 'cex' };
}

const EVIDENCE = [40, 41, 42];
const tilesOf = new Map<number, Array<{ x: number; y: number; width: number; height: number; pPG: number }>>();

async function produceRun(bus: TestBus): Promise<void> {
  await ensureTopics(bus.kafka, topics, 2);
  const producer = createProducer(bus.kafka);
  await producer.connect();
  const frames: Message[] = [];
  const predictions: Message[] = [];
  for (const camera of ['cam-a', 'cam-b']) {
    for (let i = 0; i < 60; i += 1) {
      const id = frameId(camera, i);
      let image: Buffer;
      if (camera === 'cam-a' && EVIDENCE.includes(i)) {
        const { png, truth } = await renderFrame({ seed: 7, frameIndex: i, tSeconds: 300 + i, pgOnsetS: 200, width: 640, height: 480, camera });
        image = png;
        tilesOf.set(
          i,
          truth.pgBoxes.slice(0, 3).map((b) => ({ ...b, pPG: 0.95 })),
        );
      } else image = await noisePng(96, 72, i + (camera === 'cam-a' ? 0 : 1000));
      frames.push({ key: camera, value: image, headers: { 'frame-id': id, camera, 'captured-at': at(i), 'content-type': 'image/png', 'run-id': RUN } });
      const p: Prediction = {
        frameId: id,
        camera,
        runId: RUN,
        capturedAt: at(i),
        ...(camera === 'cam-a' ? camA(i) : camB(i)),
        ...(tilesOf.has(i) && camera === 'cam-a' ? { tiles: tilesOf.get(i) } : {}),
        model: 'crystalwatch-default 1.2.0',
        backend: 'onnxruntime',
        device: 'cpu',
        latencyMs: 12,
      };
      predictions.push({
        key: camera,
        value: JSON.stringify(camera === 'cam-a' ? { ...p, calibration: { status: 'uncalibrated', note: 'default card, not refitted on this plant' } } : p),
      });
    }
  }
  // A redelivered prediction, and another run's prediction that must not count.
  predictions.push({ key: 'cam-a', value: predictions[5]!.value });
  predictions.push({
    key: 'cam-a',
    value: JSON.stringify({ ...JSON.parse(predictions[6]!.value!.toString()), frameId: 'other-1', runId: 'batch-0041', pPG: 0.99, predicted: 'pg' }),
  });
  await producer.send({ topic: topics.frames, messages: frames });
  await producer.send({ topic: topics.predictions, messages: predictions });

  const firing: Alert = {
    id: 'pg-0123456789abcdef',
    camera: 'cam-a',
    runId: RUN,
    state: 'firing',
    startsAt: at(42),
    reason: 'pg-onset',
    action: 'stop-batch',
    evidence: {
      firstPgFrameId: frameId('cam-a', 40),
      frames: EVIDENCE.map((i) => ({ frameId: frameId('cam-a', i), capturedAt: at(i), pPG: 0.95, tiles: tilesOf.get(i) })),
      statistic: 12.3,
      detector: 'cusum h=11.51',
    },
  };
  const acknowledged: Alert = { ...firing, acknowledgedAt: at(50), acknowledgedBy: 'operator-7' };
  const resolved: Alert = { ...acknowledged, state: 'resolved', endsAt: at(55) };
  const otherRun: Alert = { ...firing, id: 'pg-ffff', runId: 'batch-0041' };
  await producer.send({
    topic: topics.alerts,
    messages: [firing, otherRun, acknowledged, acknowledged, resolved].map((a) => ({ key: a.camera, value: JSON.stringify(a) })),
  });

  const bad = (camera: string, run: string) =>
    deadLetterRecord({
      sourceTopic: topics.frames,
      partition: 0,
      offset: '99',
      stage: 'classify',
      reason: `frame ${camera}-x: empty value (no image bytes)`,
      key: camera,
      value: null,
      headers: { 'frame-id': `${camera}-x`, camera, 'captured-at': at(31), 'content-type': 'image/png', 'run-id': run },
    });
  await producer.send({ topic: topics.deadLetter, messages: [bad('cam-b', RUN), bad('cam-b', 'batch-0041')] });
  const runEvents = [
    { runId: RUN, state: 'started', at: at(-5), by: 'operator-3', source: 'api' },
    { runId: 'batch-0041', state: 'ended', at: at(-6), by: 'operator-3', source: 'api' },
    { runId: RUN, state: 'ended', at: at(60), by: 'shutdown', source: 'shutdown' },
  ];
  await producer.send({ topic: topics.runs, messages: runEvents.map((e) => ({ key: '*', value: JSON.stringify(e) })) });
  await producer.disconnect();
}

const auditRecords: AuditEntry[] = [
  {
    seq: 1,
    at: new Date(Date.now() - 60_000).toISOString(),
    kind: 'config.loaded',
    data: { configSha256: 'a'.repeat(64), modelCardSha256: 'b'.repeat(64), modelName: 'crystalwatch-default', modelVersion: '1.2.0', calibrated: false },
  },
  { seq: 2, at: new Date(Date.now() - 50_000).toISOString(), kind: 'run.started', data: { runId: RUN, source: 'api' } },
  {
    seq: 3,
    at: new Date().toISOString(),
    kind: 'alert.acknowledged',
    actor: 'operator-7',
    data: { alertId: 'pg-0123456789abcdef', who: 'operator-7', when: at(50), comment: 'batch stopped, sample sent to the lab', via: 'web' },
  },
];
const audit: AuditSource = {
  read: async ({ after = 0, limit }) => {
    const records = auditRecords.filter((r) => r.seq > after).slice(0, limit);
    return records.length === limit ? { records, next: records[records.length - 1]!.seq } : { records };
  },
};

let bus: TestBus;
beforeAll(async () => {
  bus = await startTestBus('report-run-');
  await produceRun(bus);
});
afterAll(async () => {
  await bus?.close();
});

describe('writeRunReport', () => {
  let figures: ReportFigures;
  let html: string;
  const out = () => path.join(bus.dir, 'report');

  it("writes report.html, report.json and report.pdf with the run's figures", async () => {
    const phases = new Set<string>();
    const result = await writeRunReport({
      kafka: bus.kafka,
      topics,
      runId: RUN,
      out: out(),
      logger: silentLogger,
      audit,
      onProgress: (phase) => phases.add(phase),
    });
    expect([...phases]).toEqual(['alerts', 'predictions', 'frames', 'charts', 'html', 'pdf']);
    figures = JSON.parse(await readFile(result.json, 'utf8')) as ReportFigures;
    html = await readFile(result.html, 'utf8');

    expect(figures.cameras.map((c) => c.camera)).toEqual(['cam-a', 'cam-b']);
    const [a, b] = figures.cameras;
    assert(a && b, 'figures for both cameras');
    expect(a).toMatchObject({
      frames: 60,
      usable: 57,
      unusable: 3,
      unusableByReason: { 'out-of-focus': 2, black: 1 },
      predicted: { pg: 20, cex: 37 },
      labelled: { pg: 20, cex: 40 },
    });
    expect(a.classification).toMatchObject({ confusion: { tp: 19, fp: 1, tn: 36, fn: 1 }, precision: 0.95, recall: 0.95, support: 57 });
    expect(a.classification!.f1).toBeCloseTo(0.95, 10);
    expect(a.detection).toMatchObject({
      alertId: 'pg-0123456789abcdef',
      onset: { at: at(40), frameId: frameId('cam-a', 40), source: 'first-pg-labelled-frame' },
      alarmAt: at(42),
      delaySeconds: 2,
    });
    expect(b).toMatchObject({ frames: 60, unusable: 4, unusableByReason: { saturated: 3, blank: 1 }, classification: null, deadLettered: 1 });
    expect(b.detection.alertId).toBeNull();
    expect(figures.totals).toMatchObject({ frames: 120, unusable: 7, duplicates: 1, deadLettered: 1 });
    expect(figures.span).toEqual({ from: at(0), to: at(59) });
    expect(figures.run).toMatchObject({ startedAt: at(-5), endedAt: at(60) });
    expect(figures.run.events).toHaveLength(2);
    expect(figures.alerts).toHaveLength(1);
    expect(figures.alerts[0]!.changes.map((c) => c.kind)).toEqual(['firing', 'acknowledged', 'resolved']);
    expect(figures.acknowledgements).toEqual([
      {
        alertId: 'pg-0123456789abcdef',
        camera: 'cam-a',
        by: 'operator-7',
        at: at(50),
        comment: 'batch stopped, sample sent to the lab',
        via: 'web',
        source: 'alerts+audit',
      },
    ]);
    expect(figures.models).toEqual([
      { model: 'crystalwatch-default 1.2.0', backend: 'onnxruntime', device: 'cpu', frames: 60, from: at(0), to: at(59) },
      {
        model: 'crystalwatch-default 1.2.0',
        backend: 'onnxruntime',
        device: 'cpu',
        calibration: { status: 'uncalibrated', note: 'default card, not refitted on this plant' },
        frames: 60,
        from: at(0),
        to: at(59),
      },
    ]);
    expect(figures.audit?.run.source).toBe('api');
    expect(figures.audit?.configs.map((c) => c.calibrated)).toEqual([false]);

    const pdf = await readFile(result.pdf!);
    expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
    expect(pdf.length).toBeGreaterThan(20_000);
  });

  it('shows the run id, onset, acknowledgement, unusable counts, one trend per camera and one picture per evidence frame', () => {
    expect(html).toContain(`<span class="run-id">${RUN}</span>`);
    expect(html).toContain('2026-03-03 10:00:40.000 UTC'); // onset: the first PG-labelled frame
    expect(html).toContain('2.00 s (alarm − onset)');
    expect(html).toContain('<strong class="ack-by">operator-7</strong>');
    expect(html).toContain('batch stopped, sample sent to the lab');
    expect(html).toContain('started 2026-03-03 09:59:55.000 UTC by operator-3 (api)');
    expect(html).toContain('<strong>uncalibrated</strong> (the default card');
    expect(html).toMatch(/<td>out-of-focus<\/td><td>2 \(3\.3 %\)<\/td>/);
    expect(html).toMatch(/<td>saturated<\/td><td>3 \(5\.0 %\)<\/td>/);
    expect(html.match(/<div class="chart"><svg /g)).toHaveLength(2);
    const images = [...html.matchAll(/<img src="data:image\/jpeg;base64,([^"]+)" width="(\d+)"/g)];
    expect(images).toHaveLength(EVIDENCE.length);
    expect(images.every((m) => Number(m[2]) === 320 && Buffer.from(m[1]!, 'base64')[0] === 0xff)).toBe(true);
    expect(html).not.toContain('batch-0041');
    expect(html).not.toMatch(/<(script|link)\b/); // self-contained
  });

  it('downsamples a long trend to the bound it is given and keeps its highest P(PG)', async () => {
    const result = await writeRunReport({
      kafka: bus.kafka,
      topics,
      runId: RUN,
      out: path.join(bus.dir, 'small'),
      logger: silentLogger,
      pdf: false,
      trendPoints: 8,
    });
    const [a] = result.figures.cameras;
    assert(a, 'figures for the camera');
    expect(a.trend.points.length).toBeLessThanOrEqual(8);
    expect(a.trend.points.reduce((n, p) => n + p.frames, 0)).toBe(57);
    expect(Math.max(...a.trend.points.map((p) => p.max))).toBe(0.95);
    expect(result.pdf).toBeUndefined();
  });

  it('writes the HTML and fails the PDF with the package to install when Chromium is missing', async () => {
    const dir = path.join(bus.dir, 'no-chromium');
    const failed = writeRunReport({ kafka: bus.kafka, topics, runId: RUN, out: dir, logger: silentLogger, chromiumPath: '/nonexistent/chromium' });
    await expect(failed).rejects.toBeInstanceOf(ChromiumMissingError);
    await expect(failed).rejects.toThrow(/install Debian's package "chromium"/);
    expect((await stat(path.join(dir, 'report.html'))).size).toBeGreaterThan(10_000);
    expect(existsSync(path.join(dir, 'report.pdf'))).toBe(false);
  });
});

describe('crystalwatch report (the real command)', () => {
  it('writes the report against the broker and prints its figures as JSON', async () => {
    expect(existsSync(path.join(root, 'dist', 'src', 'report', 'command.js')), 'dist/ is stale: run npm run build').toBe(true);
    const dir = path.join(bus.dir, 'cli');
    const child = spawn(
      process.execPath,
      [path.join(root, 'bin', 'crystalwatch.js'), 'report', '--run', RUN, '--out', dir, '--brokers', bus.broker.address, '--no-pdf', '--json'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const code = await waitForExit(child, { timeout: 60_000, message: 'crystalwatch report to finish', detail: () => stderr.slice(-3000) });
    expect(code, stderr).toBe(0);
    expect(stderr).toContain('report: reading predictions');
    const summary = JSON.parse(stdout.trim()) as Record<string, unknown>;
    expect(summary).toMatchObject({
      event: 'report',
      runId: RUN,
      cameras: ['cam-a', 'cam-b'],
      frames: 120,
      unusable: 7,
      alerts: 1,
      acknowledged: 1,
      deadLettered: 1,
    });
    expect(summary.pdf).toBeUndefined();
    expect(await readFile(path.join(dir, 'report.html'), 'utf8')).toContain('operator-7');
    expect(existsSync(path.join(dir, 'report.pdf'))).toBe(false);
  });
});
