/**
 * The monitor's batch reports at shutdown: nothing is left reading Kafka after close(), even when
 * the broker is gone and kafkajs would go on retrying its connect for half a minute.
 */
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { freePort } from './helpers/ports.js';
import { createKafka } from '../src/bus/kafka.js';
import { topicNames } from '../src/bus/topics.js';
import { RunReports } from '../src/app/report-wiring.js';

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
  const kafka = createKafka({ brokers: [`127.0.0.1:${await freePort()}`] });
  const reports = new RunReports({ kafka, topics: topicNames('rw.'), dataDir, pdf, logger, shutdownBudgetMs: 200 });
  const pending = async () => (JSON.parse(await readFile(path.join(dataDir, 'reports', 'pending.json'), 'utf8')) as { runs: string[] }).runs;
  return { reports, lines, dataDir, pending };
}

describe('RunReports.close', () => {
  it('stops the shutdown writes when the budget runs out, and keeps their runs owed', async () => {
    const { reports, lines, pending } = await reportsAgainstAGoneBroker(false);
    reports.watch('B-1');
    reports.watch('B-2');
    await reports.close();
    // The writes ended before close() resolved: each logged its stop, none is still connecting.
    const stopped = lines.filter((l) => l.msg.startsWith('batch report stopped'));
    expect(stopped.map((l) => l.runId).sort()).toEqual(['B-1', 'B-2']);
    expect(stopped[0]!.why).toContain('shutdown budget of 200 ms');
    expect(lines.some((l) => l.msg.startsWith('batch report failed'))).toBe(false);
    expect((await pending()).sort()).toEqual(['B-1', 'B-2']);
  }, 5_000);

  it('stops a background write (with its PDF) when close() begins, and the shutdown write takes its run', async () => {
    const { reports, lines, dataDir, pending } = await reportsAgainstAGoneBroker(true);
    await mkdir(path.join(dataDir, 'reports'), { recursive: true });
    await writeFile(path.join(dataDir, 'reports', 'pending.json'), JSON.stringify({ runs: ['B-3'] }));
    await reports.start(); // B-3 is owed: its report is written in the background
    await reports.close();
    const stopped = lines.filter((l) => l.msg.startsWith('batch report stopped'));
    expect(stopped.map((l) => l.why)).toEqual(['the process is stopping', 'the shutdown budget of 200 ms ran out']);
    expect(await pending()).toEqual(['B-3']);
  }, 5_000);
});
