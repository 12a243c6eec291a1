/**
 * The request grammar of every API the broker answers, written as the grammar
 * comments at the top of src/broker/api/*.ts with valid sample values, an
 * encoder that notes where each length and count sits, and mutators that make
 * those lie or damage the bytes. test/broker.fuzz.test.ts checks the grammar
 * against the broker's API table, so a new API or version cannot go unfuzzed.
 */
import { buildBatch } from './broker-wire.js';

type Primitive = 'int8' | 'int16' | 'int32' | 'int64' | 'boolean' | 'string' | 'nullable_string' | 'bytes' | 'compact_string' | 'tag_buffer';
type Versions = [from: number, to: number];
/** A literal, or a function of the request's version that gives one. */
type Value = unknown;
export interface Field {
  name: string;
  type: Primitive | Field[];
  array?: boolean;
  value?: Value;
  count?: number;
  versions?: Versions;
}

const field = (name: string, type: Primitive, value?: Value, versions?: Versions): Field => ({ name, type, value, versions });
/** [item] of primitives (`value` is the list) or of structs (`count` copies of the struct's sample values). */
const array = (name: string, type: Primitive | Field[], options: { value?: Value; count?: number; versions?: Versions } = {}): Field => ({
  name,
  type,
  array: true,
  ...options,
});

export const FUZZ_TOPIC = 'fuzzed';
const GROUP = 'fuzz-group';
const BATCH = buildBatch([{ key: Buffer.from('k'), value: Buffer.from('fuzz') }]);

export interface ApiGrammar {
  key: number;
  name: string;
  versions: Versions;
  flexibleFrom?: number;
  fields: Field[];
}

