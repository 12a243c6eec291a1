/**
 * Why a frame did not count: the fixed set a `predicted: 'unusable'` result carries, fit for a
 * metric label (`crystalwatch_frames_unusable_total{reason}`) and for an operator to act on.
 *
 * - `not-probe`: not a probe image at all (a photo, a document, a screenshot, noise);
 * - `black`, `saturated`, `blank`, `out-of-focus`: a probe image the camera got wrong;
 * - `frozen`: the same picture again and again from one camera (a stuck acquisition);
 * - `out-of-distribution`: a probe image unlike what the model's statistics describe.
 */
export const UNUSABLE_REASONS = ['not-probe', 'black', 'saturated', 'blank', 'out-of-focus', 'frozen', 'out-of-distribution'] as const;
export type UnusableReason = (typeof UNUSABLE_REASONS)[number];
