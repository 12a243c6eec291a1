/**
 * Sinks and their worker, unit-level: the action command settles whatever processes it leaves
 * behind; what the worker's hooks do is never mistaken for a delivery failure; the OPC UA sink
 * does not retry a camera the server has no room for.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { Kafka } from 'kafkajs';
import type { Alert } from '../src/bus/messages.js';
import { topicNames } from '../src/bus/topics.js';
import { ActionSink, AlertStage, SinkWorker, checkBackoff, type AlertSink, type DeliveryOutcome, type SinkWorkerOptions } from '../src/alert/index.js';
import { OpcUaAlertSink, showCurrentAlerts, type OpcUaServer } from '../src/opcua/index.js';
import { alert, predictionSequence } from './helpers/messages.js';
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
  const pid = await waitFor(async () => (existsSync(file) ? Number((await readFile(file, 'utf8')).trim()) || undefined : undefined), {
    timeout: 5000,
    message: `the command's background pid in ${file}`,
  });
  leftovers.push(pid);
  return pid;
}

describe('ActionSink command', () => {
  // Each case would take the background sleep's 60 s before the fix; the test timeout says so.
  it('at its timeout kills the whole process group (the shell and the sleep it waits for) and settles', { timeout: 15_000 }, async () => {
    const file = await pidFile();
    // 2 s: time enough for the shell to start its sleep and say so, even on a loaded machine.
    const sink = new ActionSink({ command: `sleep 60 & echo $! > ${file}; wait` }, 2000);
    const attempt = sink.deliver(alert(), 'firing');
    await expect(attempt).rejects.toThrow(/did not finish within 2000 ms; its command's processes were killed/);
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

/** A sink that fails its first `failures` attempts, then takes every change. */
function countingSink(failures = 0): AlertSink & { calls: number } {
  let left = failures;
  const sink = {
    name: 'test-sink',
    target: 'memory',
    calls: 0,
    wants: () => true,
    async deliver() {
      sink.calls += 1;
      if (left > 0) {
        left -= 1;
        throw new Error('receiver down');
      }
    },
  };
  return sink;
}

