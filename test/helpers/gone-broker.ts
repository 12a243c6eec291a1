/**
 * A kafkajs client pointed at a closed port, for tests of what happens while kafkajs retries a
 * connect: it tries twice (one retry, 1 s apart, no jitter), and counts its failed attempts, so a
 * test can act after the first and wait for the last (no retry timer outlives the test).
 */
import { Kafka, logLevel } from 'kafkajs';
import { freePort } from './ports.js';

export interface GoneBroker {
  kafka: Kafka;
  /** Connect attempts that failed so far. */
  readonly failedConnects: number;
}

/** Attempts each connect makes: the first and one retry. */
export const GONE_BROKER_ATTEMPTS = 2;

export async function goneBroker(): Promise<GoneBroker> {
  const state = { failedConnects: 0 };
  const kafka = new Kafka({
    clientId: 'gone-broker-test',
    brokers: [`127.0.0.1:${await freePort()}`],
    retry: { retries: GONE_BROKER_ATTEMPTS - 1, initialRetryTime: 1_000, factor: 0 },
    logLevel: logLevel.ERROR,
    logCreator: () => (entry) => {
      if (entry.log.message.includes('Failed to connect to seed broker')) state.failedConnects += 1;
    },
  });
  return {
    kafka,
    get failedConnects() {
      return state.failedConnects;
    },
  };
}
