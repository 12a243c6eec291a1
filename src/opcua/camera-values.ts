/**
 * The per-camera values the server publishes, and the coalescing between `updateCamera` (called
 * per frame) and the address space (written at most every flush interval). Pure: no node-opcua.
 */
import { identityProblem } from '../bus/messages.js';

export type CameraState = 'ok' | 'unusable' | 'silent';

/** A partial update: fields left out keep their last value. */
export interface CameraValues {
  /** Smoothed P(PG), 0–1. */
  pPG?: number;
  /** The class of the last frame: `cex` or `pg`. */
  predicted?: string;
  cameraState?: CameraState;
  framesPerSecond?: number;
  /** Share of recent frames that passed the quality gates, 0–1. */
  usableFraction?: number;
  /** Capture time of the last frame (ISO 8601 string or Date). */
  lastFrameTime?: Date | string;
  modelVersion?: string;
  runId?: string;
}

export type OpcUaDataTypeName = 'Double' | 'String' | 'Boolean' | 'DateTime';

export interface CameraVariable {
  browseName: string;
  dataType: OpcUaDataTypeName;
  description: string;
}

/** The variables fed by `updateCamera`, in browse order. */
export const CAMERA_VARIABLES: Readonly<Record<keyof CameraValues, CameraVariable>> = {
  pPG: { browseName: 'PPG', dataType: 'Double', description: 'Smoothed probability that the camera sees phenylglycine (PG), 0–1' },
  predicted: { browseName: 'Predicted', dataType: 'String', description: 'Class of the last classified frame: cex or pg' },
  cameraState: { browseName: 'CameraState', dataType: 'String', description: 'ok, unusable (frames fail the quality gates) or silent (no frames)' },
  framesPerSecond: { browseName: 'FramesPerSecond', dataType: 'Double', description: 'Frames classified per second, recent average' },
  usableFraction: { browseName: 'UsableFraction', dataType: 'Double', description: 'Share of recent frames usable for classification, 0–1' },
  lastFrameTime: { browseName: 'LastFrameTime', dataType: 'DateTime', description: 'Capture time of the last frame' },
  modelVersion: { browseName: 'ModelVersion', dataType: 'String', description: 'Model card version that classifies this camera' },
  runId: { browseName: 'RunId', dataType: 'String', description: 'The run (batch) the camera is watching' },
};

/** Set by the alarm, not by updateCamera: they always agree with the PgOnset condition. */
export const ALARM_VARIABLES = {
  alarm: { browseName: 'Alarm', dataType: 'Boolean', description: 'True while the PG onset alarm of this camera is active' },
  alertId: { browseName: 'AlertId', dataType: 'String', description: 'Id of the current or last PG onset alert (as in the alerts topic and the web API)' },
} as const satisfies Record<string, CameraVariable>;

export const CAMERA_STATES: readonly CameraState[] = ['ok', 'unusable', 'silent'];

/** The OPC UA value of a field: DateTime from an ISO string, everything else as given. */
export function opcUaValue(field: keyof CameraValues, value: CameraValues[keyof CameraValues]): number | string | Date {
  if (field === 'lastFrameTime') return value instanceof Date ? value : new Date(value as string);
  return value as number | string;
}

/**
 * Cameras known to the server (bounded) and the values not yet written. `update` is O(fields):
 * it merges into the pending record; `take` hands the merged records over and starts afresh.
 */
export class PendingCameraValues {
  private readonly known = new Set<string>();
  private pending = new Map<string, CameraValues>();
  /** Camera ids refused because the limit was reached (each logged once, bounded). */
  private readonly refused = new Set<string>();

  constructor(readonly maxCameras: number) {}

  /**
   * Makes `camera` known if there is room. Returns 'known' for a camera seen before, 'added' for a
   * new one, 'full' when the limit refuses it. Throws for an id that is not a valid camera id.
   */
  admit(camera: string): 'known' | 'added' | 'full' {
    if (this.known.has(camera)) return 'known';
    const problem = identityProblem('camera id', camera);
    if (problem) throw new Error(`opcua: ${problem}`);
    if (this.known.size >= this.maxCameras) return 'full';
    this.known.add(camera);
    return 'added';
  }

  /** Records a refusal; true the first time for this camera (so the caller logs once). */
  noteRefused(camera: string): boolean {
    if (this.refused.has(camera) || this.refused.size >= this.maxCameras) return false;
    this.refused.add(camera);
    return true;
  }

  /** Merges `values` into what is pending for an admitted camera. */
  merge(camera: string, values: CameraValues): void {
    const pending = this.pending.get(camera);
    if (pending) Object.assign(pending, definedOnly(values));
    else this.pending.set(camera, definedOnly(values));
  }

  get hasPending(): boolean {
    return this.pending.size > 0;
  }

  take(): Map<string, CameraValues> {
    const taken = this.pending;
    this.pending = new Map();
    return taken;
  }

  get cameras(): string[] {
    return [...this.known];
  }
}

function definedOnly(values: CameraValues): CameraValues {
  const out: CameraValues = {};
  for (const key of Object.keys(CAMERA_VARIABLES) as (keyof CameraValues)[]) {
    if (values[key] !== undefined) (out as Record<string, unknown>)[key] = values[key];
  }
  return out;
}
