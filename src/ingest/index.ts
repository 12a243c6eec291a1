/**
 * The ingest stage: camera drop folders → Kafka `frames`.
 *
 *   const stage = new IngestStage({ kafka, topics, cameras: [{ camera: 'cam-1', watch: '/data/cam-1' }], registry });
 *   await stage.start();   // watching; frames flow
 *   await stage.close();   // idempotent; unsent frames are picked up by the next start
 *
 * Guarantees (see README.md): a frame is sent once it is complete (PNG IEND, JPEG EOI,
 * TIFF stable size); it is marked ingested (ledger, `after` action) only after Kafka
 * acknowledged it; after a crash nothing is sent twice and nothing is lost.
 */
import { join } from 'node:path';
import type { Kafka } from 'kafkajs';
import type { Registry } from 'prom-client';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../bus/kafka.js';
import { identityProblem } from '../bus/messages.js';
import { DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, DEFAULT_RECONCILE_INTERVAL_MS } from '../config/defaults.js';
import type { Topics } from '../bus/topics.js';
import { silentLogger, type Logger } from '../config/logger.js';
import { StageLifecycle } from '../config/stage-lifecycle.js';
import { ByteBudget, CameraIngest } from './camera.js';
import { Ledger, type AckRecord } from './ledger.js';
import { ingestMetrics } from './metrics.js';
import { findFrameIds } from './recovery.js';

export { inspectImage, sniffKind, REJECT_REASONS, type RejectReason, type Inspection, type ImageKind } from './image.js';
export { Ledger } from './ledger.js';
export { ingestMetrics } from './metrics.js';

export interface CameraFolder {
  camera: string;
  watch: string;
  /** Run id stamped on every frame (header `run-id`) outside a started run; default `<camera>-<UTC date of start>`. */
  runId?: string;
}

export interface IngestOptions {
  kafka: Kafka;
  topics: Topics;
  cameras: CameraFolder[];
  /** The run a camera is in now (started by the API, CLI or OPC UA: `RunControl.runFor`); it wins over `runId`. */
  runFor?: (camera: string) => string | undefined;
  /** What to do with a file once Kafka acknowledged it (config `ingest.after`; `move`, to `<watch>/.archive/`, is the production choice). */
  after: 'keep' | 'move' | 'delete';
  /** Where `move` puts files: `<archiveDir>/<camera>/...`; default `<watch>/.archive/`. */
  archiveDir?: string;
  /** Where rejected files go: `<quarantineDir>/<camera>/...`; default `<watch>/.quarantine/`. */
  quarantineDir?: string;
  /** Largest file accepted (default DEFAULT_MAX_FILE_BYTES, 32 MiB, as config `ingest.maxFileBytes`); also capped by the Kafka record limit. */
  maxFileBytes?: number;
  /** Largest width × height a header may claim (default DEFAULT_MAX_PIXELS, 40 megapixels: config `limits.maxPixels`, classify's limit too). */
  maxPixels?: number;
  /** Largest Kafka record the cluster accepts (default 16 MiB, DEFAULT_MAX_MESSAGE_BYTES). */
  maxMessageBytes?: number;
  /** Ledger file (default `<first watch>/.ingest-ledger.jsonl`). */
  ledgerPath?: string;
  /** How often the folder is scanned for files the watcher missed (default DEFAULT_RECONCILE_INTERVAL_MS, 5 s, as config `ingest.reconcileIntervalMs`). */
  reconcileIntervalMs?: number;
  /** Bytes read but not yet acknowledged, all cameras together (default 256 MiB). New files wait when it is reached. */
  maxInFlightBytes?: number;
  /** An incomplete file unchanged for this long is judged as it is (truncated/empty/not an image); default 5 s. */
  stallTimeoutMs?: number;
  /** TIFF is complete once its size is stable for this long; default 500 ms. */
  stableSizeMs?: number;
  /** A complete frame waits this long for late events of earlier captures, so each camera's frames go out in capture order; default 10 ms. */
  reorderWindowMs?: number;
  registry: Registry;
  logger?: Logger;
}

export class IngestStage extends StageLifecycle {
  readonly stats = { ingested: 0, rejected: 0 };
  private readonly cameras: CameraIngest[] = [];
  private ledger: Ledger | undefined;
  private recovery: Promise<void> | undefined;
  private abortRecovery = false;
  private wakeRecovery: (() => void) | undefined;
  private readonly logger: Logger;

