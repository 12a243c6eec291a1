/**
 * `crystalwatch run` as a real child process for the alert durability tests: a config file
 * with the monitor stage only (metrics + alerts) on the embedded broker at a fixed port and data
 * dir (so a restart finds both again), predictions produced straight into `predictions`, the
 * `alerts` topic read back, and receivers that can be down and come up on a fixed port.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import type { Alert, Prediction } from '../../src/bus/messages.js';
import { readToEnd } from '../../src/alert/restore.js';
import { cli, root } from './demo.js';
import { waitFor, withDeadline } from './wait.js';

export interface RunConfig {
  dataDir: string;
  brokerPort: number;
  alert: Record<string, unknown>;
  /** Default: monitor only (metrics + alerts); add 'web' for /metrics on a free port. */
  stages?: string[];
}

export async function writeRunConfig(dir: string, config: RunConfig): Promise<string> {
  const file = path.join(dir, 'plant.json');
  await writeFile(
    file,
    JSON.stringify(
      {
        dataDir: config.dataDir,
        stages: config.stages ?? ['monitor'],
        broker: { port: config.brokerPort },
        web: { port: 0 },
        kafka: { partitions: 1 },
        alert: config.alert,
        log: { level: 'info', pretty: false },
      },
      null,
      2,
    ),
  );
  return file;
}

export interface RunProcess {
  child: ChildProcess;
  /** The JSON log lines so far. */
  logs: Record<string, unknown>[];
  stderr(): string;
  waitForLog(test: (line: Record<string, unknown>) => boolean, what: string, timeoutMs: number): Promise<Record<string, unknown>>;
  /** Sends the signal and resolves with the exit code and signal once it exited. */
  kill(signal: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the exit code and signal once the process exited by itself or otherwise. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startRun(configFile: string, env: Record<string, string> = {}): Promise<RunProcess> {
  const child = spawn(process.execPath, [cli, 'run', '--config', configFile], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, CRYSTALWATCH_LOG_PRETTY: '0', ...env },
  });
  let stderr = '';
  let partial = '';
  const logs: Record<string, unknown>[] = [];
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-40_000);
    const lines = (partial + chunk.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* not a log line */
      }
    }
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const run: RunProcess = {
    child,
    logs,
    exited,
    stderr: () => stderr,
    waitForLog: (test, what, timeoutMs) =>
      waitFor(() => logs.find(test), {
        timeout: timeoutMs,
        message: what,
        detail: () => stderr.slice(-3000),
        stopIf: () => (child.exitCode !== null || child.signalCode !== null ? `crystalwatch run exited (${child.exitCode ?? child.signalCode})` : undefined),
      }),
    kill: async (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return withDeadline(exited, { timeout: 30_000, message: `crystalwatch run to exit after ${signal}`, detail: () => stderr.slice(-3000) });
    },
  };
  await run.waitForLog((l) => l.msg === 'crystalwatch running', 'crystalwatch running', 60_000);
  return run;
}

/** A kafkajs client on the run's embedded broker (make a new one after each restart). */
export function kafkaAt(port: number): Kafka {
  return new Kafka({
    clientId: 'alert-durability-test',
    brokers: [`127.0.0.1:${port}`],
    logLevel: logLevel.NOTHING,
    retry: { initialRetryTime: 100, retries: 10 },
  });
}

export async function producePredictions(kafka: Kafka, predictions: Prediction[]): Promise<void> {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    await producer.send({ topic: 'crystalwatch.predictions', acks: -1, messages: predictions.map((p) => ({ key: p.camera, value: JSON.stringify(p) })) });
  } finally {
    await producer.disconnect();
  }
}

/** Every record on the `alerts` topic: the alert and its `event` header. */
export async function alertsOnTopic(kafka: Kafka): Promise<{ alert: Alert; event: string }[]> {
  const out: { alert: Alert; event: string }[] = [];
  await readToEnd(
    kafka,
    ['crystalwatch.alerts'],
    (_topic, _partition, message) => {
      out.push({ alert: JSON.parse(message.value!.toString()) as Alert, event: message.headers?.event?.toString() ?? '' });
    },
    { groupPrefix: 'alert-durability-test-reader' },
  );
  return out;
}

export interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** An HTTP receiver on a fixed port that is down until up() and can go down again. */
export class Receiver {
  readonly got: Received[] = [];
  private server: Server | undefined;
  constructor(readonly port: number) {}
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }
  async up(): Promise<void> {
    const server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        this.got.push({ path: req.url ?? '', headers: req.headers, body });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => resolve());
    });
    this.server = server;
  }
  async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  }
}
