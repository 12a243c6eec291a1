/**
 * The embedded single-node Kafka-protocol broker. See README.md in this folder
 * for what it implements, its files on disk and the fsync policy.
 */
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { InProcessSocket } from './in-process.js';
import { join, resolve } from 'node:path';
import type { Registry } from 'prom-client';
import { silentLogger, type Logger } from '../config/logger.js';
import { BrokerCore } from './core.js';
import { BufferBudget, resolveLimits, type ConnectionLimitOptions, type ConnectionLimits } from './limits.js';
import { RequestBuffers } from './request-buffers.js';
import { Connection, type ClientSocket, type ConnectionTransport } from './server.js';
import { processIsAlive } from '../config/process-alive.js';

/** startBroker's options; the limits on what one client may cost (maxRequestBytes, requestReadTimeoutMs, maxConnections, maxBufferedBytes) are in limits.ts. */
export interface BrokerOptions extends ConnectionLimitOptions {
  host?: string; // default '127.0.0.1'
  port?: number; // default 9092; 0 = ephemeral
  dataDir: string; // append-only segment files per partition + committed group offsets
  defaultPartitions?: number; // for auto-created topics, default 3
  autoCreateTopics?: boolean; // default true
  messageMaxBytes?: number; // default 16 MiB (frames are images)
  fsync?: 'always' | 'interval' | 'never'; // documented in README.md; default 'interval'
  retention?: { bytes?: number; ms?: number }; // per-topic defaults
  logger?: Logger;
  /** The process's prom-client registry for crystalwatch_broker_* metrics (src/broker/metrics.ts); private if absent. */
  registry?: Registry;
  /** Segment file size before a new one is started (default 64 MiB); retention deletes whole segments. */
  segmentBytes?: number;
  /** fsync period for fsync 'interval' (default 1000 ms). */
  fsyncIntervalMs?: number;
  /** Memory for the newest batches of all partitions, served without file reads (default 64 MiB). */
  tailCacheBytes?: number;
  /** How often retention runs (default 30 s; it also runs at start). */
  retentionCheckIntervalMs?: number;
}

export const DEFAULT_PORT = 9092;
const MiB = 1024 * 1024;

function check(condition: boolean, message: string): void {
  if (!condition) throw new Error(`broker options: ${message}`);
}

export class Broker {
  private readonly core: BrokerCore;
  private readonly options: Required<Pick<BrokerOptions, 'host' | 'port' | 'fsyncIntervalMs' | 'retentionCheckIntervalMs'>> & BrokerOptions;
  private readonly logger: Logger;
  private server: Server | undefined;
  private readonly connections = new Set<Connection>();
  private timers: NodeJS.Timeout[] = [];
  private lockPath: string;
  private boundPort = -1;
  private closing: Promise<void> | undefined;
  private readonly limits: ConnectionLimits;
  private readonly budget: BufferBudget;
  private readonly buffers = new RequestBuffers();
  private refusedSinceLog = 0;
  private lastRefusalLog = 0;

