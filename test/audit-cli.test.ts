// The shipped command (`npm run build` first: it runs dist/ through bin/crystalwatch.js).
import { afterEach, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditTrail } from '../src/audit/index.js';

const root = join(import.meta.dirname, '..');
const cli = (...args: string[]) => spawnSync(process.execPath, ['bin/crystalwatch.js', 'audit', ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function trailOf(count: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'audit-cli-'));
  dirs.push(dir);
  const trail = await AuditTrail.open({ dir });
  for (let i = 1; i <= count; i += 1) await trail.append('alert.delivered', { alertId: `alert-${i}`, sink: 'webhook' }, 'crystalwatch');
  await trail.close();
  return dir;
}

describe('crystalwatch audit', () => {
  it('verify exits 0 on an intact trail and 1 on a tampered one, one line per problem', async () => {
    const dir = await trailOf(4);
    const intact = cli('verify', '--data-dir', dir);
    expect(intact.stderr).toBe('');
    expect(intact.status).toBe(0);
    expect(intact.stdout).toMatch(/audit\.jsonl: intact, 4 records, last 4 \(sha256 [0-9a-f]{64}\)/);

    const log = join(dir, 'audit', 'audit.jsonl');
    const lines = (await readFile(log, 'utf8')).split('\n');
    [lines[1], lines[2]] = [lines[2]!, lines[1]!.replace('"alert-2"', '"alert-X"')];
    await writeFile(log, lines.join('\n'));
    const tampered = cli('verify', '--data-dir', dir);
    expect(tampered.status).toBe(1);
    expect(tampered.stdout).toMatch(/NOT intact, 3 problems in 4 records/);
    expect(tampered.stdout).toMatch(/altered: record 2 \(line 3\) was edited/);
    expect(tampered.stdout.match(/^ {2}reordered: /gm)).toHaveLength(2);

    const json = cli('verify', '--data-dir', dir, '--json');
    expect(json.status).toBe(1);
    const result = JSON.parse(json.stdout) as { ok: boolean; problems: { kind: string; seq: number; line: number }[] };
    expect(result.ok).toBe(false);
    expect(result.problems.map((p) => [p.kind, p.seq, p.line])).toEqual([
      ['altered', 2, 3],
      ['reordered', 2, 3],
      ['reordered', 3, 2],
    ]);
  });

  it('verify without a trail exits non-zero and says where it looked', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'audit-cli-none-'));
    dirs.push(dir);
    const run = cli('verify', '--data-dir', dir);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/no audit trail in .*audit .*check --data-dir/);
  });

  it('list pages with --after and --limit', async () => {
    const dir = await trailOf(5);
    const first = cli('list', '--data-dir', dir, '--limit', '2', '--json');
    expect(first.status).toBe(0);
    const page = JSON.parse(first.stdout) as { records: { seq: number }[]; next?: number };
    expect(page.records.map((r) => r.seq)).toEqual([1, 2]);
    expect(page.next).toBe(2);
    const rest = cli('list', '--data-dir', dir, '--after', '2');
    expect(rest.status).toBe(0);
    expect(
      rest.stdout
        .trim()
        .split('\n')
        .map((l) => l.trim().split(/\s+/)[0]),
    ).toEqual(['3', '4', '5']);
    expect(rest.stdout).toMatch(/alert\.delivered\s+crystalwatch\s+\{"alertId":"alert-3","sink":"webhook"\}/);
    expect(cli('list', '--data-dir', dir, '--limit', 'lots').stderr).toMatch(/--limit must be an integer from 1 to 100000, got "lots"/);
  });
});
