/**
 * The AlertStage on a real embedded broker, in process: a change no sink takes by its deadline
 * goes to dead-letter (and its offset is then committed), close() leaves an undelivered change
 * uncommitted for the next start, a malformed `alerts` record is dead-lettered without holding
 * up the ones behind it, acknowledgements survive a restart, and a record the broker refuses as
 * too large does not hold back the alert written with it.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, assert, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import type { Kafka } from 'kafkajs';
import { AlertStage, alertStateTopic, ensureAlertTopics, readToEnd, STATE_RETENTION_MS, type AlertOptions } from '../src/alert/index.js';
import { silentLogger } from '../src/config/logger.js';
import { decodeDeadLetter, type DeadLetter } from '../src/bus/messages.js';
import { topicNames } from '../src/bus/topics.js';
import { createKafka } from '../src/bus/kafka.js';
import { startBroker } from '../src/broker/index.js';
import { Receiver } from './helpers/alert-run.js';
import { onsetStream } from './helpers/messages.js';
import { freePort } from './helpers/ports.js';
import { waitFor, withDeadline } from './helpers/wait.js';
import { startTestBus, type TestBus } from './helpers/bus.js';
import { createLogger } from '../src/config/logger.js';

let bus: TestBus;
/** DEBUG_ALERT=1 shows the stage's log. */
const logger = process.env.DEBUG_ALERT ? createLogger({ level: 'debug', pretty: false }) : undefined;
const stages: AlertStage[] = [];
const servers: Server[] = [];
const receivers: Receiver[] = [];
let prefixSeq = 0;

beforeAll(async () => {
  bus = await startTestBus('cw-alert-kafka-');
});
afterEach(async () => {
  for (const s of stages.splice(0)) await s.close();
  for (const r of receivers.splice(0)) await r.down();
});
afterAll(async () => {
  for (const s of servers) await new Promise((r) => s.close(r));
  await bus?.close();
});

/** Each test on its own topic prefix and groups, so they share the broker without seeing one another. */
function world() {
  prefixSeq += 1;
  const topics = topicNames(`t${prefixSeq}.`);
  const make = (extra: Partial<AlertOptions> = {}) => {
    const registry = new Registry();
    const stage = new AlertStage({
      logger,
      kafka: bus.kafka,
      topics,
      registry,
      groupId: `t${prefixSeq}-alert`,
      partitions: 1,
      resolveAfterCleanFrames: 5,
      ...extra,
    });
    stages.push(stage);
    return { stage, registry };
  };
  const send = (kafka: Kafka, camera = 'cam-1') => producePredictionsTo(kafka, topics.predictions, onsetStream(camera, 'run-1', 5, 3));
  return { topics, make, send };
}

async function producePredictionsTo(kafka: Kafka, topic: string, predictions: ReturnType<typeof onsetStream>): Promise<void> {
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({ topic, acks: -1, messages: predictions.map((p) => ({ key: p.camera, value: JSON.stringify(p) })) });
  await producer.disconnect();
}

async function records(topic: string): Promise<{ value: string; headers: Record<string, string> }[]> {
  const out: { value: string; headers: Record<string, string> }[] = [];
  await readToEnd(
    bus.kafka,
    [topic],
    (_t, _p, m) => out.push({ value: m.value?.toString() ?? '', headers: Object.fromEntries(Object.entries(m.headers ?? {}).map(([k, v]) => [k, String(v)])) }),
    { groupPrefix: 'alert-kafka-test' },
  );
  return out;
}

async function committed(groupId: string, topic: string, kafka: Kafka = bus.kafka): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return Number(t?.partitions[0]?.offset ?? -1);
  } finally {
    await admin.disconnect();
  }
}

