/** How `crystalwatch train` draws its progress lines: a text bar and metrics to four places. */

/** `[=====>    ]`: `done` of `total` steps in `width` characters. */
export function progressBar(done: number, total: number, width = 24): string {
  const filled = Math.round((done / Math.max(total, 1)) * width);
  return `[${'='.repeat(Math.max(0, filled - 1))}${filled > 0 ? (done >= total ? '=' : '>') : ''}${' '.repeat(width - filled)}]`;
}

/** A metric to four decimals, `n/a` where it is undefined (see evaluation.ts). */
export const f4 = (v: number | null): string => (v === null ? 'n/a' : v.toFixed(4));

/** Progress sink: `final` lines stay, the others are overwritten by the next one. */
export type Progress = (line: string, final: boolean) => void;
