/**
 * Batch reports (src/report) written by the monitor process into `<dataDir>/reports/<run-id>/`:
 * when a run ends (API, CLI, OPC UA), in the background with its PDF; and when the process
 * stops, for every run it watched, within the shutdown budget — HTML and JSON only, because
 * printing a PDF with Chromium alone takes longer than docker stop waits. A run whose report
 * was not finished (or whose PDF is owed) is listed in `reports/pending.json` and written at
 * the next start, so no report is lost to a shutdown or a crash.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Kafka } from 'kafkajs';
import type { Topics } from '../bus/topics.js';
import type { Logger } from '../config/logger.js';
import type { AuditTrail } from '../audit/index.js';
import { ChromiumMissingError, writeRunReport } from '../report/index.js';

export interface ReportWiringOptions {
  kafka: Kafka;
  topics: Topics;
  dataDir: string;
  pdf: boolean;
  logger: Logger;
  audit?: AuditTrail;
  /** Longest the shutdown spends on reports. Default 1,500 ms. */
  shutdownBudgetMs?: number;
}

/** Run ids may be folder names: the bus id rule allows only letters, digits, '.', '_' and '-', never '..' alone. */
const safeFolder = (runId: string) => (runId === '.' || runId === '..' ? `_${runId}` : runId);

export class RunReports {
  /** Runs with predictions since their last full report (with PDF, when PDFs are on). */
  private readonly dirty = new Set<string>();
  private readonly pending = new Set<string>();
  private readonly writing = new Map<string, Promise<void>>();
  private readonly logger: Logger;
  private closing: Promise<void> | undefined;

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
      () => [],
    );
    for (const runId of Array.isArray(owed) ? owed : []) if (typeof runId === 'string') this.pending.add(runId);
    for (const runId of this.pending) this.write(runId, this.options.pdf);
  }

  /** A prediction of this run passed through this process (its report is written at the run's end or at shutdown). */
  watch(runId: string): void {
    if (this.dirty.size < 10_000) this.dirty.add(runId);
  }

  /** A run ended: its full report, in the background. */
  runEnded(runId: string): void {
    this.dirty.add(runId);
    this.write(runId, this.options.pdf);
  }

  /** Writes the report (HTML, JSON) of every run watched since its last one, within the budget; what is not done stays owed. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const budget = this.options.shutdownBudgetMs ?? 1500;
      const owed = [...new Set([...this.dirty, ...this.pending])];
      for (const runId of owed) this.pending.add(runId);
      await this.savePending();
      const all = owed.map((runId) => this.write(runId, false, true));
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), budget)));
      const outcome = await Promise.race([Promise.all(all).then(() => 'done' as const), late]);
      clearTimeout(timer);
      if (outcome === 'late') this.logger.warn({ owed: [...this.pending] }, 'reports: not all written within the shutdown budget; they are written at the next start (or: crystalwatch report --run ID)');
      // With PDFs on, a report written at shutdown still owes its PDF: the next start prints it.
      if (this.options.pdf) for (const runId of owed) this.pending.add(runId);
      await this.savePending();
    })();
    return this.closing;
  }

  private write(runId: string, pdf: boolean, atShutdown = false): Promise<void> {
    const running = this.writing.get(runId);
    if (running) return running;
    const out = path.join(this.folder, safeFolder(runId));
    const started = Date.now();
    const job = writeRunReport({ kafka: this.options.kafka, topics: this.options.topics, runId, out, logger: this.logger, pdf, ...(this.options.audit ? { audit: this.options.audit } : {}) })
      .then(async () => {
        this.logger.info({ runId, out, pdf, ms: Date.now() - started }, 'batch report written');
        if (pdf || !this.options.pdf) {
          this.pending.delete(runId);
          this.dirty.delete(runId);
        }
        if (!atShutdown) await this.savePending();
      })
      .catch((err: Error) => {
        if (err instanceof ChromiumMissingError) {
          this.logger.warn({ runId, out }, err.message);
          this.pending.delete(runId);
          return;
        }
        this.logger.error({ runId, err: err.message }, 'batch report failed; it is tried again at the next start (or: crystalwatch report --run ID)');
      })
      .finally(() => this.writing.delete(runId));
    this.writing.set(runId, job);
    return job;
  }

  private async savePending(): Promise<void> {
    await mkdir(this.folder, { recursive: true });
    const file = path.join(this.folder, 'pending.json');
    await writeFile(`${file}.tmp`, `${JSON.stringify({ runs: [...this.pending] }, null, 2)}\n`);
    await rename(`${file}.tmp`, file);
  }
}
