/**
 * The evaluation report of one labelled set: `report.json`, `report.md` and PNG charts
 * (confusion matrix, ROC, precision/recall vs threshold, training curves, embedding map).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { confusionSpec, embeddingSpec, renderPng, rocSpec, thresholdSpec, trainingSpec } from './charts.js';
import { classificationReport, formatReport, pgSummary, rocCurve, thresholdSweep, type ClassificationReport, type PgSummary } from './evaluation.js';
import { kmeans, pca2 } from './embedding-map.js';

export interface EpochRecord {
  epoch: number;
  loss: number;
  accuracy: number;
  valLoss: number | null;
  valAccuracy: number | null;
  valF1: number | null;
  learningRate: number;
  seconds: number;
  [key: string]: number | null;
}

export interface ReportInput {
  title: string;
  /** What was evaluated, for the header (model folder, data folder, split). */
  subject: Record<string, string | number>;
  pPG: Float32Array;
  labels: Uint8Array;
  threshold: number;
  embedding?: { values: Float32Array; dimensions: number } | null;
  history?: EpochRecord[] | null;
  /** Extra sections (dataset, duplicates, timings) written into report.json and report.md. */
  extra?: Record<string, unknown>;
}

export interface ReportResult {
  summary: PgSummary;
  report: ClassificationReport;
  files: string[];
}

const fmt = (v: number | null | undefined, digits = 4) => (v === null || v === undefined ? 'n/a' : v.toFixed(digits));

export async function writeReport(dir: string, input: ReportInput): Promise<ReportResult> {
  await mkdir(dir, { recursive: true });
  const { pPG, labels, threshold } = input;
  const report = classificationReport(pPG, labels, threshold);
  const summary = pgSummary(pPG, labels, threshold);
  const roc = rocCurve(pPG, labels);
  const sweep = thresholdSweep(pPG, labels, 100);
  const files: string[] = [];
  const charts: Record<string, string> = {};

  const draw = async (name: string, spec: Parameters<typeof renderPng>[0]) => {
    await renderPng(spec, join(dir, name));
    files.push(name);
    charts[name.replace(/\.png$/, '')] = name;
  };
  await draw('confusion.png', confusionSpec(report.confusion));
  // Thin the ROC to at most ~400 points; the shape is what matters.
  const stride = Math.max(1, Math.floor(roc.points.length / 400));
  const rocPoints = roc.points.filter((_, i) => i % stride === 0 || i === roc.points.length - 1).map((p) => ({ fpr: p.fpr, tpr: p.tpr }));
  await draw('roc.png', rocSpec(rocPoints, roc.auc));
  await draw('threshold.png', thresholdSpec(sweep));
  if (input.history && input.history.length > 0) await draw('training.png', trainingSpec(input.history));

  let embeddingSection: {
    dimensions: number;
    pcaExplainedVariance: [number, number];
    kmeansK: number;
    kmeansPurity: number;
    clusterClassCounts: number[][];
  } | null = null;
  if (input.embedding && labels.length >= 2) {
    const { values, dimensions } = input.embedding;
    const n = labels.length;
    const { coords, explained } = pca2(values, n, dimensions);
    const clusters = kmeans(values, n, dimensions, 2, 1);
    // Cluster purity: the share of crops whose cluster's majority class is their own class.
    const counts = [
      [0, 0],
      [0, 0],
    ];
    for (let r = 0; r < n; r++) counts[clusters[r]!]![labels[r]!]!++;
    const purity = (Math.max(...counts[0]!) + Math.max(...counts[1]!)) / n;
    const limit = Math.min(n, 2000);
    const step = n / limit;
    const points = Array.from({ length: limit }, (_, k) => {
      const r = Math.floor(k * step);
      return { x: coords[r * 2]!, y: coords[r * 2 + 1]!, label: labels[r] === 1 ? 'pg' : 'cex', cluster: `k${clusters[r]}` };
    });
    await draw(
      'embedding.png',
      embeddingSpec(
        points,
        `Embeddings (PCA, ${(100 * (explained[0] + explained[1])).toFixed(0)} % of variance), k-means k=2 purity ${(100 * purity).toFixed(1)} %`,
      ),
    );
    embeddingSection = { dimensions, pcaExplainedVariance: explained, kmeansK: 2, kmeansPurity: purity, clusterClassCounts: counts };
  }

  const json = {
    title: input.title,
    subject: input.subject,
    positiveClass: 'pg',
    threshold,
    summary,
    classificationReport: report,
    roc: { auc: roc.auc, points: rocPoints },
    thresholdSweep: sweep,
    history: input.history ?? null,
    embedding: embeddingSection,
    charts,
    ...(input.extra ?? {}),
  };
  await writeFile(join(dir, 'report.json'), JSON.stringify(json, null, 2));
  files.push('report.json');

  const md: string[] = [
    `# ${input.title}`,
    '',
    ...Object.entries(input.subject).map(([k, v]) => `- **${k}**: ${v}`),
    '',
    `PG is the positive class; threshold ${threshold} on P(PG).`,
    '',
    '## Classification report',
    '',
    '```',
    formatReport(report),
    '```',
    '',
    `| PG metric | value |`,
    `| --- | --- |`,
    `| accuracy | ${fmt(summary.accuracy)} |`,
    `| precision | ${fmt(summary.precision)} |`,
    `| recall | ${fmt(summary.recall)} |`,
    `| F1 | ${fmt(summary.f1)} |`,
    `| ROC AUC | ${fmt(summary.auc)} |`,
    `| support | ${summary.support} |`,
    `| confusion | TP ${summary.confusion.tp}, FP ${summary.confusion.fp}, TN ${summary.confusion.tn}, FN ${summary.confusion.fn} |`,
    '',
    ...(summary.notes.length ? ['Notes:', ...summary.notes.map((n) => `- ${n}`), ''] : []),
    '## Charts',
    '',
    ...files.filter((f) => f.endsWith('.png')).map((f) => `![${f.replace('.png', '')}](${f})`),
    '',
  ];
  if (embeddingSection) {
    md.push(
      '## Embeddings',
      '',
      `k-means (k=2) on the ${embeddingSection.dimensions}-d embeddings agrees with the labels on ${(100 * embeddingSection.kmeansPurity).toFixed(1)} % of crops.`,
      '',
    );
  }
  if (input.history?.length) {
    md.push('## Training', '', '| epoch | loss | acc | val loss | val acc | val F1 (PG) | lr | s |', '| --- | --- | --- | --- | --- | --- | --- | --- |');
    for (const h of input.history)
      md.push(
        `| ${h.epoch} | ${fmt(h.loss)} | ${fmt(h.accuracy)} | ${fmt(h.valLoss)} | ${fmt(h.valAccuracy)} | ${fmt(h.valF1)} | ${h.learningRate.toExponential(2)} | ${h.seconds.toFixed(0)} |`,
      );
    md.push('');
  }
  if (input.extra) {
    md.push('## Details', '', '```json', JSON.stringify(input.extra, null, 2), '```', '');
  }
  await writeFile(join(dir, 'report.md'), md.join('\n'));
  files.push('report.md');
  return { summary, report, files };
}
