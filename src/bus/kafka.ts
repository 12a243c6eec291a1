/**
 * kafkajs wiring shared by every stage. Stages receive a `Kafka` and a `Topics`
 * and build their producers/consumers here, so the defaults that matter for
 * image payloads (fetch sizes, idempotence, no compression) live in one place.
 */
import { Kafka, logLevel, type KafkaConfig, type Producer, type Consumer, type SASLOptions } from 'kafkajs';
import type { ConnectionOptions } from 'node:tls';

/** Largest record the pipeline moves by default: frames are images (DESIGN.md: 16 MiB). */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

export interface BusOptions {
  brokers: string[];
  clientId?: string;
  ssl?: boolean | ConnectionOptions;
  sasl?: SASLOptions;
  /** Largest single record expected; consumer fetch sizes are set above it. */
  maxMessageBytes?: number;
}

export function createKafka(options: BusOptions): Kafka {
  const config: KafkaConfig = {
    clientId: options.clientId ?? 'crystalwatch',
    brokers: options.brokers,
    logLevel: logLevel.NOTHING,
    retry: { initialRetryTime: 100, retries: 8 },
  };
  if (options.ssl !== undefined) config.ssl = options.ssl;
  if (options.sasl !== undefined) config.sasl = options.sasl;
  return new Kafka(config);
}

/** An idempotent producer (acks=all is implied by idempotence in kafkajs). */
export function createProducer(kafka: Kafka): Producer {
  return kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: true });
}

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
    allowAutoTopicCreation: true,
  });
}
