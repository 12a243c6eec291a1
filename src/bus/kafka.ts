/**
 * kafkajs wiring shared by every stage. Stages receive a `Kafka` and a `Topics`
 * and build their producers/consumers here, so the defaults that matter for
 * image payloads (fetch sizes, idempotence, no compression) live in one place.
 */
import {
  Kafka,
  logLevel,
  CompressionTypes,
  type KafkaConfig,
  type Producer,
  type Consumer,
  type SASLOptions,
  type Admin,
  type Message,
  type RecordMetadata,
  type ISocketFactory,
} from 'kafkajs';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import { topicNames, type Topics } from './topics.js';
import { DEFAULT_CLIENT_ID, DEFAULT_MAX_MESSAGE_BYTES } from '../config/defaults.js';
import { kafkaSettingsFromEnv, type KafkaSettings } from '../config/kafka-env.js';
import type { Logger } from '../config/logger.js';
import { useNativeCrc32cInKafkajs, type KafkajsCrc32cOutcome } from './crc32c.js';
import { useChunkedKafkajsEncoder, type KafkajsEncoderOutcome } from './kafkajs-encoder.js';

export { DEFAULT_MAX_MESSAGE_BYTES };

/**
 * What kafkajs' produce path computes record batch CRCs with: the native CRC-32C when it loads
 * and agrees with kafkajs' own (crc32c.ts), else kafkajs' JS one, with the reason. Decided
 * when this module loads, before any client of it can produce.
 */
export const kafkajsCrc32c: KafkajsCrc32cOutcome = useNativeCrc32cInKafkajs();

/** Whether kafkajs' Encoder keeps large values by reference (kafkajs-encoder.ts), and why not when it does not. */
export const kafkajsEncoder: KafkajsEncoderOutcome = useChunkedKafkajsEncoder();
export type { KafkaSettings };

export interface BusOptions {
  brokers: string[];
  clientId?: string;
  ssl?: boolean | ConnectionOptions;
  sasl?: SASLOptions;
  /** Largest single record expected; consumer fetch sizes are set above it. */
  maxMessageBytes?: number;
  /**
   * The embedded broker of this process: connections to its address skip loopback TCP
   * (src/broker/in-process.ts); any other address is connected over TCP as usual.
   */
  inProcess?: InProcessBroker;
}

/** A broker running in this process (src/broker `Broker`), as the clients need it. */
export interface InProcessBroker {
  /** host:port, as the broker advertises itself in metadata. */
  readonly address: string;
  connectInProcess(): Duplex;
}

/** kafkajs' default socket factory (TCP or TLS, keep-alive): what it uses when it is given none. */
const kafkajsSocketFactory = (createRequire(import.meta.url)('kafkajs/src/network/socketFactory.js') as () => ISocketFactory)();

/** kafkajs' own socket factory, except for the in-process broker's address, which gets an in-process connection. */
function socketFactory(broker: InProcessBroker): ISocketFactory {
  return (args) => {
    if (args.ssl || `${args.host}:${args.port}` !== broker.address) return kafkajsSocketFactory(args);
    const socket = broker.connectInProcess();
    process.nextTick(args.onConnect); // connected at once; kafkajs listens for it after the factory returns
    // kafkajs calls on/write/end/unref only, all of which an in-process socket has.
    return socket as unknown as Socket;
  };
}

export function createKafka(options: BusOptions): Kafka {
  const config: KafkaConfig = {
    clientId: options.clientId ?? DEFAULT_CLIENT_ID,
    brokers: options.brokers,
    logLevel: logLevel.NOTHING,
    retry: { initialRetryTime: 100, retries: 8 },
  };
  if (options.ssl !== undefined) config.ssl = options.ssl;
  if (options.sasl !== undefined) config.sasl = options.sasl;
  if (options.inProcess) config.socketFactory = socketFactory(options.inProcess);
  return new Kafka(config);
}

/** An idempotent producer (acks=all is implied by idempotence in kafkajs). */
export function createProducer(kafka: Kafka): Producer {
  return kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: true });
}

/**
 * Longest a fetch waits on the broker for new records. kafkajs's `disconnect()` waits for the
 * fetch in flight, so this bounds how long closing a consumer takes (kafkajs's default, 5 s,
 * made SIGTERM take 15 s with three consumers); an idle consumer costs two small requests a second.
 */
