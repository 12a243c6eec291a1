/**
 * Wire-level behaviour of the broker that clients rely on, checked with raw
 * requests: CRC, idempotent retries, long-poll fetch and its byte limits,
 * ListOffsets by timestamp, retention, CreateTopics errors, ApiVersions v3,
 * and the group coordinator's session timeout.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, assert, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/config/logger.js';
import { ErrorCode } from '../src/broker/errors.js';
import { Broker } from '../src/broker/index.js';
import { GroupCoordinator } from '../src/broker/group/coordinator.js';
import { crc32c, crc32cJs } from '../src/broker/protocol/crc32c.js';
import { Reader } from '../src/broker/protocol/reader.js';
import { splitProducedBatches } from '../src/broker/protocol/record-batch.js';
import { Writer } from '../src/broker/protocol/writer.js';
import { startTestBroker, type TestBroker } from './helpers/broker.js';
import { body, buildBatch, produceBody, produceResult, RawClient } from './helpers/broker-wire.js';
import { waitFor } from './helpers/wait.js';

let server: TestBroker;
let client: RawClient;

beforeAll(async () => {
  server = await startTestBroker({ defaultPartitions: 1 });
  client = await RawClient.open(server.address);
});

afterAll(async () => {
  client?.close();
  await server?.close();
});

async function createTopic(name: string, partitions = 1, configs: Array<[string, string]> = []): Promise<number> {
  const response = await client.request(
    19,
    3,
    body((w) => {
      w.array([name], (t, n) => {
        t.string(n)
          .int32(partitions)
          .int16(1)
          .array([], () => {})
          .array(configs, (c, [k, v]) => {
            c.string(k).string(v);
          });
      });
      w.int32(1000).boolean(false);
    }),
  );
  const r = new Reader(response!, 8);
  r.int32();
  r.string();
  return r.int16();
}

async function produce(topic: string, batch: Buffer, partition = 0): Promise<{ errorCode: number; baseOffset: number }> {
  return produceResult((await client.request(0, 7, produceBody(topic, partition, batch)))!);
}

function fetchBody(
  topic: string,
  offset: number,
  options: { maxWaitMs?: number; minBytes?: number; maxBytes?: number; partitionMaxBytes?: number } = {},
): Buffer {
  return body((w) => {
    w.int32(-1)
      .int32(options.maxWaitMs ?? 0)
      .int32(options.minBytes ?? 1)
      .int32(options.maxBytes ?? 50 << 20)
      .int8(0)
      .int32(0)
      .int32(-1);
    w.array([topic], (t, name) => {
      t.string(name).array([0], (p, i) => {
        p.int32(i)
          .int32(-1)
          .int64(offset)
          .int64(-1)
          .int32(options.partitionMaxBytes ?? 10 << 20);
      });
    });
    w.array([], () => {}).string('');
  });
}

/** Parses a Fetch v11 response for one partition: error, high watermark, log start, and the batches' base offsets. */
function parseFetch(frame: Buffer): {
  errorCode: number;
  highWatermark: number;
  logStartOffset: number;
  recordBytes: number;
  baseOffsets: number[];
  records: Buffer;
} {
  const r = new Reader(frame, 4);
  r.int32();
  r.int16();
  r.int32();
  r.int32();
  r.string();
  r.int32();
  r.int32();
  const errorCode = r.int16();
  const highWatermark = r.int64();
  r.int64();
  const logStartOffset = r.int64();
  r.int32();
  r.int32();
  const records = r.bytes();
  const baseOffsets: number[] = [];
  for (let position = 0; position + 12 <= records.length; position += 12 + records.readInt32BE(position + 8))
    baseOffsets.push(Number(records.readBigInt64BE(position)));
  return { errorCode, highWatermark, logStartOffset, recordBytes: records.length, baseOffsets, records };
}

