/**
 * The web routes of the plant parts, mounted by the app on the web stage: the audit trail
 * (`GET /api/audit`, behind the token: the batch record is not public) and runs (`GET` and
 * `POST /api/runs`, the POST behind the token). Each answers 404 with a reason in a process
 * that does not hold the part (e.g. a web-only process has no audit trail).
 */
import { auditApi } from '../audit/index.js';
import { changeRun, listRuns } from '../runs/index.js';
import { HttpError, type Route } from '../web/index.js';
import type { Pipeline } from './pipeline.js';

/** `by` of a run change: the free-text name the client gives (`?by=` or body `by`), bounded. */
const byOf = (value: unknown) => (typeof value === 'string' && value.trim() ? value.trim().slice(0, 100) : 'api');

export function plantRoutes(pipeline: () => Pipeline | undefined): Route[] {
  return [
    {
      method: 'GET',
      path: '/api/audit',
      mutating: true,
      handle: async ({ url }) => {
        const trail = pipeline()?.audit;
        if (!trail) throw new HttpError(404, 'no audit trail in this process (it is kept by the process that runs the monitor stage, with audit.enabled)');
        const answer = await auditApi(trail)(url);
        return { status: answer.status, body: answer.body };
      },
    },
    {
      method: 'GET',
      path: '/api/runs',
      handle: () => {
        const runs = pipeline()?.runs;
        if (!runs) throw new HttpError(404, 'runs are not available yet');
        return listRuns(runs);
      },
    },
    {
      method: 'POST',
      path: '/api/runs',
      mutating: true,
      handle: async ({ readJson }) => {
        const runs = pipeline()?.runs;
        if (!runs?.ready) throw new HttpError(503, 'runs are not available yet; try again when /readyz says ready');
        const body = await readJson();
        return changeRun(runs, body, byOf(body.by));
      },
    },
  ];
}
