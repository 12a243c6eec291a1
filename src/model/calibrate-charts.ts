/**
 * The calibration report's pictures, as vega-lite specs (rendered to PNG by charts.ts):
 * frame P(PG) of clean and PG images under the card before and after, the CUSUM evidence per
 * frame before and after, the threshold curve, the out-of-distribution scores, the expected
 * false alarms per batch-day over frame rates, and the embedding map (calibrate-embedding.ts).
 */
import type { TopLevelSpec } from 'vega-lite';
import type { CurvePoint } from './calibrate-fit.js';

const base = { $schema: 'https://vega.github.io/schema/vega-lite/v5.json', background: 'white', config: { font: 'sans-serif' } } as const;
const SET_COLOURS = { domain: ['clean (fitting)', 'clean (held out)', 'PG'], range: ['#9ecae1', '#1f77b4', '#d62728'] };

export interface ChartSet {
  name: 'clean (fitting)' | 'clean (held out)' | 'PG';
  values: number[];
}

function histogram(title: string, sets: ChartSet[], field: string, rules: { at: number; label: string }[], extent: [number, number], bins = 40): TopLevelSpec {
  const values = sets.flatMap((s) => s.values.map((v) => ({ set: s.name, [field]: Math.min(extent[1], Math.max(extent[0], v)) })));
  return {
    title,
    width: 420,
    height: 150,
    layer: [
      {
        data: { values },
        mark: { type: 'bar' },
        encoding: {
          x: { field, type: 'quantitative', bin: { extent, maxbins: bins }, title: field },
          y: { aggregate: 'count', type: 'quantitative', title: 'images' },
          color: { field: 'set', type: 'nominal', scale: SET_COLOURS, title: null },
        },
      },
      {
        data: { values: rules },
        mark: { type: 'rule', color: 'black', strokeDash: [4, 3], strokeWidth: 1.5 },
        encoding: { x: { field: 'at', type: 'quantitative' } },
      },
      {
        data: { values: rules },
        mark: { type: 'text', align: 'left', dx: 4, dy: -4, baseline: 'bottom', fontSize: 10 },
        encoding: { x: { field: 'at', type: 'quantitative' }, y: { value: 0 }, text: { field: 'label' } },
      },
    ],
  } as unknown as TopLevelSpec;
}

/** Frame P(PG) under the card before and after: only images that card judges (OOD refused ones left out). */
export function scoresSpec(before: ChartSet[], after: ChartSet[], thresholds: { before: number; after: number }): TopLevelSpec {
  return {
    ...base,
    title: 'P(PG) per image, clean vs PG (judged images only)',
    vconcat: [
      histogram(
        `before: parent card, threshold ${thresholds.before}`,
        before,
        'P(PG)',
        [{ at: thresholds.before, label: `threshold ${thresholds.before}` }],
        [0, 1],
      ),
      histogram(
        `after: calibrated card, threshold ${thresholds.after}`,
        after,
        'P(PG)',
        [{ at: thresholds.after, label: `threshold ${thresholds.after}` }],
        [0, 1],
      ),
    ],
  } as unknown as TopLevelSpec;
}

/** The CUSUM increment ℓ per frame: > 0 is evidence for PG. */
export function evidenceSpec(before: ChartSet[], after: ChartSet[]): TopLevelSpec {
  return {
    ...base,
    title: 'Onset detector evidence per frame, ℓ = ln f1/f0 (nats)',
    vconcat: [
      histogram("before: the detector's default clean-score model", before, 'evidence ℓ (nats)', [{ at: 0, label: '0' }], [-12, 10], 44),
      histogram("after: this camera's clean-score model", after, 'evidence ℓ (nats)', [{ at: 0, label: '0' }], [-12, 10], 44),
    ],
  } as unknown as TopLevelSpec;
}

export function oodSpec(before: ChartSet[], after: ChartSet[], thresholds: { before: number | null; after: number }): TopLevelSpec {
  const hi = Math.max(thresholds.after * 1.6, (thresholds.before ?? 0) * 1.3);
  return {
    ...base,
    title: 'Out-of-distribution score per image (mean over tiles)',
    vconcat: [
      histogram(
        'before: parent card statistics',
        before,
        'OOD score',
        thresholds.before === null ? [] : [{ at: thresholds.before, label: `threshold ${thresholds.before.toFixed(3)}` }],
        [0, hi],
      ),
      histogram("after: this camera's statistics", after, 'OOD score', [{ at: thresholds.after, label: `threshold ${thresholds.after.toFixed(3)}` }], [0, hi]),
    ],
  } as unknown as TopLevelSpec;
}

