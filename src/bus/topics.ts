/** Topic names of DESIGN.md, under a configurable prefix (default `crystalwatch.`). */
export interface Topics {
  frames: string;
  predictions: string;
  labels: string;
  alerts: string;
  deadLetter: string;
  /** Batch starts and ends (`RunEvent`), keyed by camera. */
  runs: string;
}

export const DEFAULT_TOPIC_PREFIX = 'crystalwatch.';

export function topicNames(prefix: string = DEFAULT_TOPIC_PREFIX): Topics {
  return {
    frames: `${prefix}frames`,
    predictions: `${prefix}predictions`,
    labels: `${prefix}labels`,
    alerts: `${prefix}alerts`,
    deadLetter: `${prefix}dead-letter`,
    runs: `${prefix}runs`,
  };
}
