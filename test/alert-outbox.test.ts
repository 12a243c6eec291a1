/**
 * The outbox against a stand-in producer: alerts go first and alone, a state record or dead
 * letter Kafka refuses for good is dropped (never an alert), a passing failure keeps everything
 * for the next flush; and state snapshots are small by construction.
 */
import { describe, expect, it } from 'vitest';
import { KafkaJSNonRetriableError, KafkaJSProtocolError, type Message, type Producer } from 'kafkajs';
import { AlertLifecycle, AlertOutbox, encodeRunSnapshot, MAX_SNAPSHOT_BYTES, refusedForGood, type AlertChange, type RunSnapshot } from '../src/alert/index.js';
import { alert, predictionSequence, T0 } from './helpers/messages.js';

const topics = { alerts: 'alerts', state: 'alert-state', deadLetter: 'dead-letter' };

/** A Kafka protocol error as kafkajs raises it: bare (when the producer bails) or wrapped by its retrier. */
function kafkaError(type: string, wrapped = false): Error {
  const protocol = new KafkaJSProtocolError(Object.assign(new Error(`broker says ${type}`), { type, code: 10, retriable: false }));
  if (!wrapped) return protocol;
  const Wrapper = KafkaJSNonRetriableError as unknown as new (e: Error, o: { cause: Error }) => Error;
  return new Wrapper(protocol, { cause: protocol });
}

/** Records each produce request; `refuse` fails a whole request (as Kafka fails a partition batch) when it blames one record. */
function fakeProducer(refuse: (topic: string, m: Message) => Error | undefined = () => undefined) {
  const requests: { topic: string; values: string[] }[] = [];
  /** The topics of each produce request. */
  const calls: string[][] = [];
  const producer = {
    sendBatch: async ({ topicMessages }: { topicMessages: { topic: string; messages: Message[] }[] }) => {
      calls.push(topicMessages.map((t) => t.topic));
      for (const { topic, messages } of topicMessages) {
        for (const m of messages) {
          const err = refuse(topic, m);
          if (err) throw err;
        }
      }
      requests.push(...topicMessages.map(({ topic, messages }) => ({ topic, values: messages.map((m) => String(m.value)) })));
    },
  };
  return {
    producer: producer as unknown as Producer,
    requests,
    calls,
    on: (topic: string) => requests.filter((r) => r.topic === topic).flatMap((r) => r.values),
  };
}

const firing = (id: string): AlertChange => ({ alert: alert({ id }), kind: 'firing' });
const stateOf = (key: string, fill = 0): { key: string; snapshot: RunSnapshot } => ({
  key,
  snapshot: {
    v: 1,
    camera: 'cam-1',
    runId: key,
    detector: 'cusum',
    state: { kind: 'cusum', s: 0, excursion: 0 },
    recent: [],
    clean: 0,
    writtenAtMs: T0,
    ...(fill ? { lastFrameId: 'x'.repeat(fill) } : {}),
  },
});
const letter = (value: string): Message => ({ key: 'cam-1', value });

