/**
 * The impurity dashboard against a real Prometheus: a temp config scraping our /metrics every
 * second, then every panel's PromQL (variables substituted as Grafana would) must return data.
 * Until the stages land, the registry is filled by this test with the metric names of the
 * contract and realistic values, moving every tick like a running line would.
 */
import { afterAll, assert, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { WebServer } from '../src/web/index.js';
import { panelQueries, substituteVariables } from '../dashboards/queries.js';
import { allDashboards, IMPURITY_DASHBOARD_UID } from '../dashboards/impurity.js';
import { renderDashboard, writeDashboards } from '../dashboards/command.js';
import { startPrometheus, waitForEveryQuery, type Prometheus, type PromVector } from './helpers/prometheus.js';

const CAMERAS = ['reactor-1', 'reactor-2'];

/** Every metric of the contract, moving like a line where reactor-1 sees PG. */
function simulatedPipeline(registry: Registry): { tick: () => void } {
  const r = [registry];
  const ingested = new Counter({ name: 'crystalwatch_frames_ingested_total', help: 'h', labelNames: ['camera'], registers: r });
  const rejected = new Counter({ name: 'crystalwatch_frames_rejected_total', help: 'h', labelNames: ['camera', 'reason'], registers: r });
  const ingestSeconds = new Histogram({ name: 'crystalwatch_ingest_seconds', help: 'h', buckets: [0.005, 0.01, 0.05, 0.1, 0.5], registers: r });
  const classified = new Counter({ name: 'crystalwatch_frames_classified_total', help: 'h', labelNames: ['camera', 'predicted'], registers: r });
  const unusable = new Counter({ name: 'crystalwatch_frames_unusable_total', help: 'h', labelNames: ['camera', 'reason'], registers: r });
  const skipped = new Counter({ name: 'crystalwatch_frames_skipped_total', help: 'h', labelNames: ['camera', 'reason'], registers: r });
  const caughtUp = new Counter({ name: 'crystalwatch_frames_caught_up_total', help: 'h', labelNames: ['camera'], registers: r });
  const inference = new Histogram({
    name: 'crystalwatch_inference_seconds',
    help: 'h',
    labelNames: ['backend', 'device'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25],
    registers: r,
  });
  const batch = new Histogram({ name: 'crystalwatch_batch_size', help: 'h', buckets: [1, 2, 4, 8, 16, 32], registers: r });
  const backendInfo = new Gauge({ name: 'crystalwatch_backend_info', help: 'h', labelNames: ['backend', 'device'], registers: r });
  const lag = new Gauge({ name: 'crystalwatch_consumer_lag_messages', help: 'h', labelNames: ['group', 'topic'], registers: r });
  const confusion = new Counter({ name: 'crystalwatch_confusion_total', help: 'h', labelNames: ['camera', 'actual', 'predicted'], registers: r });
  const rolling = Object.fromEntries(
    ['precision', 'recall', 'f1', 'accuracy'].map((m) => [
      m,
      new Gauge({ name: `crystalwatch_rolling_${m}`, help: 'h', labelNames: ['camera', 'window'], registers: r }),
    ]),
  ) as Record<'precision' | 'recall' | 'f1' | 'accuracy', Gauge>;
  const ppg = new Gauge({ name: 'crystalwatch_ppg', help: 'h', labelNames: ['camera'], registers: r });
  const ppgSmoothed = new Gauge({ name: 'crystalwatch_ppg_smoothed', help: 'h', labelNames: ['camera'], registers: r });
  const pgFrames = new Counter({ name: 'crystalwatch_pg_frames_total', help: 'h', labelNames: ['camera'], registers: r });
  const alarm = new Gauge({ name: 'crystalwatch_alarm', help: 'h', labelNames: ['camera'], registers: r });
  const alerts = new Counter({ name: 'crystalwatch_alerts_total', help: 'h', labelNames: ['camera'], registers: r });
  const fileToPrediction = new Histogram({
    name: 'crystalwatch_file_to_prediction_seconds',
    help: 'h',
    labelNames: ['camera'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: r,
  });
  const predictionToAlert = new Histogram({ name: 'crystalwatch_prediction_to_alert_seconds', help: 'h', buckets: [0.01, 0.05, 0.1, 0.5, 1], registers: r });

  backendInfo.set({ backend: 'onnxruntime', device: 'cpu' }, 1);
  let n = 0;
  return {
    tick() {
      n++;
      for (const camera of CAMERAS) {
        const pg = camera === 'reactor-1';
        ingested.inc({ camera }, 10);
        rejected.inc({ camera, reason: 'truncated' }, 1);
        unusable.inc({ camera, reason: 'blurred' }, 1);
        skipped.inc({ camera, reason: 'stale' }, 2);
        caughtUp.inc({ camera }, 1);
        classified.inc({ camera, predicted: 'cex' }, pg ? 5 : 9);
        classified.inc({ camera, predicted: 'pg' }, pg ? 4 : 0);
        // Fixed ratios so the PromQL quality figures are known: TP 9, FP 1, FN 3, TN 20 per tick.
        confusion.inc({ camera, actual: 'pg', predicted: 'pg' }, 9);
        confusion.inc({ camera, actual: 'cex', predicted: 'pg' }, 1);
        confusion.inc({ camera, actual: 'pg', predicted: 'cex' }, 3);
        confusion.inc({ camera, actual: 'cex', predicted: 'cex' }, 20);
        for (const window of ['500f', '300s']) {
          rolling.precision.set({ camera, window }, 0.9);
          rolling.recall.set({ camera, window }, 0.75);
          rolling.f1.set({ camera, window }, 0.818);
          rolling.accuracy.set({ camera, window }, 0.879);
        }
        const p = pg ? 0.7 + 0.2 * Math.sin(n / 5) : 0.05 + 0.02 * Math.sin(n / 3);
        ppg.set({ camera }, p);
        ppgSmoothed.set({ camera }, pg ? 0.8 : 0.05);
        if (pg) pgFrames.inc({ camera }, 4);
        alarm.set({ camera }, pg ? 1 : 0);
        for (let i = 0; i < 10; i++) fileToPrediction.observe({ camera }, 0.08 + 0.05 * ((n + i) % 7));
      }
      if (n % 3 === 0) {
        alerts.inc({ camera: 'reactor-1' });
        predictionToAlert.observe(0.04);
      }
      for (let i = 0; i < 5; i++) {
        ingestSeconds.observe(0.004 + 0.002 * i);
        inference.observe({ backend: 'onnxruntime', device: 'cpu' }, 0.02 + 0.005 * i);
        batch.observe(4 + i);
      }
      lag.set({ group: 'crystalwatch-classify', topic: 'crystalwatch.frames' }, 3 + (n % 5));
    },
  };
}

let web: WebServer;
let prometheus: Prometheus | undefined;
let tempDir = '';
let ticker: NodeJS.Timeout | undefined;

beforeAll(async () => {
  const registry = new Registry();
  const pipeline = simulatedPipeline(registry);
  pipeline.tick();
  ticker = setInterval(() => pipeline.tick(), 250);
  web = new WebServer({ registry, port: 0 });
  await web.start();
  tempDir = mkdtempSync(join(tmpdir(), 'crystalwatch-prom-'));
  prometheus = await startPrometheus({ dir: tempDir, targets: [`127.0.0.1:${web.port}`] });
});

afterAll(async () => {
  if (ticker) clearInterval(ticker);
  await prometheus?.close();
  await web?.close();
  if (tempDir) rmSync(tempDir, { recursive: true, force: true });
});

const instant = (expr: string): Promise<PromVector[]> => prometheus!.query(expr);

describe('impurity dashboard', () => {
  it('is committed up to date with dashboards/impurity.ts', async () => {
    const statuses = await writeDashboards(join(process.cwd(), 'dashboards'), { check: true });
    expect(statuses.map((s) => s.status)).toEqual(['unchanged']);
    const committed = JSON.parse(readFileSync('dashboards/impurity.json', 'utf8'));
    expect(committed.uid).toBe(IMPURITY_DASHBOARD_UID);
    expect(renderDashboard(allDashboards()['impurity.json'])).toBe(readFileSync('dashboards/impurity.json', 'utf8'));
    expect(committed.templating.list.map((v: { name: string }) => v.name)).toEqual(['datasource', 'camera']);
    const ids = committed.panels.map((p: { id: number }) => p.id);
    expect(new Set(ids).size).toBe(ids.length); // Grafana needs unique panel ids
    expect(ids.every((id: number) => id > 0)).toBe(true);
  });

  it('uses only contract metric names, and every panel query returns data from a real Prometheus', async () => {
    const dashboardJson = JSON.parse(readFileSync('dashboards/impurity.json', 'utf8'));
    const queries = panelQueries(dashboardJson);
    const panels = new Set(queries.map((q) => q.panel));
    expect(panels.size).toBeGreaterThanOrEqual(14);
    const contract = new Set(
      [
        'frames_ingested_total',
        'frames_rejected_total',
        'ingest_seconds',
        'frames_classified_total',
        'frames_unusable_total',
        'frames_skipped_total',
        'frames_caught_up_total',
        'inference_seconds',
        'batch_size',
        'backend_info',
        'consumer_lag_messages',
        'confusion_total',
        'rolling_precision',
        'rolling_recall',
        'rolling_f1',
        'rolling_accuracy',
        'ppg',
        'ppg_smoothed',
        'pg_frames_total',
        'alarm',
        'alerts_total',
        'file_to_prediction_seconds',
        'prediction_to_alert_seconds',
      ].map((n) => `crystalwatch_${n}`),
    );
    const used = new Set(queries.flatMap((q) => (q.expr.match(/crystalwatch_[a-z0-9_]+/g) ?? []).map((n) => n.replace(/_(bucket|sum|count)$/, ''))));
    expect(
      [...used].filter((n) => !contract.has(n)),
      'names outside the metric contract',
    ).toEqual([]);
    expect(
      [...contract].filter((n) => !used.has(n)),
      'contract metrics no panel shows',
    ).toEqual([]);

    // Every panel has data once a few scrapes have landed (rate() and increase() need two samples).
    const resolved = queries.map((q) => ({
      name: `${q.panel} [${q.refId ?? ''}]`,
      expr: substituteVariables(q.expr, { __rate_interval: '30s', __range: '5m' }),
    }));
    await waitForEveryQuery(prometheus!, resolved, { timeout: 60_000, interval: 1000 });

    // The quality maths: TP 9, FP 1, FN 3 per tick → precision 0.9, recall 0.75, F1 18/22.
    const quality = queries.filter((q) => q.panel.startsWith('PG precision / recall / F1 (5m'));
    const [precision, recall, f1] = await Promise.all(quality.map((q) => instant(substituteVariables(q.expr, { camera: 'reactor-1' }))));
    assert(precision && recall && f1, `three quality queries, got ${quality.length}`);
    expect(precision.map((v) => v.metric.camera)).toEqual(['reactor-1']);
    expect(Number(precision[0]!.value[1])).toBeCloseTo(0.9, 2);
    expect(Number(recall[0]!.value[1])).toBeCloseTo(0.75, 2);
    expect(Number(f1[0]!.value[1])).toBeCloseTo(18 / 22, 2);

    // The confusion-matrix panel's cells keep the 9:1:3:20 ratio.
    const matrixQuery = queries.find((q) => q.panel.startsWith('Confusion matrix'))!;
    const cells = await instant(substituteVariables(matrixQuery.expr, { __range: '5m' }));
    const byCell = Object.fromEntries(cells.map((c) => [`${c.metric.actual}/${c.metric.predicted}`, Number(c.value[1])]));
    expect(Object.keys(byCell).sort()).toEqual(['cex/cex', 'cex/pg', 'pg/cex', 'pg/pg']);
    // increase() extrapolates each series over the scrapes it has: the small cells (1 and 3 a tick)
    // move most when a scrape lands off a tick, so the ratios are checked to ±15 %, which still
    // tells every cell from every other (9, 20/3, their inverses, 3, 20).
    const near = (value: number, want: number) => expect(Math.abs(value / want - 1), `${value} against ${want}`).toBeLessThan(0.15);
    near(byCell['pg/pg']! / byCell['cex/pg']!, 9);
    near(byCell['cex/cex']! / byCell['pg/cex']!, 20 / 3);

    // The alarm panel separates the PG camera from the clean one.
    const alarmQuery = queries.find((q) => q.panel === 'Alarm')!;
    const alarm = Object.fromEntries((await instant(substituteVariables(alarmQuery.expr))).map((v) => [v.metric.camera, v.value[1]]));
    expect(alarm).toEqual({ 'reactor-1': '1', 'reactor-2': '0' });
  });

  it('`crystalwatch dashboards --check` fails on stale JSON and passes once regenerated', () => {
    const dir = mkdtempSync(join(tmpdir(), 'crystalwatch-dash-'));
    try {
      writeFileSync(join(dir, 'impurity.json'), '{"stale":true}\n');
      const cli = (...args: string[]) => spawnSync(process.execPath, ['bin/crystalwatch.js', 'dashboards', '--out', dir, ...args], { encoding: 'utf8' });
      const stale = cli('--check');
      expect(stale.status).toBe(1);
      expect(stale.stderr).toContain('out of date');
      expect(stale.stderr).toContain('npm run dashboards');
      expect(cli().status).toBe(0);
      const fresh = cli('--check', '--json');
      expect(fresh.status).toBe(0);
      expect(JSON.parse(fresh.stdout).files).toEqual([{ file: join(dir, 'impurity.json'), status: 'unchanged' }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('substitutes Grafana variables and refuses unknown ones', () => {
    expect(substituteVariables('rate(x{camera=~"$camera"}[$__rate_interval]) and y[${__range}] and $__range_s')).toBe(
      'rate(x{camera=~".*"}[1m]) and y[1h] and 3600',
    );
    expect(() => substituteVariables('x{job="$job"}')).toThrow(/no value for \$job/);
  });
});
