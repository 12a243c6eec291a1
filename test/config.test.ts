import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, configFromEnv, loadConfig, maskSecrets } from '../src/config/index.js';
import { packageRoot } from '../src/config/paths.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cw-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('config', () => {
  it('has working defaults: embedded broker, all stages, loopback web server', async () => {
    const config = await loadConfig({ env: {} });
    expect(config.kafka.brokers).toEqual([]);
    expect(config.stages).toEqual(['ingest', 'classify', 'monitor', 'web']);
    expect(config.web).toMatchObject({ host: '127.0.0.1', port: 8080 });
    expect(config.ingest.maxFileBytes).toBe(32 * 1024 * 1024);
  });

  it('reads YAML, then lets the environment override it', async () => {
    const file = path.join(dir, 'plant.yaml');
    await writeFile(file, 'cameras:\n  - id: r1-probe\n    watch: /srv/cam1\nclassify:\n  maxBatchSize: 16\nweb:\n  port: 9000\n');
    const config = await loadConfig({
      file,
      env: { CRYSTALWATCH_WEB_PORT: '9100', KAFKA_BROKERS: 'k1:9092, k2:9092', CRYSTALWATCH_CLASSIFY_MAX_BATCH_SIZE: '64' },
    });
    expect(config.cameras).toEqual([{ id: 'r1-probe', watch: '/srv/cam1' }]);
    expect(config.web.port).toBe(9100);
    expect(config.classify.maxBatchSize).toBe(64);
    expect(config.kafka.brokers).toEqual(['k1:9092', 'k2:9092']);
  });

  it('names the field, the value and the file when the config is wrong', async () => {
    const file = path.join(dir, 'bad.json');
    await writeFile(file, JSON.stringify({ classify: { maxBatchSize: 0 }, web: { port: 'eighty' } }));
    const error = await loadConfig({ file, env: {} }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).toContain(file);
    expect(message).toMatch(/classify\.maxBatchSize: .*got 0/);
    expect(message).toMatch(/web\.port: .*got "eighty"/);
  });

  it('rejects unknown fields instead of ignoring a typo', async () => {
    const file = path.join(dir, 'typo.json');
    await writeFile(file, JSON.stringify({ clasify: {} }));
    await expect(loadConfig({ file, env: {} })).rejects.toThrow(/clasify/);
  });

  it('rejects an environment value of the wrong type with the variable name', () => {
    expect(() => configFromEnv({ CRYSTALWATCH_WEB_PORT: 'x' })).toThrow(/CRYSTALWATCH_WEB_PORT: expected a number, got "x"/);
  });

  it('bounds labels and images: metrics.maxCameras, limits.maxPixels, the camera id rule', async () => {
    const defaults = await loadConfig({ env: {} });
    expect(defaults.metrics.maxCameras).toBe(64);
    expect(defaults.limits.maxPixels).toBe(40_000_000);
    const set = await loadConfig({ env: { CRYSTALWATCH_METRICS_MAX_CAMERAS: '8', CRYSTALWATCH_LIMITS_MAX_PIXELS: '12000000' } });
    expect(set.metrics.maxCameras).toBe(8);
    expect(set.limits.maxPixels).toBe(12_000_000);
    await expect(loadConfig({ env: { CRYSTALWATCH_METRICS_MAX_CAMERAS: '0' } })).rejects.toThrow(/metrics\.maxCameras: .*got 0/);
    await expect(loadConfig({ env: { CRYSTALWATCH_CAMERAS: 'cam one=/x' } })).rejects.toThrow(
      /cameras\.0\.id: camera id must be 1–64 letters, digits, "\.", "_" or "-", starting with a letter or digit, got "cam one"/,
    );
  });

  it('parses CRYSTALWATCH_CAMERAS as id=folder pairs', async () => {
    const config = await loadConfig({ env: { CRYSTALWATCH_CAMERAS: 'a=/x,b=/y' } });
    expect(config.cameras.map((c) => c.id)).toEqual(['a', 'b']);
  });

  it('masks secrets when printing', async () => {
    const config = await loadConfig({
      env: {
        CRYSTALWATCH_WEB_TOKEN: 'supersecret-token',
        KAFKA_SASL_MECHANISM: 'PLAIN',
        KAFKA_SASL_USERNAME: 'u',
        KAFKA_SASL_PASSWORD: 'p4ss',
        CRYSTALWATCH_ALERT_WEBHOOKS: '[{"url":"https://ops.example/hook","secret":"hmac-key"}]',
      },
    });
    const printed = JSON.stringify(maskSecrets(config));
    expect(printed).not.toContain('supersecret-token');
    expect(printed).not.toContain('p4ss');
    expect(printed).not.toContain('hmac-key');
    expect(printed).toContain('https://ops.example/hook');
    expect(config.web.token).toBe('supersecret-token');
  });
});

describe('config: Kafka from the environment', () => {
  it('reads the KAFKA_* variables, TLS CA file included', async () => {
    const config = await loadConfig({
      env: { KAFKA_BROKERS: 'k1:9093,[::1]:9094', KAFKA_SSL: '1', KAFKA_SSL_CA: '/etc/ssl/plant-ca.pem', KAFKA_CLIENT_ID: 'plant-a' },
    });
    expect(config.kafka).toMatchObject({ brokers: ['k1:9093', '[::1]:9094'], clientId: 'plant-a', ssl: { caFile: '/etc/ssl/plant-ca.pem' } });
  });

  it('turns a bad KAFKA_* value into a config error naming the variable', async () => {
    await expect(loadConfig({ env: { KAFKA_BROKERS: 'k:1', KAFKA_SASL_MECHANISM: 'gssapi' } })).rejects.toThrow(ConfigError);
    await expect(loadConfig({ env: { KAFKA_BROKERS: 'k:1', KAFKA_SASL_MECHANISM: 'gssapi' } })).rejects.toThrow(/KAFKA_SASL_MECHANISM must be one of/);
  });
});

describe('packageRoot', () => {
  it("finds the folder of crystalwatch's package.json from the code and from below it", async () => {
    const root = packageRoot();
    expect(root).toBe(path.resolve(import.meta.dirname, '..'));
    expect(packageRoot(path.join(root, 'src', 'web', 'static'))).toBe(root);
  });

  it('says what it looked for and where when there is no crystalwatch package above', async () => {
    // A package.json of another name is not ours: the walk goes on, and ends at the file system root.
    const other = path.join(dir, 'other-package', 'deep');
    await mkdir(other, { recursive: true });
    await writeFile(path.join(dir, 'other-package', 'package.json'), '{"name":"someone-else"}');
    expect(() => packageRoot(other)).toThrow(
      `crystalwatch: cannot find the package root: no package.json named "crystalwatch" in ${other} or any folder above it`,
    );
  });
});

describe('src/config imports', () => {
  it('nothing from the stages or the bus: the bus depends on config, never the other way', async () => {
    const folder = path.resolve(import.meta.dirname, '..', 'src', 'config');
    const imports: string[] = [];
    for (const file of (await readdir(folder)).filter((f) => f.endsWith('.ts'))) {
      const text = await readFile(path.join(folder, file), 'utf8');
      for (const m of text.matchAll(/^(?:import|export)\b[^;]*?from '([^']+)'/gms)) imports.push(`${file}: ${m[1]}`);
    }
    expect(imports.length).toBeGreaterThan(5);
    expect(imports.filter((line) => /: \.\.\//.test(line))).toEqual([]);
  });
});
