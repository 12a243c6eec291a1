/**
 * The monitor's batch reports at shutdown: nothing is left reading Kafka after close(), even when
 * the broker is gone and kafkajs would go on retrying its connect for half a minute.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { goneBroker, GONE_BROKER_ATTEMPTS, type GoneBroker } from './helpers/gone-broker.js';
import { waitFor } from './helpers/wait.js';
import { topicNames } from '../src/bus/topics.js';
import { RunReports } from '../src/app/report-wiring.js';
import { printPdf } from '../src/report/pdf.js';

interface Line {
  msg: string;
  runId?: string;
  why?: string;
}

function capturedLogger() {
  const lines: Line[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as Line);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, stream), lines };
}

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function reportsAgainstAGoneBroker(pdf: boolean) {
  const dataDir = await mkdtemp(path.join(tmpdir(), 'cw-report-wiring-'));
  dirs.push(dataDir);
  const { logger, lines } = capturedLogger();
  const gone = await goneBroker();
  // A budget well short of kafkajs' first retry (1 s): the shutdown writes are still connecting.
  const reports = new RunReports({ kafka: gone.kafka, topics: topicNames('rw.'), dataDir, pdf, logger, shutdownBudgetMs: 200 });
  const pending = async () => (JSON.parse(await readFile(path.join(dataDir, 'reports', 'pending.json'), 'utf8')) as { runs: string[] }).runs;
  return { reports, lines, dataDir, pending, gone };
}

/** Each stopped write's connect is left to kafkajs, which gives up after its attempts: no retry timer outlives the test. */
const kafkajsGivesUp = (gone: GoneBroker, connects: number) =>
  waitFor(() => gone.failedConnects >= connects * GONE_BROKER_ATTEMPTS, { timeout: 5_000, message: `kafkajs to give up ${connects} connects` });

describe('RunReports.close', () => {
  it('stops the shutdown writes when the budget runs out, and keeps their runs owed', async () => {
    const { reports, lines, pending, gone } = await reportsAgainstAGoneBroker(false);
    reports.watch('B-1');
    reports.watch('B-2');
    await reports.close();
    // Stopped while kafkajs was still retrying their connects.
    expect(gone.failedConnects).toBeLessThan(2 * GONE_BROKER_ATTEMPTS);
    // The writes ended before close() resolved: each logged its stop, none is still connecting.
    const stopped = lines.filter((l) => l.msg.startsWith('batch report stopped'));
    expect(stopped.map((l) => l.runId).sort()).toEqual(['B-1', 'B-2']);
    expect(stopped[0]!.why).toContain('shutdown budget of 200 ms');
    expect(lines.some((l) => l.msg.startsWith('batch report failed'))).toBe(false);
    expect((await pending()).sort()).toEqual(['B-1', 'B-2']);
    await kafkajsGivesUp(gone, 2);
  });

  it('stops a background write mid-connect when close() begins, and the shutdown write takes its run', async () => {
    const { reports, lines, dataDir, pending, gone } = await reportsAgainstAGoneBroker(true);
    await mkdir(path.join(dataDir, 'reports'), { recursive: true });
    await writeFile(path.join(dataDir, 'reports', 'pending.json'), JSON.stringify({ runs: ['B-3'] }));
    await reports.start(); // B-3 is owed: its report is written in the background
    await waitFor(() => gone.failedConnects >= 1, { timeout: 5_000, message: 'the background write to be connecting' });
    await reports.close();
    const stopped = lines.filter((l) => l.msg.startsWith('batch report stopped'));
    expect(stopped.map((l) => l.why)).toEqual(['the process is stopping', 'the shutdown budget of 200 ms ran out']);
    expect(await pending()).toEqual(['B-3']);
    await kafkajsGivesUp(gone, 2);
  });
});

describe('printPdf', () => {
  const chromium = '/usr/bin/chromium';
  it.skipIf(!existsSync(chromium))('rejects with the reason when aborted while Chromium starts, and leaves no file', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cw-report-pdf-'));
    dirs.push(dir);
    const file = path.join(dir, 'report.pdf');
    const abort = new AbortController();
    const printing = printPdf('<p>report</p>', file, { runId: 'B-4', version: 'test', executablePath: chromium, signal: abort.signal });
    abort.abort(new Error('shutdown budget ran out'));
    await expect(printing).rejects.toThrow('shutdown budget ran out');
    expect(existsSync(file)).toBe(false);
  });
});
