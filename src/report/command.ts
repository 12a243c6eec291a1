/** `crystalwatch report`: a run's batch report on demand, read back from Kafka. */
import type { Command } from 'commander';
import path from 'node:path';
import { busOptionsFromEnv, createKafka } from '../bus/kafka.js';
import { DEFAULT_TOPIC_PREFIX, topicNames } from '../bus/topics.js';
import { createLogger } from '../config/logger.js';
import { writeRunReport, type ReportPhase } from './write.js';

const PHASES: Record<ReportPhase, string> = {
  alerts: 'reading alerts and labels',
  predictions: 'reading predictions',
  frames: 'reading evidence frames and dead letters',
  charts: 'drawing charts',
  html: 'writing HTML',
  pdf: 'printing PDF',
};

/** Progress on stderr: one line per phase, and every 10 % of a long read. */
function progressLine(stream: NodeJS.WriteStream = process.stderr): (phase: ReportPhase, done: number, total: number) => void {
  let current: ReportPhase | undefined;
  let decile = -1;
  return (phase, done, total) => {
    if (phase !== current) {
      current = phase;
      decile = -1;
      stream.write(`report: ${PHASES[phase]}${total > 1 ? ` (${total.toLocaleString('en-US')} records)` : ''}\n`);
    }
    if (total < 1000) return;
    const d = Math.floor((10 * done) / total);
    if (d > decile && d < 10) {
      decile = d;
      if (d > 0) stream.write(`report: ${PHASES[phase]} ${done.toLocaleString('en-US')}/${total.toLocaleString('en-US')} (${d * 10} %)\n`);
    }
  };
}

export function registerReportCommands(program: Command): void {
  program
    .command('report')
    .description("Write a run's batch report (HTML, PDF, JSON figures) from what Kafka holds of it")
    .requiredOption('--run <id>', 'run (batch) id')
    .requiredOption('--out <dir>', 'folder for report.html, report.pdf and report.json (created when missing)')
    .option('--brokers <list>', 'Kafka bootstrap servers host:port[,host:port] (default: $KAFKA_BROKERS)')
    .option('--topic-prefix <prefix>', 'topic name prefix', DEFAULT_TOPIC_PREFIX)
    .option('--no-pdf', 'skip the PDF (no Chromium needed)')
    .option('--json', 'print the result (paths and headline figures) as one JSON line on stdout')
    .addHelpText(
      'after',
      `
Reads the run's predictions, alerts, labels, dead letters and the alerts' evidence frames up to
where the topics end when it starts, then stops. The PDF is printed by headless Chromium
(Debian package "chromium"; CRYSTALWATCH_CHROMIUM names another binary).

Examples:
  crystalwatch report --run batch-0042 --out reports/batch-0042 --brokers 127.0.0.1:9092
  crystalwatch report --run batch-0042 --out /tmp/r --no-pdf --json`,
    )
    .action(async (opts: { run: string; out: string; brokers?: string; topicPrefix: string; pdf: boolean; json?: boolean }) => {
      const env = opts.brokers ? { ...process.env, KAFKA_BROKERS: opts.brokers } : process.env;
      const bus = busOptionsFromEnv(env);
      if (!bus) throw new Error('report: no Kafka given; pass --brokers host:port or set KAFKA_BROKERS');
      bus.clientId ??= 'crystalwatch-report';
      const logger = createLogger({ level: process.env.CRYSTALWATCH_LOG_LEVEL ?? 'warn' });
      const out = path.resolve(opts.out);
      const result = await writeRunReport({
        kafka: createKafka(bus),
        topics: topicNames(opts.topicPrefix),
        runId: opts.run,
        out,
        logger,
        pdf: opts.pdf,
        maxMessageBytes: bus.maxMessageBytes,
        onProgress: progressLine(),
      });
      const f = result.figures;
      const summary = {
        event: 'report',
        runId: f.runId,
        html: result.html,
        json: result.json,
        ...(result.pdf ? { pdf: result.pdf } : {}),
        cameras: f.cameras.map((c) => c.camera),
        frames: f.totals.frames,
        unusable: f.totals.unusable,
        alerts: f.alerts.length,
        acknowledged: f.acknowledgements.length,
        deadLettered: f.totals.deadLettered,
        span: f.span,
      };
      if (opts.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
      else {
        process.stdout.write(`report of run ${f.runId}: ${f.totals.frames} frames from ${f.cameras.length} camera(s), ${f.alerts.length} alert(s)\n`);
        for (const file of [result.html, result.pdf, result.json]) if (file) process.stdout.write(`  ${file}\n`);
      }
    });
}
