/**
 * The `KAFKA_*` environment variables, read in one place: by the config (src/config/index.ts)
 * and, through `busOptionsFromEnv` in src/bus, by the stand-alone stage commands.
 */

export const KAFKA_SASL_MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;
export type KafkaSaslMechanism = (typeof KAFKA_SASL_MECHANISMS)[number];

/**
 * How to reach a Kafka cluster, as plain values a config file or the environment can
 * hold (a CA is a file path here; `busOptions` reads it).
 */
export interface KafkaSettings {
  brokers: string[];
  clientId?: string;
  ssl?: boolean | { caFile?: string; rejectUnauthorized?: boolean };
  sasl?: { mechanism: KafkaSaslMechanism; username: string; password: string };
  maxMessageBytes?: number;
}

/**
 * Kafka settings from the environment, or `undefined` when `KAFKA_BROKERS` is unset
 * (the app then starts its embedded broker). The one reader of these variables:
 *
 * - `KAFKA_BROKERS`: comma-separated `host:port` list.
 * - `KAFKA_CLIENT_ID`: client id (default `crystalwatch`).
 * - `KAFKA_SSL=1`: TLS; `KAFKA_SSL_CA=<file>` adds a CA bundle, `KAFKA_SSL_REJECT_UNAUTHORIZED=0` accepts self-signed certificates.
 * - `KAFKA_SASL_MECHANISM` (`plain` | `scram-sha-256` | `scram-sha-512`) with `KAFKA_SASL_USERNAME` and `KAFKA_SASL_PASSWORD`.
 * - `KAFKA_MAX_MESSAGE_BYTES`: the largest record the cluster accepts (default 16 MiB).
 */
export function kafkaSettingsFromEnv(env: NodeJS.ProcessEnv = process.env): KafkaSettings | undefined {
  const list = env.KAFKA_BROKERS?.trim();
  if (!list) return undefined;
  const brokers = list
    .split(',')
    .map((b) => b.trim())
    .filter((b) => b.length > 0);
  for (const broker of brokers) {
    if (!/^[^\s:]+:\d{1,5}$/.test(broker) && !/^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(broker)) {
      throw new Error(`KAFKA_BROKERS: "${broker}" is not host:port; set KAFKA_BROKERS to a comma list such as "kafka-1:9092,kafka-2:9092"`);
    }
  }
  const settings: KafkaSettings = { brokers };
  if (env.KAFKA_CLIENT_ID) settings.clientId = env.KAFKA_CLIENT_ID;

  const ssl = env.KAFKA_SSL?.trim().toLowerCase();
  if (ssl !== undefined && ssl !== '' && !['0', '1', 'true', 'false'].includes(ssl)) {
    throw new Error(`KAFKA_SSL must be 1 or 0, got "${env.KAFKA_SSL}"`);
  }
  if (ssl === '1' || ssl === 'true') {
    const tls: { caFile?: string; rejectUnauthorized?: boolean } = {};
    if (env.KAFKA_SSL_CA) tls.caFile = env.KAFKA_SSL_CA;
    if (env.KAFKA_SSL_REJECT_UNAUTHORIZED === '0') tls.rejectUnauthorized = false;
    settings.ssl = Object.keys(tls).length > 0 ? tls : true;
  }

  const mechanism = env.KAFKA_SASL_MECHANISM?.trim().toLowerCase();
  if (mechanism) {
    if (!(KAFKA_SASL_MECHANISMS as readonly string[]).includes(mechanism)) {
      throw new Error(`KAFKA_SASL_MECHANISM must be one of ${KAFKA_SASL_MECHANISMS.join(', ')}, got "${env.KAFKA_SASL_MECHANISM}"`);
    }
    const username = env.KAFKA_SASL_USERNAME;
    const password = env.KAFKA_SASL_PASSWORD;
    if (!username || password === undefined) {
      throw new Error(`KAFKA_SASL_MECHANISM=${mechanism} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD; set both or unset the mechanism`);
    }
    settings.sasl = { mechanism: mechanism as KafkaSaslMechanism, username, password };
  }

  if (env.KAFKA_MAX_MESSAGE_BYTES) {
    const n = Number(env.KAFKA_MAX_MESSAGE_BYTES);
    if (!Number.isInteger(n) || n < 1024)
      throw new Error(`KAFKA_MAX_MESSAGE_BYTES must be an integer number of bytes ≥ 1024, got "${env.KAFKA_MAX_MESSAGE_BYTES}"`);
    settings.maxMessageBytes = n;
  }
  return settings;
}
