/**
 * Which batch each camera is in: the pure state behind `RunControl`, folded from `runs` events
 * in their order. A run started without a camera covers every camera that has no run of its
 * own. An end event names the run as it was opened (its id and camera, or no camera).
 */
import type { RunEvent } from '../bus/messages.js';

/** The key of a run that covers every camera. */
export const ALL_CAMERAS = '*';

export interface OpenRun {
  runId: string;
  /** Undefined: every camera. */
  camera?: string;
  startedAt: string;
  by: string;
}

export class RunBook {
  private readonly open = new Map<string, OpenRun>();

  /**
   * Applies one event; says which run it opened and which it ended (a start on a camera ends
   * that camera's previous run). Applying the same event twice changes nothing the second time,
   * so a process may apply its own event at once and again when it comes back from Kafka.
   */
  apply(event: RunEvent): { started?: OpenRun; ended: OpenRun[] } {
    const key = event.camera ?? ALL_CAMERAS;
    const previous = this.open.get(key);
    if (event.state === 'started') {
      if (previous?.runId === event.runId) return { ended: [] };
      const started: OpenRun = { runId: event.runId, ...(event.camera ? { camera: event.camera } : {}), startedAt: event.at, by: event.by };
      this.open.set(key, started);
      return { started: { ...started }, ended: previous ? [previous] : [] };
    }
    // An end names the run as it was opened (its camera, or none for an all-camera run).
    if (!previous || previous.runId !== event.runId) return { ended: [] };
    this.open.delete(key);
    return { ended: [previous] };
  }

  /** The run a frame of `camera` belongs to now: its own, else one for every camera. */
  runFor(camera: string): string | undefined {
    return (this.open.get(camera) ?? this.open.get(ALL_CAMERAS))?.runId;
  }

  /** Open runs, oldest first. */
  list(): OpenRun[] {
    return [...this.open.values()].map((r) => ({ ...r }));
  }

  /** The open runs an end request names: one camera's (or the all-camera run), or every open run. */
  matching(camera?: string): OpenRun[] {
    if (camera === undefined) return this.list();
    const run = this.open.get(camera) ?? this.open.get(ALL_CAMERAS);
    return run ? [{ ...run }] : [];
  }
}
