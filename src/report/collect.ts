/**
 * Reads what the report needs from Kafka, in three bounded passes that each end at the high
 * watermarks seen when they start:
 *
 *   1. `alerts`, `labels` and `runs` (small): the run's alerts, their evidence frame ids, lab
 *      results, the run's start and end events;
 *   2. `predictions`: folded as they stream by (RunAggregator), never held;
 *   3. `frames` from shortly before the first evidence frame, stopping once every evidence frame
 *      is found (each turned into a small picture at once), and `dead-letter` from shortly
 *      before the run's first prediction. A frame not found there is looked for once more
 *      from the start of the topic.
 */
import type { Kafka } from 'kafkajs';
import type { Logger } from '../config/logger.js';
import { decodeAlert, decodeDeadLetter, decodeLabel, decodeRunEvent, headerString, PredictionSchema, type RunEvent } from '../bus/messages.js';
import type { Topics } from '../bus/topics.js';
import { RunAggregator } from './aggregate.js';
import { AlertHistory } from './alerts.js';
import { DeadLetterTally } from './dead-letters.js';
import { chooseEvidence, evidencePicture, type EvidencePicture } from './evidence.js';
import { LabelBook } from './labels.js';
import { readTopics, type ReadRecord } from './read-topics.js';

/** How far before an evidence frame's prediction (or the run's first one) the frames are looked for. */
const LOOKBACK_MS = 10 * 60_000;

export type CollectPhase = 'alerts' | 'predictions' | 'frames';

export interface CollectOptions {
  kafka: Kafka;
  topics: Topics;
  runId: string;
  logger: Logger;
  maxMessageBytes?: number;
  idleTimeoutMs?: number;
  trendPoints?: number;
  onProgress?: (phase: CollectPhase, read: number, total: number) => void;
  /** Ends the collection: it rejects with the signal's reason (see `ReadOptions.signal`). */
  signal?: AbortSignal;
}

export interface Collected {
  aggregator: RunAggregator;
  alerts: AlertHistory;
  deadLetters: DeadLetterTally;
  /** Alert id → the frame ids chosen to show. */
  chosen: Map<string, string[]>;
  pictures: Map<string, EvidencePicture | { error: string }>;
  /** The run's start/end events from the `runs` topic, in topic order. */
  runEvents: RunEvent[];
  notes: string[];
}

/** Run events kept per run (a start and an end per camera, normally). */
const MAX_RUN_EVENTS = 1000;

const runMarker = (runId: string) => Buffer.from(JSON.stringify(runId));

