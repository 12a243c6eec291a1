/**
 * Batches (runs) across processes: every start and end is a record on the `runs` topic, and
 * every process that stamps frames (ingest), watches runs (alerts, reports, audit) or serves
 * them (web, OPC UA) folds that topic into a `RunBook`. At start the topic is read to its end,
 * so a restarted process knows which batch each camera is in; after that, changes arrive live.
 *
 * Events (after the catch-up only, so a restart does not replay history): 'started' (OpenRun),
 * 'ended' (OpenRun).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Consumer, Kafka, Producer } from 'kafkajs';
import { createConsumer, createProducer } from '../bus/kafka.js';
import { checkRunEvent, decodeRunEvent, encodeJson, type RunEvent } from '../bus/messages.js';
import type { Topics } from '../bus/topics.js';
import { silentLogger, type Logger } from '../config/logger.js';
import { StageLifecycle } from '../config/stage-lifecycle.js';
import { ALL_CAMERAS, RunBook, type OpenRun } from './book.js';

export interface RunControlOptions {
  kafka: Kafka;
  topics: Topics;
  logger?: Logger;
  /** Longest the start waits to have read the `runs` topic to its end. Default 15 s. */
  catchUpTimeoutMs?: number;
  now?: () => number;
}

export interface RunRequest {
  runId: string;
  camera?: string;
  by: string;
  source: RunEvent['source'];
}

/** A run request that does not follow the contract (bad id, bad camera): the message names the field. */
export class RunRequestError extends Error {
  override name = 'RunRequestError';
}

export class RunControl extends StageLifecycle {
  private readonly book = new RunBook();
  private readonly logger: Logger;
  private readonly now: () => number;
  private producer: Producer | undefined;
  private consumer: Consumer | undefined;
  /** Per partition, the offset the topic ended at when this process started: records from it on are live. */
  private readonly liveFrom = new Map<number, bigint>();
  /** Per partition, the next offset to fold; sends wait until their record has been folded. */
  private readonly folded = new Map<number, bigint>();
  private readonly waiters: { partition: number; offset: bigint; resolve: () => void }[] = [];
  private catchUpDone = false;
  /** Ends the catch-up wait of a start() under way (close() calls it). */
  private stopCatchUp: (() => void) | undefined;

  constructor(private readonly options: RunControlOptions) {
    // close() during start waits for the catch-up (which it cuts short) and the connections before it.
    super({ stage: 'runs', startWaitMs: 15_000 });
    this.logger = (options.logger ?? silentLogger).child({ stage: 'runs' });
    this.now = options.now ?? Date.now;
  }

