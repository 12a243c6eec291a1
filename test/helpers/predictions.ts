/** Reading what the classify stage produced, for tests: predictions and dead letters, and waiting for them. */
import type { Consumer, Kafka } from 'kafkajs';
import type { Topics } from '../../src/bus/topics.js';
import { decodePrediction, DeadLetterSchema, type DeadLetter, type Prediction } from '../../src/bus/messages.js';
import { frameHeaders as buildFrameHeaders } from './messages.js';

export interface Collected {
  predictions: Prediction[];
  deadLetters: DeadLetter[];
  close(): Promise<void>;
}

/** Reads `predictions` and `dead-letter` from the start into arrays until closed. */
export async function collectPredictions(kafka: Kafka, topics: Topics, group: string): Promise<Collected> {
  const predictions: Prediction[] = [];
  const deadLetters: DeadLetter[] = [];
  const consumer: Consumer = kafka.consumer({ groupId: group, sessionTimeout: 10_000, heartbeatInterval: 1_000 });
  await consumer.connect();
  await consumer.subscribe({ topics: [topics.predictions, topics.deadLetter], fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ topic, message }) => {
      if (topic === topics.predictions) {
        const decoded = decodePrediction(message.value);
        if (!decoded.ok) throw new Error(decoded.reason);
        predictions.push(decoded.value);
      } else {
        deadLetters.push(DeadLetterSchema.parse(JSON.parse(message.value!.toString())));
      }
    },
  });
  return { predictions, deadLetters, close: () => consumer.disconnect() };
}

/** Frame headers as ingest writes them for frame `index` of run `run-trust` (JPEG or PNG by the file's magic bytes). */
export function frameHeaders(frameId: string, camera: string, index: number, bytes?: Buffer): Record<string, string> {
  const jpeg = bytes !== undefined && bytes[0] === 0xff && bytes[1] === 0xd8;
  return buildFrameHeaders({
    'frame-id': frameId,
    camera,
    'captured-at': new Date(Date.UTC(2026, 11, 1, 12, 0, 0) + index * 500).toISOString(),
    'content-type': jpeg ? 'image/jpeg' : 'image/png',
    'run-id': 'run-trust',
  });
}
