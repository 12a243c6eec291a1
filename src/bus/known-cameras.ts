/**
 * Which camera ids may become a metric label value. A camera id arrives in every record, and
 * each new value makes new series in every per-camera metric: 3,000 well-formed predictions
 * with made-up camera ids once made 39,000 series and a 10 MB /metrics. So a stage gives its
 * own series only to the configured cameras, or, when none are configured (a stand-alone
 * stage), to the first `maxCameras` it sees; the rest are counted in one series
 * (`crystalwatch_unknown_camera_total{stage}`) and get none of their own.
 *
 *   const known = new KnownCameras({ cameras: config.cameras.map((c) => c.id), maxCameras: config.metrics.maxCameras });
 *   if (!known.admit(prediction.camera)) { unknownCameras.inc({ stage: 'metrics' }); return; }
 */
import { Counter, type Registry } from 'prom-client';
import { DEFAULT_MAX_CAMERAS } from '../config/defaults.js';
import { once } from '../config/prometheus.js';

export interface KnownCamerasOptions {
  /** The configured cameras: when given (non-empty), exactly these are admitted. */
  cameras?: readonly string[];
  /** With no cameras configured, how many distinct ids are admitted, first come first served. Default 64. */
  maxCameras?: number;
}

export class KnownCameras {
  private readonly admitted = new Set<string>();
  private readonly fixed: boolean;
  readonly maxCameras: number;

  constructor(options: KnownCamerasOptions = {}) {
    this.maxCameras = options.maxCameras ?? DEFAULT_MAX_CAMERAS;
    if (!Number.isInteger(this.maxCameras) || this.maxCameras < 1)
      throw new RangeError(`KnownCameras: maxCameras must be a positive integer, got ${options.maxCameras}`);
    for (const camera of options.cameras ?? []) this.admitted.add(camera);
    this.fixed = this.admitted.size > 0;
  }

  /** Whether `camera` may have its own series; admits it while there is room (no cameras configured). */
  admit(camera: string): boolean {
    if (this.admitted.has(camera)) return true;
    if (this.fixed || this.admitted.size >= this.maxCameras) return false;
    this.admitted.add(camera);
    return true;
  }

  /** Whether `camera` has been admitted already (admits nothing). */
  has(camera: string): boolean {
    return this.admitted.has(camera);
  }

  get size(): number {
    return this.admitted.size;
  }

  /** "the configured cameras" or "the first 64 cameras seen", for log lines. */
  describe(): string {
    return this.fixed ? `the ${this.admitted.size} configured camera(s)` : `the first ${this.maxCameras} cameras seen`;
  }
}

export function unknownCameraCounter(registry: Registry): Counter<'stage'> {
  return once(
    registry,
    'crystalwatch_unknown_camera_total',
    () =>
      new Counter({
        name: 'crystalwatch_unknown_camera_total',
        help: 'Records from a camera that is neither configured nor among the first metrics.maxCameras seen: counted here, without per-camera series, by stage.',
        labelNames: ['stage'] as const,
        registers: [registry],
      }),
  );
}