  /** Reads the `runs` topic to its end, then follows it (StageLifecycle: a failure here closes the stage). */
  protected async open(): Promise<void> {
    const { kafka, topics } = this.options;
    const admin = kafka.admin();
    await admin.connect();
    const ends = await admin.fetchTopicOffsets(topics.runs).finally(() => admin.disconnect());
    for (const p of ends) this.liveFrom.set(p.partition, BigInt(p.high));
    const pending = new Map(ends.filter((p) => BigInt(p.high) > BigInt(p.low)).map((p) => [p.partition, BigInt(p.high)]));

    this.throwIfClosed('start()');
    this.producer = createProducer(kafka);
    await this.producer.connect();
    this.throwIfClosed('start()');
    // A group of its own that commits nothing: every process reads the whole topic at each start.
    this.consumer = createConsumer(kafka, `crystalwatch-runs-${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`, { maxMessageBytes: 64 * 1024 });
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [topics.runs], fromBeginning: true });
    let caughtUp!: () => void;
    const ready = new Promise<void>((resolve) => (caughtUp = resolve));
    this.stopCatchUp = () => caughtUp();
    const check = () => pending.size === 0 && caughtUp();
    check();
    await this.consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }) => {
        const offset = BigInt(message.offset);
        const decoded = decodeRunEvent(message.value);
        // Events are applied in topic order only (a process's own too, when they come back), so
        // every process folds the same sequence; only records written after this start are news.
        if (decoded.ok) this.fold(decoded.value, offset >= (this.liveFrom.get(partition) ?? 0n));
        else this.logger.warn({ partition, offset: message.offset, reason: decoded.reason }, 'runs: malformed run event skipped');
        this.folded.set(partition, offset + 1n);
        this.wake();
        const end = pending.get(partition);
        if (end !== undefined && offset + 1n >= end) {
          pending.delete(partition);
          check();
        }
      },
    });
    const limit = this.options.catchUpTimeoutMs ?? 15_000;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), limit)));
    const timedOut = await Promise.race([ready.then(() => false), late]);
    clearTimeout(timer);
    this.stopCatchUp = undefined;
    this.throwIfClosed('start()');
    if (timedOut)
      this.logger.warn(
        { topic: topics.runs, timeoutMs: limit },
        'runs: could not read the runs topic to its end in time; run state may be stale until it catches up',
      );
    this.catchUpDone = true;
    this.logger.info({ open: this.book.list() }, 'runs: state restored');
  }

  /** Started (the topic read to its end) and not closed: runs can be started and ended. */
  get ready(): boolean {
    return this.producer !== undefined && this.catchUpDone && !this.closeRequested;
  }

  /** The run a frame of `camera` belongs to now, if a run was started for it. */
  runFor(camera: string): string | undefined {
    return this.book.runFor(camera);
  }

  list(): OpenRun[] {
    return this.book.list();
  }

  /** Starts a run (ending the camera's previous one); resolves once every process can see it (folded from the topic). */
  async startRun(request: RunRequest): Promise<OpenRun> {
    const event = this.event({ ...request, state: 'started' });
    await this.send([event]);
    return { runId: event.runId, ...(event.camera ? { camera: event.camera } : {}), startedAt: event.at, by: event.by };
  }

  /**
   * Ends the run `camera` is in (its own, or the all-camera run), or every open run without a
   * camera, or the run named by `runId`; resolves with the runs ended, once folded.
   */
  async endRun(request: Omit<RunRequest, 'runId'> & { runId?: string }): Promise<OpenRun[]> {
    const runs = this.book.matching(request.camera).filter((r) => request.runId === undefined || r.runId === request.runId);
    const events = runs.map((r) =>
      this.event({ runId: r.runId, ...(r.camera ? { camera: r.camera } : {}), by: request.by, source: request.source, state: 'ended' }),
    );
    if (events.length === 0) return [];
    await this.send(events);
    return runs;
  }

  /** Sends waiting for their fold, and a catch-up under way, stop waiting at once. */
  protected override interrupt(): void {
    for (const w of this.waiters.splice(0)) w.resolve();
    this.stopCatchUp?.();
  }

  protected async shut(): Promise<void> {
    await Promise.all([
      this.consumer?.disconnect().catch((err: Error) => this.logger.warn({ err: err.message }, 'runs: consumer disconnect failed')),
      this.producer?.disconnect().catch((err: Error) => this.logger.warn({ err: err.message }, 'runs: producer disconnect failed')),
    ]);
  }

  private event(fields: Omit<RunEvent, 'at'>): RunEvent {
    const checked = checkRunEvent({ ...fields, at: new Date(this.now()).toISOString() });
    if (!checked.ok) throw new RunRequestError(checked.reason);
    return checked.value;
  }

  /**
   * Sends each event, in order, and waits (bounded) until the consumer has folded it: the caller
   * then sees its own change, in the order every other process sees it. Runs change rarely, so
   * one record per send keeps the offset to wait for exact.
   */
  private async send(events: RunEvent[]): Promise<void> {
    for (const event of events) {
      this.throwIfClosed('sending a run event');
      if (!this.producer) throw new Error('runs: RunControl is not started; call start() first');
      const [written] = await this.producer.send({
        topic: this.options.topics.runs,
        messages: [{ key: event.camera ?? ALL_CAMERAS, value: encodeJson(event) }],
      });
      if (!written?.baseOffset) continue;
      const folded = this.untilFolded(written.partition, BigInt(written.baseOffset));
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), 10_000)));
      const outcome = await Promise.race([folded.then(() => 'done' as const), late]);
      clearTimeout(timer);
      if (outcome === 'late')
        this.logger.warn(
          { runId: event.runId },
          'runs: the run event is on the topic but not read back after 10 s; this process will apply it when it arrives',
        );
    }
  }

  /** Resolves once the record at `offset` of `partition` has been folded. */
  private untilFolded(partition: number, offset: bigint): Promise<void> {
    return new Promise((resolve) => {
      this.waiters.push({ partition, offset, resolve });
      this.wake();
    });
  }

  private wake(): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if ((this.folded.get(w.partition) ?? 0n) > w.offset) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  private fold(event: RunEvent, live: boolean): void {
    const { started, ended } = this.book.apply(event);
    if (!live) return;
    for (const run of ended) {
      this.logger.info({ runId: run.runId, camera: run.camera, by: event.by }, 'run ended');
      this.emit('ended', run, event);
    }
    if (started) {
      this.logger.info({ runId: started.runId, camera: started.camera, by: started.by }, 'run started');
      this.emit('started', started, event);
    }
  }
}
