/**
 * Batch reports (src/report) written by the monitor process into `<dataDir>/reports/<run-id>/`:
 * when a run ends (API, CLI, OPC UA), in the background with its PDF; and when the process
 * stops, for every run it watched, within the shutdown budget — HTML and JSON only, because
 * printing a PDF with Chromium alone takes longer than docker stop waits. A run whose report
 * was not finished (or whose PDF is owed) is listed in `reports/pending.json` and written at
 * the next start, so no report is lost to a shutdown or a crash. Nothing outlives `close()`: the
 * background writes stop when it begins (the shutdown writes cover their runs), and the shutdown
 * writes stop when the budget runs out (their runs stay owed), so none of them reads Kafka after
 * the broker is gone.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Kafka } from 'kafkajs';
import type { Topics } from '../bus/topics.js';
import type { Logger } from '../config/logger.js';
import { settleWithin } from '../config/stage-lifecycle.js';
import type { AuditTrail } from '../audit/index.js';
import { ChromiumMissingError, writeRunReport } from '../report/index.js';

export interface ReportWiringOptions {
  kafka: Kafka;
  topics: Topics;
  dataDir: string;
  pdf: boolean;
  logger: Logger;
  audit?: AuditTrail;
  /** Longest the shutdown spends on reports. Default 1,000 ms (a SIGTERM must end in under 3 s). */
  shutdownBudgetMs?: number;
}

/** How long stopped report writes get to end after the shutdown budget. */
const STOP_GRACE_MS = 250;

/** Why a report write was stopped before its end. */
class ReportStopped extends Error {
  override name = 'ReportStopped';
}

export class RunReports {
  /** Per run, a count bumped by every prediction and by its end: a report covers the generation it started at. */
  private readonly generation = new Map<string, number>();
  /** Per run, the generation its last full report (with PDF, when PDFs are on) covered. */
  private readonly reported = new Map<string, number>();
  private readonly pending = new Set<string>();
  /** Runs that ended while this process ran: their report is rewritten until it covers every prediction. */
  private readonly ended = new Set<string>();
  private readonly writing = new Map<string, Promise<boolean>>();
  /** Background reports are written one at a time, so owed ones do not all hit Kafka at a start. */
  private queue: Promise<void> = Promise.resolve();
  private saving: Promise<void> = Promise.resolve();
  private readonly logger: Logger;
  private closing: Promise<void> | undefined;
  /** Aborted when `close()` begins. */
  private readonly background = new AbortController();
  /** Aborted when the shutdown budget runs out. */
  private readonly shutdown = new AbortController();

  constructor(private readonly options: ReportWiringOptions) {
    this.logger = options.logger.child({ stage: 'reports' });
  }

  private get folder(): string {
    return path.join(this.options.dataDir, 'reports');
  }

  /** Reads the runs owed a report and writes them in the background. */
  async start(): Promise<void> {
    const owed = await readFile(path.join(this.folder, 'pending.json'), 'utf8').then(
      (text) => (JSON.parse(text) as { runs?: unknown }).runs,
      (err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT')
          this.logger.warn({ err: err.message }, 'reports: pending.json unreadable; owed reports can be written with crystalwatch report --run ID');
        return [];
      },
    );
    for (const runId of Array.isArray(owed) ? owed : []) if (typeof runId === 'string') this.pending.add(runId);
    for (const runId of this.pending) this.enqueue(runId);
  }

  /** A prediction of this run passed through this process (its report is written at the run's end or at shutdown). */
  watch(runId: string): void {
    if (this.generation.size >= 10_000 && !this.generation.has(runId)) return;
    this.generation.set(runId, (this.generation.get(runId) ?? 0) + 1);
  }

  /** A run ended: its full report, in the background (after any report of it being written now). */
  runEnded(runId: string): void {
    this.watch(runId);
    this.ended.add(runId);
    this.enqueue(runId);
  }

