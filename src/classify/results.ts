/** What `Classifier.classify` answers per image. */
import type { Tile } from '../bus/messages.js';
import type { UnusableReason } from './reasons.js';

export interface ResultBase {
  /** Out-of-distribution score of the embedding (mean over tiles), when the card has statistics. */
  ood?: number;
  /** Tiled frames: the tiles whose P(PG) is at or above the threshold. */
  tiles?: Tile[];
  width?: number;
  height?: number;
}

/** A frame the model judged. */
export interface JudgedResult extends ResultBase {
  predicted: 'cex' | 'pg';
  /** P(PG) in [0, 1]. */
  pPG: number;
  reason?: undefined;
  detail?: undefined;
  errorKind?: undefined;
}

/** A frame that does not count: the reason is from the fixed set, the detail says what gave it away. */
export interface UnusableResult extends ResultBase {
  predicted: 'unusable';
  pPG: null;
  reason: UnusableReason;
  detail?: string;
  errorKind?: undefined;
}

/** Bytes that could not be used as an image. */
export interface ErrorResult extends ResultBase {
  predicted: 'error';
  pPG: null;
  /** What was wrong, for a person. */
  reason: string;
  /** `too-large`, `undecodable`, `empty` (a small set, fit for a metric label). */
  errorKind: string;
  detail?: undefined;
}

export type ClassifyResult = JudgedResult | UnusableResult | ErrorResult;
