/**
 * The one rule for camera ids and run ids. They are Kafka keys, metric label values, folder
 * names and parts of frame ids, so the same rule holds everywhere they enter: the config,
 * ingest, the message codecs of src/bus (which re-export it) and the run commands.
 */
import { z } from 'zod';
import { shown } from './shown.js';

export const IDENTITY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const IDENTITY_RULE = '1–64 letters, digits, ".", "_" or "-", starting with a letter or digit';

const identity = (what: string) => z.string().regex(IDENTITY_PATTERN, `${what} must be ${IDENTITY_RULE}`);
export const CameraIdSchema = identity('camera id');
export const RunIdSchema = identity('run id');

/** Why `value` is not a valid camera/run id (naming it, shortened), or undefined when it is. */
export function identityProblem(what: 'camera id' | 'run id', value: string): string | undefined {
  return IDENTITY_PATTERN.test(value) ? undefined : `${what} ${shown(value)} must be ${IDENTITY_RULE}`;
}
