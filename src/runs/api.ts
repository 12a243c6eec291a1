/**
 * The runs HTTP API, independent of the web server's routing: `GET /api/runs` lists the open
 * runs; `POST /api/runs` with `{"action":"start","runId":"B-42","camera":"cam-1"}` or
 * `{"action":"end","camera":"cam-1"}` starts or ends one (the web stage mounts it behind its
 * token check; `by` is the authenticated user or "api").
 */
import { RunRequestError, type RunControl } from './control.js';

export interface ApiAnswer {
  status: number;
  body: unknown;
}

export function listRuns(control: RunControl): ApiAnswer {
  return { status: 200, body: { runs: control.list() } };
}

export async function changeRun(control: RunControl, body: unknown, by: string): Promise<ApiAnswer> {
  if (body === null || typeof body !== 'object')
    return { status: 400, body: { error: 'body must be a JSON object such as {"action":"start","runId":"B-42","camera":"cam-1"}' } };
  const { action, runId, camera } = body as Record<string, unknown>;
  if (camera !== undefined && typeof camera !== 'string') return { status: 400, body: { error: `camera must be a string, got ${JSON.stringify(camera)}` } };
  if (runId !== undefined && typeof runId !== 'string') return { status: 400, body: { error: `runId must be a string, got ${JSON.stringify(runId)}` } };
  try {
    if (action === 'start') {
      if (runId === undefined) return { status: 400, body: { error: 'action "start" needs a runId' } };
      const run = await control.startRun({ runId, ...(camera ? { camera } : {}), by, source: 'api' });
      return { status: 201, body: { run } };
    }
    if (action === 'end') {
      const ended = await control.endRun({ ...(runId ? { runId } : {}), ...(camera ? { camera } : {}), by, source: 'api' });
      if (ended.length === 0) return { status: 404, body: { error: `no open run${camera ? ` on camera ${camera}` : ''}${runId ? ` named ${runId}` : ''}` } };
      return { status: 200, body: { ended } };
    }
    return { status: 400, body: { error: `action must be "start" or "end", got ${JSON.stringify(action)}` } };
  } catch (err) {
    if (err instanceof RunRequestError) return { status: 400, body: { error: err.message } };
    throw err;
  }
}
