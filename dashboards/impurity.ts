/**
 * The impurity dashboard, as code (grafana-foundation-sdk). `npm run dashboards` writes it to
 * dashboards/impurity.json, which Grafana provisions (deploy/grafana/provisioning).
 *
 * Quality over any window comes from the confusion counters, so PromQL can answer
 * "precision over the last hour" without the process having kept that window:
 *   precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2TP / (2TP + FP + FN),
 * with PG the positive class (actual="pg", predicted="pg" is TP).
 */
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as table from '@grafana/grafana-foundation-sdk/table';
import * as statetimeline from '@grafana/grafana-foundation-sdk/statetimeline';

export const IMPURITY_DASHBOARD_UID = 'crystalwatch-impurity';

const datasource: common.DataSourceRef = { type: 'prometheus', uid: '${datasource}' };
const CAM = 'camera=~"$camera"';

/** One PromQL target; refIds are assigned per panel in order (A, B, ...). */
function query(expr: string, legend: string, refId: string, options: { instant?: boolean; table?: boolean } = {}): prometheus.DataqueryBuilder {
  const q = new prometheus.DataqueryBuilder().expr(expr).legendFormat(legend).refId(refId).datasource(datasource);
  if (options.instant) q.instant();
  else q.range();
  if (options.table) q.format(prometheus.PromQueryFormat.Table);
  return q;
}

const legendList = () =>
  new common.VizLegendOptionsBuilder().displayMode(common.LegendDisplayMode.List).placement(common.LegendPlacement.Bottom).showLegend(true);
const legendTable = (calcs: string[]) =>
  new common.VizLegendOptionsBuilder().displayMode(common.LegendDisplayMode.Table).placement(common.LegendPlacement.Bottom).showLegend(true).calcs(calcs);

function series(title: string, description: string): timeseries.PanelBuilder {
  return new timeseries.PanelBuilder().title(title).description(description).datasource(datasource).legend(legendList()).lineWidth(1).fillOpacity(10);
}

/** Confusion cells summed per camera over a window, e.g. tp('5m'). */
const cell = (actual: string | null, predicted: string | null, window: string) => {
  const matchers = [CAM, actual ? `actual="${actual}"` : '', predicted ? `predicted="${predicted}"` : ''].filter(Boolean).join(',');
  return `sum by (camera) (increase(crystalwatch_confusion_total{${matchers}}[${window}]))`;
};

function qualityPanel(window: string): timeseries.PanelBuilder {
  const tp = cell('pg', 'pg', window);
  const predictedPg = cell(null, 'pg', window);
  const actualPg = cell('pg', null, window);
  return series(
    `PG precision / recall / F1 (${window}, from confusion counters)`,
    `Computed by Prometheus from crystalwatch_confusion_total over the last ${window}: precision = TP/(TP+FP), recall = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN). Gaps mean no labelled frames (or no PG) in the window.`,
  )
    .unit('percentunit')
    .min(0)
    .max(1)
    .decimals(3)
    .withTarget(query(`${tp} / ${predictedPg}`, '{{camera}} precision', 'A'))
    .withTarget(query(`${tp} / ${actualPg}`, '{{camera}} recall', 'B'))
    .withTarget(query(`2 * ${tp} / (${actualPg} + ${predictedPg})`, '{{camera}} F1', 'C'))
    .legend(legendTable(['lastNotNull', 'min']));
}

const quantile = (q: number, metric: string, by: string, matchers = '') =>
  `histogram_quantile(${q}, sum by (${['le', by].filter(Boolean).join(', ')}) (rate(${metric}_bucket${matchers ? `{${matchers}}` : ''}[$__rate_interval])))`;

