/**
 * One validated configuration for every crystalwatch process: defaults, then a
 * config file (JSON or YAML), then environment variables, then command-line flags.
 * Errors name the field, the value and where it came from.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import {
  DEFAULT_BACKEND,
  DEFAULT_CLIENT_ID,
  DEFAULT_INGEST_AFTER,
  DEFAULT_LABEL_HORIZON_MS,
  DEFAULT_MAX_BATCH_SIZE,
  DEFAULT_MAX_BATCH_WAIT_MS,
  DEFAULT_MAX_CAMERAS,
  DEFAULT_MAX_FILE_BYTES,
  DEFAULT_MAX_MESSAGE_BYTES,
  DEFAULT_MAX_PIXELS,
  DEFAULT_MODEL_DIR,
  DEFAULT_PARTITIONS,
  DEFAULT_RECONCILE_INTERVAL_MS,
  DEFAULT_TOPIC_PREFIX,
  DEFAULT_WEB_HOST,
  DEFAULT_WEB_PORT,
  DEFAULT_WINDOW_FRAMES,
  DEFAULT_WINDOW_SECONDS,
} from './defaults.js';
import { CameraIdSchema, RunIdSchema } from './identity.js';
import { kafkaSettingsFromEnv } from './kafka-env.js';
import { FetchSchema, OverloadSchema } from './overload.js';
import { shown } from './shown.js';

export { DEFAULT_MAX_PIXELS };

const Camera = z.object({
  id: CameraIdSchema,
  watch: z.string().min(1),
  runId: RunIdSchema.optional(),
});

const Webhook = z.object({ url: z.string().url(), secret: z.string().min(1).optional() });

export const ConfigSchema = z
  .object({
    /** Where the embedded broker, ledgers and quarantine defaults live. */
    dataDir: z.string().default('./data'),
    /** Stages this process runs; a plant runs one stage per process against KAFKA_BROKERS. */
    stages: z
      .array(z.enum(['ingest', 'classify', 'monitor', 'web']))
      .min(1)
      .default(['ingest', 'classify', 'monitor', 'web']),
    kafka: z
      .object({
        /** Empty: start the embedded single-node broker in this process. */
        brokers: z.array(z.string().regex(/^(?:[^:\s[\]]+|\[[0-9a-fA-F:]+\]):\d{1,5}$/, 'broker address must be host:port')).default([]),
        clientId: z.string().default(DEFAULT_CLIENT_ID),
        topicPrefix: z.string().default(DEFAULT_TOPIC_PREFIX),
        partitions: z.number().int().min(1).max(1024).default(DEFAULT_PARTITIONS),
        maxMessageBytes: z.number().int().min(1024).default(DEFAULT_MAX_MESSAGE_BYTES),
        /** true, or TLS with a CA bundle file and/or accepting self-signed certificates. */
        ssl: z.union([z.boolean(), z.object({ caFile: z.string().min(1).optional(), rejectUnauthorized: z.boolean().optional() }).strict()]).default(false),
        sasl: z.object({ mechanism: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']), username: z.string(), password: z.string() }).optional(),
      })
      .prefault({}),
    broker: z
      .object({
        host: z.string().default('127.0.0.1'),
        /** 0 picks a free port. */
        port: z.number().int().min(0).max(65535).default(0),
        fsync: z.enum(['always', 'interval', 'never']).default('interval'),
        /**
         * This process's own Kafka clients reach the embedded broker in memory (src/broker/in-process.ts),
         * nearly a quarter less CPU on the bytes path; false: over loopback TCP, as other processes do.
         */
        inProcessClients: z.boolean().default(true),
      })
      .prefault({}),
    cameras: z.array(Camera).default([]),
    ingest: z
      .object({
        after: z.enum(['keep', 'move', 'delete']).default(DEFAULT_INGEST_AFTER),
        archiveDir: z.string().optional(),
        quarantineDir: z.string().optional(),
        maxFileBytes: z.number().int().min(1).default(DEFAULT_MAX_FILE_BYTES),
        reconcileIntervalMs: z.number().int().min(100).default(DEFAULT_RECONCILE_INTERVAL_MS),
      })
      .prefault({}),
    classify: z
      .object({
        model: z.string().default(DEFAULT_MODEL_DIR),
        backend: z.enum(['auto', 'onnx', 'tfjs']).default(DEFAULT_BACKEND),
        maxBatchSize: z.number().int().min(1).max(1024).default(DEFAULT_MAX_BATCH_SIZE),
        maxBatchWaitMs: z.number().int().min(0).max(10_000).default(DEFAULT_MAX_BATCH_WAIT_MS),
        /** The same image this many times in a row from one camera is unusable (`frozen`) from that copy on; 0 turns the check off. */
        frozenRepeats: z
          .number()
          .int()
          .min(0)
          .max(10_000)
          .refine((n) => n !== 1, 'classify.frozenRepeats must be 0 (off) or at least 2')
          .default(5),
        /** The model-free "is this a probe image at all" gate (colour, text, noise, flat backgrounds → `not-probe`). */
        probeGate: z.boolean().default(true),
        /** Under overload: newest-first | in-order | skip, and when a frame is stale (src/config/overload.ts). */
        overload: OverloadSchema,
        /** Consumer fetch sizes and micro-batcher queue bounds, derived from the frame size when left out. */
        fetch: FetchSchema,
      })
      .prefault({}),
    metrics: z
      .object({
        windowFrames: z.number().int().min(1).default(DEFAULT_WINDOW_FRAMES),
        windowSeconds: z.number().int().min(1).default(DEFAULT_WINDOW_SECONDS),
        labelHorizonMs: z.number().int().min(0).default(DEFAULT_LABEL_HORIZON_MS),
        /** With no `cameras` configured (a stand-alone monitor), per-camera series for at most this many camera ids. */
        maxCameras: z.number().int().min(1).max(10_000).default(DEFAULT_MAX_CAMERAS),
      })
      .prefault({}),
    limits: z
      .object({
        /** Largest width × height of a frame, for ingest (header check) and classify (decoder). */
        maxPixels: z.number().int().min(1).default(DEFAULT_MAX_PIXELS),
      })
      .prefault({}),
    alert: z
      .object({
        detector: z.enum(['cusum', 'k-of-n']).default('cusum'),
        resolveAfterCleanFrames: z.number().int().min(1).default(50),
        topic: z.boolean().default(true),
        webhooks: z.array(Webhook).default([]),
        alertmanagerUrl: z.string().url().optional(),
        actionCommand: z.string().min(1).optional(),
        actionUrl: z.string().url().optional(),
        /** A camera whose run sent predictions and then none for this long raises a camera-silent alert; 0 turns it off. */
        silentAfterSeconds: z.number().min(0).default(60),
        /** Delivery from the `alerts` topic to webhooks, Alertmanager and the action: retried until the deadline, then dead-lettered. */
        delivery: z
          .object({
            /** Wait after the first failed attempt; doubled after each one up to maxDelayMs. */
            baseDelayMs: z.number().int().min(1).default(250),
            maxDelayMs: z.number().int().min(1).default(30_000),
            /** How long a change is retried, from when it was written, before it goes to dead-letter. */
            deadlineSeconds: z
              .number()
              .min(1)
              .default(24 * 3600),
            /** HTTP timeout of one attempt. */
            timeoutMs: z.number().int().min(100).default(5_000),
          })
          .refine((d) => d.maxDelayMs >= d.baseDelayMs, { message: 'maxDelayMs must be at least baseDelayMs', path: ['maxDelayMs'] })
          .prefault({}),
      })
      .prefault({}),
    web: z
      .object({
        host: z.string().default(DEFAULT_WEB_HOST),
        port: z.number().int().min(0).max(65535).default(DEFAULT_WEB_PORT),
        /** Bearer token required by mutating endpoints (alert acknowledgement) when set. */
        token: z.string().min(8, 'web.token must be at least 8 characters').optional(),
      })
      .prefault({}),
    /** The OPC UA server for the control system (src/opcua): off unless enabled. */
    opcua: z
      .object({
        enabled: z.boolean().default(false),
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(4840),
        /** `None` only on a loopback host; `SignAndEncrypt` with a certificate made on first start in <dataDir>/opcua/pki. */
        security: z.enum(['None', 'SignAndEncrypt']).default('None'),
        users: z
          .array(z.object({ username: z.string().min(1), password: z.string().min(8, 'opcua.users.*.password must be at least 8 characters') }).strict())
          .default([]),
      })
      .prefault({}),
    /** The audit trail (src/audit) in <dataDir>/audit, kept by the process that runs the monitor stage. */
    audit: z
      .object({
        enabled: z.boolean().default(true),
        /** fsync every record before it counts (off only for tests and benchmarks). */
        fsync: z.boolean().default(true),
      })
      .prefault({}),
    /** Batch reports (src/report) in <dataDir>/reports/<run-id>/ at the end of every run the monitor stage watched. */
    reports: z
      .object({
        enabled: z.boolean().default(true),
        /** Print report.pdf with headless Chromium (the HTML and JSON are always written). */
        pdf: z.boolean().default(true),
      })
      .prefault({}),
    log: z
      .object({
        level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
        pretty: z.boolean().optional(),
      })
      .prefault({}),
  })
  .strict();