  constructor(options: BrokerOptions) {
    check(
      typeof options.dataDir === 'string' && options.dataDir.length > 0,
      `dataDir is required (a folder for segments and offsets), got ${JSON.stringify(options.dataDir)}`,
    );
    const port = options.port ?? DEFAULT_PORT;
    check(Number.isInteger(port) && port >= 0 && port <= 65535, `port must be 0..65535, got ${options.port}`);
    const partitions = options.defaultPartitions ?? 3;
    check(Number.isInteger(partitions) && partitions >= 1 && partitions <= 1000, `defaultPartitions must be 1..1000, got ${options.defaultPartitions}`);
    const messageMaxBytes = options.messageMaxBytes ?? 16 * MiB;
    check(
      Number.isInteger(messageMaxBytes) && messageMaxBytes >= 1024 && messageMaxBytes <= 1024 * MiB,
      `messageMaxBytes must be 1 KiB..1 GiB, got ${options.messageMaxBytes}`,
    );
    const fsync = options.fsync ?? 'interval';
    check(['always', 'interval', 'never'].includes(fsync), `fsync must be "always", "interval" or "never", got ${JSON.stringify(options.fsync)}`);
    const retention = options.retention ?? {};
    check(retention.bytes === undefined || retention.bytes >= 0, `retention.bytes must be >= 0, got ${retention.bytes}`);
    check(retention.ms === undefined || retention.ms >= 0, `retention.ms must be >= 0, got ${retention.ms}`);
    this.limits = resolveLimits(options, messageMaxBytes);
    this.budget = new BufferBudget(this.limits.maxBufferedBytes);
    const segmentBytes = options.segmentBytes ?? Math.min(64 * MiB, Math.max(MiB, retention.bytes !== undefined ? Math.floor(retention.bytes / 4) : 64 * MiB));
    check(segmentBytes >= 1024, `segmentBytes must be >= 1024, got ${segmentBytes}`);
    this.options = {
      ...options,
      host: options.host ?? '127.0.0.1',
      port,
      fsyncIntervalMs: options.fsyncIntervalMs ?? 1000,
      retentionCheckIntervalMs: options.retentionCheckIntervalMs ?? 30_000,
    };
    // Callers often pass logger.child({ stage: 'broker' }) already; pino would repeat the key.
    const logger = options.logger ?? silentLogger;
    this.logger = logger.bindings().stage === undefined ? logger.child({ stage: 'broker' }) : logger;
    const dataDir = resolve(options.dataDir);
    this.lockPath = join(dataDir, 'broker.lock');
    this.core = new BrokerCore({
      dataDir,
      defaultPartitions: partitions,
      autoCreateTopics: options.autoCreateTopics ?? true,
      messageMaxBytes,
      fsync,
      retention,
      segmentBytes,
      cacheBytes: options.tailCacheBytes ?? 64 * MiB,
      logger: this.logger,
      bufferedBytes: () => this.budget.used,
      ...(options.registry ? { registry: options.registry } : {}),
    });
  }

  get host(): string {
    return this.options.host;
  }
  get port(): number {
    return this.boundPort >= 0 ? this.boundPort : this.options.port;
  }
  get address(): string {
    return `${this.advertisedHost}:${this.port}`;
  }

  /** Where clients should connect: a wildcard bind is advertised as loopback. */
  private get advertisedHost(): string {
    return this.options.host === '0.0.0.0' || this.options.host === '::' ? '127.0.0.1' : this.options.host;
  }

