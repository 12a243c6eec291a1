/**
 * The latest picture per camera, folded from the live events, so a browser that (re)connects
 * gets everything from `GET /api/cameras` and then follows the feed. Bounded: a runaway camera
 * id cannot grow memory past `maxCameras` states of `historyLength` points each.
 */
import type { Alert, Prediction } from '../bus/messages.js';
import type { LiveEvent, QualityLiveEvent, ThumbnailInfo } from './events.js';

/** What the server remembers per camera, served by `GET /api/cameras`. */
export interface CameraState {
  camera: string;
  updatedAt: string;
  lastPrediction?: Prediction;
  /** Recent P(PG), oldest first, for the sparkline; null = unusable frame. */
  history: { t: string; pPG: number | null }[];
  /** Latest quality event per window (e.g. "500f", "300s"), without its `type`. */
  quality: Record<string, Omit<QualityLiveEvent, 'type'>>;
  /** Latest alert of this camera (firing, acknowledged or resolved). */
  alert?: Alert;
  thumbnail?: ThumbnailInfo;
}

export const CAMERA_HISTORY_LENGTH = 240;
export const MAX_CAMERA_STATES = 1024;

export class CameraStore {
  private readonly cameras = new Map<string, CameraState>();

  constructor(
    private readonly historyLength = CAMERA_HISTORY_LENGTH,
    private readonly maxCameras = MAX_CAMERA_STATES,
  ) {}

  get size(): number {
    return this.cameras.size;
  }

  /** Every camera's state, by camera id. */
  list(): CameraState[] {
    return [...this.cameras.values()].sort((a, b) => a.camera.localeCompare(b.camera));
  }

  /** Fold one live event into its camera's state (frame and status events are not state here). */
  absorb(event: LiveEvent): void {
    switch (event.type) {
      case 'prediction': {
        const { prediction } = event;
        const state = this.touch(prediction.camera);
        // A late prediction (overload catch-up) is of an older frame: not the camera's latest, not in its trend.
        if (!state || prediction.late) return;
        state.lastPrediction = prediction;
        state.history.push({ t: prediction.capturedAt, pPG: prediction.pPG });
        if (state.history.length > this.historyLength) state.history.splice(0, state.history.length - this.historyLength);
        return;
      }
      case 'alert': {
        const state = this.touch(event.alert.camera);
        if (state) state.alert = event.alert;
        return;
      }
      case 'quality': {
        const state = this.touch(event.camera);
        if (!state) return;
        const { type: _type, ...figures } = event;
        state.quality[event.window] = figures;
        return;
      }
      case 'frame':
      case 'status':
        return;
    }
  }

  /** A new thumbnail of `camera`; `latest` says whether it is the newest one the cache holds for it. */
  noteThumbnail(camera: string, info: ThumbnailInfo, latest: boolean): void {
    const state = this.touch(camera);
    if (state && latest) state.thumbnail = info;
  }

  /** The camera's state, created on first sight, its `updatedAt` set to now; undefined when the store is full. */
  private touch(camera: string): CameraState | undefined {
    let state = this.cameras.get(camera);
    if (!state) {
      if (this.cameras.size >= this.maxCameras) return undefined;
      state = { camera, updatedAt: new Date().toISOString(), history: [], quality: {} };
      this.cameras.set(camera, state);
    }
    state.updatedAt = new Date().toISOString();
    return state;
  }
}
