/**
 * The P(PG) trend of one camera as an SVG string: vega-lite spec → vega → headless view →
 * `toSVG()`, rendered here so the report needs no script and prints as it shows. Times are UTC.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { TrendPoint } from './trend.js';

export interface TrendMarks {
  /** Alarm periods: alert start to its end (or the end of the run while still firing). */
  alarms: Array<{ fromMs: number; toMs: number; label: string }>;
  /** The onset (first PG-labelled frame, or the alert's first PG frame). */
  onsetMs?: number;
  /** The detector's threshold line, drawn for reference (P(PG) = 0.5). */
  threshold?: number;
}

export function trendSpec(camera: string, points: TrendPoint[], marks: TrendMarks, framesPerPoint: number): TopLevelSpec {
  const values = points.map((p) => ({ t: p.at, max: p.max, mean: p.mean }));
  const x = { field: 't', type: 'temporal', title: 'capture time (UTC)', scale: { type: 'utc' }, axis: { format: '%H:%M:%S', labelOverlap: true } } as const;
  const layers: unknown[] = [
    ...marks.alarms.map((a) => ({
      data: { values: [{ from: a.fromMs, to: a.toMs, label: a.label }] },
      mark: { type: 'rect', color: '#e74c3c', opacity: 0.15 },
      encoding: { x: { ...x, field: 'from' }, x2: { field: 'to' } },
    })),
    {
      data: { values },
      mark: { type: 'line', color: '#bbbbbb', strokeWidth: 1 },
      encoding: { x, y: { field: 'mean', type: 'quantitative', title: 'P(PG)', scale: { domain: [0, 1] } } },
    },
    {
      data: { values },
      mark: { type: 'line', color: '#1f4e9c', strokeWidth: 1.5, interpolate: 'step-after' },
      encoding: { x, y: { field: 'max', type: 'quantitative', scale: { domain: [0, 1] } } },
    },
    {
      data: { values: [{ y: marks.threshold ?? 0.5 }] },
      mark: { type: 'rule', strokeDash: [4, 4], color: '#888888' },
      encoding: { y: { field: 'y', type: 'quantitative' } },
    },
    ...marks.alarms.map((a) => ({
      data: { values: [{ t: a.fromMs, label: a.label }] },
      layer: [
        { mark: { type: 'rule', color: '#c0392b', strokeWidth: 2 }, encoding: { x } },
        {
          mark: { type: 'text', color: '#c0392b', align: 'left', dx: 3, dy: -4, baseline: 'bottom' },
          encoding: { x, y: { datum: 1 }, text: { field: 'label' } },
        },
      ],
    })),
    ...(marks.onsetMs === undefined
      ? []
      : [
          {
            data: { values: [{ t: marks.onsetMs, label: 'onset' }] },
            layer: [
              { mark: { type: 'rule', color: '#e67e22', strokeDash: [6, 3], strokeWidth: 1.5 }, encoding: { x } },
              {
                mark: { type: 'text', color: '#e67e22', align: 'right', dx: -3, dy: 12, baseline: 'top' },
                encoding: { x, y: { datum: 1 }, text: { field: 'label' } },
              },
            ],
          },
        ]),
  ];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    background: 'white',
    config: { font: 'sans-serif', view: { stroke: '#dddddd' } },
    title: {
      text: `${camera}: P(PG) per frame`,
      subtitle: framesPerPoint > 1 ? `highest of every ${framesPerPoint} frames (blue), their mean (grey)` : 'every usable frame',
      anchor: 'start',
    },
    width: 640,
    height: 180,
    layer: layers,
  } as TopLevelSpec;
}

/** Gives every id in `svg` (and every reference to one) the prefix, so several charts can share a page. */
export function scopeSvgIds(svg: string, prefix: string): string {
  return svg
    .replace(/\bid="([^"]+)"/g, (_, id: string) => `id="${prefix}-${id}"`)
    .replace(/url\(#([^)]+)\)/g, (_, id: string) => `url(#${prefix}-${id})`)
    .replace(/href="#([^"]+)"/g, (_, id: string) => `href="#${prefix}-${id}"`);
}

export async function renderSvg(spec: TopLevelSpec, idPrefix: string): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  try {
    return scopeSvgIds(await view.toSVG(), idPrefix);
  } finally {
    view.finalize();
  }
}
