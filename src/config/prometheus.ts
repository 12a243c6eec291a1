import type { Registry } from 'prom-client';

/**
 * Declares a metric on `registry` once. Stages are given the process's registry and
 * some metrics are shared between stages (e.g. `crystalwatch_dead_letter_total`), so a
 * stage reuses the metric already registered under `name` instead of registering it
 * twice (which prom-client refuses).
 */
export function once<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}