describe('AlertOutbox', () => {
  it('writes alerts first, then state records, then dead letters, each in requests of their own', async () => {
    const fake = fakeProducer();
    const outbox = new AlertOutbox(fake.producer, topics);
    outbox.add([firing('pg-1')], [stateOf('run-1')], [letter('bad prediction')]);
    await outbox.flush();
    expect(fake.calls).toEqual([['alerts'], ['alert-state'], ['dead-letter']]);
    expect(outbox.pending).toBe(0);
  });

  it('drops a state record or dead letter Kafka refuses for good, and only that one; the alerts are written and later flushes go on', async () => {
    const fake = fakeProducer((topic, m) =>
      topic !== 'alerts' && String(m.value).includes('HUGE') ? kafkaError('MESSAGE_TOO_LARGE', topic === 'dead-letter') : undefined,
    );
    const dropped: string[] = [];
    const outbox = new AlertOutbox(fake.producer, topics, { onDropped: (kind, reason, n) => dropped.push(`${kind} ${reason} ${n}`) });
    const huge = stateOf('run-HUGE');
    outbox.add([firing('pg-1')], [stateOf('run-1'), huge, stateOf('run-2')], [letter('HUGE letter'), letter('small letter')]);
    await outbox.flush();
    expect(fake.on('alerts').map((v) => JSON.parse(v).id)).toEqual(['pg-1']);
    expect(fake.on('alert-state').map((v) => JSON.parse(v).runId)).toEqual(['run-1', 'run-2']);
    expect(fake.on('dead-letter')).toEqual(['small letter']);
    expect(dropped).toEqual(['state MESSAGE_TOO_LARGE 1', 'dead-letter MESSAGE_TOO_LARGE 1']);
    outbox.add([firing('pg-2')], [stateOf('run-3')]);
    await outbox.flush();
    expect(fake.on('alerts').map((v) => JSON.parse(v).id)).toEqual(['pg-1', 'pg-2']);
    expect(outbox.pending).toBe(0);
  });

  it('never drops an alert, and keeps everything a passing failure did not write', async () => {
    let refusing: Error | undefined = kafkaError('TOPIC_AUTHORIZATION_FAILED');
    const fake = fakeProducer((topic) => (topic === 'alerts' ? refusing : undefined));
    const outbox = new AlertOutbox(fake.producer, topics);
    outbox.add([firing('pg-1')], [stateOf('run-1')]);
    await expect(outbox.flush()).rejects.toThrow(
      /could not write 1 alert change\(s\) to alerts \(broker says TOPIC_AUTHORIZATION_FAILED\); kept for the next attempt/,
    );
    expect(outbox.pending).toBe(2);
    expect(fake.requests).toEqual([]); // the state record waits behind the alert
    refusing = undefined; // the ACL is fixed
    await outbox.flush();
    expect(fake.requests.map((r) => r.topic)).toEqual(['alerts', 'alert-state']);

    let down = true;
    const flaky = fakeProducer((topic) => (topic === 'alert-state' && down ? new Error('Connection timeout') : undefined));
    const second = new AlertOutbox(flaky.producer, topics);
    second.add([firing('pg-2')], [stateOf('run-2')]);
    await expect(second.flush()).rejects.toThrow(/could not write 1 state record\(s\) to alert-state \(Connection timeout\)/);
    down = false;
    await second.flush();
    expect(flaky.requests.map((r) => r.topic)).toEqual(['alerts', 'alert-state']); // the alert was not written twice
  });

  it('names the errors no retry can cure, bare or wrapped by kafkajs', () => {
    expect(refusedForGood(kafkaError('MESSAGE_TOO_LARGE'))).toBe('MESSAGE_TOO_LARGE');
    expect(refusedForGood(kafkaError('RECORD_LIST_TOO_LARGE', true))).toBe('RECORD_LIST_TOO_LARGE');
    expect(refusedForGood(kafkaError('NOT_LEADER_FOR_PARTITION', true))).toBeUndefined();
    expect(refusedForGood(new Error('Connection timeout'))).toBeUndefined();
  });
});

describe('state snapshots are small by construction', () => {
  it('carry no tiles (the alert does) and stay under MAX_SNAPSHOT_BYTES', () => {
    const life = new AlertLifecycle();
    const next = predictionSequence();
    const tiles = Array.from({ length: 400 }, (_, i) => ({ x: i, y: i, width: 224, height: 224, pPG: 0.97 }));
    life.observe(next(0.02), T0);
    life.observe(next(0.97, { tiles }), T0 + 1); // an excursion starts: its frame is kept for a resumed onset
    const [record] = life.snapshots(T0 + 1);
    expect(record?.snapshot?.recent).toEqual([{ frameId: 'cam-1-run-1-2', capturedAt: expect.any(String), pPG: 0.97 }]);
    const fired = life.observe(next(0.97, { tiles }), T0 + 2).fired;
    expect(fired?.evidence.frames[0!]?.tiles).toHaveLength(400); // the evidence keeps them

    const fat: RunSnapshot = {
      ...stateOf('run-1').snapshot,
      recent: Array.from({ length: 64 }, (_, i) => ({ frameId: `${'f'.repeat(250)}-${i}`, capturedAt: new Date(T0).toISOString(), pPG: 0.9 })),
    };
    const encoded = encodeRunSnapshot(fat, 8 * 1024);
    expect(Buffer.byteLength(encoded)).toBeLessThanOrEqual(8 * 1024);
    const kept = (JSON.parse(encoded) as RunSnapshot).recent;
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.at(-1)?.frameId).toBe(fat.recent.at(-1)?.frameId); // the newest frames are the ones kept
    expect(Buffer.byteLength(encodeRunSnapshot(fat))).toBeLessThanOrEqual(MAX_SNAPSHOT_BYTES);
  });
});
