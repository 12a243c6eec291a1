/**
 * The AlertStage's wiring against an in-memory stand-in for kafkajs (no broker, fast): what the
 * stage sends, when it announces, and what it leaves connected. The stand-in records every
 * producer send and hands the test each consumer's `eachBatch`, so a test plays kafkajs' part:
 * deliver a batch, fail it, deliver it again.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { EachBatchPayload, Kafka, Message } from 'kafkajs';
import type { Alert, Prediction } from '../src/bus/messages.js';
import { topicNames } from '../src/bus/topics.js';
import { AlertStage, AlertStageClosedError, type AlertOptions } from '../src/alert/index.js';
import { onsetStream } from './helpers/messages.js';
import { waitFor } from './helpers/wait.js';

interface FakeConsumer {
  groupId: string;
  connected: boolean;
  eachBatch?: (payload: EachBatchPayload) => Promise<void>;
  listeners: Map<string, ((event: unknown) => void)[]>;
  members: number;
}

/** Enough of kafkajs for the stage: topics exist, restore finds nothing, sends are recorded. */
function fakeKafka(options: { gate?: Promise<void> } = {}) {
  let restoring = false;
  const sent: { topic: string; messages: Message[] }[] = [];
  const consumers: FakeConsumer[] = [];
  let producersConnected = 0;
  const kafka = {
    producer: () => ({
      connect: async () => void (producersConnected += 1),
      disconnect: async () => void (producersConnected -= 1),
      send: async (r: { topic: string; messages: Message[] }) => void sent.push({ topic: r.topic, messages: r.messages }),
      sendBatch: async (r: { topicMessages: { topic: string; messages: Message[] }[] }) =>
        void sent.push(...r.topicMessages.map((t) => ({ topic: t.topic, messages: t.messages }))),
    }),
    admin: () => ({
      connect: async () => {},
      disconnect: async () => {},
      listTopics: async () => [],
      createTopics: async () => true,
      fetchTopicOffsets: async () => {
        restoring = true;
        await options.gate; // restore waits here until the test opens the gate
        return [{ partition: 0, low: '0', high: '0', offset: '0' }];
      },
    }),
    consumer: ({ groupId }: { groupId: string }) => {
      const state: FakeConsumer = { groupId, connected: false, listeners: new Map(), members: 1 };
      consumers.push(state);
      return {
        events: { GROUP_JOIN: 'consumer.group_join' },
        on: (event: string, listener: (e: unknown) => void) => void state.listeners.set(event, [...(state.listeners.get(event) ?? []), listener]),
        connect: async () => void (state.connected = true),
        disconnect: async () => void (state.connected = false),
        subscribe: async () => {},
        run: async (config: { eachBatch: FakeConsumer['eachBatch'] }) => void (state.eachBatch = config.eachBatch),
        commitOffsets: async () => {},
        describeGroup: async () => ({
          groupId,
          state: 'Stable',
          members: Array.from({ length: state.members }, (_, i) => ({ memberId: `m-${i}`, clientId: 'crystalwatch', clientHost: `/10.0.0.${i + 1}` })),
        }),
      };
    },
  };
  const on = (topic: string) => sent.filter((s) => s.topic === topic).flatMap((s) => s.messages);
  return { kafka: kafka as unknown as Kafka, sent, on, consumers, producers: () => producersConnected, restoring: () => restoring };
}

/** One batch of `predictions` records as kafkajs hands it to eachBatch. */
function batchOf(predictions: Prediction[], topic = topicNames().predictions): EachBatchPayload {
  const messages = predictions.map((p, i) => ({
    offset: String(i),
    key: Buffer.from(p.camera),
    value: Buffer.from(JSON.stringify(p)),
    timestamp: String(Date.now()),
    headers: {},
    attributes: 0,
    size: 0,
  }));
  return {
    batch: { topic, partition: 0, messages, highWatermark: String(messages.length) },
    resolveOffset: () => {},
    heartbeat: async () => {},
    commitOffsetsIfNecessary: async () => {},
    uncommittedOffsets: () => ({ topics: [] }),
    isRunning: () => true,
    isStale: () => false,
    pause: () => () => {},
  } as unknown as EachBatchPayload;
}

/** A pino logger whose lines the test reads. */
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

const stages: AlertStage[] = [];
afterEach(async () => {
  for (const s of stages.splice(0)) await s.close();
});

function stageOn(kafka: Kafka, extra: Partial<AlertOptions> = {}) {
  const registry = new Registry();
  const { logger, lines } = capturedLogger();
  const stage = new AlertStage({ kafka, topics: topicNames(), registry, logger, resolveAfterCleanFrames: 5, ...extra });
  stages.push(stage);
  return { stage, registry, lines };
}

const predictionsConsumer = (consumers: FakeConsumer[]) => consumers.find((c) => c.groupId === 'crystalwatch-alert');

