/**
 * What people look at: the HTTP API, `/metrics`, the WebSocket live feed and the live page
 * (src/web/README.md). The server is server.ts; the rest is one job per file.
 */
export { WebServer, type WebOptions } from './server.js';
export type { AlertActions, Health } from './api.js';
export type { CameraState } from './camera-state.js';
export type {
  LiveEvent,
  LiveEventType,
  PredictionLiveEvent,
  AlertLiveEvent,
  QualityLiveEvent,
  FrameLiveEvent,
  StatusLiveEvent,
  ThumbnailInfo,
} from './events.js';
export { HttpError, MAX_BODY_BYTES, type Route, type RouteAnswer, type RouteRequest, type RouteMethod, type JsonAnswer, type BytesAnswer } from './routes.js';
export { ThumbnailCache, makeThumbnail, type Thumbnail } from './thumbnails.js';
export { AckGuard, isLoopbackHost, webExposureProblem, ACK_LOOPBACK_NOTICE, ACK_DISABLED_NOTICE } from './auth.js';
