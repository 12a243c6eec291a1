/**
 * `crystalwatch_run_info{camera,run}` = 1: the run (batch) each camera's latest prediction
 * belongs to, so a Grafana panel can show and join on it. One series per camera: the previous
 * run's series is removed when the run changes, and only known cameras get one.
 */
import { Gauge, type Registry } from 'prom-client';
import { KnownCameras } from '../bus/known-cameras.js';
import { once } from '../config/prometheus.js';

export function runInfo(registry: Registry, known: KnownCameras): (camera: string, runId: string) => void {
  const gauge = once(
    registry,
    'crystalwatch_run_info',
    () =>
      new Gauge({
        name: 'crystalwatch_run_info',
        help: "The run (batch) of each camera's latest prediction (value 1; one series per camera).",
        labelNames: ['camera', 'run'] as const,
        registers: [registry],
      }),
  );
  const current = new Map<string, string>();
  return (camera, runId) => {
    if (current.get(camera) === runId || !known.admit(camera)) return;
    const previous = current.get(camera);
    if (previous !== undefined) gauge.remove({ camera, run: previous });
    current.set(camera, runId);
    gauge.set({ camera, run: runId }, 1);
  };
}