export const REQUEST_GRAMMAR: readonly ApiGrammar[] = [
  {
    key: 0,
    name: 'Produce',
    versions: [3, 7],
    fields: [
      field('transactional_id', 'nullable_string', null),
      field('acks', 'int16', -1),
      field('timeout_ms', 'int32', 1000),
      array('topic_data', [field('name', 'string', FUZZ_TOPIC), array('partition_data', [field('index', 'int32', 0), field('records', 'bytes', BATCH)])]),
    ],
  },
  {
    key: 1,
    name: 'Fetch',
    versions: [4, 11],
    fields: [
      field('replica_id', 'int32', -1),
      field('max_wait_ms', 'int32', 10),
      field('min_bytes', 'int32', 1),
      field('max_bytes', 'int32', 1 << 20),
      field('isolation_level', 'int8', 0),
      field('session_id', 'int32', 0, [7, 11]),
      field('session_epoch', 'int32', -1, [7, 11]),
      array('topics', [
        field('topic', 'string', FUZZ_TOPIC),
        array('partitions', [
          field('partition', 'int32', 0),
          field('current_leader_epoch', 'int32', -1, [9, 11]),
          field('fetch_offset', 'int64', 0),
          field('log_start_offset', 'int64', -1, [5, 11]),
          field('partition_max_bytes', 'int32', 1 << 20),
        ]),
      ]),
      array('forgotten_topics_data', [field('topic', 'string', FUZZ_TOPIC), array('partitions', 'int32', { value: [1] })], { versions: [7, 11] }),
      field('rack_id', 'string', '', [11, 11]),
    ],
  },
  {
    key: 2,
    name: 'ListOffsets',
    versions: [0, 3],
    fields: [
      field('replica_id', 'int32', -1),
      field('isolation_level', 'int8', 0, [2, 3]),
      array('topics', [
        field('name', 'string', FUZZ_TOPIC),
        array('partitions', [field('partition_index', 'int32', 0), field('timestamp', 'int64', -1), field('max_num_offsets', 'int32', 1, [0, 0])]),
      ]),
    ],
  },
  {
    key: 3,
    name: 'Metadata',
    versions: [0, 6],
    fields: [array('topics', 'string', { value: [FUZZ_TOPIC] }), field('allow_auto_topic_creation', 'boolean', true, [4, 6])],
  },
  {
    key: 8,
    name: 'OffsetCommit',
    versions: [2, 7],
    fields: [
      field('group_id', 'string', GROUP),
      field('generation_id', 'int32', -1),
      field('member_id', 'string', ''),
      field('retention_time_ms', 'int64', -1, [2, 4]),
      field('group_instance_id', 'nullable_string', null, [7, 7]),
      array('topics', [
        field('name', 'string', FUZZ_TOPIC),
        array('partitions', [
          field('partition_index', 'int32', 0),
          field('committed_offset', 'int64', 1),
          field('committed_leader_epoch', 'int32', -1, [6, 7]),
          field('committed_metadata', 'nullable_string', ''),
        ]),
      ]),
    ],
  },
  {
    key: 9,
    name: 'OffsetFetch',
    versions: [1, 5],
    fields: [field('group_id', 'string', GROUP), array('topics', [field('name', 'string', FUZZ_TOPIC), array('partition_indexes', 'int32', { value: [0] })])],
  },
  { key: 10, name: 'FindCoordinator', versions: [0, 2], fields: [field('key', 'string', GROUP), field('key_type', 'int8', 0, [1, 2])] },
  {
    key: 11,
    name: 'JoinGroup',
    versions: [0, 5],
    fields: [
      // A group per version, so the valid request is the only member and is answered at once.
      field('group_id', 'string', (v: number) => `fuzz-join-v${v}`),
      field('session_timeout_ms', 'int32', 6000),
      field('rebalance_timeout_ms', 'int32', 100, [1, 5]),
      field('member_id', 'string', ''),
      field('group_instance_id', 'nullable_string', null, [5, 5]),
      field('protocol_type', 'string', 'consumer'),
      array('protocols', [field('name', 'string', 'range'), field('metadata', 'bytes', Buffer.alloc(10))]),
    ],
  },
  {
    key: 12,
    name: 'Heartbeat',
    versions: [0, 3],
    fields: [
      field('group_id', 'string', GROUP),
      field('generation_id', 'int32', 1),
      field('member_id', 'string', 'nobody'),
      field('group_instance_id', 'nullable_string', null, [3, 3]),
    ],
  },
  {
    key: 13,
    name: 'LeaveGroup',
    versions: [0, 3],
    fields: [
      field('group_id', 'string', GROUP),
      field('member_id', 'string', 'nobody', [0, 2]),
      array('members', [field('member_id', 'string', 'nobody'), field('group_instance_id', 'nullable_string', null)], { versions: [3, 3] }),
    ],
  },
  {
    key: 14,
    name: 'SyncGroup',
    versions: [0, 3],
    fields: [
      field('group_id', 'string', GROUP),
      field('generation_id', 'int32', 1),
      field('member_id', 'string', 'nobody'),
      field('group_instance_id', 'nullable_string', null, [3, 3]),
      array('assignments', [field('member_id', 'string', 'nobody'), field('assignment', 'bytes', Buffer.alloc(4))]),
    ],
  },
  { key: 15, name: 'DescribeGroups', versions: [0, 2], fields: [array('groups', 'string', { value: [GROUP] })] },
  { key: 16, name: 'ListGroups', versions: [0, 2], fields: [] },
  {
    key: 18,
    name: 'ApiVersions',
    versions: [0, 3],
    flexibleFrom: 3,
    fields: [
      field('client_software_name', 'compact_string', 'fuzz', [3, 3]),
      field('client_software_version', 'compact_string', '1', [3, 3]),
      field('tags', 'tag_buffer', undefined, [3, 3]),
    ],
  },
  {
    key: 19,
    name: 'CreateTopics',
    versions: [0, 3],
    fields: [
      array('topics', [
        field('name', 'string', (v: number) => `fuzz-created-v${v}`),
        field('num_partitions', 'int32', 1),
        field('replication_factor', 'int16', 1),
        array('assignments', [field('partition_index', 'int32', 0), array('broker_ids', 'int32', { value: [0] })], { count: 0 }),
        array('configs', [field('name', 'string', 'retention.ms'), field('value', 'nullable_string', '60000')]),
      ]),
      field('timeout_ms', 'int32', 1000),
      field('validate_only', 'boolean', true, [1, 3]),
    ],
  },
  {
    key: 20,
    name: 'DeleteTopics',
    versions: [0, 1],
    fields: [array('topic_names', 'string', { value: ['no-such-topic'] }), field('timeout_ms', 'int32', 1000)],
  },
  {
    key: 22,
    name: 'InitProducerId',
    versions: [0, 1],
    fields: [field('transactional_id', 'nullable_string', null), field('transaction_timeout_ms', 'int32', 1000)],
  },
];

/** Where a length or count sits in an encoded body, so a mutator can make it lie. */
export interface LengthField {
  at: number;
  width: 2 | 4 | 'uvarint';
  encodedBytes: number;
  what: string;
}
export interface EncodedRequest {
  apiKey: number;
  version: number;
  flexible: boolean;
  body: Buffer;
  lengths: LengthField[];
}

function uvarint(value: number): Buffer {
  const out: number[] = [];
  let v = value >>> 0;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return Buffer.from(out);
}

