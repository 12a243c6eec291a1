/**
 * What the consumers of `predictions` do with a late one (classify's overload catch-up, issue #15):
 * the alert lifecycle ignores it (a late clean frame must not resolve a live alert, a late PG
 * frame must not fire one), the page's camera state keeps the newest frame as the latest, and
 * `/api/cameras` carries each camera's skipped / caught-up counts from the process registry.
 */
import { describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { AlertLifecycle } from '../src/alert/index.js';
import { classifyMetrics } from '../src/classify/metrics.js';
import { coreRoutes, overloadByCamera } from '../src/web/api.js';
import { CameraStore } from '../src/web/camera-state.js';
import { ThumbnailCache } from '../src/web/thumbnails.js';
import type { RouteRequest } from '../src/web/routes.js';
import { predictionSequence, T0 } from './helpers/messages.js';

describe('late predictions', () => {
  it('do not resolve a firing alert, nor fire one', () => {
    const lifecycle = new AlertLifecycle({ resolveAfterCleanFrames: 3 });
    const next = predictionSequence({ camera: 'cam-1', runId: 'run-1' });
    const fired = [next(0.02), next(0.99), next(0.99), next(0.99)].map((p, i) => lifecycle.observe(p, T0 + i).fired).find(Boolean);
    expect(fired?.state).toBe('firing');
    // Three clean frames from the catch-up pass: older frames, classified late.
    for (let i = 0; i < 3; i++) {
      const seen = lifecycle.observe({ ...next(0.01), late: true }, T0 + 10 + i);
      expect(seen).toMatchObject({ skipped: 'late', changes: [] });
    }
    expect(lifecycle.book.get(fired!.id)?.state).toBe('firing');
    // Live clean frames still resolve it.
    const changes = [next(0.01), next(0.01), next(0.01)].flatMap((p, i) => lifecycle.observe(p, T0 + 20 + i).changes);
    expect(changes.map((c) => c.kind)).toContain('resolved');

    const quiet = new AlertLifecycle();
    const other = predictionSequence({ camera: 'cam-2', runId: 'run-1' });
    const lateFired = Array.from({ length: 10 }, (_, i) => quiet.observe({ ...other(0.99), late: true }, T0 + i).fired).filter(Boolean);
    expect(lateFired).toEqual([]);
  });

  it('the camera state keeps the newest frame as latest and out of order points off the trend', () => {
    const store = new CameraStore();
    const next = predictionSequence({ camera: 'cam-1', runId: 'run-1' });
    const live = next(0.2);
    store.absorb({ type: 'prediction', prediction: live });
    store.absorb({ type: 'prediction', prediction: { ...next(0.9), late: true } });
    const [state] = store.list();
    expect(state!.lastPrediction?.frameId).toBe(live.frameId);
    expect(state!.history).toEqual([{ t: live.capturedAt, pPG: 0.2 }]);
  });
});

describe('/api/cameras overload figures', () => {
  it('sums skipped (all reasons) and caught up per camera from the registry', async () => {
    const registry = new Registry();
    const metrics = classifyMetrics(registry);
    expect(await overloadByCamera(registry)).toEqual(new Map());
    metrics.skipped.inc({ camera: 'cam-1', reason: 'stale' }, 7);
    metrics.caughtUp.inc({ camera: 'cam-1' }, 5);
    metrics.skipped.inc({ camera: 'cam-2', reason: 'stale' }, 0);
    const cameras = new CameraStore();
    cameras.absorb({ type: 'prediction', prediction: predictionSequence({ camera: 'cam-1', runId: 'run-1' })(0.1) });
    const route = coreRoutes({ registry, cameras, thumbnails: new ThumbnailCache() }).find((r) => r.path === '/api/cameras')!;
    const answer = await route.handle({} as RouteRequest);
    expect(answer.body).toMatchObject([{ camera: 'cam-1', overload: { skipped: 7, caughtUp: 5 } }]);
  });
});