async function closedPort(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}/hook`;
}

describe('AlertStage on the broker', () => {
  it('dead-letters a change no sink took by its deadline, names why, and only then commits it', async () => {
    const { topics, make, send } = world();
    const { stage, registry } = make({ sinks: { webhooks: [{ url: await closedPort() }] }, delivery: { baseDelayMs: 50, maxDelayMs: 100, deadlineMs: 1000 } });
    await stage.start();
    await send(bus.kafka);
    const letters = await waitFor(
      async () => {
        const found = (await records(topics.deadLetter)).filter((r) => r.headers.stage === 'alert-delivery');
        return found.length > 0 ? found : undefined;
      },
      { timeout: 20_000, message: 'the dead letter' },
    );
    const letter = decodeDeadLetter(Buffer.from(letters[0]!.value));
    expect(letter.ok).toBe(true);
    const value = (letter as { value: DeadLetter }).value;
    expect(value).toMatchObject({ sourceTopic: topics.alerts, stage: 'alert-delivery', offset: '0' });
    expect(value.reason).toMatch(
      /^webhook http:\/\/127\.0\.0\.1:\d+\/hook did not take pg-[0-9a-f]{16}:firing within the delivery deadline of 1 s \(\d+ attempts; last error: alert webhook .* unreachable \(ECONNREFUSED\)\)/,
    );
    await waitFor(async () => (await committed(`t${prefixSeq}-alert-delivery`, topics.alerts)) === 1, {
      timeout: 10_000,
      message: 'the alert offset committed after the dead letter',
    });
    expect(await registry.metrics()).toContain('crystalwatch_dead_letter_total{stage="alert-delivery",reason="delivery-deadline"} 1');
  });

  it('close() aborts a delivery in flight and commits nothing; the next start delivers it', async () => {
    const { topics, make, send } = world();
    let arrived!: () => void;
    const requested = new Promise<void>((r) => (arrived = r));
    const hanging = createServer(() => arrived()); // takes the request and never answers
    await new Promise<void>((r) => hanging.listen(0, '127.0.0.1', r));
    servers.push(hanging);
    const first = make({ sinks: { webhooks: [{ url: `http://127.0.0.1:${(hanging.address() as AddressInfo).port}/` }] } }).stage;
    await first.start();
    await send(bus.kafka);
    await withDeadline(requested, { timeout: 30_000, message: 'the webhook request to reach the receiver that never answers' });
    await first.close();
    expect(await committed(`t${prefixSeq}-alert-delivery`, topics.alerts)).toBe(-1); // nothing committed

    const hook = new Receiver(await freePort());
    receivers.push(hook);
    await hook.up();
    const second = make({ sinks: { webhooks: [{ url: hook.url }] } }).stage;
    await second.start();
    await waitFor(() => hook.got.length > 0, { timeout: 15_000, message: 'the change delivered after the restart' });
    expect(JSON.parse(hook.got[0]!.body)).toMatchObject({ camera: 'cam-1', state: 'firing' });
    await waitFor(async () => (await committed(`t${prefixSeq}-alert-delivery`, topics.alerts)) === 1, { timeout: 10_000, message: 'its offset committed' });
  });

  it('dead-letters a malformed alerts record and delivers the changes behind it; an acknowledgement survives a restart', async () => {
    const { topics, make, send } = world();
    const hook = new Receiver(await freePort());
    receivers.push(hook);
    await hook.up();
    const producer = bus.kafka.producer();
    await producer.connect();
    await producer.send({ topic: topics.alerts, messages: [{ key: 'cam-1', value: '{"id": 42}' }] });
    await producer.disconnect();
    const first = make({ sinks: { webhooks: [{ url: hook.url }] } }).stage;
    await first.start();
    await send(bus.kafka);
    await waitFor(() => hook.got.length === 1, { timeout: 15_000, message: 'the firing alert at the webhook' });
    const [alert] = first.list();
    assert(alert, 'the alert in the first stage');
    expect(await first.acknowledge(alert.id, 'operator-7')).toMatchObject({ acknowledgedBy: 'operator-7' });
    await waitFor(() => hook.got.some((r) => r.headers['x-crystalwatch-event'] === 'acknowledged'), {
      timeout: 15_000,
      message: 'the acknowledgement at the webhook',
    });
    await first.close();

    const letters = (await records(topics.deadLetter)).map((r) => decodeDeadLetter(Buffer.from(r.value)));
    expect(letters).toMatchObject([{ ok: true, value: { sourceTopic: topics.alerts, stage: 'alert-delivery', offset: '0' } }]);
    expect((letters[0] as { value: DeadLetter }).value.reason).toMatch(/^alert: /);

    const second = make({ sinks: { webhooks: [{ url: hook.url }] } }).stage;
    await second.start();
    expect(second.list()).toMatchObject([{ id: alert.id, state: 'firing', acknowledgedBy: 'operator-7' }]);
    expect(await second.acknowledge(alert.id, 'someone-else')).toMatchObject({ acknowledgedBy: 'operator-7' }); // once
    // The camera films on in PG: the restored alert still fires, nothing new is raised.
    await producePredictionsTo(
      bus.kafka,
      topics.predictions,
      onsetStream('cam-1', 'run-1', 0, 6).map((p, i) => ({ ...p, frameId: `cam-1-run-1-more-${i}` })),
    );
    await waitFor(async () => (await committed(`t${prefixSeq}-alert`, topics.predictions)) === 14, { timeout: 15_000, message: 'the predictions consumed' });
    expect((await records(topics.alerts)).map((r) => r.headers.event)).toEqual([undefined, 'firing', 'acknowledged']);
    expect(hook.got.map((r) => r.headers['x-crystalwatch-event'])).toEqual(['firing', 'acknowledged']);
  });

  it('a dead letter the broker refuses as too large is dropped and counted: the batch is committed, its alert written once', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cw-alert-small-broker-'));
    const small = await startBroker({ port: 0, dataDir: join(dir, 'broker'), messageMaxBytes: 24 * 1024 });
    try {
      const kafka = createKafka({ brokers: [small.address] });
      const topics = topicNames('small.');
      const registry = new Registry();
      const stage = new AlertStage({ logger, kafka, topics, registry, groupId: 'small-alert', partitions: 1, resolveAfterCleanFrames: 5 });
      stages.push(stage);
      const producer = kafka.producer();
      await producer.connect();
      // 20 kB of garbage fits the broker; its dead letter (the bytes as base64, and the reason) does not.
      await producer.send({ topic: topics.predictions, acks: -1, messages: [{ key: 'cam-1', value: 'x'.repeat(20_000) }] });
      await producer.send({
        topic: topics.predictions,
        acks: -1,
        messages: onsetStream('cam-1', 'run-1', 5, 3).map((p) => ({ key: p.camera, value: JSON.stringify(p) })),
      });
      await producer.disconnect();
      await stage.start();
      // Before, the refused letter failed every flush: the batch was never committed and its alert written again and again.
      await waitFor(async () => (await committed('small-alert', topics.predictions, kafka)) === 9, { timeout: 20_000, message: 'the 9 predictions committed' });
      const fired: string[] = [];
      await readToEnd(kafka, [topics.alerts], (_t, _p, m) => fired.push(m.value?.toString() ?? ''), { groupPrefix: 'alert-kafka-test' });
      expect(fired.map((v) => JSON.parse(v))).toMatchObject([{ camera: 'cam-1', state: 'firing' }]);
      expect(await registry.metrics()).toContain('crystalwatch_alert_outbox_dropped_total{kind="dead-letter",reason="MESSAGE_TOO_LARGE"} 1');
      await stage.close();
    } finally {
      await small.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('creates the state topic with a 7-day retention: compacted and aged on Kafka, aged on the embedded broker', async () => {
    const topics = topicNames('retention.');
    const state = alertStateTopic(topics);
    await ensureAlertTopics(bus.kafka, { alerts: topics.alerts, state }, 1, silentLogger);
    const saved = JSON.parse(await readFile(join(bus.dir, 'broker', 'topics', state, 'topic.json'), 'utf8'));
    expect(saved.retention).toMatchObject({ ms: 7 * 24 * 3600_000 });
    expect(STATE_RETENTION_MS).toBe(604_800_000);

    // What a Kafka cluster is asked for (it takes compaction): the first request already carries the retention.
    const asked: { topic: string; configEntries: { name: string; value: string }[] }[] = [];
    const cluster = {
      admin: () => ({
        connect: async () => {},
        disconnect: async () => {},
        listTopics: async () => [],
        createTopics: async ({ topics: wanted }: { topics: typeof asked }) => void asked.push(...wanted),
      }),
    } as unknown as Kafka;
    await ensureAlertTopics(cluster, { alerts: topics.alerts, state }, 1, silentLogger);
    expect(asked.find((t) => t.topic === state)?.configEntries).toEqual([
      { name: 'cleanup.policy', value: 'compact,delete' },
      { name: 'retention.ms', value: '604800000' },
    ]);
  });

  it('a second alert stage in the same group is reported as an error (one alert stage per group)', async () => {
    const { make } = world();
    const errors: string[] = [];
    const watching = pino(
      { level: 'error' },
      new Writable({
        write(chunk: Buffer, _enc, done) {
          errors.push(JSON.parse(chunk.toString()).msg);
          done();
        },
      }),
    );
    const first = make({ logger: watching, partitions: 2 }).stage;
    const second = make({ logger: watching, partitions: 2 }).stage;
    await first.start();
    await second.start();
    await waitFor(
      () =>
        errors.find((m) =>
          /^alert stage: consumer group t\d+-alert on t\d+\.predictions has (2 members|more than one member); run one alert stage per group/.test(m),
        ),
      { timeout: 20_000, message: 'the shared-group error', detail: () => errors.join('\n') },
    );
  });
});
