/**
 * The alert stage: consumes `predictions`, runs one onset detector per camera and run, and
 * manages the alert lifecycle (firing → resolved after a run of clean frames; acknowledged
 * by a person), delivering every change to the configured sinks.
 *
 * Events: 'alert' (Alert) on every change (fired, resolved, acknowledged).
 */
import { EventEmitter } from 'node:events';
import { createHash } from 'node:crypto';
import type { Consumer, Kafka, Producer } from 'kafkajs';
import type { Registry } from 'prom-client';
import { createConsumer, createProducer } from '../bus/kafka.js';
import { deadLetterRecord } from '../bus/dead-letter.js';
import { decodePrediction, type Alert, type Prediction, type Tile } from '../bus/messages.js';
import type { Topics } from '../bus/topics.js';
import { silentLogger, type Logger } from '../config/logger.js';
import { OnsetDetector, type DetectorConfig } from './detector.js';
import { createAlertMetrics, type AlertMetrics } from './metrics.js';
import { ActionSink, AlertmanagerSink, RetryingDelivery, TopicSink, WebhookSink, type AlertEventKind, type AlertSink, type DeliveryOptions } from './sinks.js';
import { RecentKeys } from '../bus/recent-keys.js';

export { OnsetDetector, logLikelihoodRatio, cusumThresholdForArl, cusumAverageRunLength, DEFAULT_CUSUM_MODEL, type DetectorConfig, type CusumConfig, type KOfNConfig, type DetectorStep } from './detector.js';
export { RetryingDelivery, WebhookSink, AlertmanagerSink, ActionSink, TopicSink, signBody, toAlertmanagerAlert, type AlertSink, type AlertEventKind, type DeliveryOutcome } from './sinks.js';
export { createAlertMetrics, type AlertMetrics } from './metrics.js';

export interface AlertSinksOptions {
  /** Write every alert change to the `alerts` topic. Default true. */
  topic?: boolean;
  webhooks?: { url: string; secret?: string }[];
  /** Alertmanager base URL (http://host:9093); alerts go to POST /api/v2/alerts. */
  alertmanagerUrl?: string;
  /** Early-stop hook: a shell command (alert JSON on stdin, CRYSTALWATCH_* env) ... */
  actionCommand?: string;
  /** ... and/or a URL that gets {"action":"stop-batch","alert":...} POSTed. */
  actionUrl?: string;
}

export interface AlertOptions {
  kafka: Kafka;
  topics: Topics;
  groupId?: string;
  registry: Registry;
  /** Default: CUSUM tuned for one false alarm per 100,000 CEX frames. */
  detector?: DetectorConfig;
  /** Consecutive clean frames (usable, P(PG) below cleanBelow) that resolve a firing alert. Default 50. */
  resolveAfterCleanFrames?: number;
  /** A frame is clean when P(PG) is below this. Default 0.5. */
  cleanBelow?: number;
  sinks?: AlertSinksOptions;
  /** The WebSocket feed, given by the app; called synchronously on every alert change. */
  publish?: (event: Alert) => void;
  /** Retry and queue bounds of every sink. */
  delivery?: Omit<DeliveryOptions, 'onOutcome' | 'onQueued' | 'logger'>;
  /** How often a firing alert is re-sent to Alertmanager (it expires after 5 × this). Default 60 s. */
  alertmanagerResendMs?: number;
  /** Read `predictions` from the start when the group has no committed offset. Default true. */
  fromBeginning?: boolean;
  /** Frame ids remembered to drop redelivered predictions. Default 100,000. */
  dedupCapacity?: number;
  /** Camera-runs tracked at once; beyond it the oldest quiet run (no firing alert) is forgotten first. Default 10,000. */
  maxRuns?: number;
  logger?: Logger;
  now?: () => number;
}

interface EvidenceFrame {
  frameId: string;
  capturedAt: string;
  pPG: number;
  tiles?: Tile[];
}

interface RunState {
  camera: string;
  runId: string;
  detector: OnsetDetector;
  /** The latest usable frames, oldest first (evidence is taken from here). */
  recent: EvidenceFrame[];
  firing: Alert | undefined;
  clean: number;
}