describe('AlertStage: the outbox before the announcement', () => {
  it('a throwing alert listener neither loses the change nor keeps it off the outbox; the change is announced after it was written', async () => {
    const fake = fakeKafka();
    const { stage, registry, lines } = stageOn(fake.kafka);
    const onTopicWhenAnnounced: number[] = [];
    stage.on('alert', () => {
      onTopicWhenAnnounced.push(fake.on(topicNames().alerts).length);
      throw new Error('listener bug');
    });
    const calm: Alert[] = [];
    stage.on('alert', (a: Alert) => calm.push(a));
    await stage.start();
    const consumer = predictionsConsumer(fake.consumers)!;
    const batch = batchOf(onsetStream('cam-1', 'run-1', 5, 3));
    // As kafkajs does: a batch whose eachBatch threw is fetched and handed over again.
    const first = await consumer.eachBatch!(batch).then(
      () => undefined,
      (err: Error) => err,
    );
    if (first) await consumer.eachBatch!(batch).catch(() => {});

    const written = fake.on(topicNames().alerts);
    expect(written.map((m) => m.headers?.event)).toEqual(['firing']);
    expect(first).toBeUndefined();
    expect(onTopicWhenAnnounced).toEqual([1]); // already on the alerts topic when announced
    expect(calm.map((a) => a.state)).toEqual(['firing']); // the other listener was still called
    expect(await registry.metrics()).toContain('crystalwatch_alert_deliveries_total{sink="listener",outcome="failed"} 1');
    expect(lines.find((l) => l.level === 50 && /listener threw/.test(l.msg))).toMatchObject({ err: 'listener bug' });
  });
});

describe('AlertStage: close() while start() is under way', () => {
  function gated() {
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    return { fake: fakeKafka({ gate }), open };
  }

  it('waits for start to stop at its next step: the predictions consumer never connects, start rejects, nothing stays connected', async () => {
    const { fake, open } = gated();
    const { stage } = stageOn(fake.kafka);
    const starting = stage.start();
    await waitFor(() => fake.restoring(), { timeout: 5000, message: 'start() reading the saved state' });
    const closing = stage.close();
    open(); // restore finishes while close() waits
    await closing;
    await expect(starting).rejects.toBeInstanceOf(AlertStageClosedError);
    expect(predictionsConsumer(fake.consumers)?.eachBatch).toBeUndefined();
    expect(fake.consumers.filter((c) => c.connected).map((c) => c.groupId)).toEqual([]);
    expect(fake.producers()).toBe(0);
    await expect(stage.start()).rejects.toBeInstanceOf(AlertStageClosedError);
  });

  it('a start that resumes only after close() gave up waiting lets go of what it connects itself', async () => {
    const { fake, open } = gated();
    const { stage } = stageOn(fake.kafka);
    const starting = stage.start();
    await waitFor(() => fake.restoring(), { timeout: 5000, message: 'start() reading the saved state' });
    await stage.close(); // the restore is still stuck: close() stops waiting after about a second
    open();
    await expect(starting).rejects.toBeInstanceOf(AlertStageClosedError);
    expect(predictionsConsumer(fake.consumers)?.eachBatch).toBeUndefined();
    expect(fake.consumers.filter((c) => c.connected).map((c) => c.groupId)).toEqual([]);
    expect(fake.producers()).toBe(0);
  });
});

describe('AlertStage: one alert stage per consumer group', () => {
  const join = (consumer: FakeConsumer, isLeader: boolean) => {
    const payload = {
      duration: 5,
      groupId: consumer.groupId,
      isLeader,
      leaderId: isLeader ? 'm-0' : 'm-1',
      groupProtocol: 'RoundRobinAssigner',
      memberId: 'm-0',
      memberAssignment: { 'crystalwatch.predictions': [0] },
    };
    for (const listener of consumer.listeners.get('consumer.group_join') ?? [])
      listener({ id: 1, type: 'consumer.group_join', timestamp: Date.now(), payload });
  };
  const sharedGroupErrors = (lines: { level: number; msg: string }[]) => lines.filter((l) => l.level === 50 && /run one alert stage per group/.test(l.msg));

  it('logs a clear error when the predictions group has more than one member, and none when it is alone', async () => {
    const fake = fakeKafka();
    const { stage, lines } = stageOn(fake.kafka);
    await stage.start();
    const consumer = predictionsConsumer(fake.consumers)!;
    join(consumer, true); // alone: no error
    consumer.members = 2; // a second alert stage joined the group
    join(consumer, true);
    const [error] = await waitFor(() => sharedGroupErrors(lines).length > 0 && sharedGroupErrors(lines), { timeout: 5000, message: 'the shared-group error' });
    expect(error).toMatchObject({ groupId: 'crystalwatch-alert', members: 2, hosts: ['/10.0.0.1', '/10.0.0.2'] });
    expect(error?.msg).toMatch(/^alert stage: consumer group crystalwatch-alert on crystalwatch.predictions has 2 members; run one alert stage per group/);
    join(consumer, false); // this member follows another leader: shared for certain
    expect(sharedGroupErrors(lines)).toHaveLength(2);
  });
});
