/**
 * The defaults of the validated config (src/config/index.ts), each written once. The schema
 * uses them, and so do the stages and the stand-alone stage commands where an option may be
 * left out, so a stage built without the config behaves as one built from it.
 */

// --- kafka -------------------------------------------------------------------
export const DEFAULT_CLIENT_ID = 'crystalwatch';
export const DEFAULT_TOPIC_PREFIX = 'crystalwatch.';
/** Partitions of the topics the app creates. */
export const DEFAULT_PARTITIONS = 3;
/** Largest record the pipeline moves by default: frames are images (DESIGN.md: 16 MiB). */
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

// --- limits ------------------------------------------------------------------
/**
 * Largest width × height an image may have, one limit for every stage: ingest refuses a file
 * whose header claims more (quarantine, `too-large`) and classify refuses to decode it.
 */
export const DEFAULT_MAX_PIXELS = 40_000_000;

// --- ingest ------------------------------------------------------------------
/** What ingest does with a file once Kafka acknowledged it; `move` (to an archive) is the production choice. */
export const DEFAULT_INGEST_AFTER = 'keep';
/** Largest frame file accepted; also capped by the Kafka record limit. */
export const DEFAULT_MAX_FILE_BYTES = 32 * 1024 * 1024;
/** How often a drop folder is scanned for files the watcher missed. */
export const DEFAULT_RECONCILE_INTERVAL_MS = 5_000;

// --- classify ----------------------------------------------------------------
/** The shipped model, relative to the package (or the config file's folder). */
export const DEFAULT_MODEL_DIR = 'models/default';
export const DEFAULT_BACKEND = 'auto';
/** Images (crops or tiles) per inference call. */
export const DEFAULT_MAX_BATCH_SIZE = 32;
/** Longest wait for a batch to fill. */
export const DEFAULT_MAX_BATCH_WAIT_MS = 10;

// --- metrics -----------------------------------------------------------------
/** Rolling windows: the last N labelled frames and the frames labelled in the last S seconds. */
export const DEFAULT_WINDOW_FRAMES = 500;
export const DEFAULT_WINDOW_SECONDS = 300;
/** How long a prediction waits for its lab label. */
export const DEFAULT_LABEL_HORIZON_MS = 6 * 3600 * 1000;
/** With no cameras configured (a stand-alone stage), per-camera series for at most this many camera ids. */
export const DEFAULT_MAX_CAMERAS = 64;

// --- web ---------------------------------------------------------------------
/** Loopback unless the operator opens it on purpose (0.0.0.0 in a container). */
export const DEFAULT_WEB_HOST = '127.0.0.1';
export const DEFAULT_WEB_PORT = 8080;