export const CONSUMER_MAX_WAIT_MS = 500;

/**
 * A consumer whose fetch sizes fit the largest frame: kafkajs stalls on a
 * partition when `maxBytesPerPartition` is smaller than one record.
 */
export function createConsumer(kafka: Kafka, groupId: string, options: { maxMessageBytes?: number; sessionTimeout?: number } = {}): Consumer {
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  return kafka.consumer({
    groupId,
    maxBytesPerPartition: maxMessageBytes + 64 * 1024,
    maxBytes: Math.max(maxMessageBytes * 2, 64 * 1024 * 1024),
    sessionTimeout: options.sessionTimeout ?? 10_000,
    heartbeatInterval: 1_000,
    maxWaitTimeInMs: CONSUMER_MAX_WAIT_MS,
    allowAutoTopicCreation: true,
  });
}

// ---------------------------------------------------------------------------
// Options from the environment, topics, batched sends and batch consumers.
// ---------------------------------------------------------------------------

/** kafkajs options for the settings; reads the CA file when one is named. */
export function busOptions(settings: KafkaSettings, readFile: (path: string) => string = readCaFile): BusOptions {
  const options: BusOptions = { brokers: settings.brokers };
  if (settings.clientId) options.clientId = settings.clientId;
  if (settings.maxMessageBytes) options.maxMessageBytes = settings.maxMessageBytes;
  if (settings.sasl) options.sasl = settings.sasl as SASLOptions;
  if (typeof settings.ssl === 'object') {
    const tls: ConnectionOptions = {};
    if (settings.ssl.caFile) tls.ca = [readFile(settings.ssl.caFile)];
    if (settings.ssl.rejectUnauthorized === false) tls.rejectUnauthorized = false;
    options.ssl = tls;
  } else if (settings.ssl) {
    options.ssl = true;
  }
  return options;
}

/** `busOptions(kafkaSettingsFromEnv(env))`, or `undefined` when `KAFKA_BROKERS` is unset. */
export function busOptionsFromEnv(env: NodeJS.ProcessEnv = process.env, readFile: (path: string) => string = readCaFile): BusOptions | undefined {
  const settings = kafkaSettingsFromEnv(env);
  return settings ? busOptions(settings, readFile) : undefined;
}

function readCaFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(
      `Kafka TLS CA file (KAFKA_SSL_CA or kafka.ssl.caFile): cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); point it at a PEM CA bundle`,
    );
  }
}

/**
 * Creates the topics that do not exist yet, with `partitions` partitions, and adds
 * partitions to existing ones that have fewer (Kafka cannot remove partitions).
 * `max.message.bytes` is raised on `frames` so full-size camera frames fit on a
 * stock Kafka (whose default is 1 MiB).
 */
export async function ensureTopics(
  kafka: Kafka,
  topics: Topics,
  partitions: number,
  options: { replicationFactor?: number; maxMessageBytes?: number } = {},
): Promise<{ created: string[]; grown: string[] }> {
  if (!Number.isInteger(partitions) || partitions < 1) throw new Error(`ensureTopics: partitions must be an integer ≥ 1, got ${partitions}`);
  const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const admin: Admin = kafka.admin();
  await admin.connect();
  try {
    const wanted = Object.values(topics) as string[];
    const existing = new Set(await admin.listTopics());
    const missing = wanted.filter((t) => !existing.has(t));
    const created: string[] = [];
    if (missing.length > 0) {
      await admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((topic) => ({
          topic,
          numPartitions: partitions,
          replicationFactor: options.replicationFactor ?? -1,
          configEntries: topic === topics.frames ? [{ name: 'max.message.bytes', value: String(maxMessageBytes + 64 * 1024) }] : [],
        })),
      });
      created.push(...missing);
    }
    const grown: string[] = [];
    const present = wanted.filter((t) => existing.has(t));
    if (present.length > 0) {
      const metadata = await admin.fetchTopicMetadata({ topics: present });
      const toGrow = metadata.topics.filter((t) => t.partitions.length < partitions);
      if (toGrow.length > 0) {
        try {
          await admin.createPartitions({ topicPartitions: toGrow.map((t) => ({ topic: t.name, count: partitions })) });
        } catch (err) {
          const have = toGrow.map((t) => `${t.name} has ${t.partitions.length}`).join(', ');
          throw new Error(
            `ensureTopics: ${have} partition(s), ${partitions} wanted, and the broker refused to add partitions (${(err as Error).message}); lower the partition setting or add them with the cluster's tools`,
          );
        }
        grown.push(...toGrow.map((t) => t.name));
      }
    }
    return { created, grown };
  } finally {
    await admin.disconnect();
  }
}