/** A valid request body for `api` at `version`, built from its grammar, with the positions of its lengths. */
export function encodeRequest(api: ApiGrammar, version: number): EncodedRequest {
  const parts: Buffer[] = [];
  const lengths: LengthField[] = [];
  let at = 0;
  const put = (bytes: Buffer): void => {
    parts.push(bytes);
    at += bytes.length;
  };
  const int = (value: number, width: 1 | 2 | 4): Buffer => {
    const b = Buffer.alloc(width);
    b.writeIntBE(value, 0, width);
    return b;
  };
  const length = (value: number, width: 2 | 4, what: string): void => {
    lengths.push({ at, width, encodedBytes: width, what });
    put(int(value, width));
  };
  const primitive = (type: Primitive, value: unknown, what: string): void => {
    switch (type) {
      case 'int8':
      case 'boolean':
        put(int(Number(value), 1));
        break;
      case 'int16':
        put(int(Number(value), 2));
        break;
      case 'int32':
        put(int(Number(value), 4));
        break;
      case 'int64': {
        const b = Buffer.alloc(8);
        b.writeBigInt64BE(BigInt(value as number));
        put(b);
        break;
      }
      case 'string':
      case 'nullable_string':
        if (value === null) {
          length(-1, 2, what);
          break;
        }
        length(Buffer.byteLength(value as string), 2, what);
        put(Buffer.from(value as string));
        break;
      case 'bytes':
        length((value as Buffer).length, 4, what);
        put(value as Buffer);
        break;
      case 'compact_string': {
        const text = Buffer.from(value as string);
        const prefix = uvarint(text.length + 1);
        lengths.push({ at, width: 'uvarint', encodedBytes: prefix.length, what });
        put(prefix);
        put(text);
        break;
      }
      case 'tag_buffer':
        put(Buffer.from([0]));
        break;
    }
  };
  const fields = (list: Field[]): void => {
    for (const f of list) {
      if (f.versions && (version < f.versions[0] || version > f.versions[1])) continue;
      const value = typeof f.value === 'function' ? (f.value as (v: number) => unknown)(version) : f.value;
      if (!f.array) {
        primitive(f.type as Primitive, value, f.name);
        continue;
      }
      if (Array.isArray(f.type)) {
        const count = f.count ?? 1;
        length(count, 4, f.name);
        for (let i = 0; i < count; i++) fields(f.type);
      } else {
        const items = value as unknown[];
        length(items.length, 4, f.name);
        for (const item of items) primitive(f.type, item, f.name);
      }
    }
  };
  fields(api.fields);
  return { apiKey: api.key, version, flexible: api.flexibleFrom !== undefined && version >= api.flexibleFrom, body: Buffer.concat(parts), lengths };
}

export interface Mutation {
  kind: string;
  body: Buffer;
}

/** Every length and count of `request` made to lie: huge, negative, null where not nullable, one past the end. */
export function lengthMutations(request: EncodedRequest): Mutation[] {
  const out: Mutation[] = [];
  for (const field of request.lengths) {
    const splice = (kind: string, replacement: Buffer): void => {
      out.push({
        kind: `${kind} ${field.what}`,
        body: Buffer.concat([request.body.subarray(0, field.at), replacement, request.body.subarray(field.at + field.encodedBytes)]),
      });
    };
    const int = (value: number): Buffer => {
      const b = Buffer.alloc(field.width as number);
      b.writeIntBE(value, 0, field.width as number);
      return b;
    };
    if (field.width === 'uvarint') {
      splice('huge length', uvarint(0xffffffff));
      splice('null length', uvarint(0));
      continue;
    }
    const max = field.width === 2 ? 0x7fff : 0x7fffffff;
    splice('huge length', int(max));
    splice('negative length', int(-2));
    splice('most negative length', int(-max - 1));
    splice('null length', int(-1));
    splice('length one past the end', int(Math.min(max, request.body.length - field.at - field.encodedBytes + 1)));
  }
  return out;
}

/** A random mutation: bytes flipped, the body truncated, or garbage appended. */
export function randomMutation(body: Buffer, random: () => number): Mutation {
  const mode = random();
  if (mode < 0.5) {
    const mutated = Buffer.from(body);
    for (let flips = 1 + Math.floor(random() * 4); flips > 0 && mutated.length > 0; flips--)
      mutated[Math.floor(random() * mutated.length)] = Math.floor(random() * 256);
    return { kind: 'bytes flipped', body: mutated };
  }
  if (mode < 0.8) return { kind: 'truncated', body: body.subarray(0, Math.floor(random() * body.length)) };
  return {
    kind: 'garbage appended',
    body: Buffer.concat([body, Buffer.from(Array.from({ length: 1 + Math.floor(random() * 8) }, () => Math.floor(random() * 256)))]),
  };
}

/** A seeded PRNG so a failing case can be replayed: mulberry32 of src/model/rng.ts. */
export { mulberry32 as prng } from '../../src/model/rng.js';
