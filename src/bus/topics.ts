/** Topic names of DESIGN.md, under a configurable prefix (default `crystalwatch.`). */
import { DEFAULT_TOPIC_PREFIX } from '../config/defaults.js';

export interface Topics {
  frames: string;
  predictions: string;
  labels: string;
  alerts: string;
  deadLetter: string;
  /** Batch starts and ends (`RunEvent`), keyed by camera. */
  runs: string;
}

export { DEFAULT_TOPIC_PREFIX };

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