  async start(): Promise<void> {
    if (this.server) return;
    mkdirSync(this.core.options.dataDir, { recursive: true });
    this.acquireLock();
    try {
      this.core.open();
    } catch (err) {
      this.releaseLock();
      throw err;
    }
    const server = createServer((socket: Socket) => this.accept(socket, 'tcp'));
    this.server = server;
    await new Promise<void>((resolvePromise, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host, () => {
        server.off('error', reject);
        resolvePromise();
      });
    }).catch((err: NodeJS.ErrnoException) => {
      this.server = undefined;
      this.core.close();
      this.releaseLock();
      throw new Error(
        `broker: cannot listen on ${this.options.host}:${this.options.port}: ${err.code ?? err.message}; pick another --port (0 = any free port)`,
      );
    });
    const address = server.address();
    this.boundPort = typeof address === 'object' && address ? address.port : this.options.port;
    this.core.host = this.advertisedHost;
    this.core.port = this.boundPort;
    if (this.core.options.fsync === 'interval') {
      this.timers.push(setInterval(() => this.flush(), this.options.fsyncIntervalMs));
    }
    const retention = (): void => {
      try {
        this.core.topics.applyRetention();
      } catch (err) {
        this.logger.error({ err }, 'retention failed; segments are kept until the next run');
      }
    };
    retention();
    this.timers.push(setInterval(retention, this.options.retentionCheckIntervalMs));
    // One sweep for all connections rather than a timer per request; a late request is closed within a quarter of the timeout.
    const sweepMs = Math.max(25, Math.min(1000, Math.floor(this.limits.requestReadTimeoutMs / 4)));
    this.timers.push(
      setInterval(() => {
        const now = performance.now();
        for (const connection of [...this.connections]) connection.checkReadDeadline(now);
        this.buffers.trim(now);
      }, sweepMs),
    );
    this.logger.info({ address: this.address, dataDir: this.core.options.dataDir, fsync: this.core.options.fsync }, 'broker listening');
  }

  /**
   * A client connection from this process that skips loopback TCP (in-process.ts): what kafkajs
   * clients of `createKafka({ inProcess })` use. The broker serves it exactly as a TCP connection
   * (maxConnections included); refused, like a TCP connect, when the broker is not listening.
   */
  connectInProcess(): InProcessSocket {
    if (!this.server || this.closing) {
      throw Object.assign(new Error(`connect ECONNREFUSED ${this.address} (the in-process broker is not listening)`), { code: 'ECONNREFUSED' });
    }
    const [client, server] = InProcessSocket.pair();
    this.accept(server, 'in-process');
    return client;
  }

  private accept(socket: ClientSocket, transport: ConnectionTransport): void {
    if (this.connections.size >= this.limits.maxConnections) {
      this.core.metrics.connectionsRefused.inc();
      socket.on('error', () => {});
      socket.destroy();
      this.logRefusal(socket.remoteAddress);
      return;
    }
    const connection = new Connection(socket, { transport }, this.core, this.limits, { budget: this.budget, buffers: this.buffers }, this.logger, (c) =>
      this.connections.delete(c),
    );
    this.connections.add(connection);
  }

  /** One log line per refused connection, but at most one every 10 s under a flood (with the count since the last). */
  private logRefusal(client: string | undefined): void {
    this.refusedSinceLog += 1;
    const now = Date.now();
    if (now - this.lastRefusalLog < 10_000) return;
    this.logger.warn(
      { client: `/${client ?? 'unknown'}`, open: this.connections.size, refused: this.refusedSinceLog },
      `refusing connection: maxConnections ${this.limits.maxConnections} are open (raise maxConnections / --max-connections if the clients are legitimate)`,
    );
    this.refusedSinceLog = 0;
    this.lastRefusalLog = now;
  }

  private flushing: Promise<void> | undefined;

  /** The 'interval' policy: one background fsync at a time, never overlapping the next tick. */
  private flush(): void {
    if (this.flushing) return;
    this.flushing = (async () => {
      try {
        await this.core.topics.flushAsync();
        this.core.offsets.flush();
      } catch (err) {
        this.logger.error({ err }, 'fsync failed; data is written but may not survive a power loss');
      } finally {
        this.flushing = undefined;
      }
    })();
  }

  /** A second broker on the same data dir would interleave writes; a lock file with our pid prevents it. */
  private acquireLock(): void {
    if (openDataDirs.has(this.lockPath)) {
      throw new Error(
        `broker: data dir ${this.core.options.dataDir} is in use by process ${process.pid} (another broker in this process); stop it or use another --data-dir`,
      );
    }
    try {
      const holder = Number(readFileSync(this.lockPath, 'utf8'));
      if (holder && holder !== process.pid && processIsAlive(holder)) {
        throw new Error(`broker: data dir ${this.core.options.dataDir} is in use by process ${holder}; stop it or use another --data-dir`);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    writeFileSync(this.lockPath, String(process.pid));
    openDataDirs.add(this.lockPath);
  }

  private releaseLock(): void {
    openDataDirs.delete(this.lockPath);
    try {
      unlinkSync(this.lockPath);
    } catch {
      /* already gone */
    }
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    const server = this.server;
    if (!server) return;
    const closed = new Promise<void>((resolvePromise) => server.close(() => resolvePromise()));
    for (const connection of [...this.connections]) connection.close();
    this.buffers.trim(Infinity);
    await closed;
    await this.flushing;
    this.core.close();
    this.releaseLock();
    this.logger.info('broker closed');
  }
}

/** Lock files held by brokers of this process (the pid in the file cannot tell them apart). */
const openDataDirs = new Set<string>();

export async function startBroker(options: BrokerOptions): Promise<Broker> {
  const broker = new Broker(options);
  await broker.start();
  return broker;
}