export type Config = z.infer<typeof ConfigSchema>;
export type CameraConfig = z.infer<typeof Camera>;

export { maskSecrets } from './secrets.js';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Environment variables: the `KAFKA_*` ones of `kafkaSettingsFromEnv` (kafka-env.ts) and `CRYSTALWATCH_<PATH>` for
 * every scalar field, the path in upper snake case: `CRYSTALWATCH_WEB_PORT=8081`,
 * `CRYSTALWATCH_CLASSIFY_MAX_BATCH_SIZE=64`, `CRYSTALWATCH_ALERT_WEBHOOKS='[{"url":…}]'` (JSON
 * for arrays and objects), `CRYSTALWATCH_CAMERAS='cam1=/srv/cam1,cam2=/srv/cam2'`.
 */
export function configFromEnv(env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  // The KAFKA_* variables have one reader, shared with the stand-alone stage commands.
  try {
    const kafka = kafkaSettingsFromEnv(env);
    if (kafka) out.kafka = { ...kafka };
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith('CRYSTALWATCH_') || raw === undefined) continue;
    const key = name.slice('CRYSTALWATCH_'.length);
    if (key === 'CAMERAS') {
      setPath(out, ['cameras'], raw.trim().startsWith('[') ? parseJson(raw, name) : parseCameraList(raw, name));
      continue;
    }
    const fieldPath = resolveEnvPath(key);
    if (!fieldPath) continue; // CRYSTALWATCH_LOG_PRETTY and friends used elsewhere stay allowed
    setPath(out, fieldPath.path, coerce(raw, fieldPath.kind, name));
  }
  return out;
}

