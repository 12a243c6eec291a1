/**
 * The model-free checks every frame passes before the model sees it, in the order an operator
 * would want the reason: nothing in view (`black`, `saturated`, `blank`), not a probe image at
 * all (`not-probe`), a probe image too blurred to judge (`out-of-focus`). One sampled grey plane
 * (colour measured while sampling) feeds them all.
 */
import type { DecodedImage } from './preprocess.js';
import { DEFAULT_PROBE, judgeProbe, probeStats, type ProbeStats, type ProbeThresholds } from './probe-gate.js';
import { DEFAULT_QUALITY, describeQuality, greyPlane, judgeQuality, planeQualityStats, type QualityStats, type QualityThresholds } from './quality.js';
import type { UnusableReason } from './reasons.js';

export interface GateVerdict {
  reason: Extract<UnusableReason, 'black' | 'saturated' | 'blank' | 'not-probe' | 'out-of-focus'>;
  /** The statistic and bound that refused it, for logs and `crystalwatch predict`. */
  detail: string;
}

export interface GateThresholds {
  quality: QualityThresholds;
  /** false: no "is it a probe image" check (models for other imagery; tests of other parts). */
  probe: ProbeThresholds | false;
}

export const DEFAULT_GATES: GateThresholds = { quality: DEFAULT_QUALITY, probe: DEFAULT_PROBE };

export interface GateStats {
  quality: QualityStats;
  probe?: ProbeStats;
}

/** Every statistic the gates read (exported for the bench and for tuning the bounds). */
export function gateStats(image: DecodedImage, withProbe = true): GateStats {
  const plane = greyPlane(image);
  const quality = planeQualityStats(plane);
  return withProbe ? { quality, probe: probeStats(plane, quality) } : { quality };
}

/** The first reason this image must not reach the model, or undefined. */
export function judgeFrame(stats: GateStats, t: GateThresholds = DEFAULT_GATES): GateVerdict | undefined {
  const quality = judgeQuality(stats.quality, t.quality);
  // Nothing in view trumps everything; a blurred non-probe image is first of all not a probe image.
  if (quality && quality !== 'out-of-focus') return { reason: quality, detail: describeQuality(quality, stats.quality, t.quality) };
  if (t.probe && stats.probe) {
    const why = judgeProbe(stats.probe, stats.quality, t.probe);
    if (why) return { reason: 'not-probe', detail: why };
  }
  return quality ? { reason: quality, detail: describeQuality(quality, stats.quality, t.quality) } : undefined;
}
