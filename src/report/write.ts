/**
 * `writeRunReport`: a run's batch report, read back from Kafka, written to `<out>/report.html`,
 * `<out>/report.pdf` and `<out>/report.json`. Each file is written to a temporary name and
 * renamed, so a reader never sees half a report.
 */
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Kafka } from 'kafkajs';
import type { Logger } from '../config/logger.js';
import { createKafka } from '../bus/kafka.js';
import { identityProblem } from '../bus/messages.js';
import type { Topics } from '../bus/topics.js';
import { readAudit, type AuditSource } from './audit.js';
import { renderSvg, trendSpec } from './charts.js';
import { collectRun, type CollectPhase } from './collect.js';
import { buildFigures, type ReportFigures } from './figures.js';
import { renderHtml } from './html.js';
import { printPdf } from './pdf.js';
import type { EvidenceItem, ReportView } from './sections.js';
import { crystalwatchVersion } from './version.js';

export type ReportPhase = CollectPhase | 'charts' | 'html' | 'pdf';

export interface RunReportOptions {
  /** The Kafka client; when absent one is made for `brokers`. */
  kafka?: Kafka;
  brokers?: string[];
  topics: Topics;
  runId: string;
  /** Folder the report is written to (created when missing). */
  out: string;
  logger: Logger;
  /** Print report.pdf with headless Chromium (default true). */
  pdf?: boolean;
  /**
   * The audit trail (an `AuditTrail` of src/audit, or anything with its `read`): adds the run's
   * start and end, acknowledgement comments, deliveries, and the configuration, model card and
   * calibrations in force.
   */
  audit?: AuditSource;
  onProgress?: (phase: ReportPhase, done: number, total: number) => void;
  /** Chromium binary (default `CRYSTALWATCH_CHROMIUM` or /usr/bin/chromium). */
  chromiumPath?: string;
  maxMessageBytes?: number;
  /** A read that gets no record for this long fails (default 30 s). */
  idleTimeoutMs?: number;
  /**
   * Stops the write: it rejects with the signal's reason. Before the files are written nothing is
   * left; during the PDF, report.html and report.json are already there and report.pdf is not.
   */
  signal?: AbortSignal;
  /** Points per camera trend (default 2,000). */
  trendPoints?: number;
  now?: () => Date;
}

export interface RunReportResult {
  html: string;
  json: string;
  /** Absent with `pdf: false`. */
  pdf?: string;
  figures: ReportFigures;
}

async function writeAtomically(file: string, data: string | Buffer): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, data);
  await rename(temp, file);
}

/** Alarm periods and onset per camera, as the trend chart marks them. */
async function renderCharts(figures: ReportFigures): Promise<Map<string, string>> {
  const charts = new Map<string, string>();
  for (const [i, cam] of figures.cameras.entries()) {
    const alarms = figures.alerts
      .filter((a) => a.camera === cam.camera)
      .map((a) => ({
        fromMs: Date.parse(a.startsAt),
        toMs: a.endsAt ? Date.parse(a.endsAt) : Math.max(Date.parse(cam.to), Date.parse(a.startsAt)),
        label: a.reason === 'camera-silent' ? 'camera silent' : `alarm ${a.acknowledgedBy ? `(ack ${a.acknowledgedBy})` : ''}`.trim(),
      }));
    const onset = cam.detection.onset ? Date.parse(cam.detection.onset.at) : undefined;
    charts.set(
      cam.camera,
      await renderSvg(
        trendSpec(cam.camera, cam.trend.points, { alarms, ...(onset !== undefined ? { onsetMs: onset } : {}) }, cam.trend.framesPerPoint),
        `chart${i}`,
      ),
    );
  }
  return charts;
}

export async function writeRunReport(options: RunReportOptions): Promise<RunReportResult> {
  const problem = identityProblem('run id', options.runId);
  if (problem) throw new Error(`report: ${problem}`);
  if (!options.kafka && !options.brokers?.length) throw new Error('report: no Kafka given; pass a kafka client or brokers (host:port)');
  const kafka = options.kafka ?? createKafka({ brokers: options.brokers!, clientId: 'crystalwatch-report' });
  const log = options.logger.child({ stage: 'report', runId: options.runId });
  const progress = options.onProgress ?? (() => undefined);
  const version = crystalwatchVersion();
  await mkdir(options.out, { recursive: true });

  const collected = await collectRun({
    kafka,
    topics: options.topics,
    runId: options.runId,
    logger: log,
    maxMessageBytes: options.maxMessageBytes,
    idleTimeoutMs: options.idleTimeoutMs,
    trendPoints: options.trendPoints,
    onProgress: progress,
    signal: options.signal,
  });
  options.signal?.throwIfAborted();
  const generatedAt = (options.now ?? (() => new Date()))();
  const alerts = collected.alerts.list();
  const cameras = new Set(collected.aggregator.cameras.keys());
  const deadLetterFigures = collected.deadLetters.figures();
  const notes = [...collected.notes];
  if (cameras.size === 0) notes.push(`no predictions of run ${options.runId} on ${options.topics.predictions}: check the run id and the topic prefix`);
  const aggregator = collected.aggregator;
  const audit = options.audit
    ? await readAudit(options.audit, options.runId, new Set(alerts.map((a) => a.id)), {
        fromMs: Number.isFinite(aggregator.firstRecordMs) ? aggregator.firstRecordMs : generatedAt.getTime(),
        toMs: Number.isFinite(aggregator.lastRecordMs) ? aggregator.lastRecordMs : generatedAt.getTime(),
      })
    : null;
  const figures = buildFigures({
    runId: options.runId,
    version,
    generatedAt,
    aggregator,
    alerts,
    deadLetters: deadLetterFigures,
    audit,
    runEvents: collected.runEvents,
    notes,
  });

  progress('charts', 0, figures.cameras.length);
  const charts = await renderCharts(figures);
  const evidence = new Map<string, EvidenceItem[]>();
  for (const alert of alerts) {
    const frames = new Map(alert.evidence.frames.map((f) => [f.frameId, f]));
    evidence.set(
      alert.id,
      (collected.chosen.get(alert.id) ?? []).map((id) => {
        const frame = frames.get(id)!;
        const picture = collected.pictures.get(id);
        const item: EvidenceItem = { frameId: id, capturedAt: frame.capturedAt, pPG: frame.pPG };
        if (picture && 'dataUri' in picture) item.picture = picture;
        else item.missing = picture?.error ?? 'not found';
        return item;
      }),
    );
  }
  const view: ReportView = { figures, charts, evidence };

  progress('html', 0, 1);
  const html = renderHtml(view);
  const paths = { html: path.join(options.out, 'report.html'), json: path.join(options.out, 'report.json'), pdf: path.join(options.out, 'report.pdf') };
  const json = `${JSON.stringify(figures, null, 2)}\n`;
  await writeAtomically(paths.json, json);
  await writeAtomically(paths.html, html);
  log.info({ html: paths.html, bytes: Buffer.byteLength(html) }, 'report: HTML written');

  const result: RunReportResult = { html: paths.html, json: paths.json, figures };
  if (options.pdf ?? true) {
    progress('pdf', 0, 1);
    const temp = `${paths.pdf}.${process.pid}.tmp`;
    try {
      await printPdf(html, temp, { runId: options.runId, version, executablePath: options.chromiumPath, signal: options.signal });
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    await rename(temp, paths.pdf);
    result.pdf = paths.pdf;
    log.info({ pdf: paths.pdf }, 'report: PDF written');
  }
  return result;
}
