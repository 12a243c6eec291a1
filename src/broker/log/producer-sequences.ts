/**
 * Idempotent producers' sequence numbers, per partition (KIP-98): the last 5 batches of each
 * producer id, so a retry of one of them is answered with its first offset instead of being
 * written twice, and a gap or an old epoch is refused.
 */
import { ErrorCode } from '../errors.js';
import type { BatchInfo } from '../protocol/record-batch.js';
import type { AppendResult } from './partition-log.js';

interface ProducerBatch {
  firstSeq: number;
  lastSeq: number;
  baseOffset: number;
}
interface ProducerState {
  epoch: number;
  recent: ProducerBatch[];
}

/** Kafka keeps the last 5 batches per producer to recognise retries (max.in.flight ≤ 5). */
const PRODUCER_WINDOW = 5;

export class ProducerSequences {
  private readonly states = new Map<number, ProducerState>();

  /** Whether `batch` may be appended: NONE with baseOffset −1 (new), NONE with the earlier offset (a retry), or the error. */
  check(batch: BatchInfo): AppendResult {
    const state = this.states.get(batch.producerId);
    const lastSeq = batch.baseSequence + batch.lastOffsetDelta;
    if (!state) return { errorCode: ErrorCode.NONE, baseOffset: -1 };
    if (batch.producerEpoch < state.epoch) {
      return {
        errorCode: ErrorCode.INVALID_PRODUCER_EPOCH,
        baseOffset: -1,
        message: `producer ${batch.producerId} epoch ${batch.producerEpoch} is older than ${state.epoch}`,
      };
    }
    if (batch.producerEpoch > state.epoch) {
      if (batch.baseSequence !== 0)
        return {
          errorCode: ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
          baseOffset: -1,
          message: `new epoch ${batch.producerEpoch} must start at sequence 0, got ${batch.baseSequence}`,
        };
      return { errorCode: ErrorCode.NONE, baseOffset: -1 };
    }
    for (const recent of state.recent) {
      if (recent.firstSeq === batch.baseSequence && recent.lastSeq === lastSeq) return { errorCode: ErrorCode.NONE, baseOffset: recent.baseOffset };
    }
    const last = state.recent[state.recent.length - 1];
    const expected = last ? (last.lastSeq + 1) % 2 ** 31 : 0;
    if (batch.baseSequence !== expected) {
      return {
        errorCode: ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
        baseOffset: -1,
        message: `producer ${batch.producerId} sent sequence ${batch.baseSequence}, expected ${expected}`,
      };
    }
    return { errorCode: ErrorCode.NONE, baseOffset: -1 };
  }

  /** Records an appended batch of an idempotent producer (and, at open, each recovered one). */
  remember(batch: Pick<BatchInfo, 'producerId' | 'producerEpoch' | 'baseSequence' | 'lastOffsetDelta'>, baseOffset: number): void {
    if (batch.producerId < 0) return;
    let state = this.states.get(batch.producerId);
    if (!state || batch.producerEpoch > state.epoch) {
      state = { epoch: batch.producerEpoch, recent: [] };
      this.states.set(batch.producerId, state);
    }
    state.recent.push({ firstSeq: batch.baseSequence, lastSeq: batch.baseSequence + batch.lastOffsetDelta, baseOffset });
    if (state.recent.length > PRODUCER_WINDOW) state.recent.shift();
  }
}
