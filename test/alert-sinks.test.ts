/**
 * Sinks and their worker, unit-level: the action command settles whatever processes it leaves
 * behind; what the worker's hooks do is never mistaken for a delivery failure.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ActionSink } from '../src/alert/index.js';
import { alert } from './helpers/messages.js';
import { waitFor } from './helpers/wait.js';

const temps: string[] = [];
const leftovers: number[] = [];
afterEach(() => {
  for (const pid of leftovers.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});
afterAll(async () => {
  for (const t of temps) await rm(t, { recursive: true, force: true });
});

async function pidFile(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cw-alert-sinks-'));
  temps.push(dir);
  return join(dir, 'pid');
}

/** Running, and not a zombie waiting for a parent that will never reap it. */
function alive(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  if (existsSync('/proc/self/stat')) return existsSync(stat) && readFileSync(stat, 'utf8').split(') ')[1]?.[0] !== 'Z';
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function grandchild(file: string): Promise<number> {
  const pid = await waitFor(async () => (existsSync(file) ? Number((await readFile(file, 'utf8')).trim()) || undefined : undefined), { timeout: 5000, message: `the command's background pid in ${file}` });
  leftovers.push(pid);
  return pid;
}

describe('ActionSink command', () => {
  // Each case would take the background sleep's 60 s before the fix; the test timeout says so.
  it('at its timeout kills the whole process group (the shell and the sleep it waits for) and settles', { timeout: 15_000 }, async () => {
    const file = await pidFile();
    const sink = new ActionSink({ command: `sleep 60 & echo $! > ${file}; wait` }, 300);
    const attempt = sink.deliver(alert(), 'firing');
    await expect(attempt).rejects.toThrow(/did not finish within 300 ms; its command's processes were killed/);
    const pid = await grandchild(file);
    await waitFor(() => !alive(pid), { timeout: 5000, message: `the background sleep ${pid} killed with its group` });
  });

  it('is done when the shell exits 0, even while a background child still holds its stderr', { timeout: 15_000 }, async () => {
    const file = await pidFile();
    const sink = new ActionSink({ command: `(sleep 60 >&2 & echo $! > ${file})` }, 10_000);
    await expect(sink.deliver(alert(), 'firing')).resolves.toBeUndefined();
    await grandchild(file); // left running: it is the command's business, only the pipe was let go
  });

  it('close (the abort signal) kills the group of a command in flight and settles', { timeout: 15_000 }, async () => {
    const file = await pidFile();
    const sink = new ActionSink({ command: `sleep 60 >&2 & echo $! > ${file}; wait` }, 30_000);
    const close = new AbortController();
    const attempt = sink.deliver(alert(), 'firing', close.signal);
    const pid = await grandchild(file);
    close.abort();
    await expect(attempt).rejects.toThrow(/aborted \(the stage is closing\)/);
    await waitFor(() => !alive(pid), { timeout: 5000, message: `the background sleep ${pid} killed with its group` });
  });

  it('a failing command still says what it wrote to stderr', async () => {
    const sink = new ActionSink({ command: 'echo "DCS refused: batch 7 not running" >&2; exit 3' });
    await expect(sink.deliver(alert(), 'firing')).rejects.toThrow(/exited with 3: DCS refused: batch 7 not running/);
  });
});