function capturedLogger() {
  const lines: { level: number; msg: string; [k: string]: unknown }[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

function worker(sink: AlertSink, over: Partial<SinkWorkerOptions>) {
  const close = new AbortController();
  const { logger, lines } = capturedLogger();
  const w = new SinkWorker(sink, {
    backoff: checkBackoff({ baseDelayMs: 1, maxDelayMs: 2 }),
    deadlineMs: 60_000,
    signal: close.signal,
    now: Date.now,
    logger,
    deadLetter: async () => {},
    onOutcome: () => {},
    onQueued: () => {},
    ...over,
  });
  return { w, lines, close };
}

const record = (over: { writtenAtMs?: number } = {}) => ({ alert: alert(), kind: 'firing' as const, writtenAtMs: over.writtenAtMs ?? Date.now() });

describe('SinkWorker hooks', () => {
  // Before the fix a throwing hook re-sent the change at every backoff, or hung the queue.
  it('a throwing onOutcome on delivered does not send the change again', { timeout: 5000 }, async () => {
    const sink = countingSink();
    const { w, lines, close } = worker(sink, {
      onOutcome: (_s, outcome) => {
        if (outcome === 'delivered') throw new Error('audit trail full');
      },
    });
    await w.deliver(record());
    expect(sink.calls).toBe(1);
    expect(lines.find((l) => /hook .* threw/.test(l.msg))).toMatchObject({ outcome: 'delivered', err: 'audit trail full' });
    close.abort();
  });

  it('a throwing onOutcome on retried neither escapes as an unhandled rejection nor stalls the queue', { timeout: 5000 }, async () => {
    const sink = countingSink(2);
    const outcomes: DeliveryOutcome[] = [];
    const { w, close } = worker(sink, {
      onOutcome: (_s, outcome) => {
        outcomes.push(outcome);
        if (outcome === 'retried') throw new Error('metrics registry gone');
      },
      onQueued: () => {
        throw new Error('gauge gone');
      },
    });
    await Promise.all([w.deliver(record()), w.deliver({ ...record(), kind: 'resolved' })]);
    expect(outcomes).toEqual(['retried', 'retried', 'delivered', 'delivered']);
    expect(sink.calls).toBe(4);
    close.abort();
  });

  it('a throwing onOutcome on dead-lettered writes the dead letter once', { timeout: 5000 }, async () => {
    let letters = 0;
    const { w, close } = worker(countingSink(1), {
      deadlineMs: 1,
      deadLetter: async () => void (letters += 1),
      onOutcome: (_s, outcome) => {
        if (outcome === 'dead-lettered') throw new Error('hook bug');
      },
    });
    await w.deliver(record({ writtenAtMs: Date.now() - 1000 }));
    expect(letters).toBe(1);
    close.abort();
  });

  it('AlertStage: an onDelivery option that throws does not re-deliver the change', { timeout: 5000 }, async () => {
    const sink = countingSink();
    const stage = new AlertStage({
      kafka: {} as Kafka,
      topics: topicNames(),
      registry: new Registry(),
      delivery: { baseDelayMs: 5, maxDelayMs: 10, deadlineMs: 1000 },
      onDelivery: () => {
        throw new Error('audit trail refused the record');
      },
    });
    stage.addSink(sink);
    const next = predictionSequence();
    const fired: (Alert | undefined)[] = [next(0.99), next(0.99)].map((p) => stage.observePrediction(p));
    expect(fired[1]?.state).toBe('firing');
    await stage.idle();
    expect(sink.calls).toBe(1);
    await stage.close();
  });
});

/** Enough of OpcUaServer for its alert sink: room for `maxCameras` cameras, refused beyond, in the server's words. */
function fakeOpcUa(maxCameras: number) {
  const shown = new Map<string, string>();
  const server = {
    endpointUrl: 'opc.tcp://127.0.0.1:4840',
    raiseAlarm(alarm: { id: string; camera: string }) {
      if (!shown.has(alarm.camera) && shown.size >= maxCameras) {
        throw new Error(
          `opcua: alert ${alarm.id} of camera ${alarm.camera} cannot be shown, the server already shows ${maxCameras} cameras; raise opcua maxCameras`,
        );
      }
      shown.set(alarm.camera, alarm.id);
    },
    resolveAlarm: () => {},
    markAcknowledged: () => {},
  };
  return { server: server as unknown as OpcUaServer, shown };
}

describe("OpcUaAlertSink at the server's camera limit", () => {
  it('takes the change of a camera it cannot show (logged once per camera), so the other cameras are not held back', async () => {
    const { server, shown } = fakeOpcUa(1);
    const { logger, lines } = capturedLogger();
    const sink = new OpcUaAlertSink(server, logger);
    await sink.deliver(alert({ id: 'pg-a1', camera: 'cam-a' }), 'firing');
    await expect(sink.deliver(alert({ id: 'pg-b1', camera: 'cam-b' }), 'firing')).resolves.toBeUndefined();
    await expect(sink.deliver(alert({ id: 'pg-b2', camera: 'cam-b' }), 'firing')).resolves.toBeUndefined();
    await expect(sink.deliver(alert({ id: 'pg-c1', camera: 'cam-c' }), 'firing')).resolves.toBeUndefined();
    await sink.deliver(alert({ id: 'pg-b1', camera: 'cam-b', state: 'resolved' }), 'resolved');
    expect([...shown]).toEqual([['cam-a', 'pg-a1']]);
    expect(lines.filter((l) => /not shown/.test(l.msg)).map((l) => l.camera)).toEqual(['cam-b', 'cam-c']);

    const broken = {
      ...server,
      raiseAlarm: () => {
        throw new Error('opcua: raiseAlarm before start() finished; await start() first');
      },
    } as unknown as OpcUaServer;
    await expect(new OpcUaAlertSink(broken).deliver(alert(), 'firing')).rejects.toThrow(/before start\(\) finished/); // other errors are still retried
  });

  it('showCurrentAlerts skips a camera beyond the limit instead of failing the start', () => {
    const { server, shown } = fakeOpcUa(1);
    expect(() => showCurrentAlerts(server, [alert({ id: 'pg-a1', camera: 'cam-a' }), alert({ id: 'pg-b1', camera: 'cam-b' })])).not.toThrow();
    expect([...shown.keys()]).toEqual(['cam-a']);
  });
});