function parseJson(bytes: Buffer | null): Record<string, unknown> | undefined {
  if (!bytes) return undefined;
  try {
    const value: unknown = JSON.parse(bytes.toString('utf8'));
    return value !== null && typeof value === 'object' ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const recordMs = (r: ReadRecord) => Number(r.message.timestamp);

export async function collectRun(o: CollectOptions): Promise<Collected> {
  const marker = runMarker(o.runId);
  const notes: string[] = [];
  const read = { maxMessageBytes: o.maxMessageBytes, idleTimeoutMs: o.idleTimeoutMs, signal: o.signal };
  const missingTopics = new Set<string>();

  // 1. alerts, lab results and run events
  const alerts = new AlertHistory(o.runId);
  const labels = new LabelBook();
  const runEvents: RunEvent[] = [];
  let malformedAlerts = 0;
  const first = await readTopics(o.kafka, {
    ...read,
    topics: [{ topic: o.topics.alerts }, { topic: o.topics.labels }, ...(o.topics.runs ? [{ topic: o.topics.runs }] : [])],
    onProgress: (n, total) => o.onProgress?.('alerts', n, total),
    onRecord: (r) => {
      const value = r.message.value;
      if (r.topic === o.topics.labels) {
        const label = decodeLabel(value);
        if (label.ok) labels.add(label.value);
        return;
      }
      if (r.topic === o.topics.runs) {
        const event = decodeRunEvent(value);
        if (event.ok && event.value.runId === o.runId && runEvents.length < MAX_RUN_EVENTS) runEvents.push(event.value);
        return;
      }
      if (!value?.includes(marker)) return;
      const alert = decodeAlert(value);
      if (alert.ok) alerts.add(alert.value, parseJson(value) ?? {}, recordMs(r));
      else malformedAlerts += 1;
    },
  });
  first.missing.forEach((t) => missingTopics.add(t));
  if (malformedAlerts) notes.push(`${malformedAlerts} record(s) of the alerts topic mention the run but are not valid alerts; left out`);
  if (alerts.dropped) notes.push(`${alerts.dropped} alert(s) beyond the first ${alerts.list().length} are left out`);
  const alertList = alerts.list();
  const chosen = chooseEvidence(alertList);
  const wanted = new Set([...chosen.values()].flat());
  o.logger.info({ runId: o.runId, alerts: alertList.length, evidenceFrames: wanted.size, labels: labels.size }, 'report: alerts read');

  // 2. predictions
  const aggregator = new RunAggregator(o.runId, labels, wanted, o.trendPoints);
  let malformed = 0;
  // A run started through the runs topic has a known start: read predictions from a little before
  // it, not the whole topic (a run from a camera's config has none: the whole topic is read).
  const startedMs = Math.min(
    ...runEvents
      .filter((e) => e.state === 'started')
      .map((e) => Date.parse(e.at))
      .filter(Number.isFinite),
  );
  const second = await readTopics(o.kafka, {
    ...read,
    topics: [{ topic: o.topics.predictions, ...(Number.isFinite(startedMs) ? { fromTimestamp: startedMs - LOOKBACK_MS } : {}) }],
    onProgress: (n, total) => o.onProgress?.('predictions', n, total),
    onRecord: (r) => {
      const value = r.message.value;
      if (!value?.includes(marker)) return; // cheaper than parsing other runs' predictions
      const raw = parseJson(value);
      const prediction = raw && PredictionSchema.safeParse(raw);
      if (prediction?.success) aggregator.add(prediction.data, raw!, recordMs(r));
      else malformed += 1;
    },
  });
  second.missing.forEach((t) => missingTopics.add(t));
  if (malformed) notes.push(`${malformed} record(s) of the predictions topic mention the run but are not valid predictions; left out`);
  o.logger.info({ runId: o.runId, cameras: aggregator.cameras.size, duplicates: aggregator.duplicates }, 'report: predictions read');

  // 3. evidence frames and dead letters
  const cameras = new Set(aggregator.cameras.keys());
  const hasPredictions = Number.isFinite(aggregator.firstRecordMs);
  const deadLetters = new DeadLetterTally({
    runId: o.runId,
    cameras,
    fromMs: hasPredictions ? aggregator.firstRecordMs - LOOKBACK_MS : -Infinity,
    toMs: hasPredictions ? aggregator.lastRecordMs + LOOKBACK_MS : Infinity,
  });
  const evidenceOf = new Map(alertList.flatMap((a) => a.evidence.frames.map((f) => [f.frameId, f] as const)));
  const pictures = new Map<string, EvidencePicture | { error: string }>();
  const onFrame = async (r: ReadRecord) => {
    const frameId = headerString(r.message.headers, 'frame-id');
    if (!frameId || !wanted.has(frameId) || pictures.has(frameId) || !r.message.value) return;
    const tiles = evidenceOf.get(frameId)?.tiles ?? aggregator.watched.get(frameId)?.tiles ?? [];
    try {
      pictures.set(frameId, await evidencePicture(frameId, r.message.value, tiles));
    } catch (err) {
      pictures.set(frameId, { error: `frame found but not decodable (${(err as Error).message})` });
    }
  };
  const allFound = () => pictures.size >= wanted.size;
  const starts = [...wanted].flatMap((id) => [
    aggregator.watched.get(id)?.recordMs,
    aggregator.watched.get(id)?.capturedAtMs,
    Date.parse(evidenceOf.get(id)?.capturedAt ?? ''),
  ]);
  const firstEvidenceMs = Math.min(...starts.filter((t): t is number => t !== undefined && Number.isFinite(t)), ...alertList.map((a) => a.firstRecordedMs));
  const framesFrom = Number.isFinite(firstEvidenceMs) ? Math.max(0, firstEvidenceMs - LOOKBACK_MS) : undefined;
  const third = await readTopics(o.kafka, {
    ...read,
    topics: [
      { topic: o.topics.frames, ...(framesFrom !== undefined ? { fromTimestamp: framesFrom } : {}), done: allFound },
      { topic: o.topics.deadLetter, ...(hasPredictions ? { fromTimestamp: Math.max(0, aggregator.firstRecordMs - LOOKBACK_MS) } : {}) },
    ],
    onProgress: (n, total) => o.onProgress?.('frames', n, total),
    onRecord: async (r) => {
      if (r.topic === o.topics.frames) return onFrame(r);
      const letter = decodeDeadLetter(r.message.value);
      if (letter.ok) deadLetters.add(letter.value);
    },
  });
  third.missing.forEach((t) => missingTopics.add(t));
  if (!allFound() && framesFrom !== undefined && !missingTopics.has(o.topics.frames)) {
    o.logger.info(
      { runId: o.runId, missing: wanted.size - pictures.size },
      'report: evidence frames not found near the alert; searching the whole frames topic',
    );
    await readTopics(o.kafka, { ...read, topics: [{ topic: o.topics.frames, done: allFound }], onRecord: onFrame });
  }
  for (const id of wanted) if (!pictures.has(id)) pictures.set(id, { error: 'frame not on the frames topic any more (retention) or never ingested' });
  for (const t of missingTopics) notes.push(`topic ${t} does not exist: nothing read from it`);
  return { aggregator, alerts, deadLetters, chosen, pictures, runEvents, notes };
}
