export { RunBook, ALL_CAMERAS, type OpenRun } from './book.js';
export { RunControl, RunRequestError, type RunControlOptions, type RunRequest } from './control.js';
export { listRuns, changeRun, type ApiAnswer } from './api.js';
export { runInfo } from './metrics.js';
