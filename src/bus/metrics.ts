/**
 * Metrics about the bus that several stages share: each stage that dead-letters or
 * drops redelivered records counts into the same series, labelled by stage.
 */
import { Counter, type Registry } from 'prom-client';
import { once } from '../config/prometheus.js';

export function deadLetterCounter(registry: Registry): Counter<'stage' | 'reason'> {
  return once(
    registry,
    'crystalwatch_dead_letter_total',
    () =>
      new Counter({
        name: 'crystalwatch_dead_letter_total',
        help: 'Records sent to the dead-letter topic, by stage and reason.',
        labelNames: ['stage', 'reason'] as const,
        registers: [registry],
      }),
  );
}

export function duplicatePredictionsCounter(registry: Registry): Counter<'stage'> {
  return once(
    registry,
    'crystalwatch_duplicate_predictions_total',
    () =>
      new Counter({
        name: 'crystalwatch_duplicate_predictions_total',
        help: 'Predictions seen again (at-least-once redelivery) and ignored, by stage.',
        labelNames: ['stage'] as const,
        registers: [registry],
      }),
  );
}
