/** What every part of a camera's ingest (check, sender, disposal) shares: the stage's settings and resources. */
import type { Kafka } from 'kafkajs';
import type { Logger } from '../config/logger.js';
import type { ByteBudget } from './budget.js';
import type { Ledger } from './ledger.js';
import type { IngestMetrics } from './metrics.js';

export interface CameraContext {
  kafka: Kafka;
  framesTopic: string;
  ledger: Ledger;
  budget: ByteBudget;
  metrics: IngestMetrics;
  logger: Logger;
  after: 'keep' | 'move' | 'delete';
  maxFileBytes: number;
  maxMessageBytes: number;
  maxPixels: number;
  reconcileIntervalMs: number;
  /** A file that is not complete and has not changed for this long is judged as it is (truncated, empty). */
  stallTimeoutMs: number;
  /** TIFF (no end marker) is complete once its size has not changed for this long. */
  stableSizeMs: number;
  /** A complete frame waits this long for earlier captures whose events arrive late, so frames go out in capture order. */
  reorderWindowMs: number;
  /** Resolves once start-up recovery has settled which in-flight frames Kafka already has. */
  recovered: Promise<void>;
  stats: { ingested: number; rejected: number };
  /** The run a camera is in now, when one was started (it wins over the camera's configured run id). */
  runFor?: (camera: string) => string | undefined;
  /** `archiveDir`/`quarantineDir` from the options, or undefined for `<watch>/.archive`, `<watch>/.quarantine`. */
  archiveDir?: string;
  quarantineDir?: string;
}
