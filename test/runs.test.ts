/**
 * Runs (batches) through the `runs` topic of a real embedded broker: a start in one process is
 * seen live by another, a restarted process knows which run each camera is in, ends are
 * idempotent, and bad ids are refused with the field named.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureTopics } from '../src/bus/kafka.js';
import { topicNames } from '../src/bus/topics.js';
import { RunBook, RunControl, changeRun, listRuns, type OpenRun } from '../src/runs/index.js';
import { startTestBus, type TestBus } from './helpers/bus.js';
import { waitFor } from './helpers/wait.js';

const topics = topicNames();

describe('RunBook', () => {
  it('gives a camera its own run, else the all-camera run, and forgets ended ones', () => {
    const book = new RunBook();
    const at = '2026-12-01T10:00:00.000Z';
    expect(book.apply({ runId: 'all-1', state: 'started', at, by: 'op', source: 'api' }).started?.runId).toBe('all-1');
    expect(book.runFor('cam-1')).toBe('all-1');
    const second = book.apply({ runId: 'B-2', camera: 'cam-1', state: 'started', at, by: 'op', source: 'cli' });
    expect(second.ended).toEqual([]);
    expect(book.runFor('cam-1')).toBe('B-2');
    expect(book.runFor('cam-2')).toBe('all-1');
    // A new run on the camera ends its previous one; replaying the same start changes nothing.
    expect(book.apply({ runId: 'B-3', camera: 'cam-1', state: 'started', at, by: 'op', source: 'cli' }).ended.map((r) => r.runId)).toEqual(['B-2']);
    expect(book.apply({ runId: 'B-3', camera: 'cam-1', state: 'started', at, by: 'op', source: 'cli' })).toEqual({ ended: [] });
    expect(book.apply({ runId: 'B-3', camera: 'cam-1', state: 'ended', at, by: 'op', source: 'cli' }).ended.map((r) => r.runId)).toEqual(['B-3']);
    expect(book.apply({ runId: 'B-3', camera: 'cam-1', state: 'ended', at, by: 'op', source: 'cli' }).ended).toEqual([]);
    expect(book.runFor('cam-1')).toBe('all-1');
  });
});

describe('RunControl over Kafka', () => {
  let bus: TestBus;
  const controls: RunControl[] = [];
  beforeEach(async () => {
    bus = await startTestBus('cw-runs-');
    await ensureTopics(bus.kafka, topics, 1);
  });
  afterEach(async () => {
    await Promise.all(controls.splice(0).map((c) => c.close()));
    await bus.close();
  });
  const open = async () => {
    const control = new RunControl({ kafka: bus.kafka, topics });
    controls.push(control);
    await control.start();
    return control;
  };

  it('shares starts and ends between processes and restores them at the next start', async () => {
    const a = await open();
    const b = await open();
    const seenByB: OpenRun[] = [];
    b.on('started', (run: OpenRun) => seenByB.push(run));
    await a.startRun({ runId: 'B-42', camera: 'cam-1', by: 'alice', source: 'api' });
    await a.startRun({ runId: 'B-43', camera: 'cam-2', by: 'alice', source: 'api' });
    await waitFor(() => seenByB.length === 2, { timeout: 10_000, message: 'process B to see both starts' });
    expect(b.runFor('cam-1')).toBe('B-42');

    const ended: OpenRun[] = [];
    b.on('ended', (run: OpenRun) => ended.push(run));
    expect((await a.endRun({ camera: 'cam-2', by: 'bob', source: 'cli' })).map((r) => r.runId)).toEqual(['B-43']);
    await waitFor(() => ended.length === 1, { timeout: 10_000, message: 'process B to see the end' });
    expect(ended[0]).toMatchObject({ runId: 'B-43', camera: 'cam-2' });

    const restarted = await open();
    expect(restarted.list().map((r) => r.runId)).toEqual(['B-42']);
    expect(restarted.runFor('cam-1')).toBe('B-42');
    expect(restarted.runFor('cam-2')).toBeUndefined();
  });

  it('applies its own quick changes in topic order, like every other process', async () => {
    const control = await open();
    const seen: string[] = [];
    control.on('started', (run: OpenRun) => seen.push(`started ${run.runId}`));
    control.on('ended', (run: OpenRun) => seen.push(`ended ${run.runId}`));
    await Promise.all([
      control.startRun({ runId: 'B-1', camera: 'cam-1', by: 'op', source: 'api' }),
      control.startRun({ runId: 'B-2', camera: 'cam-1', by: 'op', source: 'api' }),
    ]);
    await control.startRun({ runId: 'C-1', camera: 'cam-2', by: 'op', source: 'api' });
    await control.endRun({ camera: 'cam-2', by: 'op', source: 'api' });
    // Whichever send Kafka took first, the second start ended the first, and C-1 stays ended.
    const [first, second] = seen[0] === 'started B-1' ? ['B-1', 'B-2'] : ['B-2', 'B-1'];
    expect(seen).toEqual([`started ${first}`, `ended ${first}`, `started ${second}`, 'started C-1', 'ended C-1']);
    expect(control.runFor('cam-1')).toBe(second);
    expect(control.runFor('cam-2')).toBeUndefined();
    const other = await open();
    expect(other.list()).toEqual(control.list());
  });

  it('answers the HTTP API: start, list, end, and errors that name the field', async () => {
    const control = await open();
    expect(await changeRun(control, { action: 'start', runId: 'B-7' }, 'api')).toMatchObject({ status: 201, body: { run: { runId: 'B-7' } } });
    expect(listRuns(control).body).toMatchObject({ runs: [{ runId: 'B-7' }] });
    const bad = await changeRun(control, { action: 'start', runId: 'x'.repeat(300) }, 'api');
    expect(bad.status).toBe(400);
    expect(JSON.stringify(bad.body)).toMatch(/runId: run id must be/);
    expect((await changeRun(control, { action: 'pause' }, 'api')).status).toBe(400);
    expect(await changeRun(control, { action: 'end', camera: 'cam-9' }, 'api')).toMatchObject({ status: 200, body: { ended: [{ runId: 'B-7' }] } });
    expect((await changeRun(control, { action: 'end' }, 'api')).status).toBe(404);
  });
});