async function listOffset(topic: string, timestamp: number): Promise<number> {
  const response = await client.request(
    2,
    3,
    body((w) => {
      w.int32(-1)
        .int8(0)
        .array([topic], (t, name) => {
          t.string(name).array([0], (p, i) => {
            p.int32(i).int64(timestamp);
          });
        });
    }),
  );
  const r = new Reader(response!, 8);
  r.int32();
  r.string();
  r.int32();
  r.int32();
  expect(r.int16()).toBe(0);
  r.int64();
  return r.int64();
}

describe('protocol primitives', () => {
  it('computes CRC-32C like the standard check value', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(0))).toBe(0);
    // The WebAssembly path (>= 512 bytes) and the JS loop agree on every length and alignment.
    const big = Buffer.alloc(300_007);
    for (let i = 0; i < big.length; i++) big[i] = (i * 131 + (i >> 9)) & 0xff;
    for (const length of [511, 512, 513, 4096, 65_537, 300_000]) {
      for (const start of [0, 1, 5]) expect(crc32c(big, start, start + length)).toBe(crc32cJs(big, start, start + length));
    }
    expect(crc32c(big, 0, 50_000)).toBe(crc32c(big.subarray(0, 50_000)));
  });

  it('round-trips classic and compact fields through Writer and Reader', () => {
    const w = new Writer();
    w.int8(-3)
      .int16(-300)
      .int32(123456789)
      .int64(2 ** 40 + 5)
      .string('héllo')
      .string(null)
      .uvarint(300)
      .compactString('kafka')
      .compactString(null);
    w.bytes(Buffer.alloc(5000, 1))
      .compactBytes(Buffer.from([1, 2]))
      .array([1, 2, 3], (x, v) => {
        x.int32(v);
      })
      .compactArray(['a'], (x, v) => {
        x.compactString(v);
      })
      .emptyTaggedFields();
    const r = new Reader(Buffer.concat(w.finish()));
    expect([r.int8(), r.int16(), r.int32(), r.int64(), r.string(), r.nullableString(), r.uvarint(), r.compactString(), r.compactNullableString()]).toEqual([
      -3,
      -300,
      123456789,
      2 ** 40 + 5,
      'héllo',
      null,
      300,
      'kafka',
      null,
    ]);
    expect(r.bytes().length).toBe(5000);
    expect([...r.compactBytes()]).toEqual([1, 2]);
    expect(r.array((x) => x.int32())).toEqual([1, 2, 3]);
    expect(r.compactArray((x) => x.compactString())).toEqual(['a']);
    r.skipTaggedFields();
    expect(r.remaining).toBe(0);
    expect(() => r.int8()).toThrow(/truncated request/);
  });
});