const STAGE = 'alert';
const RECENT_FRAMES = 64;
const EVIDENCE_FRAMES = 20;
const KEPT_ALERTS = 1000;

export class AlertStage extends EventEmitter {
  readonly metrics: AlertMetrics;
  private readonly runs = new Map<string, RunState>();
  private readonly latestRun = new Map<string, string>();
  private readonly cameras = new Set<string>();
  /** Firing alerts per camera (the alarm gauge is 1 while this is above 0). */
  private readonly firingByCamera = new Map<string, number>();
  private readonly alerts = new Map<string, Alert>();
  private readonly seen: RecentKeys;
  private readonly deliveries: RetryingDelivery[] = [];
  private alertmanager: RetryingDelivery | undefined;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly resolveAfter: number;
  private readonly cleanBelow: number;
  private readonly maxRuns: number;
  private consumer: Consumer | undefined;
  private producer: Producer | undefined;
  private resendTimer: NodeJS.Timeout | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: AlertOptions) {
    super();
    this.logger = (options.logger ?? silentLogger).child({ stage: STAGE });
    this.now = options.now ?? Date.now;
    this.metrics = createAlertMetrics(options.registry);
    this.resolveAfter = options.resolveAfterCleanFrames ?? 50;
    if (!Number.isInteger(this.resolveAfter) || this.resolveAfter < 1) throw new RangeError(`alert: resolveAfterCleanFrames must be a positive integer, got ${this.resolveAfter}`);
    this.cleanBelow = options.cleanBelow ?? 0.5;
    this.seen = new RecentKeys(options.dedupCapacity ?? 100_000);
    this.maxRuns = options.maxRuns ?? 10_000;
    new OnsetDetector(options.detector); // validate the configuration now, not on the first frame
    const sinks = options.sinks ?? {};
    for (const hook of sinks.webhooks ?? []) this.addSink(new WebhookSink(hook.url, hook.secret));
    if (sinks.alertmanagerUrl) this.alertmanager = this.addSink(new AlertmanagerSink(sinks.alertmanagerUrl, 5 * (options.alertmanagerResendMs ?? 60_000), 5000, this.now));
    if (sinks.actionCommand || sinks.actionUrl) this.addSink(new ActionSink({ command: sinks.actionCommand, url: sinks.actionUrl }));
  }

  /** Adds a sink (tests and the app may bring their own); returns its delivery queue. */
  addSink(sink: AlertSink): RetryingDelivery {
    const delivery = new RetryingDelivery(sink, {
      ...this.options.delivery,
      logger: this.logger,
      onOutcome: (name, outcome) => this.metrics.deliveries.inc({ sink: name, outcome }),
      onQueued: (name, queued) => this.metrics.queued.set({ sink: name }, queued),
    });
    this.deliveries.push(delivery);
    return delivery;
  }

  async start(): Promise<void> {
    if (this.consumer) return;
    const { kafka, topics } = this.options;
    this.producer = createProducer(kafka);
    await this.producer.connect();
    if (this.options.sinks?.topic ?? true) this.addSink(new TopicSink(this.producer, topics.alerts));
    this.consumer = createConsumer(kafka, this.options.groupId ?? 'crystalwatch-alert', { maxMessageBytes: 1024 * 1024 });
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [topics.predictions], fromBeginning: this.options.fromBeginning ?? true });
    await this.consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        const decoded = decodePrediction(message.value);
        if (decoded.ok) {
          this.observePrediction(decoded.value, Number(message.timestamp));
          return;
        }
        this.metrics.deadLetter.inc({ stage: STAGE, reason: 'invalid-prediction' });
        this.logger.warn({ topic, partition, offset: message.offset, reason: decoded.reason }, 'malformed prediction sent to dead-letter');
        const letter = deadLetterRecord({ sourceTopic: topic, partition, offset: message.offset, reason: decoded.reason, stage: STAGE, key: message.key, value: message.value, headers: message.headers, at: new Date(this.now()) });
        await this.producer
          ?.send({ topic: topics.deadLetter, messages: [letter] })
          .catch((err: Error) => this.logger.error({ err }, 'could not write to dead-letter; the malformed prediction is skipped'));
      },
    });
    this.startResendTimer();
    this.logger.info({ detector: new OnsetDetector(this.options.detector).description, sinks: this.deliveries.map((d) => d.sink.name) }, 'alert stage consuming');
  }

  /** Without Kafka: re-send firing alerts to Alertmanager (start() does this too). */
  startResendTimer(): void {
    if (!this.alertmanager || this.resendTimer) return;
    this.resendTimer = setInterval(() => {
      for (const alert of this.alerts.values()) if (alert.state === 'firing') this.alertmanager?.enqueue(alert, 'firing');
    }, this.options.alertmanagerResendMs ?? 60_000);
    this.resendTimer.unref();
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.resendTimer) clearInterval(this.resendTimer);
      await this.consumer?.disconnect().catch((err: Error) => this.logger.warn({ err }, 'alert consumer disconnect failed'));
      // Give queued deliveries a moment to finish, then abandon them.
      let grace: NodeJS.Timeout | undefined;
      await Promise.race([Promise.all(this.deliveries.map((d) => d.idle())), new Promise((r) => (grace = setTimeout(r, 2000)))]);
      clearTimeout(grace);
      for (const d of this.deliveries) d.close();
      await this.producer?.disconnect().catch((err: Error) => this.logger.warn({ err }, 'alert producer disconnect failed'));
    })();
    return this.closing;
  }

  /** Resolves when every sink's queue is empty (tests, benchmarks). */
  async idle(): Promise<void> {
    await Promise.all(this.deliveries.map((d) => d.idle()));
  }

  /** Every alert kept (firing ones always, the last 1000 others), newest first. */
  list(): Alert[] {
    return [...this.alerts.values()].reverse().map((a) => structuredClone(a));
  }

  acknowledge(id: string, by?: string): Alert | undefined {
    const alert = this.alerts.get(id);
    if (!alert) return undefined;
    if (!alert.acknowledgedAt) {
      alert.acknowledgedAt = new Date(this.now()).toISOString();
      if (by) alert.acknowledgedBy = by;
      this.logger.info({ alertId: id, by }, 'alert acknowledged');
      this.announce(alert, 'acknowledged');
    }
    return structuredClone(alert);
  }

  /**
   * Handles one prediction; returns the alert it fired or resolved, if any.
   * `producedAtMs` (the Kafka record timestamp) starts the prediction-to-alert clock; without it
   * the clock starts now.
   */
  observePrediction(prediction: Prediction, producedAtMs?: number): Alert | undefined {
    const receivedAt = this.now();
    if (!this.seen.add(prediction.frameId)) {
      this.metrics.duplicates.inc({ stage: STAGE });
      return undefined;
    }

    const state = this.run(prediction.camera, prediction.runId);
    if (prediction.pPG === null || prediction.predicted === 'unusable') return undefined; // neither for nor against
    state.recent.push({ frameId: prediction.frameId, capturedAt: prediction.capturedAt, pPG: prediction.pPG, ...(prediction.tiles ? { tiles: prediction.tiles } : {}) });
    if (state.recent.length > RECENT_FRAMES) state.recent.shift();

    if (state.firing) {
      state.clean = prediction.pPG < this.cleanBelow ? state.clean + 1 : 0;
      if (state.clean >= this.resolveAfter) return this.resolve(state, prediction.capturedAt);
      return undefined;
    }
    const step = state.detector.update(prediction.pPG);
    if (!step.alarm) return undefined;

    const excursion = state.recent.slice(-Math.max(1, Math.min(step.evidenceFrames, RECENT_FRAMES)));
    const firstPg = excursion.find((f) => f.pPG >= this.cleanBelow) ?? excursion[0];
    const id = alertId(state.camera, state.runId, firstPg.frameId);
    state.detector.reset();
    if (this.alerts.has(id)) return undefined; // the same onset replayed (redelivery after a restart)
    const alert: Alert = {
      id,
      camera: state.camera,
      runId: state.runId,
      state: 'firing',
      startsAt: isoOr(prediction.capturedAt, receivedAt),
      evidence: {
        firstPgFrameId: firstPg.frameId,
        frames: excursion.slice(-EVIDENCE_FRAMES),
        statistic: step.statistic,
        detector: state.detector.description,
      },
      action: 'stop-batch',
    };
    state.firing = alert;
    state.clean = 0;
    this.keep(alert);
    this.firingByCamera.set(state.camera, (this.firingByCamera.get(state.camera) ?? 0) + 1);
    this.metrics.alerts.inc({ camera: state.camera });
    this.metrics.alarm.set({ camera: state.camera }, 1);
    this.logger.warn({ alertId: id, camera: state.camera, runId: state.runId, firstPgFrameId: firstPg.frameId, statistic: step.statistic }, 'PG onset: alert firing');
    this.announce(alert, 'firing');
    this.metrics.predictionToAlert.observe(Math.max(0, this.now() - (producedAtMs ?? receivedAt)) / 1000);
    return structuredClone(alert);
  }

  private resolve(state: RunState, at: string): Alert {
    const alert = state.firing as Alert;
    alert.state = 'resolved';
    alert.endsAt = isoOr(at, this.now());
    state.firing = undefined;
    state.clean = 0;
    state.detector.reset();
    const stillFiring = (this.firingByCamera.get(state.camera) ?? 1) - 1;
    this.firingByCamera.set(state.camera, stillFiring);
    this.metrics.alarm.set({ camera: state.camera }, stillFiring > 0 ? 1 : 0);
    this.logger.info({ alertId: alert.id, camera: state.camera, runId: state.runId }, 'alert resolved');
    this.announce(alert, 'resolved');
    return structuredClone(alert);
  }

  private announce(alert: Alert, kind: AlertEventKind): void {
    const copy = structuredClone(alert);
    this.emit('alert', copy);
    if (this.options.publish) {
      try {
        this.options.publish(copy);
        this.metrics.deliveries.inc({ sink: 'websocket', outcome: 'delivered' });
      } catch (err) {
        this.metrics.deliveries.inc({ sink: 'websocket', outcome: 'failed' });
        this.logger.warn({ err: (err as Error).message }, 'alert publish callback threw');
      }
    }
    for (const d of this.deliveries) d.enqueue(alert, kind);
  }

  private keep(alert: Alert): void {
    this.alerts.set(alert.id, alert);
    if (this.alerts.size <= KEPT_ALERTS) return;
    for (const [id, a] of this.alerts) {
      if (a.state !== 'firing') {
        this.alerts.delete(id);
        return;
      }
    }
  }

  private run(camera: string, runId: string): RunState {
    const key = `${camera}\u0000${runId}`;
    let state = this.runs.get(key);
    if (state) return state;
    // A new run on a camera ends its earlier runs: their firing alerts resolve (the batch was stopped or finished).
    const previous = this.latestRun.get(camera);
    if (previous !== undefined && previous !== runId) {
      const old = this.runs.get(`${camera}\u0000${previous}`);
      if (old?.firing) this.resolve(old, new Date(this.now()).toISOString());
    }
    this.latestRun.set(camera, runId);
    state = { camera, runId, detector: new OnsetDetector(this.options.detector), recent: [], firing: undefined, clean: 0 };
    this.runs.set(key, state);
    if (this.runs.size > this.maxRuns) {
      for (const [k, r] of this.runs) {
        if (!r.firing) {
          this.runs.delete(k);
          break;
        }
      }
    }
    // The alarm series exists (at 0) from a camera's first frame, so "absent" never means "fine";
    // the alert counter too, so that increase()/changes() see its first alert as a change.
    if (!this.cameras.has(camera)) {
      this.cameras.add(camera);
      this.metrics.alarm.set({ camera }, 0);
      this.metrics.alerts.inc({ camera }, 0);
    }
    return state;
  }
}


/** Stable across replays: the same onset (camera, run, first PG frame) always gets the same id. */
function alertId(camera: string, runId: string, firstPgFrameId: string): string {
  return `pg-${createHash('sha256').update(`${camera}\u0000${runId}\u0000${firstPgFrameId}`).digest('hex').slice(0, 16)}`;
}

function isoOr(value: string, fallbackMs: number): string {
  const ms = Date.parse(value);
  return new Date(Number.isFinite(ms) ? ms : fallbackMs).toISOString();
}
