/**
 * `crystalwatch run` (the real command, in a child process; needs `npm run build`) refuses to
 * put the web server on a non-loopback address without a token, naming the config keys, and
 * before it starts anything (no broker, no port).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from './helpers/demo.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'cw-identity-run-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The environment of the child: no inherited CRYSTALWATCH_* or KAFKA_* settings, data in the temp folder. */
function env(extra: Record<string, string>): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CRYSTALWATCH_') && !k.startsWith('KAFKA_')));
  return { ...clean, CRYSTALWATCH_DATA_DIR: path.join(dir, 'data'), ...extra };
}

describe('crystalwatch run: web on a public address needs a token', () => {
  it('refuses CRYSTALWATCH_WEB_HOST=0.0.0.0 without a token, naming web.token and web.host', () => {
    const result = spawnSync(process.execPath, [cli, 'run', '--stages', 'monitor,web'], {
      encoding: 'utf8',
      timeout: 60_000,
      env: env({ CRYSTALWATCH_WEB_HOST: '0.0.0.0', CRYSTALWATCH_WEB_PORT: '0' }),
    });
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('crystalwatch run: refusing to start: web.host is "0.0.0.0", which is not a loopback address, and web.token is not set');
    expect(result.stderr).toContain('Set web.token (CRYSTALWATCH_WEB_TOKEN');
  });

  it('refuses the same from a config file, before creating the data folder', async () => {
    const file = path.join(dir, 'plant.yaml');
    await writeFile(file, 'stages: [web, monitor]\nweb:\n  host: 10.20.30.40\n  port: 0\n');
    const result = spawnSync(process.execPath, [cli, 'run', '--config', file], { encoding: 'utf8', timeout: 60_000, env: env({}) });
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/web\.host is "10\.20\.30\.40", which is not a loopback address, and web\.token is not set/);
    expect(await readdir(dir)).toEqual(['plant.yaml']);
  });
});
