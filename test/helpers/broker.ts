/**
 * Test helpers for anything that needs a Kafka: an in-process broker on a free
 * loopback port with a temp data dir, or the broker as a child process (for
 * restart and kill -9 tests). Both clean up everything in close().
 *
 *   const kafka = await startTestBroker();        // kafka.address = '127.0.0.1:NNNNN'
 *   ... new Kafka({ brokers: [kafka.address] }) ...
 *   await kafka.close();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { startBroker, type Broker, type BrokerOptions } from '../../src/broker/index.js';
import { waitFor, waitForExit } from './wait.js';

export interface TestBroker {
  broker: Broker;
  address: string;
  dataDir: string;
  close(): Promise<void>;
}

export async function startTestBroker(options: Partial<BrokerOptions> = {}): Promise<TestBroker> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'cw-broker-'));
  const broker = await startBroker({ port: 0, ...options, dataDir });
  let closed = false;
  return {
    broker,
    address: broker.address,
    dataDir,
    async close() {
      if (closed) return;
      closed = true;
      await broker.close();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const CLI = resolve(import.meta.dirname, '../../bin/crystalwatch.js');

/** The broker as a child process (`crystalwatch broker --port 0`); needs `npm run build` first. */
export class BrokerProcess {
  child: ChildProcess | undefined;
  port = 0;
  stderr = '';

  constructor(
    readonly dataDir: string,
    readonly extraArgs: string[] = [],
  ) {}

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Starts it; `port` reuses a previous port so clients can reconnect after a restart. */
  async start(port = 0): Promise<void> {
    const child = spawn(process.execPath, [CLI, 'broker', '--port', String(port), '--data-dir', this.dataDir, '--log-level', 'warn', ...this.extraArgs], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stderr!.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString()).slice(-20_000);
    });
    let listening: number | undefined;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      try {
        const event = JSON.parse(line) as { event: string; port: number };
        if (event.event === 'listening') listening = event.port;
      } catch {
        /* not our line */
      }
    });
    this.port = await waitFor(() => listening, {
      timeout: 30_000,
      message: 'the broker process to print its listening line',
      detail: () => this.stderr,
      stopIf: () =>
        child.exitCode !== null || child.signalCode !== null
          ? `broker exited with ${child.exitCode ?? child.signalCode} before listening (npm run build first?)`
          : undefined,
    });
  }

  /** SIGTERM and wait: the graceful path. */
  async stop(): Promise<number | null> {
    return this.signal('SIGTERM');
  }

  /** SIGKILL: no chance to flush or close anything. */
  async kill(): Promise<number | null> {
    return this.signal('SIGKILL');
  }

  private async signal(signal: NodeJS.Signals): Promise<number | null> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exitCode ?? null;
    child.kill(signal);
    const code = await waitForExit(child, { timeout: 30_000, message: `the broker process to exit on ${signal}`, detail: () => this.stderr });
    this.child = undefined;
    return code;
  }
}
