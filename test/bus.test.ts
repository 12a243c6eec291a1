import { describe, expect, it } from 'vitest';
import { busOptionsFromEnv, splitByBytes, approximateRecordBytes } from '../src/bus/kafka.js';

describe('busOptionsFromEnv', () => {
  it('is undefined without KAFKA_BROKERS (the app starts its embedded broker)', () => {
    expect(busOptionsFromEnv({})).toBeUndefined();
  });
  it('reads brokers, TLS and SASL', () => {
    const o = busOptionsFromEnv({
      KAFKA_BROKERS: 'k1:9092, k2:9093',
      KAFKA_SSL: '1',
      KAFKA_SASL_MECHANISM: 'SCRAM-SHA-512',
      KAFKA_SASL_USERNAME: 'u',
      KAFKA_SASL_PASSWORD: 'p',
      KAFKA_MAX_MESSAGE_BYTES: '2097152',
    });
    expect(o).toEqual({
      brokers: ['k1:9092', 'k2:9093'],
      ssl: true,
      sasl: { mechanism: 'scram-sha-512', username: 'u', password: 'p' },
      maxMessageBytes: 2097152,
    });
    const ca = busOptionsFromEnv({ KAFKA_BROKERS: 'k:1', KAFKA_SSL: 'true', KAFKA_SSL_CA: '/ca.pem', KAFKA_SSL_REJECT_UNAUTHORIZED: '0' }, () => 'PEM');
    expect(ca?.ssl).toEqual({ ca: ['PEM'], rejectUnauthorized: false });
  });
  it('says what is wrong with bad values', () => {
    expect(() => busOptionsFromEnv({ KAFKA_BROKERS: 'localhost' })).toThrow(/"localhost" is not host:port/);
    expect(() => busOptionsFromEnv({ KAFKA_BROKERS: 'k:1', KAFKA_SASL_MECHANISM: 'gssapi' })).toThrow(
      /must be one of plain, scram-sha-256, scram-sha-512, got "gssapi"/,
    );
    expect(() => busOptionsFromEnv({ KAFKA_BROKERS: 'k:1', KAFKA_SASL_MECHANISM: 'plain' })).toThrow(/needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD/);
    expect(() => busOptionsFromEnv({ KAFKA_BROKERS: 'k:1', KAFKA_SSL: 'yes' })).toThrow(/KAFKA_SSL must be 1 or 0, got "yes"/);
  });
});

describe('splitByBytes', () => {
  it('keeps order and never exceeds the limit', () => {
    const messages = Array.from({ length: 10 }, (_, i) => ({ key: 'cam', value: Buffer.alloc(400 * 1024, i), headers: { 'frame-id': `f${i}` } }));
    const chunks = splitByBytes(messages, 1024 * 1024);
    expect(chunks.map((c) => c.length)).toEqual([2, 2, 2, 2, 2]);
    expect(chunks.flat().map((m) => m.headers?.['frame-id'])).toEqual(messages.map((m) => m.headers['frame-id']));
    for (const c of chunks) expect(c.reduce((s, m) => s + approximateRecordBytes(m), 0)).toBeLessThanOrEqual(1024 * 1024);
  });
  it('refuses a single record over the limit', () => {
    expect(() => splitByBytes([{ value: Buffer.alloc(2048) }], 1024)).toThrow(/exceeds the batch limit of 1024 bytes/);
  });
});