type Kind = 'string' | 'number' | 'boolean' | 'json';

/** Walks the schema's shape to map `CLASSIFY_MAX_BATCH_SIZE` to `classify.maxBatchSize`. */
function resolveEnvPath(key: string): { path: string[]; kind: Kind } | undefined {
  const leaves = listLeaves(ConfigSchema, []);
  return leaves.find((leaf) => leaf.env === key);
}

function listLeaves(schema: z.ZodType, at: string[]): { env: string; path: string[]; kind: Kind }[] {
  const inner = unwrap(schema);
  if (inner instanceof z.ZodObject) {
    return Object.entries(inner.shape as Record<string, z.ZodType>).flatMap(([k, v]) => listLeaves(v, [...at, k]));
  }
  const env = at.map((p) => p.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
  const kind: Kind =
    inner instanceof z.ZodNumber
      ? 'number'
      : inner instanceof z.ZodBoolean
        ? 'boolean'
        : inner instanceof z.ZodString || inner instanceof z.ZodEnum
          ? 'string'
          : 'json';
  return [{ env, path: at, kind }];
}

function unwrap(schema: z.ZodType): z.ZodType {
  let current: z.ZodType = schema;
  for (;;) {
    if (current instanceof z.ZodDefault || current instanceof z.ZodOptional || current instanceof z.ZodPrefault) {
      current = (current as unknown as { unwrap(): z.ZodType }).unwrap();
    } else return current;
  }
}

function coerce(raw: string, kind: Kind, name: string): unknown {
  switch (kind) {
    case 'number': {
      const n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) throw new ConfigError(`${name}: expected a number, got "${raw}"`);
      return n;
    }
    case 'boolean':
      if (/^(1|true|yes|on)$/i.test(raw)) return true;
      if (/^(0|false|no|off)$/i.test(raw)) return false;
      throw new ConfigError(`${name}: expected true or false, got "${raw}"`);
    case 'json':
      return raw.trim().startsWith('[') || raw.trim().startsWith('{') ? parseJson(raw, name) : splitList(raw);
    default:
      return raw;
  }
}

