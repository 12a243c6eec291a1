/**
 * The calibration report's embedding map: where the plant's images sit in the model's
 * embedding space next to the images the model was trained for (the simulator's default
 * camera). A 2-D PCA (embedding-map.ts) of the model inputs' embeddings, one panel per model
 * (the model calibrated; with --fine-tune also the model before fine-tuning), with the centres
 * of the card's out-of-distribution classes before and after calibration projected on it.
 *
 * The simulator images are rendered at calibrate time with a fixed seed (SIMULATOR_REFERENCE),
 * so every report shows the same reference set. The simulator is imported dynamically: this
 * file is loaded only by the calibrate command, never by a stage.
 */
import type { Classifier } from '../classify/classifier.js';
import { pca2 } from './embedding-map.js';
import type { OodStats } from './ood.js';

export type MapSet = 'simulator CEX' | 'simulator PG' | 'plant clean' | 'plant PG';

/** The training-domain reference: renderCrop (simulator/crop.ts, the default camera) at these seeds. */
export const SIMULATOR_REFERENCE = { perClass: 32, seed: 0x51e1, renderer: 'simulator/crop.ts renderCrop (the default simulator camera)' } as const;
/** Points drawn per set and panel (evenly spaced over the set's model inputs): keeps report.json small. */
export const MAX_POINTS_PER_SET = 240;

export interface MapSetEmbeddings {
  set: MapSet;
  embeddings: Float32Array[];
}

export interface EmbeddingPanel {
  /** Which model's embeddings: the one calibrated, or the one before fine-tuning. */
  model: string;
  note: string;
  explained: [number, number];
  counts: Partial<Record<MapSet, number>>;
  /**
   * Distance of each plant set's centroid to the simulator CEX and PG centroids in the full
   * embedding space, in units of the simulator CEX set's RMS radius: > 1 means the plant's
   * images lie outside the spread of what the model was trained on.
   */
  gap: Partial<Record<'plant clean' | 'plant PG', { toSimulatorCex: number; toSimulatorPg: number }>>;
  points: { set: MapSet; x: number; y: number }[];
  /** Out-of-distribution class centres: the card's before calibration and the calibrated card's. */
  centres: { name: string; card: 'before' | 'after'; x: number; y: number }[];
}

export interface EmbeddingMap {
  picture: string;
  simulator: { renderer: string; seed: number; crops: { cex: number; pg: number }; embedded: number };
  panels: EmbeddingPanel[];
}

/** The reference crops' file bytes, CEX first: the same bytes on every run. */
export async function renderSimulatorReference(): Promise<{ label: 'cex' | 'pg'; bytes: Buffer }[]> {
  const { renderCrop } = await import('../../simulator/crop.js');
  const out: { label: 'cex' | 'pg'; bytes: Buffer }[] = [];
  for (const label of ['cex', 'pg'] as const) {
    for (let i = 0; i < SIMULATOR_REFERENCE.perClass; i++) {
      const crop = await renderCrop({ label, seed: SIMULATOR_REFERENCE.seed + i + (label === 'pg' ? 1000 : 0) });
      out.push({ label, bytes: crop.png });
    }
  }
  return out;
}

/** Embeddings of every model input of `images`, through the classify stage's classifier; refused images give none. */
export async function embedAll(classifier: Classifier, images: Buffer[]): Promise<Float32Array[][]> {
  const out: Float32Array[][] = [];
  for (let i = 0; i < images.length; i += 8) {
    const inputs = await classifier.embed(images.slice(i, i + 8));
    out.push(...inputs.map((x) => (x ?? []).map((e) => e.embedding)));
  }
  return out;
}

/** The simulator reference sets through `classifier`; undefined for a model without an embedding output. */
export async function embedSimulatorReference(classifier: Classifier): Promise<MapSetEmbeddings[] | undefined> {
  if (!classifier.card.output.embeddingName) return undefined;
  const crops = await renderSimulatorReference();
  const embedded = await embedAll(
    classifier,
    crops.map((c) => c.bytes),
  );
  return (['cex', 'pg'] as const).map((label) => ({
    set: label === 'cex' ? ('simulator CEX' as const) : ('simulator PG' as const),
    embeddings: embedded.filter((_, i) => crops[i]!.label === label).flat(),
  }));
}

/** At most `n` items, evenly spaced (deterministic). */
export function evenly<T>(items: readonly T[], n: number): T[] {
  if (items.length <= n) return [...items];
  return Array.from({ length: n }, (_, i) => items[Math.floor((i * items.length) / n)]!);
}

function centroid(rows: Float32Array[], d: number): Float64Array {
  const c = new Float64Array(d);
  for (const r of rows) for (let i = 0; i < d; i++) c[i]! += r[i]! / rows.length;
  return c;
}

const distance = (a: ArrayLike<number>, b: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return Math.sqrt(s);
};

const r4 = (v: number) => Math.round(v * 1e4) / 1e4;