  /** Writes the report (HTML, JSON) of every run changed since its last one, within the budget; what is not done stays owed. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const budget = this.options.shutdownBudgetMs ?? 1000;
      this.background.abort(new ReportStopped('the process is stopping'));
      const owed = [...new Set([...[...this.generation.keys()].filter((runId) => this.isStale(runId)), ...this.pending])];
      for (const runId of owed) this.pending.add(runId);
      await this.savePending();
      const all = Promise.all(owed.map((runId) => this.write(runId, false, this.shutdown.signal)));
      if (!(await settleWithin(all, budget))) {
        this.shutdown.abort(new ReportStopped(`the shutdown budget of ${budget} ms ran out`));
        // Each stops at its next step: a Kafka read, even one still connecting, ends at once.
        if (!(await settleWithin(all, STOP_GRACE_MS))) this.logger.warn({ graceMs: STOP_GRACE_MS }, 'reports: a stopped report write has not ended');
        this.logger.warn(
          { owed: [...this.pending] },
          'reports: not all written within the shutdown budget; they are written at the next start (or: crystalwatch report --run ID)',
        );
      }
      // With PDFs on, a report written at shutdown still owes its PDF: the next start prints it.
      if (this.options.pdf) for (const runId of owed) this.pending.add(runId);
      await this.savePending();
    })();
    return this.closing;
  }

  private isStale(runId: string): boolean {
    return (this.generation.get(runId) ?? 0) !== (this.reported.get(runId) ?? -1);
  }

  private enqueue(runId: string): void {
    this.queue = this.queue.then(async () => {
      if (this.closing) return;
      const written = await this.write(runId, this.options.pdf, this.background.signal);
      // An ended run's last predictions (or its end) came while it was written: write it again.
      if (written && !this.closing && this.ended.has(runId) && this.isStale(runId)) this.enqueue(runId);
    });
  }

  /** One report of the run at a time; a second request waits for the first and writes anew. */
  private write(runId: string, pdf: boolean, signal: AbortSignal): Promise<boolean> {
    const previous = this.writing.get(runId) ?? Promise.resolve(true);
    // A run id is a safe folder name: the id rule (src/config/identity.ts) starts it with a letter or digit.
    const out = path.join(this.folder, runId);
    const job = previous.then(async () => {
      const covers = this.generation.get(runId) ?? 0;
      const started = Date.now();
      let written = false;
      try {
        await writeRunReport({
          kafka: this.options.kafka,
          topics: this.options.topics,
          runId,
          out,
          logger: this.logger,
          pdf,
          signal,
          ...(this.options.audit ? { audit: this.options.audit } : {}),
        });
        this.logger.info({ runId, out, pdf, ms: Date.now() - started }, 'batch report written');
        written = true;
        if (pdf || !this.options.pdf) {
          this.reported.set(runId, covers);
          if (!this.isStale(runId)) this.pending.delete(runId);
        }
      } catch (err) {
        if (signal.aborted) {
          this.logger.info({ runId, why: (signal.reason as Error).message }, 'batch report stopped; it is owed, and written at the next start');
          this.pending.add(runId);
        } else if (err instanceof ChromiumMissingError) {
          this.logger.warn({ runId, out }, err.message);
          this.reported.set(runId, covers);
          this.pending.delete(runId);
        } else {
          this.logger.error(
            { runId, err: (err as Error).message },
            'batch report failed; it is tried again at the next start (or: crystalwatch report --run ID)',
          );
          this.pending.add(runId);
        }
      }
      if (!this.closing) await this.savePending();
      return written;
    });
    this.writing.set(runId, job);
    void job.finally(() => {
      if (this.writing.get(runId) === job) this.writing.delete(runId);
    });
    return job;
  }

  /** Serialised: two saves never share the temporary file. */
  private savePending(): Promise<void> {
    this.saving = this.saving
      .then(async () => {
        await mkdir(this.folder, { recursive: true });
        const file = path.join(this.folder, 'pending.json');
        const tmp = `${file}.${process.pid}.tmp`;
        await writeFile(tmp, `${JSON.stringify({ runs: [...this.pending] }, null, 2)}\n`);
        await rename(tmp, file);
      })
      .catch((err: Error) => this.logger.error({ err: err.message }, 'reports: could not save pending.json'));
    return this.saving;
  }
}