export function thresholdCurveSpec(curve: CurvePoint[], thresholds: { before: number; after: number }): TopLevelSpec {
  const values = curve.flatMap((p) => [
    { threshold: p.threshold, series: 'false-positive rate, fitting clean', value: p.fitFalsePositiveRate },
    { threshold: p.threshold, series: 'false-positive rate, held-out clean', value: p.heldOutFalsePositiveRate },
    ...(p.pgRecall === null ? [] : [{ threshold: p.threshold, series: 'PG recall', value: p.pgRecall }]),
  ]);
  const rules = [
    { at: thresholds.before, label: `before ${thresholds.before}` },
    { at: thresholds.after, label: `after ${thresholds.after}` },
  ];
  return {
    ...base,
    title: 'Per-frame false-positive rate and PG recall vs threshold',
    width: 440,
    height: 280,
    layer: [
      {
        data: { values },
        mark: { type: 'line', strokeWidth: 2, interpolate: 'step-after' },
        encoding: {
          x: { field: 'threshold', type: 'quantitative', title: 'threshold on P(PG)', scale: { domain: [0.5, 1] } },
          y: { field: 'value', type: 'quantitative', title: 'rate', scale: { domain: [0, 1] } },
          color: {
            field: 'series',
            type: 'nominal',
            title: null,
            scale: {
              domain: ['false-positive rate, fitting clean', 'false-positive rate, held-out clean', 'PG recall'],
              range: ['#9ecae1', '#1f77b4', '#d62728'],
            },
            legend: { labelLimit: 320, orient: 'bottom', direction: 'vertical' },
          },
        },
      },
      { data: { values: rules }, mark: { type: 'rule', color: 'black', strokeDash: [4, 3] }, encoding: { x: { field: 'at', type: 'quantitative' } } },
      {
        data: { values: rules },
        mark: { type: 'text', angle: 270, align: 'right', dx: -4, dy: -6, fontSize: 10 },
        encoding: { x: { field: 'at', type: 'quantitative' }, y: { value: 0 }, text: { field: 'label' } },
      },
    ],
  } as unknown as TopLevelSpec;
}

/**
 * Expected false alarms per batch-day (24 h of one camera) over frame rates: fps · 86,400 / ARL0.
 * A detector with no finite ARL0 (no clean frame gives evidence for PG) is drawn at its model figure.
 */
export function falseAlarmsSpec(series: { name: string; arl0Frames: number }[], fps: number): TopLevelSpec {
  const rates = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30];
  const values = series
    .filter((s) => Number.isFinite(s.arl0Frames) && s.arl0Frames > 0)
    .flatMap((s) => rates.map((r) => ({ fps: r, series: s.name, perDay: (r * 86_400) / s.arl0Frames })));
  const here = series
    .filter((s) => Number.isFinite(s.arl0Frames) && s.arl0Frames > 0)
    .map((s) => ({ fps, series: s.name, perDay: (fps * 86_400) / s.arl0Frames }));
  return {
    ...base,
    title: `Expected false alarms per batch-day (this camera: ${Math.round(fps * 100) / 100} frames/s)`,
    width: 440,
    height: 280,
    layer: [
      {
        data: { values },
        mark: { type: 'line', strokeWidth: 2 },
        encoding: {
          x: { field: 'fps', type: 'quantitative', title: 'frames per second', scale: { type: 'log', domain: [0.1, 30], nice: false } },
          y: { field: 'perDay', type: 'quantitative', title: 'false alarms per batch-day', scale: { type: 'log' } },
          color: { field: 'series', type: 'nominal', title: null, legend: { labelLimit: 320, orient: 'bottom', direction: 'vertical' } },
        },
      },
      {
        data: { values: here },
        mark: { type: 'point', filled: true, size: 70, color: 'black' },
        encoding: { x: { field: 'fps', type: 'quantitative' }, y: { field: 'perDay', type: 'quantitative' } },
      },
    ],
  } as unknown as TopLevelSpec;
}

const MAP_COLOURS = {
  domain: ['simulator CEX', 'simulator PG', 'plant clean', 'plant PG'],
  range: ['#9ecae1', '#fdae6b', '#1f4e9c', '#c0141b'],
};

/** The embedding map: one scatter per panel (PCA of that model's embeddings), OOD class centres as labelled crosses. */
export function embeddingMapSpec(
  panels: {
    model: string;
    explained: [number, number];
    points: { set: string; x: number; y: number }[];
    centres: { name: string; card: 'before' | 'after'; x: number; y: number }[];
  }[],
): TopLevelSpec {
  const pct = (v: number) => `${Math.round(v * 1000) / 10} %`;
  return {
    ...base,
    title: 'Embedding map: simulator (training domain) and plant images, PCA of the model inputs',
    hconcat: panels.map((p) => ({
      title: p.model,
      width: 340,
      height: 300,
      layer: [
        {
          data: { values: p.points },
          mark: { type: 'point', filled: true, size: 22, opacity: 0.65 },
          encoding: {
            x: { field: 'x', type: 'quantitative', title: `PC 1 (${pct(p.explained[0])})` },
            y: { field: 'y', type: 'quantitative', title: `PC 2 (${pct(p.explained[1])})` },
            color: { field: 'set', type: 'nominal', scale: MAP_COLOURS, title: null, legend: { orient: 'bottom', direction: 'vertical' } },
          },
        },
        // Centres of the card before calibration in grey, labelled below; the calibrated card's in black, labelled above.
        ...(['before', 'after'] as const).flatMap((card) => {
          const values = p.centres.filter((c) => c.card === card).map((c) => ({ ...c, label: `${c.name} (${card})` }));
          const colour = card === 'before' ? '#777777' : 'black';
          return [
            {
              data: { values },
              mark: { type: 'point', shape: 'cross', size: 160, filled: true, color: colour },
              encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } },
            },
            {
              data: { values },
              mark: { type: 'text', align: 'left', dx: 8, dy: card === 'before' ? 10 : -8, fontSize: 10, color: colour },
              encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' }, text: { field: 'label' } },
            },
          ];
        }),
      ],
    })),
  } as unknown as TopLevelSpec;
}