describe('broker wire behaviour', () => {
  it('advertises exactly the implemented API versions in ApiVersions v3 (flexible)', async () => {
    const response = await client.request(
      18,
      3,
      body((w) => {
        w.compactString('test').compactString('1').emptyTaggedFields();
      }),
      true,
    );
    const r = new Reader(response!, 4);
    expect(r.int16()).toBe(0);
    const apis = r.compactArray((x) => {
      const api = [x.int16(), x.int16(), x.int16()];
      x.skipTaggedFields();
      return api;
    });
    expect(apis).toEqual([
      [0, 3, 7],
      [1, 4, 11],
      [2, 0, 3],
      [3, 0, 6],
      [8, 2, 7],
      [9, 1, 5],
      [10, 0, 2],
      [11, 0, 5],
      [12, 0, 3],
      [13, 0, 3],
      [14, 0, 3],
      [15, 0, 2],
      [16, 0, 2],
      [18, 0, 3],
      [19, 0, 3],
      [20, 0, 1],
      [22, 0, 1],
    ]);
  });

  it('stores a retried idempotent batch once and answers with its original offset', async () => {
    expect(await createTopic('idempotent')).toBe(0);
    await produce('idempotent', buildBatch([{ value: Buffer.from('first') }]));
    const batch = (seq: number, epoch = 0): Buffer =>
      buildBatch([{ value: Buffer.from(`s${seq}`) }, { value: Buffer.from(`s${seq}b`) }], { producerId: 4242, producerEpoch: epoch, baseSequence: seq });
    const original = await produce('idempotent', batch(0));
    expect(original).toEqual({ errorCode: 0, baseOffset: 1 });
    expect(await produce('idempotent', batch(0))).toEqual({ errorCode: 0, baseOffset: 1 });
    expect(await produce('idempotent', batch(2))).toEqual({ errorCode: 0, baseOffset: 3 });
    expect((await produce('idempotent', batch(7))).errorCode).toBe(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER);
    expect(await produce('idempotent', batch(0))).toEqual({ errorCode: 0, baseOffset: 1 }); // still within the last 5
    expect((await produce('idempotent', batch(0, 1))).errorCode).toBe(0); // a new epoch restarts at 0
    expect((await produce('idempotent', batch(2, 0))).errorCode).toBe(ErrorCode.INVALID_PRODUCER_EPOCH);
    expect(parseFetch((await client.request(1, 11, fetchBody('idempotent', 0)))!).highWatermark).toBe(7);
  });

  it('sends no response to acks=0 but still stores the batch, and keeps answering in order', async () => {
    expect(await createTopic('fire-and-forget')).toBe(0);
    client.send(0, 7, produceBody('fire-and-forget', 0, buildBatch([{ value: Buffer.from('no ack') }]), 0));
    const metadataId = client.send(
      3,
      6,
      body((w) => {
        w.array(['fire-and-forget'], (x, t) => {
          x.string(t);
        }).boolean(false);
      }),
    );
    const next = await client.next();
    expect(next!.readInt32BE(0)).toBe(metadataId);
    expect(parseFetch((await client.request(1, 11, fetchBody('fire-and-forget', 0)))!).highWatermark).toBe(1);
  });

  it('lists and describes groups, including groups that only have committed offsets', async () => {
    expect(await createTopic('grouped')).toBe(0);
    await client.request(
      8,
      7,
      body((w) => {
        w.string('offsets-only')
          .int32(-1)
          .string('')
          .string(null)
          .array(['grouped'], (x, t) => {
            x.string(t).array([0], (p, i) => {
              p.int32(i).int64(2).int32(-1).string('note');
            });
          });
      }),
    );
    const listed = new Reader((await client.request(16, 2, Buffer.alloc(0)))!, 4);
    listed.int32();
    expect(listed.int16()).toBe(0);
    expect(listed.array((r) => [r.string(), r.string()])).toContainEqual(['offsets-only', '']);
    const described = new Reader(
      (await client.request(
        15,
        2,
        body((w) => {
          w.array(['offsets-only'], (x, g) => {
            x.string(g);
          });
        }),
      ))!,
      4,
    );
    described.int32();
    const [group] = described.array((r) => ({
      errorCode: r.int16(),
      groupId: r.string(),
      state: r.string(),
      protocolType: r.string(),
      protocol: r.string(),
      members: r.array((m) => m.string()),
    }));
    expect(group).toEqual({ errorCode: 0, groupId: 'offsets-only', state: 'Dead', protocolType: '', protocol: '', members: [] });
    const fetched = new Reader(
      (await client.request(
        9,
        5,
        body((w) => {
          w.string('offsets-only').array(null, () => {});
        }),
      ))!,
      4,
    );
    fetched.int32();
    expect(fetched.array((t) => [t.string(), t.array((p) => [p.int32(), p.int64(), p.int32(), p.string(), p.int16()])])).toEqual([
      ['grouped', [[0, 2, -1, 'note', 0]]],
    ]);
  });

  it('long-polls a fetch until data arrives, and honours byte limits but always returns one whole batch', async () => {
    expect(await createTopic('polled')).toBe(0);
    const waiting = client.request(1, 11, fetchBody('polled', 0, { maxWaitMs: 30_000, minBytes: 1 }));
    const other = await RawClient.open(server.address);
    const written = produceResult((await other.request(0, 7, produceBody('polled', 0, buildBatch([{ value: Buffer.alloc(1000, 1) }]))))!);
    expect(written.errorCode).toBe(0);
    const answer = parseFetch((await waiting)!);
    expect(answer.baseOffsets).toEqual([0]);
    for (let i = 1; i < 10; i++) await other.request(0, 7, produceBody('polled', 0, buildBatch([{ value: Buffer.alloc(1000, i) }])));
    other.close();
    const batchBytes = answer.recordBytes;
    const limited = parseFetch((await client.request(1, 11, fetchBody('polled', 0, { partitionMaxBytes: 2 * batchBytes + 10 })))!);
    expect(limited.baseOffsets).toEqual([0, 1]);
    const responseLimited = parseFetch((await client.request(1, 11, fetchBody('polled', 3, { maxBytes: 3 * batchBytes })))!);
    expect(responseLimited.baseOffsets).toEqual([3, 4, 5]);
    const tiny = parseFetch((await client.request(1, 11, fetchBody('polled', 5, { partitionMaxBytes: 10 })))!);
    expect(tiny.baseOffsets).toEqual([5]);
    const outOfRange = parseFetch((await client.request(1, 11, fetchBody('polled', 11)))!);
    expect(outOfRange.errorCode).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
  });

  it('lets only the first batch of a response exceed max_bytes; later partitions get what fits', async () => {
    expect(await createTopic('budget', 2)).toBe(0);
    for (const partition of [0, 1]) await produce('budget', buildBatch([{ value: Buffer.alloc(1000, partition) }]), partition);
    const fetchBoth = async (maxBytes: number): Promise<number[]> => {
      const frame = (await client.request(
        1,
        11,
        body((w) => {
          w.int32(-1).int32(0).int32(1).int32(maxBytes).int8(0).int32(0).int32(-1);
          w.array(['budget'], (t, name) => {
            t.string(name).array([0, 1], (p, i) => {
              p.int32(i)
                .int32(-1)
                .int64(0)
                .int64(-1)
                .int32(1 << 20);
            });
          });
          w.array([], () => {}).string('');
        }),
      ))!;
      const r = new Reader(frame, 4);
      r.int32();
      r.int16();
      r.int32();
      const [topic] = r.array((t) => ({
        name: t.string(),
        sizes: t.array((p) => {
          p.int32();
          p.int16();
          p.int64();
          p.int64();
          p.int64();
          p.int32();
          p.int32();
          return p.bytes().length;
        }),
      }));
      assert(topic, 'one topic in the Fetch response');
      return topic.sizes;
    };
    const [one] = await fetchBoth(1 << 20);
    assert(one !== undefined, 'the first fetch answered');
    expect(await fetchBoth(1 << 20)).toEqual([one, one]);
    expect(await fetchBoth(one + 10)).toEqual([one, 0]);
    expect(await fetchBoth(100)).toEqual([one, 0]);
  });

  it('holds a fetch until min_bytes have arrived', async () => {
    expect(await createTopic('min-bytes')).toBe(0);
    const waiting = client.request(1, 11, fetchBody('min-bytes', 0, { maxWaitMs: 60_000, minBytes: 3000 }), false, 70_000);
    const other = await RawClient.open(server.address);
    let answered = false;
    void waiting.then(() => {
      answered = true;
    });
    const sizes: number[] = [];
    for (let i = 0; i < 5; i++) {
      await other.request(0, 7, produceBody('min-bytes', 0, buildBatch([{ value: Buffer.alloc(900, i) }])));
      await other.request(18, 0, Buffer.alloc(0)); // a round trip, so a premature answer would have arrived by now
      sizes.push(answered ? 1 : 0);
    }
    other.close();
    const answer = parseFetch((await waiting)!);
    // Each batch is ~980 bytes: not enough after two, enough after four at the latest.
    expect(sizes.slice(0, 2)).toEqual([0, 0]);
    expect(answer.recordBytes).toBeGreaterThanOrEqual(3000);
    expect(answer.baseOffsets[0]).toBe(0);
  });

  it('lists offsets by timestamp at record precision, plus earliest and latest', async () => {
    expect(await createTopic('timed')).toBe(0);
    const t = 1_800_000_000_000;
    await produce(
      'timed',
      buildBatch([{ value: Buffer.from('a') }, { value: Buffer.from('b'), timestampDelta: 10 }, { value: Buffer.from('c'), timestampDelta: 20 }], {
        baseTimestamp: t,
      }),
    );
    await produce('timed', buildBatch([{ value: Buffer.from('d') }], { baseTimestamp: t + 100 }));
    expect(await listOffset('timed', t + 15)).toBe(2);
    expect(await listOffset('timed', t + 10)).toBe(1);
    expect(await listOffset('timed', t + 50)).toBe(3);
    expect(await listOffset('timed', t + 1000)).toBe(-1);
    expect(await listOffset('timed', -2)).toBe(0);
    expect(await listOffset('timed', -1)).toBe(4);
  });

  it('deletes a topic, its files and its waiting fetches; Metadata then reports it unknown unless auto-creation is allowed', async () => {
    expect(await createTopic('doomed', 2)).toBe(0);
    await produce('doomed', buildBatch([{ value: Buffer.from('gone soon') }]));
    const waiter = await RawClient.open(server.address);
    const waiting = waiter.request(1, 11, fetchBody('doomed', 1, { maxWaitMs: 60_000, minBytes: 1 }), false, 70_000);
    const deleted = new Reader(
      (await client.request(
        20,
        1,
        body((w) => {
          w.array(['doomed', 'never-was'], (x, t) => {
            x.string(t);
          }).int32(1000);
        }),
      ))!,
      4,
    );
    deleted.int32();
    expect(deleted.array((r) => [r.string(), r.int16()])).toEqual([
      ['doomed', 0],
      ['never-was', ErrorCode.UNKNOWN_TOPIC_OR_PARTITION],
    ]);
    expect(parseFetch((await waiting)!).errorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    waiter.close();
    const metadataError = async (allowAutoCreate: boolean): Promise<[number, number]> => {
      const r = new Reader(
        (await client.request(
          3,
          6,
          body((w) => {
            w.array(['doomed'], (x, t) => {
              x.string(t);
            }).boolean(allowAutoCreate);
          }),
        ))!,
        4,
      );
      r.int32();
      r.array((b) => {
        b.int32();
        b.string();
        b.int32();
        b.nullableString();
      });
      r.nullableString();
      r.int32();
      const [topic] = r.array((t) => {
        const errorCode = t.int16();
        t.string();
        t.boolean();
        return [
          errorCode,
          t.array((p) => {
            p.int16();
            p.int32();
            p.int32();
            p.array((x) => x.int32());
            p.array((x) => x.int32());
            p.array((x) => x.int32());
          }).length,
        ] as [number, number];
      });
      assert(topic, 'one topic in the Metadata response');
      return topic;
    };
    expect(await metadataError(false)).toEqual([ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, 0]);
    expect(await metadataError(true)).toEqual([0, 1]); // recreated with the broker's defaultPartitions (1 here), empty
    expect(parseFetch((await client.request(1, 11, fetchBody('doomed', 0)))!).highWatermark).toBe(0);
  });

  it('refuses bad CreateTopics requests with the matching error codes', async () => {
    expect(await createTopic('dup')).toBe(0);
    expect(await createTopic('dup')).toBe(ErrorCode.TOPIC_ALREADY_EXISTS);
    expect(await createTopic('bad/name')).toBe(ErrorCode.INVALID_TOPIC_EXCEPTION);
    expect(await createTopic('zero', 0)).toBe(ErrorCode.INVALID_PARTITIONS);
    expect(await createTopic('compacted', 1, [['cleanup.policy', 'compact']])).toBe(ErrorCode.INVALID_CONFIG);
  });
});

describe('retention', () => {
  it('deletes the oldest segments by size and by age', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'cw-broker-retention-'));
    const small = await startTestBroker({ dataDir, segmentBytes: 4096, retention: { bytes: 16 * 1024 }, retentionCheckIntervalMs: 100, defaultPartitions: 1 });
    const raw = await RawClient.open(small.address);
    try {
      await raw.request(
        3,
        6,
        body((w) => {
          w.array(['sized'], (x, t) => {
            x.string(t);
          }).boolean(true);
        }),
      );
      for (let i = 0; i < 100; i++) await raw.request(0, 7, produceBody('sized', 0, buildBatch([{ value: Buffer.alloc(1000, i) }])));
      const readStart = async (topic: string): Promise<ReturnType<typeof parseFetch>> => parseFetch((await raw.request(1, 11, fetchBody(topic, 99)))!);
      // Batches are 1070 bytes, 3 per 4 KiB segment, so 34 segments (the last holds offset 99 alone).
      // Kafka's rule keeps the shortest suffix whose size minus its oldest segment is < 16 KiB:
      // segments 28..33 = 5 × 3210 + 1070 = 17120 bytes, so the log starts at offset 84.
      const state = await waitFor(
        async () => {
          const now = await readStart('sized');
          return now.logStartOffset >= 84 ? now : undefined;
        },
        { timeout: 10_000, message: 'size retention to delete the oldest segments (log start offset 84)' },
      );
      expect(state.highWatermark).toBe(100);
      expect(state.logStartOffset).toBe(84);
      expect(state.baseOffsets).toEqual([99]);
      const fromZero = parseFetch((await raw.request(1, 11, fetchBody('sized', 0)))!);
      expect(fromZero.errorCode).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);

      // Age: records an hour old in a topic that keeps one minute.
      const created = await raw.request(
        19,
        3,
        body((w) => {
          w.array(['aged'], (t, n) => {
            t.string(n)
              .int32(1)
              .int16(1)
              .array([], () => {})
              .array([['retention.ms', '60000'] as const], (c, [k, v]) => {
                c.string(k).string(v);
              });
          });
          w.int32(1000).boolean(false);
        }),
      );
      expect(created).not.toBeNull();
      for (let i = 0; i < 3; i++)
        await raw.request(0, 7, produceBody('aged', 0, buildBatch([{ value: Buffer.from('old') }], { baseTimestamp: Date.now() - 3_600_000 })));
      const aged = await waitFor(
        async () => {
          const now = parseFetch((await raw.request(1, 11, fetchBody('aged', 3)))!);
          return now.logStartOffset >= 3 ? now : undefined;
        },
        { timeout: 10_000, message: 'age retention to delete the hour-old records (log start offset 3)' },
      );
      expect(aged.logStartOffset).toBe(3);
      expect(aged.highWatermark).toBe(3);
    } finally {
      raw.close();
      await small.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('group coordinator', () => {
  it('removes a member whose session timed out and rebalances the rest', async () => {
    const coordinator = new GroupCoordinator(silentLogger, 1_000_000);
    const join = (memberId = ''): ReturnType<GroupCoordinator['join']> =>
      coordinator.join({
        groupId: 'g',
        sessionTimeoutMs: 1000,
        rebalanceTimeoutMs: 5000,
        memberId,
        groupInstanceId: null,
        protocolType: 'consumer',
        protocols: [{ name: 'range', metadata: Buffer.alloc(0) }],
        clientId: 'c',
        clientHost: '/127.0.0.1',
      });
    const a = await join();
    expect(a.generationId).toBe(1);
    expect(a.leader).toBe(a.memberId);
    await coordinator.sync('g', 1, a.memberId, [{ memberId: a.memberId, assignment: Buffer.from('A') }]);
    const bJoin = join();
    expect(coordinator.heartbeat('g', 1, a.memberId)).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    const aJoin = join(a.memberId);
    const [b, a2] = await Promise.all([bJoin, aJoin]);
    expect(a2.generationId).toBe(2);
    expect(a2.members.map((m) => m.memberId).sort()).toEqual([a.memberId, b.memberId].sort());
    const bSync = coordinator.sync('g', 2, b.memberId, []);
    await coordinator.sync('g', 2, a.memberId, [
      { memberId: a.memberId, assignment: Buffer.from('A') },
      { memberId: b.memberId, assignment: Buffer.from('B') },
    ]);
    expect((await bSync).assignment.toString()).toBe('B');
    expect(coordinator.describe('g').state).toBe('Stable');

    // Only a keeps heartbeating; 1.5 s later b's 1 s session has expired.
    const now = Date.now();
    coordinator.groups.get('g')!.members.get(a.memberId)!.lastHeartbeat = now + 1500;
    coordinator.tick(now + 1500);
    expect(coordinator.describe('g').members.map((m) => m.memberId)).toEqual([a.memberId]);
    expect(coordinator.heartbeat('g', 2, b.memberId)).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
    expect(coordinator.heartbeat('g', 2, a.memberId)).toBe(ErrorCode.REBALANCE_IN_PROGRESS);
    const a3 = await join(a.memberId);
    expect(a3.generationId).toBe(3);
    expect(a3.members.length).toBe(1);
    coordinator.close();
  });
});

describe('group snapshot', () => {
  it('restores a Stable group: its members carry on, a new member does not wait for members that never came back', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cw-broker-groups-'));
    const statePath = join(dir, 'groups.json');
    try {
      const request = (memberId = '', clientId = 'c'): Parameters<GroupCoordinator['join']>[0] => ({
        groupId: 'g',
        sessionTimeoutMs: 60_000,
        rebalanceTimeoutMs: 60_000,
        memberId,
        groupInstanceId: null,
        protocolType: 'consumer',
        protocols: [{ name: 'range', metadata: Buffer.from([1, 2]) }],
        clientId,
        clientHost: '/127.0.0.1',
      });
      const before = new GroupCoordinator(silentLogger, 1_000_000, statePath);
      const a = await before.join(request('', 'a'));
      await before.sync('g', a.generationId, a.memberId, [{ memberId: a.memberId, assignment: Buffer.from('all') }]);
      before.close();

      // The member survived the restart: it keeps its generation and assignment.
      const survivor = new GroupCoordinator(silentLogger, 1_000_000, statePath);
      survivor.load();
      expect(survivor.heartbeat('g', a.generationId, a.memberId)).toBe(ErrorCode.NONE);
      expect((await survivor.sync('g', a.generationId, a.memberId, [])).assignment.toString()).toBe('all');
      survivor.close();

      // The member died with the old process: a newcomer forms the group at once (no 60 s wait).
      const fresh = new GroupCoordinator(silentLogger, 1_000_000, statePath);
      fresh.load();
      expect(fresh.describe('g').members.map((m) => m.memberId)).toEqual([a.memberId]);
      const b = await fresh.join(request('', 'b'));
      expect(b.generationId).toBe(a.generationId + 1);
      expect(b.members.map((m) => m.memberId)).toEqual([b.memberId]);
      expect(fresh.heartbeat('g', a.generationId, a.memberId)).toBe(ErrorCode.UNKNOWN_MEMBER_ID);
      fresh.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('tail cache', () => {
  it('serves one fetch from evicted (file) and cached batches alike, in offset order', async () => {
    const small = await startTestBroker({ tailCacheBytes: 5000, defaultPartitions: 1 });
    const raw = await RawClient.open(small.address);
    try {
      await raw.request(
        3,
        6,
        body((w) => {
          w.array(['mixed-read'], (x, t) => {
            x.string(t);
          }).boolean(true);
        }),
      );
      for (let i = 0; i < 20; i++)
        await raw.request(0, 7, produceBody('mixed-read', 0, buildBatch([{ value: Buffer.alloc(1000, i) }, { value: Buffer.alloc(10, i) }])));
      const frame = (await raw.request(1, 11, fetchBody('mixed-read', 0)))!;
      const all = parseFetch(frame);
      expect(all.baseOffsets).toEqual(Array.from({ length: 20 }, (_, i) => 2 * i));
      // Every batch still passes its CRC, and its first value (after 8 bytes of record header) holds the byte it was written with.
      const batches = splitProducedBatches(all.records);
      expect(batches.map((b) => b.bytes[61 + 8])).toEqual(Array.from({ length: 20 }, (_, i) => i));
      const fromMiddle = parseFetch((await raw.request(1, 11, fetchBody('mixed-read', 27)))!);
      expect(fromMiddle.baseOffsets).toEqual([26, 28, 30, 32, 34, 36, 38]);
    } finally {
      raw.close();
      await small.close();
    }
  });
});

describe('fsync always', () => {
  it('acknowledges produce and commit after fsync and reads both back after a restart on the same data dir', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'cw-broker-fsync-'));
    try {
      let synced = await startTestBroker({ dataDir, fsync: 'always', defaultPartitions: 2 });
      let raw = await RawClient.open(synced.address);
      await raw.request(
        3,
        6,
        body((w) => {
          w.array(['synced'], (x, t) => {
            x.string(t);
          }).boolean(true);
        }),
      );
      for (let i = 0; i < 5; i++)
        expect(produceResult((await raw.request(0, 7, produceBody('synced', 1, buildBatch([{ value: Buffer.from(`r${i}`) }]))))!)).toEqual({
          errorCode: 0,
          baseOffset: i,
        });
      await raw.request(
        8,
        7,
        body((w) => {
          w.string('synced-group')
            .int32(-1)
            .string('')
            .string(null)
            .array(['synced'], (x, t) => {
              x.string(t).array([1], (p, i) => {
                p.int32(i).int64(3).int32(-1).string(null);
              });
            });
        }),
      );
      raw.close();
      await synced.close();

      synced = await startTestBroker({ dataDir, fsync: 'always' });
      raw = await RawClient.open(synced.address);
      const fetched = new Reader(
        (await raw.request(
          9,
          5,
          body((w) => {
            w.string('synced-group').array(null, () => {});
          }),
        ))!,
        4,
      );
      fetched.int32();
      expect(fetched.array((t) => [t.string(), t.array((p) => [p.int32(), p.int64()])])).toEqual([['synced', [[1, 3]]]]);
      const response = await raw.request(
        2,
        3,
        body((w) => {
          w.int32(-1)
            .int8(0)
            .array(['synced'], (x, t) => {
              x.string(t).array([0, 1], (p, i) => {
                p.int32(i).int64(-1);
              });
            });
        }),
      );
      const r = new Reader(response!, 8);
      r.int32();
      r.string();
      expect(
        r.array((p) => {
          const partition = p.int32();
          p.int16();
          p.int64();
          return [partition, p.int64()];
        }),
      ).toEqual([
        [0, 0],
        [1, 5],
      ]);
      raw.close();
      await synced.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('broker lifecycle', () => {
  it('refuses a second broker on the same data dir and bad options, with what to do', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'cw-broker-lock-'));
    try {
      const first = await startTestBroker({ dataDir });
      await expect(startTestBroker({ dataDir })).rejects.toThrow(/is in use by process \d+ .*; stop it or use another --data-dir/);
      await first.close();
      await first.close(); // idempotent
      const again = await startTestBroker({ dataDir });
      await again.close();
      expect(() => new Broker({ dataDir: '' })).toThrow(/dataDir is required/);
      expect(() => new Broker({ dataDir, fsync: 'sometimes' as never })).toThrow(/fsync must be "always", "interval" or "never", got "sometimes"/);
      expect(() => new Broker({ dataDir, port: 70000 })).toThrow(/port must be 0..65535, got 70000/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
