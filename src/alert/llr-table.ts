/**
 * A tabulated per-frame log-likelihood ratio ℓ(P(PG)), as `crystalwatch calibrate` fits it
 * from a camera's own clean scores (the card's `detector.llr`): ℓ on a grid of logit P(PG),
 * clamped outside the grid, linear between its points. The CUSUM uses it in place of the
 * default two-component model when the card carries one.
 */

/** ℓ at logit P(PG) = logitMin + i·logitStep; clamped outside, linear between. */
export interface LlrTable {
  logitMin: number;
  logitStep: number;
  values: number[];
}

/** logit, with P(PG) clamped to [1e-6, 1 − 1e-6] so 0 and 1 stay finite. */
export const logit = (p: number): number => {
  const q = Math.min(1 - 1e-6, Math.max(1e-6, p));
  return Math.log(q / (1 - q));
};

export function llrAt(t: LlrTable, p: number): number {
  const pos = (logit(p) - t.logitMin) / t.logitStep;
  const last = t.values.length - 1;
  if (pos <= 0) return t.values[0]!;
  if (pos >= last) return t.values[last]!;
  const i = Math.floor(pos);
  const f = pos - i;
  return t.values[i]! * (1 - f) + t.values[i + 1]! * f;
}

/** Why `t` is not a usable table (for the card loader's message), or undefined. */
export function llrTableProblem(t: unknown): string | undefined {
  if (t === null || typeof t !== 'object') return 'must be an object {logitMin, logitStep, values}';
  const { logitMin, logitStep, values } = t as Record<string, unknown>;
  if (typeof logitMin !== 'number' || !Number.isFinite(logitMin)) return `logitMin must be a finite number, got ${JSON.stringify(logitMin)}`;
  if (typeof logitStep !== 'number' || !(logitStep > 0)) return `logitStep must be a positive number, got ${JSON.stringify(logitStep)}`;
  if (!Array.isArray(values) || values.length < 2 || values.some((v) => typeof v !== 'number' || !Number.isFinite(v)))
    return 'values must be at least 2 finite numbers';
  return undefined;
}