  constructor(private readonly options: IngestOptions) {
    super({ stage: 'ingest' });
    if (options.cameras.length === 0) throw new Error('ingest: no cameras given; pass at least one { camera, watch }');
    const seen = new Set<string>();
    for (const c of options.cameras) {
      // The one rule of src/bus/messages.ts: classify would dead-letter frames of any other id.
      const problem = identityProblem('camera id', c.camera) ?? (c.runId === undefined ? undefined : identityProblem('run id', c.runId));
      if (problem) throw new Error(`ingest: ${problem} (it is a Kafka key, a metric label and part of every frame id)`);
      if (seen.has(c.camera)) throw new Error(`ingest: camera "${c.camera}" is listed twice; give each folder its own id`);
      seen.add(c.camera);
    }
    if (!['keep', 'move', 'delete'].includes(options.after)) throw new Error(`ingest: after must be keep, move or delete, got "${String(options.after)}"`);
    this.logger = (options.logger ?? silentLogger).child({ stage: 'ingest' });
  }

  /** Opens the ledger, starts recovery and every camera's watcher (StageLifecycle: a failure here closes the stage). */
  protected async open(): Promise<void> {
    const o = this.options;
    const metrics = ingestMetrics(o.registry);
    const maxMessageBytes = o.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const ledger = new Ledger(o.ledgerPath ?? join(o.cameras[0]!.watch, '.ingest-ledger.jsonl'));
    await ledger.open();
    this.ledger = ledger;
    this.throwIfClosed('start()');
    this.recovery = this.recover(ledger, maxMessageBytes);
    const budget = new ByteBudget(o.maxInFlightBytes ?? 256 * 1024 * 1024, (used) => metrics.inFlightBytes.set(used));
    const day = new Date().toISOString().slice(0, 10);
    for (const c of o.cameras) {
      // The default run id must obey the id rule too: 64 characters at most.
      this.cameras.push(
        new CameraIngest(c.camera, c.watch, c.runId ?? `${c.camera.slice(0, 64 - day.length - 1)}-${day}`, {
          kafka: o.kafka,
          framesTopic: o.topics.frames,
          ledger,
          budget,
          metrics,
          logger: this.logger,
          after: o.after,
          maxFileBytes: o.maxFileBytes ?? DEFAULT_MAX_FILE_BYTES,
          maxMessageBytes,
          maxPixels: o.maxPixels ?? DEFAULT_MAX_PIXELS,
          reconcileIntervalMs: o.reconcileIntervalMs ?? DEFAULT_RECONCILE_INTERVAL_MS,
          stallTimeoutMs: o.stallTimeoutMs ?? 5_000,
          stableSizeMs: o.stableSizeMs ?? 500,
          reorderWindowMs: o.reorderWindowMs ?? 10,
          recovered: this.recovery,
          stats: this.stats,
          runFor: o.runFor,
          archiveDir: o.archiveDir,
          quarantineDir: o.quarantineDir,
        }),
      );
    }
    for (const camera of this.cameras) {
      this.throwIfClosed('start()');
      await camera.start();
    }
  }

  /**
   * Frames the ledger says were sent but not acknowledged (the last run died
   * between the two): look them up in Kafka, retrying until the broker answers, so
   * they are neither lost nor sent twice.
   */
  private async recover(ledger: Ledger, maxMessageBytes: number): Promise<void> {
    const unacked = ledger.unacknowledged();
    if (unacked.length === 0) return;
    this.logger.info({ frames: unacked.length }, 'last run left frames unacknowledged; checking Kafka before sending anything');
    for (let attempt = 0; !this.abortRecovery; attempt += 1) {
      try {
        const found = await findFrameIds(this.options.kafka, this.options.topics.frames, new Set(unacked.map((e) => e.frameId)), {
          after: ledger.lastAckedOffsets(),
          maxMessageBytes,
          logger: this.logger,
        });
        const at = new Date().toISOString();
        const acks: AckRecord[] = [...found].map(([frameId, p]) => ({ t: 'ack', frameId, partition: p.partition, offset: p.offset, at }));
        await ledger.append(acks);
        return;
      } catch (err) {
        const backoffMs = Math.min(5_000, 200 * 2 ** Math.min(attempt, 5));
        this.logger.warn({ err: (err as Error).message, backoffMs }, 'cannot reach Kafka to check unacknowledged frames; retrying');
        await new Promise<void>((r) => {
          const timer = setTimeout(() => {
            this.wakeRecovery = undefined;
            r();
          }, backoffMs);
          this.wakeRecovery = () => {
            clearTimeout(timer);
            r();
          };
        });
      }
    }
  }

  /** Stops recovery's retries at once, before close() waits for a start() under way. */
  protected override interrupt(): void {
    this.abortRecovery = true;
    this.wakeRecovery?.();
  }

  /** Cameras in reverse order, then recovery, then the ledger; unsent frames are picked up by the next start. */
  protected async shut(): Promise<void> {
    for (const camera of [...this.cameras].reverse()) {
      await camera.close().catch((err) => this.logger.error({ err, camera: camera.camera }, 'closing camera failed'));
    }
    await this.recovery?.catch(() => undefined);
    await this.ledger?.close();
  }
}
