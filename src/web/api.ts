/**
 * The routes every web server answers: `/metrics`, health, alerts (list and acknowledge through
 * the alert stage's API), per-camera state and thumbnails. Endpoints are listed in README.md.
 */
import type { Registry } from 'prom-client';
import type { Alert } from '../bus/messages.js';
import type { CameraState, CameraStore } from './camera-state.js';
import { HttpError, type Route } from './routes.js';
import type { ThumbnailCache } from './thumbnails.js';

/** What the web stage may do with alerts: the alert stage's API, handed over by the app. */
export interface AlertActions {
  /** Every alert kept, newest first. */
  list(): Alert[];
  /**
   * Acknowledge once; the alert stage announces the change (one `alert` live event through
   * `publish`), so the web stage does not broadcast it itself. Resolves once the acknowledgement
   * is durable (on the `alerts` topic); undefined for an unknown id.
   */
  acknowledge(id: string, by?: string, comment?: string): Promise<Alert | undefined>;
}

export type Health = { ready: boolean; checks: Record<string, boolean | string> };

export interface CoreRouteDeps {
  registry: Registry;
  /** Absent in a process without an alert stage: no alerts to list or acknowledge. */
  alerts?: AlertActions;
  health?: () => Health;
  cameras: CameraStore;
  thumbnails: ThumbnailCache;
}

/** `by` is free text from the browser; kept short because it lands in logs, the audit trail and the alert. */
const MAX_BY_LENGTH = 100;
const MAX_COMMENT_LENGTH = 500;

/** An acknowledgement's optional text field, cut to `max` characters; an object or a number there is a 400, not "[object Object]". */
function optionalText(body: Record<string, unknown>, field: 'by' | 'comment', max: number): string | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new HttpError(400, `acknowledgement: ${field} must be a string, got ${JSON.stringify(value)}`);
  return value.slice(0, max);
}

const newestFirst = (a: Alert, b: Alert) => (a.startsAt < b.startsAt ? 1 : a.startsAt > b.startsAt ? -1 : 0);

/** Per camera, the classify stage's overload counters in this process's registry (absent without a classify stage here). */
export async function overloadByCamera(registry: Registry): Promise<Map<string, { skipped: number; caughtUp: number }>> {
  const out = new Map<string, { skipped: number; caughtUp: number }>();
  const add = async (name: string, field: 'skipped' | 'caughtUp') => {
    const metric = registry.getSingleMetric(name);
    if (!metric) return;
    for (const { labels, value } of (await metric.get()).values) {
      const camera = labels.camera;
      if (typeof camera !== 'string') continue;
      const entry = out.get(camera) ?? { skipped: 0, caughtUp: 0 };
      entry[field] += value;
      out.set(camera, entry);
    }
  };
  await add('crystalwatch_frames_skipped_total', 'skipped');
  await add('crystalwatch_frames_caught_up_total', 'caughtUp');
  return out;
}

function withOverload(
  list: CameraState[],
  overload: Map<string, { skipped: number; caughtUp: number }>,
): (CameraState & { overload?: { skipped: number; caughtUp: number } })[] {
  return list.map((state) => {
    const figures = overload.get(state.camera);
    return figures ? { ...state, overload: figures } : state;
  });
}

export function coreRoutes(deps: CoreRouteDeps): Route[] {
  const { registry, alerts, health, cameras, thumbnails } = deps;
  return [
    { method: 'GET', path: '/metrics', handle: async () => ({ status: 200, body: await registry.metrics(), contentType: registry.contentType }) },
    { method: 'GET', path: '/healthz', handle: () => ({ status: 200, body: { status: 'ok' } }) },
    {
      method: 'GET',
      path: '/readyz',
      handle: () => {
        const answer = health ? health() : { ready: true, checks: {} };
        return { status: answer.ready ? 200 : 503, body: answer };
      },
    },
    { method: 'GET', path: '/api/alerts', handle: () => ({ status: 200, body: [...(alerts?.list() ?? [])].sort(newestFirst) }) },
    {
      method: 'POST',
      path: '/api/alerts/:id/ack',
      mutating: true,
      handle: async ({ params, readJson }) => {
        const body = await readJson();
        const by = optionalText(body, 'by', MAX_BY_LENGTH);
        const comment = optionalText(body, 'comment', MAX_COMMENT_LENGTH);
        const acked = await alerts?.acknowledge(params.id!, by, comment);
        if (!acked) throw new HttpError(404, `no alert with id ${JSON.stringify(params.id)}; GET /api/alerts lists the known ones`);
        return { status: 200, body: acked };
      },
    },
    { method: 'GET', path: '/api/cameras', handle: async () => ({ status: 200, body: withOverload(cameras.list(), await overloadByCamera(registry)) }) },
    {
      method: 'GET',
      path: '/api/frames/:frameId/thumbnail',
      handle: ({ params }) => {
        const thumb = thumbnails.get(params.frameId!);
        if (!thumb) throw new HttpError(404, `no thumbnail for frame ${JSON.stringify(params.frameId)} (only recent frames and alert evidence are kept)`);
        // A frame id names fixed content.
        return { status: 200, body: thumb.jpeg, contentType: 'image/jpeg', headers: { 'cache-control': 'private, max-age=3600, immutable' } };
      },
    },
    {
      method: 'GET',
      path: '/api/cameras/:camera/latest.jpg',
      handle: ({ params }) => {
        const thumb = thumbnails.latestFor(params.camera!);
        if (!thumb) throw new HttpError(404, `no frame seen yet from camera ${JSON.stringify(params.camera)}`);
        return {
          status: 200,
          body: thumb.jpeg,
          contentType: 'image/jpeg',
          headers: { 'cache-control': 'no-store', 'x-frame-id': encodeURIComponent(thumb.frameId) },
        };
      },
    },
  ];
}
