// kill -9 while appending (the built dist/, `npm run build` first): every acknowledged record survives.
import { afterEach, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { AuditTrail, verifyAuditTrail } from '../src/audit/index.js';
import { waitFor, waitForExit } from './helpers/wait.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const writer = (dir: string) => `
  const { AuditTrail } = await import(${JSON.stringify(pathToFileURL(join(import.meta.dirname, '..', 'dist', 'src', 'audit', 'index.js')).href)});
  const trail = await AuditTrail.open({ dir: ${JSON.stringify(dir)} });
  for (let i = 0; ; i += 1) {
    const batch = Array.from({ length: 20 }, (_, j) => trail.append('alert.delivered', { alertId: 'alert-' + (i * 20 + j), sink: 'webhook' }));
    const records = await Promise.all(batch);
    process.stdout.write(records[records.length - 1].seq + '\\n');
  }
`;

describe('audit trail under kill -9', () => {
  it('keeps every record whose append resolved, and reopens to an intact chain', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'audit-crash-'));
    dirs.push(dir);
    const child = spawn(process.execPath, ['--input-type=module', '-e', writer(dir)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let acknowledged = 0;
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      for (const line of chunk.split('\n')) if (line !== '') acknowledged = Math.max(acknowledged, Number(line));
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    await waitFor(() => acknowledged >= 200 || child.exitCode !== null, { timeout: 60_000, message: 'the writer to acknowledge 200 records' });
    expect(stderr).toBe('');
    child.kill('SIGKILL');
    await waitForExit(child, { timeout: 10_000, message: 'the killed writer to exit' });

    const before = await verifyAuditTrail(dir);
    expect(before.problems).toEqual([]);
    expect(before.lastSeq).toBeGreaterThanOrEqual(acknowledged);

    const trail = await AuditTrail.open({ dir }); // the dead writer's lock is taken over
    expect(trail.last.seq).toBeGreaterThanOrEqual(acknowledged);
    expect(trail.recoveredAtOpen.every((r) => r.data.reason === 'torn-tail')).toBe(true);
    await trail.append('run.ended', { runId: 'run-7', reason: 'restart after kill -9' });
    await trail.close();
    expect(await verifyAuditTrail(dir)).toMatchObject({ ok: true, problems: [] });
  });
});
