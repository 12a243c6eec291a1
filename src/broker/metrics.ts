/** The broker's Prometheus metrics, declared once (naming rules: src/quality/metrics.ts). */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { once } from '../config/prometheus.js';

/** Why a request was refused before it was read whole (limits.ts); its connection is closed too. */
export type RequestRefusal = 'size' | 'read_timeout' | 'buffer_full';

/** Why a connection was closed by the broker (a small fixed set). */
export type RejectReason = RequestRefusal | 'header' | 'unknown_api' | 'unsupported_version' | 'malformed' | 'internal';

export function createBrokerMetrics(registry: Registry, logBytes: () => number, bufferedBytes: () => number = () => 0) {
  const registers = [registry];
  return {
    requests: once(
      registry,
      'crystalwatch_broker_requests_total',
      () =>
        new Counter({
          name: 'crystalwatch_broker_requests_total',
          help: 'Kafka requests answered by the embedded broker, by API name (Produce, Fetch, JoinGroup, ...).',
          labelNames: ['api'] as const,
          registers,
        }),
    ),
    requestSeconds: once(
      registry,
      'crystalwatch_broker_request_duration_seconds',
      () =>
        new Histogram({
          name: 'crystalwatch_broker_request_duration_seconds',
          help: 'Time from a request being read to its response being queued, by API. Fetch includes long-poll waiting, JoinGroup the rebalance.',
          labelNames: ['api'] as const,
          buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
          registers,
        }),
    ),
    rejected: once(
      registry,
      'crystalwatch_broker_connections_rejected_total',
      () =>
        new Counter({
          name: 'crystalwatch_broker_connections_rejected_total',
          help: 'Client connections the broker closed because of bad input: size (frame size prefix out of bounds), read_timeout (request not complete in time), buffer_full (unread requests over maxBufferedBytes), header, unknown_api, unsupported_version, malformed (body did not parse), internal (handler failure).',
          labelNames: ['reason'] as const,
          registers,
        }),
    ),
    requestsRejected: once(
      registry,
      'crystalwatch_broker_requests_rejected_total',
      () =>
        new Counter({
          name: 'crystalwatch_broker_requests_rejected_total',
          help: 'Requests refused before they were read whole, each closing its connection: size (size prefix under 8 or over maxRequestBytes), read_timeout (not complete within requestReadTimeoutMs), buffer_full (the broker already held maxBufferedBytes of unread requests).',
          labelNames: ['reason'] as const,
          registers,
        }),
    ),
    connectionsRefused: once(
      registry,
      'crystalwatch_broker_connections_refused_total',
      () =>
        new Counter({
          name: 'crystalwatch_broker_connections_refused_total',
          help: 'Client connections closed at accept because maxConnections were already open.',
          registers,
        }),
    ),
    bufferedBytes: once(
      registry,
      'crystalwatch_broker_buffered_request_bytes',
      () =>
        new Gauge({
          name: 'crystalwatch_broker_buffered_request_bytes',
          help: 'Bytes of requests received but not yet complete, across all connections (bounded by maxBufferedBytes).',
          registers,
          collect() {
            this.set(bufferedBytes());
          },
        }),
    ),
    connections: once(registry, 'crystalwatch_broker_connections', () => {
      const gauge = new Gauge({
        name: 'crystalwatch_broker_connections',
        help: 'Open client connections to the embedded broker, by transport: tcp, or in-process (clients of the process the broker runs in, broker.inProcessClients).',
        labelNames: ['transport'] as const,
        registers,
      });
      for (const transport of ['tcp', 'in-process']) gauge.set({ transport }, 0);
      return gauge;
    }),
    producedBytes: once(
      registry,
      'crystalwatch_broker_produced_bytes_total',
      () =>
        new Counter({
          name: 'crystalwatch_broker_produced_bytes_total',
          help: 'Record batch bytes appended to partition logs (retried idempotent batches not counted twice).',
          registers,
        }),
    ),
    producedRecords: once(
      registry,
      'crystalwatch_broker_produced_records_total',
      () =>
        new Counter({
          name: 'crystalwatch_broker_produced_records_total',
          help: 'Records appended to partition logs.',
          registers,
        }),
    ),
    produceErrors: once(
      registry,
      'crystalwatch_broker_produce_errors_total',
      () =>
        new Counter({
          name: 'crystalwatch_broker_produce_errors_total',
          help: 'Produce partition entries refused, by Kafka error code number (2 corrupt message, 3 unknown partition, 10 too large, 45 out-of-order sequence, ...).',
          labelNames: ['error_code'] as const,
          registers,
        }),
    ),
    fetchedBytes: once(
      registry,
      'crystalwatch_broker_fetched_bytes_total',
      () =>
        new Counter({
          name: 'crystalwatch_broker_fetched_bytes_total',
          help: 'Record batch bytes sent in Fetch responses.',
          registers,
        }),
    ),
    logBytes: once(
      registry,
      'crystalwatch_broker_log_bytes',
      () =>
        new Gauge({
          name: 'crystalwatch_broker_log_bytes',
          help: 'Bytes held in segment files across all topics and partitions (after retention).',
          registers,
          collect() {
            this.set(logBytes());
          },
        }),
    ),
  };
}

export type BrokerMetrics = ReturnType<typeof createBrokerMetrics>;