function parseJson(raw: string, where: string): unknown {
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw new ConfigError(`${where}: not valid JSON (${(err as Error).message})`);
  }
}

function splitList(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function parseCameraList(raw: string, where: string): CameraConfig[] {
  return splitList(raw).map((item) => {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new ConfigError(`${where}: expected "camera=folder[,camera=folder]", got "${item}"`);
    return { id: item.slice(0, eq), watch: item.slice(eq + 1) };
  });
}

function setPath(target: Record<string, unknown>, at: string[], value: unknown): void {
  let node = target;
  for (const key of at.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[at[at.length - 1]!] = value;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Later sources win; objects merge, arrays and scalars replace. */
export function mergeConfig(...sources: Record<string, unknown>[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const source of sources) {
    for (const [k, v] of Object.entries(source)) {
      if (v === undefined) continue;
      out[k] = isPlainObject(v) && isPlainObject(out[k]) ? mergeConfig(out[k] as Record<string, unknown>, v) : v;
    }
  }
  return out;
}

export async function readConfigFile(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`config file ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = /\.ya?ml$/i.test(file) ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${file}: not valid ${/\.ya?ml$/i.test(file) ? 'YAML' : 'JSON'} (${(err as Error).message})`);
  }
  if (parsed === null || parsed === undefined) return {};
  if (!isPlainObject(parsed)) throw new ConfigError(`config file ${file}: the top level must be an object`);
  return parsed;
}

export interface LoadConfigOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Values from command-line flags, already shaped like the config. */
  overrides?: Record<string, unknown>;
}

export async function loadConfig(options: LoadConfigOptions = {}): Promise<Config> {
  const fromFile = options.file ? await readConfigFile(options.file) : {};
  const fromEnv = configFromEnv(options.env ?? process.env);
  return validateConfig(mergeConfig(fromFile, fromEnv, options.overrides ?? {}), options.file);
}

export function validateConfig(raw: Record<string, unknown>, source?: string): Config {
  const result = ConfigSchema.safeParse(raw);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const field = issue.path.join('.') || '(top level)';
    const value = issue.path.reduce<unknown>((node, key) => (node as Record<string | number, unknown> | undefined)?.[key as string], raw);
    const got = value === undefined ? '' : `, got ${shown(value)}`;
    return `${field}: ${issue.message}${got}`;
  });
  throw new ConfigError(`invalid configuration${source ? ` in ${source}` : ''}:\n  ${lines.join('\n  ')}`);
}

/** Resolves a path from the config against the directory the config file is in (or the cwd). */
export function resolveFrom(baseFile: string | undefined, p: string): string {
  return path.resolve(baseFile ? path.dirname(baseFile) : process.cwd(), p);
}
