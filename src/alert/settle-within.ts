/**
 * Waits for `work` at most `ms`: true when it settled in time (either way), false when the wait
 * gave up. Closing uses it so one slow disconnect (kafkajs waits for a fetch in flight) cannot
 * hold the process past its shutdown budget; the work goes on in the background. One
 * implementation, with the stage lifecycle's.
 */
export { settleWithin } from '../config/stage-lifecycle.js';