export function impurityDashboard(): dashboard.DashboardBuilder {
  const builder = new dashboard.DashboardBuilder('crystalwatch — PG impurity')
    .uid(IMPURITY_DASHBOARD_UID)
    .description('Cephalexin (CEX) crystallizer watch: P(PG) per camera, the early-stop alarm, model quality from lab labels, and the pipeline behind them.')
    .tags(['crystalwatch', 'impurity', 'cephalexin'])
    .editable()
    .refresh('10s')
    .time({ from: 'now-1h', to: 'now' })
    .timezone('browser')
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .withVariable(new dashboard.DatasourceVariableBuilder('datasource').label('Prometheus').type('prometheus'))
    .withVariable(
      new dashboard.QueryVariableBuilder('camera')
        .label('Camera')
        .description('Crystallizer camera(s); "All" shows every camera that ingested frames.')
        .datasource(datasource)
        .query('label_values(crystalwatch_frames_ingested_total, camera)')
        .definition('label_values(crystalwatch_frames_ingested_total, camera)')
        .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
        .sort(dashboard.VariableSort.AlphabeticalAsc)
        .multi(true)
        .includeAll(true)
        .allValue('.*'),
    )
    .annotation(
      new dashboard.AnnotationQueryBuilder()
        .name('PG alarm')
        .datasource(datasource)
        .enable(true)
        .iconColor('red')
        .expr(`max by (camera) (crystalwatch_alarm{${CAM}}) > 0`)
        .titleFormat('PG alarm on {{camera}} — stop the batch')
        .textFormat('crystalwatch_alarm = 1: the onset detector fired for camera {{camera}}')
        .tagKeys('camera')
        .step('10s'),
    )
    .annotation(
      new dashboard.AnnotationQueryBuilder()
        .name('Alerts raised')
        .datasource(datasource)
        .enable(true)
        .iconColor('orange')
        .expr(`sum by (camera) (changes(crystalwatch_alerts_total{${CAM}}[1m])) > 0`)
        .titleFormat('PG alert raised on {{camera}}')
        .tagKeys('camera')
        .step('30s'),
    );

  // --- Impurity ---------------------------------------------------------------
  builder.withRow(new dashboard.RowBuilder('PG impurity').gridPos({ x: 0, y: 0, w: 24, h: 1 }));
  builder.withPanel(
    series('P(PG) per camera', 'Latest and smoothed probability of PG per camera. The dashed line is the 0.5 decision threshold of the model card.')
      .gridPos({ x: 0, y: 1, w: 16, h: 9 })
      .unit('percentunit')
      .min(0)
      .max(1)
      .decimals(2)
      .thresholds(
        new dashboard.ThresholdsConfigBuilder().mode(dashboard.ThresholdsMode.Absolute).steps([
          { value: null, color: 'green' },
          { value: 0.5, color: 'red' },
        ]),
      )
      .thresholdsStyle(new common.GraphThresholdsStyleConfigBuilder().mode(common.GraphThresholdsStyleMode.Dashed))
      .withTarget(query(`crystalwatch_ppg{${CAM}}`, '{{camera}} P(PG)', 'A'))
      .withTarget(query(`crystalwatch_ppg_smoothed{${CAM}}`, '{{camera}} smoothed', 'B')),
  );
  builder.withPanel(
    new stat.PanelBuilder()
      .title('Alarm')
      .description('crystalwatch_alarm: 1 while the PG early-stop alert is firing for the camera.')
      .datasource(datasource)
      .gridPos({ x: 16, y: 1, w: 8, h: 4 })
      .mappings([
        {
          type: dashboard.MappingType.ValueToText,
          options: { '0': { text: 'OK', color: 'green', index: 0 }, '1': { text: 'PG — STOP', color: 'red', index: 1 } },
        },
      ])
      .thresholds(
        new dashboard.ThresholdsConfigBuilder().mode(dashboard.ThresholdsMode.Absolute).steps([
          { value: null, color: 'green' },
          { value: 1, color: 'red' },
        ]),
      )
      .colorMode(common.BigValueColorMode.Background)
      .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']))
      .withTarget(query(`max by (camera) (crystalwatch_alarm{${CAM}})`, '{{camera}}', 'A', { instant: true })),
  );
  builder.withPanel(
    new stat.PanelBuilder()
      .title('Alerts in range')
      .description('PG alerts raised in the selected time range (increase of crystalwatch_alerts_total).')
      .datasource(datasource)
      .gridPos({ x: 16, y: 5, w: 8, h: 5 })
      .decimals(0)
      .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']))
      .withTarget(query(`sum by (camera) (round(increase(crystalwatch_alerts_total{${CAM}}[$__range])))`, '{{camera}}', 'A', { instant: true })),
  );
  builder.withPanel(
    series('PG frames per minute', 'Frames the model classified as PG, per minute and camera.')
      .gridPos({ x: 0, y: 10, w: 12, h: 8 })
      .unit('short')
      .min(0)
      .withTarget(query(`sum by (camera) (rate(crystalwatch_pg_frames_total{${CAM}}[$__rate_interval])) * 60`, '{{camera}}', 'A')),
  );
  builder.withPanel(
    new statetimeline.PanelBuilder()
      .title('Alarm state')
      .description('When the PG alarm was on, per camera.')
      .datasource(datasource)
      .gridPos({ x: 12, y: 10, w: 12, h: 8 })
      .mappings([
        {
          type: dashboard.MappingType.ValueToText,
          options: { '0': { text: 'OK', color: 'green', index: 0 }, '1': { text: 'PG alarm', color: 'red', index: 1 } },
        },
      ])
      .withTarget(query(`max by (camera) (crystalwatch_alarm{${CAM}})`, '{{camera}}', 'A')),
  );

  // --- Quality --------------------------------------------------------------------
  builder.withRow(new dashboard.RowBuilder('Model quality (needs lab labels)').gridPos({ x: 0, y: 18, w: 24, h: 1 }));
  builder.withPanel(qualityPanel('5m').gridPos({ x: 0, y: 19, w: 12, h: 8 }));
  builder.withPanel(qualityPanel('1h').gridPos({ x: 12, y: 19, w: 12, h: 8 }));
  builder.withPanel(
    new table.PanelBuilder()
      .title('Confusion matrix (selected range)')
      .description('Labelled frames in the selected range: rows = actual class (lab), columns = predicted class. PG is the positive class.')
      .datasource(datasource)
      .gridPos({ x: 0, y: 27, w: 8, h: 7 })
      .decimals(0)
      .withTarget(
        query(`sum by (actual, predicted) (round(increase(crystalwatch_confusion_total{${CAM}}[$__range])))`, '', 'A', { instant: true, table: true }),
      )
      .withTransformation({ id: 'groupingToMatrix', options: { rowField: 'actual', columnField: 'predicted', valueField: 'Value', emptyValue: 'zero' } }),
  );
  builder.withPanel(
    series(
      'In-process rolling windows',
      'Precision, recall and F1 as the metrics stage keeps them (window="500f": last 500 labelled frames; "300s": last 300 s).',
    )
      .gridPos({ x: 8, y: 27, w: 16, h: 7 })
      .unit('percentunit')
      .min(0)
      .max(1)
      .decimals(3)
      .withTarget(query(`crystalwatch_rolling_precision{${CAM}}`, '{{camera}} precision {{window}}', 'A'))
      .withTarget(query(`crystalwatch_rolling_recall{${CAM}}`, '{{camera}} recall {{window}}', 'B'))
      .withTarget(query(`crystalwatch_rolling_f1{${CAM}}`, '{{camera}} F1 {{window}}', 'C'))
      .withTarget(query(`crystalwatch_rolling_accuracy{${CAM}}`, '{{camera}} accuracy {{window}}', 'D')),
  );

  // --- Pipeline ---------------------------------------------------------------------
  builder.withRow(new dashboard.RowBuilder('Pipeline').gridPos({ x: 0, y: 34, w: 24, h: 1 }));
  builder.withPanel(
    series('Frames per second', 'Ingested from the drop folder, classified (by predicted class), rejected at ingest and unusable at classify (by reason).')
      .gridPos({ x: 0, y: 35, w: 12, h: 8 })
      .unit('short')
      .min(0)
      .withTarget(query(`sum by (camera) (rate(crystalwatch_frames_ingested_total{${CAM}}[$__rate_interval]))`, '{{camera}} ingested', 'A'))
      .withTarget(
        query(`sum by (camera, predicted) (rate(crystalwatch_frames_classified_total{${CAM}}[$__rate_interval]))`, '{{camera}} classified {{predicted}}', 'B'),
      )
      .withTarget(query(`sum by (camera, reason) (rate(crystalwatch_frames_rejected_total{${CAM}}[$__rate_interval]))`, '{{camera}} rejected: {{reason}}', 'C'))
      .withTarget(
        query(`sum by (camera, reason) (rate(crystalwatch_frames_unusable_total{${CAM}}[$__rate_interval]))`, '{{camera}} unusable: {{reason}}', 'D'),
      ),
  );
  builder.withPanel(
    series('Latency percentiles', 'File complete → prediction (p50/p95/p99), ingest time per file (p95), prediction → alert (p95).')
      .gridPos({ x: 12, y: 35, w: 12, h: 8 })
      .unit('s')
      .min(0)
      .withTarget(query(quantile(0.5, 'crystalwatch_file_to_prediction_seconds', '', CAM), 'file → prediction p50', 'A'))
      .withTarget(query(quantile(0.95, 'crystalwatch_file_to_prediction_seconds', '', CAM), 'file → prediction p95', 'B'))
      .withTarget(query(quantile(0.99, 'crystalwatch_file_to_prediction_seconds', '', CAM), 'file → prediction p99', 'C'))
      .withTarget(query(quantile(0.95, 'crystalwatch_ingest_seconds', ''), 'ingest p95', 'D'))
      .withTarget(query(quantile(0.95, 'crystalwatch_prediction_to_alert_seconds', ''), 'prediction → alert p95', 'E')),
  );
  builder.withPanel(
    series(
      'Inference time by backend and device',
      'Per-batch inference time (p50/p95) by backend (onnxruntime, tfjs-…) and device (cpu, cuda:0, …), and the mean batch size.',
    )
      .gridPos({ x: 0, y: 43, w: 12, h: 8 })
      .unit('s')
      .min(0)
      .withTarget(query(quantile(0.5, 'crystalwatch_inference_seconds', 'backend, device'), '{{backend}}/{{device}} p50', 'A'))
      .withTarget(query(quantile(0.95, 'crystalwatch_inference_seconds', 'backend, device'), '{{backend}}/{{device}} p95', 'B'))
      .withTarget(
        query('sum(rate(crystalwatch_batch_size_sum[$__rate_interval])) / sum(rate(crystalwatch_batch_size_count[$__rate_interval]))', 'mean batch size', 'C'),
      )
      .overrideByName('mean batch size', [
        { id: 'unit', value: 'short' },
        { id: 'custom.axisPlacement', value: 'right' },
      ]),
  );
  builder.withPanel(
    new table.PanelBuilder()
      .title('Inference backend in use')
      .description('crystalwatch_backend_info: which backend and device each classify process chose at start-up.')
      .datasource(datasource)
      .gridPos({ x: 12, y: 43, w: 4, h: 8 })
      .withTarget(query('max by (backend, device) (crystalwatch_backend_info)', '', 'A', { instant: true, table: true }))
      .withTransformation({ id: 'organize', options: { excludeByName: { Time: true, Value: true } } }),
  );
  builder.withPanel(
    series(
      'Consumer lag',
      'Messages behind the end of each topic, per consumer group. Growing lag on frames means classify cannot keep up: add partitions and classify replicas.',
    )
      .gridPos({ x: 16, y: 43, w: 8, h: 8 })
      .unit('short')
      .min(0)
      .withTarget(query('sum by (group, topic) (crystalwatch_consumer_lag_messages)', '{{group}} / {{topic}}', 'A')),
  );
  builder.withPanel(
    series(
      'Frames skipped (overload)',
      'Frames classify did not classify in time (classify.overload; reason stale: older than maxFrameAgeMs with a newer frame of the camera in hand), and those classified later, marked late (policy newest-first). Skipped frames stay in Kafka. Anything above 0 means the machine cannot keep up with the cameras.',
    )
      .gridPos({ x: 0, y: 51, w: 12, h: 8 })
      .unit('short')
      .min(0)
      .withTarget(query(`sum by (camera, reason) (rate(crystalwatch_frames_skipped_total{${CAM}}[$__rate_interval]))`, '{{camera}} skipped: {{reason}}', 'A'))
      .withTarget(query(`sum by (camera) (rate(crystalwatch_frames_caught_up_total{${CAM}}[$__rate_interval]))`, '{{camera}} caught up (late)', 'B')),
  );

  return builder;
}

/** Every dashboard this folder generates, by file name. */
export function allDashboards(): Record<string, unknown> {
  return { 'impurity.json': withPanelIds(impurityDashboard().build()) };
}

/** Stable panel ids in layout order: Grafana links (`viewPanel=`) and provisioning diffs rely on them. */
function withPanelIds(built: dashboard.Dashboard): dashboard.Dashboard {
  let id = 0;
  for (const panel of (built.panels ?? []) as { id?: number }[]) panel.id = ++id;
  return built;
}