/** Bytes a message occupies in a record batch, near enough to keep batches under the broker's limit. */
export function approximateRecordBytes(message: Message): number {
  let bytes = 32; // record framing: length, attributes, deltas, varints
  if (message.key) bytes += typeof message.key === 'string' ? Buffer.byteLength(message.key) : message.key.length;
  if (message.value) bytes += typeof message.value === 'string' ? Buffer.byteLength(message.value) : message.value.length;
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) bytes += 8 + Buffer.byteLength(name) + (v === undefined ? 0 : typeof v === 'string' ? Buffer.byteLength(v) : v.length);
  }
  return bytes;
}

/**
 * Splits `messages` into consecutive chunks of at most `maxBatchBytes` each (kept
 * in order), so one produce request never exceeds the broker's message size limit.
 * A single message over the limit is an error: it can never be sent.
 */
export function splitByBytes(messages: Message[], maxBatchBytes: number = DEFAULT_MAX_MESSAGE_BYTES): Message[][] {
  const chunks: Message[][] = [];
  let current: Message[] = [];
  let currentBytes = 61; // record batch header
  for (const message of messages) {
    const bytes = approximateRecordBytes(message);
    if (bytes + 61 > maxBatchBytes) {
      throw new Error(
        `a record of ${bytes} bytes exceeds the batch limit of ${maxBatchBytes} bytes; raise KAFKA_MAX_MESSAGE_BYTES (and the topic's max.message.bytes) or send smaller frames`,
      );
    }
    if (current.length > 0 && currentBytes + bytes > maxBatchBytes) {
      chunks.push(current);
      current = [];
      currentBytes = 61;
    }
    current.push(message);
    currentBytes += bytes;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

/**
 * Sends `messages` to `topic` in order, in chunks that fit `maxBatchBytes`, with
 * acks from all in-sync replicas and no compression (images are already compressed;
 * compressing them costs CPU for nothing). Returns the metadata of each chunk,
 * in order, alongside the messages it carried.
 */
export async function sendBatched(
  producer: Producer,
  topic: string,
  messages: Message[],
  maxBatchBytes: number = DEFAULT_MAX_MESSAGE_BYTES,
): Promise<Array<{ messages: Message[]; metadata: RecordMetadata[] }>> {
  const results: Array<{ messages: Message[]; metadata: RecordMetadata[] }> = [];
  for (const chunk of splitByBytes(messages, maxBatchBytes)) {
    const metadata = await producer.send({ topic, messages: chunk, acks: -1, compression: CompressionTypes.None });
    results.push({ messages: chunk, metadata });
  }
  return results;
}

/**
 * Kafka for a stand-alone stage command (`crystalwatch ingest`, `classify`, ...): the
 * cluster from `--brokers` or the environment, and the topics created up front where
 * the cluster allows it (otherwise automatic topic creation is relied on).
 */
export async function connectStageBus(
  stage: string,
  options: { brokers?: string; topicPrefix: string; partitions: number },
  logger: Logger,
): Promise<{ kafka: Kafka; topics: Topics; bus: BusOptions }> {
  const env = options.brokers ? { ...process.env, KAFKA_BROKERS: options.brokers } : process.env;
  const bus = busOptionsFromEnv(env);
  if (!bus) throw new Error(`${stage}: no Kafka given; pass --brokers host:port or set KAFKA_BROKERS (crystalwatch run starts an embedded broker instead)`);
  bus.clientId ??= `crystalwatch-${stage}`;
  const kafka = createKafka(bus);
  const topics = topicNames(options.topicPrefix);
  try {
    await ensureTopics(kafka, topics, options.partitions, { maxMessageBytes: bus.maxMessageBytes });
  } catch (err) {
    logger.warn({ err: (err as Error).message }, 'could not create topics up front; relying on automatic topic creation');
  }
  return { kafka, topics, bus };
}