/** One panel: PCA over the sets' (sampled) embeddings, and the OOD class centres of two cards projected on it. */
export function embeddingPanel(model: string, note: string, sets: MapSetEmbeddings[], cards: { before?: OodStats; after?: OodStats }): EmbeddingPanel {
  const sampled = sets.map((s) => ({ set: s.set, rows: evenly(s.embeddings, MAX_POINTS_PER_SET) })).filter((s) => s.rows.length > 0);
  const d = sampled[0]?.rows[0]?.length ?? 0;
  const n = sampled.reduce((k, s) => k + s.rows.length, 0);
  const data = new Float32Array(n * d);
  let row = 0;
  for (const s of sampled) for (const r of s.rows) data.set(r, d * row++);
  const { coords, explained, mean, components } = pca2(data, n, d);
  const project = (v: ArrayLike<number>): [number, number] =>
    components.map((c) => {
      let s = 0;
      for (let i = 0; i < d; i++) s += (v[i]! - mean[i]!) * c[i]!;
      return r4(s);
    }) as [number, number];
  const points: EmbeddingPanel['points'] = [];
  row = 0;
  for (const s of sampled) for (let k = 0; k < s.rows.length; k++, row++) points.push({ set: s.set, x: r4(coords[2 * row]!), y: r4(coords[2 * row + 1]!) });
  const centres: EmbeddingPanel['centres'] = [];
  for (const card of ['before', 'after'] as const) {
    const stats = cards[card];
    if (!stats || stats.dimensions !== d) continue;
    for (const c of stats.classes) {
      const [x, y] = project(c.mean);
      centres.push({ name: c.name, card, x, y });
    }
  }
  // The distances use every embedding of a set, not only the points drawn.
  const rowsOf = (set: MapSet) => sets.find((s) => s.set === set)?.embeddings ?? [];
  const simCex = rowsOf('simulator CEX');
  const simPg = rowsOf('simulator PG');
  const gap: EmbeddingPanel['gap'] = {};
  if (simCex.length > 1 && simPg.length > 0) {
    const cCex = centroid(simCex, d);
    const cPg = centroid(simPg, d);
    const radius = Math.sqrt(simCex.reduce((s, r) => s + distance(r, cCex) ** 2, 0) / simCex.length) || 1;
    for (const set of ['plant clean', 'plant PG'] as const) {
      const rows = rowsOf(set);
      if (rows.length === 0) continue;
      const c = centroid(rows, d);
      gap[set] = { toSimulatorCex: r4(distance(c, cCex) / radius), toSimulatorPg: r4(distance(c, cPg) / radius) };
    }
  }
  const counts: EmbeddingPanel['counts'] = {};
  for (const s of sets) counts[s.set] = s.embeddings.length;
  return { model, note, explained: [r4(explained[0]), r4(explained[1])], counts, gap, points, centres };
}

/** The report's sentence for a panel's gap figures. */
export function gapLine(p: EmbeddingPanel): string {
  const parts = (['plant clean', 'plant PG'] as const).flatMap((set) => {
    const g = p.gap[set];
    return g ? [`${set} centroid ${g.toSimulatorCex} from simulator CEX, ${g.toSimulatorPg} from simulator PG`] : [];
  });
  return parts.length ? `${parts.join('; ')} (units: the simulator CEX embeddings' RMS radius)` : 'no distances (a set is missing)';
}

/** The plant's sets from the scored calibration images: every model input's embedding. */
export function plantSets(scored: readonly { file: { role: 'clean' | 'pg' }; inputs?: { embedding: Float32Array }[] }[]): MapSetEmbeddings[] {
  return (['clean', 'pg'] as const).map((role) => ({
    set: role === 'clean' ? ('plant clean' as const) : ('plant PG' as const),
    embeddings: scored.filter((s) => s.file.role === role && s.inputs).flatMap((s) => s.inputs!.map((i) => i.embedding)),
  }));
}

/**
 * The map's panels: the model before fine-tuning (when there was one), then the model
 * calibrated, with its card's OOD centres before and after calibration. Null without a
 * simulator reference (a model with no embedding output).
 */
export function buildEmbeddingMap(o: {
  reference?: MapSetEmbeddings[];
  plant: MapSetEmbeddings[];
  model: string;
  before?: OodStats;
  after?: OodStats;
  baseline?: { model: string; sets: MapSetEmbeddings[]; ood?: OodStats };
}): EmbeddingMap | null {
  if (!o.reference) return null;
  const panels: EmbeddingPanel[] = [];
  if (o.baseline)
    panels.push(
      embeddingPanel(
        `before fine-tuning: ${o.baseline.model}`,
        "the model fine-tuning started from, on the simulator reference and an evenly spaced sample of the plant's images; crosses: its card's out-of-distribution class centres",
        o.baseline.sets,
        { before: o.baseline.ood },
      ),
    );
  panels.push(
    embeddingPanel(
      `${o.baseline ? 'fine-tuned and calibrated' : 'calibrated'}: ${o.model}`,
      "the model calibrated (its weights are unchanged by calibration, so its embeddings are the same before and after); crosses: the out-of-distribution class centres of its card before calibration and of the calibrated card (the plant's clean class replaces the simulator CEX class)",
      [...o.reference, ...o.plant],
      { before: o.before, after: o.after },
    ),
  );
  const cex = o.reference.find((s) => s.set === 'simulator CEX')?.embeddings.length ?? 0;
  return {
    picture: 'embedding-map.png',
    simulator: {
      renderer: SIMULATOR_REFERENCE.renderer,
      seed: SIMULATOR_REFERENCE.seed,
      crops: { cex: SIMULATOR_REFERENCE.perClass, pg: SIMULATOR_REFERENCE.perClass },
      embedded: cex + (o.reference.find((s) => s.set === 'simulator PG')?.embeddings.length ?? 0),
    },
    panels,
  };
}
