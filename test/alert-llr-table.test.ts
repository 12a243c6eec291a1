/**
 * The CUSUM with a tabulated ℓ (what `crystalwatch calibrate` writes into a card): a table of
 * the default model's own ℓ gives the same statistic as the model, a bad table is refused at
 * construction with the field named, and a camera-specific table changes what alarms.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_CUSUM_MODEL, OnsetDetector, logLikelihoodRatio } from '../src/alert/detector.js';
import { llrAt, logit, type LlrTable } from '../src/alert/llr-table.js';

function tableOf(l: (p: number) => number): LlrTable {
  const logitMin = -10;
  const logitStep = 0.05;
  const values = Array.from({ length: Math.round(20 / logitStep) + 1 }, (_, i) => {
    const u = logitMin + i * logitStep;
    return l(1 / (1 + Math.exp(-u)));
  });
  return { logitMin, logitStep, values };
}

describe('CUSUM with a calibrated ℓ table', () => {
  const model = tableOf((p) => logLikelihoodRatio(p, DEFAULT_CUSUM_MODEL));

  it('interpolates the table and clamps outside it', () => {
    expect(llrAt(model, 0.5)).toBeCloseTo(logLikelihoodRatio(0.5, DEFAULT_CUSUM_MODEL), 3);
    expect(llrAt(model, 0)).toBe(model.values[0]);
    expect(llrAt(model, 1)).toBe(model.values.at(-1));
    expect(logit(0.5)).toBe(0);
  });

  it('follows the model it tabulates, frame by frame', () => {
    const parametric = new OnsetDetector({ kind: 'cusum', threshold: 11.5 });
    const tabulated = new OnsetDetector({ kind: 'cusum', threshold: 11.5, llr: model });
    const stream = [0.02, 0.01, 0.3, 0.05, 0.9, 0.95, 0.97, 0.99, 0.6, 0.98, 0.99, 0.995, 0.99];
    for (const p of stream) {
      const a = parametric.update(p);
      const b = tabulated.update(p);
      expect(b.statistic).toBeCloseTo(a.statistic, 1);
      expect(b.alarm).toBe(a.alarm);
    }
    expect(tabulated.description).toMatch(/llr=calibrated/);
  });

  it("uses the camera's own ℓ: a camera whose clean frames sit at P(PG) 0.7 does not alarm on them", () => {
    // This camera's clean scores are high (0.6–0.8): calibrate gives ℓ ≤ 0 there.
    const camera = tableOf((p) => (p < 0.85 ? -0.5 : 3));
    const calibrated = new OnsetDetector({ kind: 'cusum', threshold: 11.5, llr: camera });
    const uncalibrated = new OnsetDetector({ kind: 'cusum', threshold: 11.5 });
    let calibratedAlarms = 0;
    let uncalibratedAlarms = 0;
    for (let i = 0; i < 200; i++) {
      if (calibrated.update(0.7).alarm) calibratedAlarms += 1;
      if (uncalibrated.update(0.7).alarm) uncalibratedAlarms += 1;
    }
    expect(calibratedAlarms).toBe(0);
    expect(uncalibratedAlarms).toBeGreaterThan(0);
    let frames = 0;
    while (!calibrated.update(0.97).alarm) frames += 1;
    expect(frames).toBeLessThan(5);
  });

  it('refuses a table it cannot use, naming what is wrong', () => {
    expect(() => new OnsetDetector({ kind: 'cusum', threshold: 11.5, llr: { logitMin: 0, logitStep: 0, values: [1, 2] } })).toThrow(
      /llr logitStep must be a positive number/,
    );
    expect(() => new OnsetDetector({ kind: 'cusum', llr: model })).toThrow(/needs its threshold/);
  });
});

describe('the monitor process picks the detector from the model card in force', () => {
  it("uses a calibrated card's ℓ table and threshold, and the default model otherwise", async () => {
    const { cp, mkdtemp, readFile, rm, writeFile } = await import('node:fs/promises');
    const os = await import('node:os');
    const path = await import('node:path');
    const { detectorFor } = await import('../src/app/monitor.js');
    const { validateConfig } = await import('../src/config/index.js');
    const { silentLogger } = await import('../src/config/logger.js');
    const { root } = await import('./helpers/demo.js');
    const { loadModelCard } = await import('../src/model/card.js');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cw-detector-card-'));
    try {
      const model = path.join(dir, 'model');
      await cp(path.join(root, 'models', 'default'), model, { recursive: true });
      const config = validateConfig({ dataDir: dir });
      expect(detectorFor(config, (await loadModelCard(model)).card, silentLogger)).toEqual({ kind: 'cusum' });
      expect(detectorFor(config, undefined, silentLogger)).toEqual({ kind: 'cusum' });
      const card = JSON.parse(await readFile(path.join(model, 'card.json'), 'utf8')) as Record<string, unknown>;
      const llr = tableOf((p) => logLikelihoodRatio(p, DEFAULT_CUSUM_MODEL));
      await writeFile(path.join(model, 'card.json'), JSON.stringify({ ...card, detector: { kind: 'cusum', threshold: 9.5, llr } }));
      expect(detectorFor(config, (await loadModelCard(model)).card, silentLogger)).toEqual({ kind: 'cusum', threshold: 9.5, llr });
      expect(detectorFor(validateConfig({ dataDir: dir, alert: { detector: 'k-of-n' } }), (await loadModelCard(model)).card, silentLogger)).toEqual({
        kind: 'k-of-n',
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
