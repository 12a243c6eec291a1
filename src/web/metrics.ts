/**
 * Metrics of the web stage: who is watching and what it costs to show them.
 * Declared once per registry; a second WebServer on the same registry reuses them.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { once } from '../config/prometheus.js';

export interface WebMetrics {
  httpRequests: Counter<'route' | 'code'>;
  wsClients: Gauge;
  wsEvents: Counter<'type'>;
  wsDropped: Counter;
  thumbnails: Counter<'result'>;
  thumbnailSeconds: Histogram;
}

export function createWebMetrics(registry: Registry): WebMetrics {
  const registers = [registry];
  return {
    httpRequests: once(
      registry,
      'crystalwatch_web_http_requests_total',
      () =>
        new Counter({
          name: 'crystalwatch_web_http_requests_total',
          help: 'HTTP requests answered by the web server, by route pattern (not the raw path) and status code.',
          labelNames: ['route', 'code'] as const,
          registers,
        }),
    ),
    wsClients: once(
      registry,
      'crystalwatch_web_ws_clients',
      () =>
        new Gauge({
          name: 'crystalwatch_web_ws_clients',
          help: 'Browsers currently connected to the live WebSocket feed (/ws).',
          registers,
        }),
    ),
    wsEvents: once(
      registry,
      'crystalwatch_web_ws_events_total',
      () =>
        new Counter({
          name: 'crystalwatch_web_ws_events_total',
          help: 'Live events published to the WebSocket feed, by event type.',
          labelNames: ['type'] as const,
          registers,
        }),
    ),
    wsDropped: once(
      registry,
      'crystalwatch_web_ws_dropped_total',
      () =>
        new Counter({
          name: 'crystalwatch_web_ws_dropped_total',
          help: 'Live events not sent to a slow browser because its send buffer was full.',
          registers,
        }),
    ),
    thumbnails: once(
      registry,
      'crystalwatch_web_thumbnails_total',
      () =>
        new Counter({
          name: 'crystalwatch_web_thumbnails_total',
          help: 'Frames turned into thumbnails (result="ok") or skipped (result="bad_headers"|"decode_error"|"skipped_lag": more than 10 s behind the line; "skipped_interval": the camera had one less than a second ago).',
          labelNames: ['result'] as const,
          registers,
        }),
    ),
    thumbnailSeconds: once(
      registry,
      'crystalwatch_web_thumbnail_seconds',
      () =>
        new Histogram({
          name: 'crystalwatch_web_thumbnail_seconds',
          help: 'Time to decode a frame and encode its ≤320 px JPEG thumbnail.',
          buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
          registers,
        }),
    ),
  };
}
