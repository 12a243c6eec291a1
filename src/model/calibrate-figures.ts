/**
 * The figures of one card on one camera's images, before or after calibration: per-frame
 * false-positive rate (held-out clean images; fitting images separately, labelled in-sample),
 * PG recall, what the out-of-distribution gate refuses, and the onset detector's false alarms
 * and delay from the observed scores. Pure: outcomes in, numbers out.
 */
import { averageRunLength, batchDaysPerFalseAlarm, countAlarms, observedAtoms } from './calibrate-detector.js';
import { upperBound } from './calibrate-fit.js';

/** One image as a card judged it. */
export interface Outcome {
  verdict: 'cex' | 'pg' | 'out-of-distribution' | 'refused' | 'error';
  /** P(PG) of judged images. */
  pPG: number | null;
}

export interface SetFigures {
  images: number;
  /** Judged (not refused by a gate, not out of distribution). */
  usable: number;
  outOfDistribution: number;
  refusedByGates: number;
  /** Clean sets: judged PG. PG sets: judged PG (detected). */
  pg: number;
  /** pg / usable. */
  rate: number | null;
  /** 95 % one-sided upper bound on that rate (clean sets). */
  upperBound95: number | null;
}

export interface DetectorFigures {
  h: number;
  /** Mean clean frames between false alarms, from the held-out clean frames' own scores. */
  heldOutArl0Frames: number;
  /** The same under the clean-score model: assumed (before), or the 10th percentile over bootstrap refits of the fitted one (after). */
  modelArl0Frames: number;
  /** The figure claimed: the smaller of the two. */
  arl0Frames: number;
  /** Alarms counted over 100,000 frames drawn from the held-out clean frames' scores. */
  falseAlarmsPer100kFrames: number;
  batchDaysPerFalseAlarm: number;
  fps: number;
  /** Mean PG-bearing frames from onset to alarm: measured on the PG images when given, else under the PG model. */
  delayFrames: number;
  delaySource: 'pg images' | 'pg model';
}

export interface CardFigures {
  threshold: number;
  oodThreshold: number | null;
  heldOut: SetFigures;
  fit: SetFigures;
  pgImages: SetFigures | null;
  detector: DetectorFigures;
}

const r6 = (v: number) => Math.round(v * 1e6) / 1e6;

export function setFigures(outcomes: readonly Outcome[], clean: boolean): SetFigures {
  const usable = outcomes.filter((o) => o.verdict === 'cex' || o.verdict === 'pg').length;
  const pg = outcomes.filter((o) => o.verdict === 'pg').length;
  return {
    images: outcomes.length,
    usable,
    outOfDistribution: outcomes.filter((o) => o.verdict === 'out-of-distribution').length,
    refusedByGates: outcomes.filter((o) => o.verdict === 'refused' || o.verdict === 'error').length,
    pg,
    rate: usable ? r6(pg / usable) : null,
    upperBound95: clean && usable ? r6(upperBound(pg, usable, 0.95)) : null,
  };
}

const judged = (outcomes: readonly Outcome[]): number[] =>
  outcomes.flatMap((o) => (o.pPG !== null && (o.verdict === 'cex' || o.verdict === 'pg') ? [o.pPG] : []));

export interface DetectorInput {
  h: number;
  llrOf: (p: number) => number;
  modelArl0Frames: number;
  modelArl1Frames: number;
  fps: number;
  seed: number;
}

export function detectorFigures(heldOut: readonly Outcome[], pg: readonly Outcome[] | null, d: DetectorInput): DetectorFigures {
  const clean = judged(heldOut);
  const heldOutArl0Frames = clean.length ? averageRunLength(d.h, observedAtoms(clean, d.llrOf)) : Infinity;
  const arl0Frames = Math.min(heldOutArl0Frames, d.modelArl0Frames);
  const pgScores = pg ? judged(pg) : [];
  const delayFrames = pgScores.length ? averageRunLength(d.h, observedAtoms(pgScores, d.llrOf)) : d.modelArl1Frames;
  return {
    h: r6(d.h),
    heldOutArl0Frames: round(heldOutArl0Frames),
    modelArl0Frames: round(d.modelArl0Frames),
    arl0Frames: round(arl0Frames),
    falseAlarmsPer100kFrames: countAlarms(d.h, clean.map(d.llrOf), 100_000, d.seed),
    batchDaysPerFalseAlarm: round(batchDaysPerFalseAlarm(arl0Frames, d.fps)),
    fps: r6(d.fps),
    delayFrames: round(delayFrames),
    delaySource: pgScores.length ? 'pg images' : 'pg model',
  };
}

/** Finite figures to 4 significant digits; Infinity stays (JSON writes it as null: "never", see report). */
function round(v: number): number {
  if (!Number.isFinite(v)) return v;
  return Number(v.toPrecision(4));
}

export function cardFigures(o: {
  threshold: number;
  oodThreshold: number | null;
  heldOut: Outcome[];
  fit: Outcome[];
  pg: Outcome[] | null;
  detector: DetectorInput;
}): CardFigures {
  return {
    threshold: o.threshold,
    oodThreshold: o.oodThreshold,
    heldOut: setFigures(o.heldOut, true),
    fit: setFigures(o.fit, true),
    pgImages: o.pg ? setFigures(o.pg, false) : null,
    detector: detectorFigures(o.heldOut, o.pg, o.detector),
  };
}
