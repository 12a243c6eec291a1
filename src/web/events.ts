/**
 * What the live feed (`/ws`) carries, one JSON text message per event, server → browser.
 * The `type` field tells them apart; src/web/README.md documents what the page does with each.
 */
import type { Alert, Prediction, QualityEvent } from '../bus/messages.js';

/** A new prediction of one frame. */
export interface PredictionLiveEvent {
  type: 'prediction';
  prediction: Prediction;
}

/** An alert changed: fired, acknowledged (`acknowledgedAt` set) or resolved. */
export interface AlertLiveEvent {
  type: 'alert';
  alert: Alert;
}

/** One camera's rolling quality over one window (the quality stage's event, src/bus/messages.ts). */
export type QualityLiveEvent = { type: 'quality' } & QualityEvent;

/** Where a camera's newest thumbnail is and how it maps onto the frame (prediction tiles are in frame pixels). */
export interface ThumbnailInfo {
  frameId: string;
  capturedAt: string;
  /** Size of the thumbnail. */
  width: number;
  height: number;
  /** Size of the original frame. */
  sourceWidth: number;
  sourceHeight: number;
  /** `/api/frames/<frameId>/thumbnail`. */
  url: string;
}

/** A new thumbnail, sent by the server itself (from the frames consumer or `addThumbnail`). */
export interface FrameLiveEvent extends ThumbnailInfo {
  type: 'frame';
  camera: string;
}

/** The greeting every connection gets first. */
export interface StatusLiveEvent {
  type: 'status';
  connected: true;
  at: string;
  /** Cameras the server has state for. */
  cameras: number;
}

export type LiveEvent = PredictionLiveEvent | AlertLiveEvent | QualityLiveEvent | FrameLiveEvent | StatusLiveEvent;
export type LiveEventType = LiveEvent['type'];
