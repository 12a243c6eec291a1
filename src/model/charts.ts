/**
 * Report pictures: vega-lite spec → vega → SVG (headless view) → PNG (sharp/librsvg).
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import sharp from 'sharp';

export async function renderPng(spec: TopLevelSpec, path: string): Promise<void> {
  const compiled = compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    await sharp(Buffer.from(svg), { density: 144 }).flatten({ background: '#ffffff' }).png().toFile(path);
  } finally {
    view.finalize();
  }
}

const base = { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', background: 'white', config: { font: 'sans-serif' } } as const;

export function confusionSpec(c: { tp: number; fp: number; tn: number; fn: number }): TopLevelSpec {
  const values = [
    { actual: 'cex', predicted: 'cex', count: c.tn },
    { actual: 'cex', predicted: 'pg', count: c.fp },
    { actual: 'pg', predicted: 'cex', count: c.fn },
    { actual: 'pg', predicted: 'pg', count: c.tp },
  ];
  return {
    ...base,
    title: 'Confusion matrix (PG positive)',
    width: 220,
    height: 220,
    data: { values },
    encoding: {
      x: { field: 'predicted', type: 'nominal', title: 'predicted', axis: { labelAngle: 0 } },
      y: { field: 'actual', type: 'nominal', title: 'actual' },
    },
    layer: [
      { mark: 'rect', encoding: { color: { field: 'count', type: 'quantitative', scale: { scheme: 'blues' }, legend: null } } },
      {
        mark: { type: 'text', fontSize: 18 },
        encoding: {
          text: { field: 'count', type: 'quantitative' },
          color: { condition: { test: `datum.count > ${Math.max(c.tp, c.tn, c.fp, c.fn) / 2}`, value: 'white' }, value: 'black' },
        },
      },
    ],
  } as TopLevelSpec;
}

export function rocSpec(points: { fpr: number; tpr: number }[], auc: number | null): TopLevelSpec {
  return {
    ...base,
    title: `ROC curve (AUC ${auc === null ? 'n/a' : auc.toFixed(4)})`,
    width: 320,
    height: 320,
    layer: [
      {
        data: {
          values: [
            { fpr: 0, tpr: 0 },
            { fpr: 1, tpr: 1 },
          ],
        },
        mark: { type: 'line', strokeDash: [4, 4], color: '#999' },
        encoding: { x: { field: 'fpr', type: 'quantitative' }, y: { field: 'tpr', type: 'quantitative' } },
      },
      {
        data: { values: points.map((p, i) => ({ ...p, order: i })) },
        mark: { type: 'line', color: '#1f77b4', strokeWidth: 2 },
        encoding: {
          x: { field: 'fpr', type: 'quantitative', title: 'false positive rate', scale: { domain: [0, 1] } },
          y: { field: 'tpr', type: 'quantitative', title: 'true positive rate (recall of PG)', scale: { domain: [0, 1] } },
          order: { field: 'order', type: 'quantitative' },
        },
      },
    ],
  } as TopLevelSpec;
}

export function thresholdSpec(points: { threshold: number; precision: number | null; recall: number | null; f1: number | null }[]): TopLevelSpec {
  const values = points.flatMap((p) =>
    (['precision', 'recall', 'f1'] as const).filter((k) => p[k] !== null).map((k) => ({ threshold: p.threshold, metric: k, value: p[k] })),
  );
  return {
    ...base,
    title: 'PG precision / recall / F1 vs threshold',
    width: 380,
    height: 260,
    data: { values },
    mark: { type: 'line', strokeWidth: 2 },
    encoding: {
      x: { field: 'threshold', type: 'quantitative', title: 'threshold on P(PG)' },
      y: { field: 'value', type: 'quantitative', title: 'value', scale: { zero: false } },
      color: { field: 'metric', type: 'nominal' },
    },
  } as TopLevelSpec;
}

export function trainingSpec(history: { epoch: number; [key: string]: number | null }[]): TopLevelSpec {
  const keys = ['loss', 'valLoss', 'accuracy', 'valAccuracy', 'valF1'];
  const values = history.flatMap((h) =>
    keys
      .filter((k) => typeof h[k] === 'number')
      .map((k) => ({ epoch: h.epoch, series: k, value: h[k], panel: k.toLowerCase().includes('loss') ? 'loss' : 'accuracy / F1' })),
  );
  return {
    ...base,
    title: 'Training curves',
    data: { values },
    facet: { column: { field: 'panel', type: 'nominal', title: null } },
    spec: {
      width: 300,
      height: 220,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'epoch', type: 'quantitative' },
        y: { field: 'value', type: 'quantitative', scale: { zero: false } },
        color: { field: 'series', type: 'nominal' },
      },
    },
    resolve: { scale: { y: 'independent' } },
  } as TopLevelSpec;
}

export function embeddingSpec(points: { x: number; y: number; label: string; cluster: string }[], title: string): TopLevelSpec {
  return {
    ...base,
    title,
    width: 380,
    height: 320,
    data: { values: points },
    mark: { type: 'point', filled: true, opacity: 0.6, size: 30 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: 'PC 1' },
      y: { field: 'y', type: 'quantitative', title: 'PC 2' },
      color: { field: 'label', type: 'nominal', title: 'class', scale: { domain: ['cex', 'pg'], range: ['#1f77b4', '#d62728'] } },
      shape: { field: 'cluster', type: 'nominal', title: 'k-means cluster' },
    },
  } as TopLevelSpec;
}
