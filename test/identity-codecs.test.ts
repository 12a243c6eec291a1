/**
 * One rule for camera and run ids, real timestamps, and dead letters that always fit:
 * the codecs of src/bus/messages.ts, deadLetterRecord and KnownCameras, without a broker.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { approximateRecordBytes } from '../src/bus/kafka.js';
import { deadLetterRecord, DEFAULT_DEAD_LETTER_MAX_BYTES } from '../src/bus/dead-letter.js';
import { KnownCameras } from '../src/bus/known-cameras.js';
import {
  decodeAlert,
  decodeDeadLetter,
  decodeFrameHeaders,
  decodeLabel,
  decodePrediction,
  encodeJson,
  identityProblem,
  IDENTITY_PATTERN,
  type Alert,
  type Prediction,
} from '../src/bus/messages.js';
import { validateConfig } from '../src/config/index.js';

const prediction: Prediction = {
  frameId: 'cam-1-20260301T080000000Z-0123456789abcdef',
  camera: 'cam-1',
  runId: 'cam-1-2026-03-01',
  capturedAt: '2026-03-01T08:00:00.000Z',
  pPG: 0.1,
  predicted: 'cex',
  model: 'default@1.0.0',
  backend: 'onnx',
  device: 'cpu',
  latencyMs: 3,
};
const alert: Alert = {
  id: 'pg-0123456789abcdef',
  camera: 'cam-1',
  runId: 'run-7',
  state: 'firing',
  startsAt: '2026-03-01T08:00:00.000Z',
  evidence: { firstPgFrameId: 'f1', frames: [{ frameId: 'f1', capturedAt: '2026-03-01T08:00:00.000Z', pPG: 0.9 }] },
  action: 'stop-batch',
};
const headers = { 'frame-id': 'f1', camera: 'cam-1', 'captured-at': '2026-03-01T08:00:00Z', 'content-type': 'image/png', 'run-id': 'run-7' };
const longId = 'c'.repeat(20_000);

describe('camera and run ids: one rule', () => {
  it('accepts the ids ingest and the simulator make', () => {
    for (const id of ['cam-1', 'r1-probe', 'A', 'cam_2.left', 'x'.repeat(64), 'cam-1-2026-03-01']) expect(IDENTITY_PATTERN.test(id), id).toBe(true);
    expect(decodePrediction(encodeJson(prediction)).ok).toBe(true);
    expect(decodeAlert(encodeJson(alert)).ok).toBe(true);
    expect(decodeFrameHeaders(headers).ok).toBe(true);
  });

  it('refuses a 20,000-character camera id in every codec, naming the field and a shortened value', () => {
    const p = decodePrediction(encodeJson({ ...prediction, camera: longId }));
    expect(p).toMatchObject({ ok: false });
    const reason = (p as { reason: string }).reason;
    expect(reason).toMatch(/^prediction: camera: camera id must be 1–64 letters, digits/);
    expect(reason).toContain('(20000 characters)');
    expect(reason.length).toBeLessThan(300);
    expect(decodeAlert(encodeJson({ ...alert, camera: longId }))).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^alert: camera: camera id must be/),
    });
    expect(decodeFrameHeaders({ ...headers, camera: longId })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^frame headers: camera: camera id must be/),
    });
    expect(decodeLabel(encodeJson({ camera: longId, from: '2026-03-01T08:00:00Z', to: '2026-03-01T09:00:00Z', label: 'pg' })).ok).toBe(false);
  });

  it('refuses ids with characters a label value or folder name should not carry', () => {
    for (const camera of ['', 'cam 1', 'cam/1', '../etc', '-cam', '.hidden', 'cam\n1', 'kamera-ü', 'x'.repeat(65)]) {
      expect(decodePrediction(encodeJson({ ...prediction, camera })).ok, JSON.stringify(camera)).toBe(false);
    }
    expect(decodePrediction(encodeJson({ ...prediction, runId: 'run 7' }))).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/runId: run id must be/),
    });
    expect(decodeFrameHeaders({ ...headers, 'run-id': 'a'.repeat(65) })).toMatchObject({ ok: false, reason: expect.stringMatching(/run-id: run id must be/) });
    expect(identityProblem('camera id', 'cam 1')).toBe('camera id "cam 1" must be 1–64 letters, digits, ".", "_" or "-", starting with a letter or digit');
    expect(identityProblem('camera id', 'cam-1')).toBeUndefined();
  });

  it('is the rule of the config too', () => {
    expect(() => validateConfig({ cameras: [{ id: 'cam 1', watch: '/srv/cam1' }] })).toThrow(/cameras\.0\.id: camera id must be 1–64 letters/);
    expect(() => validateConfig({ cameras: [{ id: 'cam-1', watch: '/srv/cam1', runId: 'batch 7' }] })).toThrow(/cameras\.0\.runId: run id must be/);
    expect(() => validateConfig({ cameras: [{ id: longId, watch: '/x' }] })).toThrow(/\(20000 characters\)/);
    expect(validateConfig({ cameras: [{ id: 'cam-1', watch: '/srv/cam1', runId: 'batch-7' }] }).cameras[0]!.id).toBe('cam-1');
  });
});

describe('timestamps must parse', () => {
  it('refuses capturedAt "not-a-date", impossible dates and zone-less times', () => {
    for (const capturedAt of ['not-a-date', '2026-02-30T08:00:00Z', '2026-03-01 08:00:00', '2026-03-01T08:00:00', '']) {
      const decoded = decodePrediction(encodeJson({ ...prediction, capturedAt }));
      expect(decoded.ok, capturedAt).toBe(false);
    }
    expect(decodePrediction(encodeJson({ ...prediction, capturedAt: 'not-a-date' }))).toMatchObject({
      ok: false,
      reason: 'prediction: capturedAt: Invalid ISO datetime, got "not-a-date"',
    });
    expect(decodePrediction(encodeJson({ ...prediction, capturedAt: '2026-03-01T09:00:00.123+01:00' })).ok).toBe(true);
  });

  it('holds for alerts (startsAt, endsAt, acknowledgedAt, evidence) and frame headers', () => {
    expect(decodeAlert(encodeJson({ ...alert, startsAt: 'yesterday' }))).toMatchObject({ ok: false, reason: expect.stringMatching(/startsAt/) });
    expect(decodeAlert(encodeJson({ ...alert, endsAt: '2026-13-01T00:00:00Z' }))).toMatchObject({ ok: false, reason: expect.stringMatching(/endsAt/) });
    expect(decodeAlert(encodeJson({ ...alert, acknowledgedAt: 'soon' }))).toMatchObject({ ok: false, reason: expect.stringMatching(/acknowledgedAt/) });
    expect(decodeAlert(encodeJson({ ...alert, evidence: { ...alert.evidence, frames: [{ frameId: 'f1', capturedAt: 'x', pPG: 1 }] } })).ok).toBe(false);
    expect(decodeFrameHeaders({ ...headers, 'captured-at': 'not-a-date' })).toMatchObject({ ok: false, reason: expect.stringMatching(/captured-at/) });
  });
});

describe('deadLetterRecord', () => {
  const source = {
    sourceTopic: 'crystalwatch.predictions',
    partition: 2,
    offset: '41',
    reason: 'prediction: not JSON',
    stage: 'metrics',
    at: new Date('2026-03-01T08:00:00Z'),
  };

  it('keeps a small record whole: key, value and headers', () => {
    const record = deadLetterRecord({ ...source, key: 'cam-1', value: Buffer.from('not json'), headers: { 'frame-id': 'f1', camera: Buffer.from('cam-1') } });
    const letter = decodeDeadLetter(record.value as Buffer);
    expect(letter.ok).toBe(true);
    if (!letter.ok) return;
    expect(letter.value).toMatchObject({
      sourceTopic: 'crystalwatch.predictions',
      partition: 2,
      offset: '41',
      stage: 'metrics',
      at: '2026-03-01T08:00:00.000Z',
    });
    expect(Buffer.from(letter.value.value!.base64, 'base64').toString()).toBe('not json');
    expect(letter.value.value).toMatchObject({ bytes: 8, truncated: false, sha256: createHash('sha256').update('not json').digest('hex') });
    expect(letter.value.headers.map((h) => [h.name, Buffer.from(h.value.base64, 'base64').toString()])).toEqual([
      ['frame-id', 'f1'],
      ['camera', 'cam-1'],
    ]);
    expect(record.key?.toString()).toBe('cam-1');
    expect(record.headers).toMatchObject({ 'source-topic': 'crystalwatch.predictions', stage: 'metrics', reason: 'prediction: not JSON' });
  });

  it('bounds a 13 MB value, a 1 MB key, 1,000 headers and a 100 kB reason to the topic limit', () => {
    const value = Buffer.alloc(13 * 1024 * 1024, 0xab);
    const many = Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`h${i}-${'n'.repeat(100)}`, 'v'.repeat(10_000)]));
    const record = deadLetterRecord({ ...source, reason: 'r'.repeat(100_000), key: Buffer.alloc(1024 * 1024, 1), value, headers: many });
    expect(approximateRecordBytes(record)).toBeLessThanOrEqual(DEFAULT_DEAD_LETTER_MAX_BYTES);
    const letter = decodeDeadLetter(record.value as Buffer);
    if (!letter.ok) throw new Error(letter.reason);
    expect(letter.value.value).toMatchObject({ bytes: value.length, truncated: true, sha256: createHash('sha256').update(value).digest('hex') });
    expect(Buffer.from(letter.value.value!.base64, 'base64')).toEqual(value.subarray(0, 4096));
    expect(letter.value.key).toMatchObject({ bytes: 1024 * 1024, truncated: true });
    expect(record.key).toBeNull(); // a giant key would be refused along with the letter
    expect(letter.value.headers).toHaveLength(32);
    expect(letter.value.headersOmitted).toBe(968);
    expect(letter.value.reason.length).toBe(1000);
    expect(String(record.headers?.reason).length).toBe(200);
  });

  it('fits a smaller limit by keeping less of the value', () => {
    const record = deadLetterRecord({ ...source, value: Buffer.alloc(60 * 1024, 7) }, { maxBytes: 64 * 1024 });
    expect(approximateRecordBytes(record)).toBeLessThanOrEqual(64 * 1024);
    const letter = decodeDeadLetter(record.value as Buffer);
    expect(letter.ok && letter.value.value?.truncated).toBe(true);
    expect(() => deadLetterRecord(source, { maxBytes: 1000 })).toThrow(/maxBytes must be an integer ≥ 65536, got 1000/);
  });
});

describe('KnownCameras', () => {
  it('admits exactly the configured cameras when there are some', () => {
    const known = new KnownCameras({ cameras: ['cam-1', 'cam-2'], maxCameras: 100 });
    expect(['cam-1', 'cam-2', 'cam-3'].map((c) => known.admit(c))).toEqual([true, true, false]);
    expect(known.size).toBe(2);
  });

  it('admits the first maxCameras ids when none are configured, and the same ones again', () => {
    const known = new KnownCameras({ maxCameras: 3 });
    expect(['a', 'b', 'a', 'c', 'd', 'b', 'e'].map((c) => known.admit(c))).toEqual([true, true, true, true, false, true, false]);
    expect(known.describe()).toBe('the first 3 cameras seen');
    expect(() => new KnownCameras({ maxCameras: 0 })).toThrow(/maxCameras must be a positive integer, got 0/);
  });
});
