/**
 * The one way tests run Prometheus, Alertmanager and their command-line tools: real binaries
 * (Debian `prometheus`, `prometheus-alertmanager`, `promtool`, `amtool`) on loopback ports
 * chosen at run time, config written into the test's temp folder, ready before the promise
 * resolves, stopped (SIGTERM, then SIGKILL) by an idempotent close().
 *
 *   const prometheus = await startPrometheus({ dir, targets: [`127.0.0.1:${web.port}`] });
 *   const series = await prometheus.query('crystalwatch_alarm');
 *   await prometheus.close();
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { freePort } from './ports.js';
import { waitFor, waitForExit } from './wait.js';

const root = resolve(import.meta.dirname, '..', '..');

/** A child process whose output is kept (the last 8 kB) for error messages. */
interface Daemon {
  child: ChildProcess;
  log(): string;
  /** Why it is not running, or undefined while it is. */
  exited(): string | undefined;
  close(): Promise<void>;
}

function launch(name: string, command: string, args: string[]): Daemon {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let spawnError: Error | undefined;
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-8000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  child.once('error', (err) => {
    spawnError = err;
  });
  let closing: Promise<void> | undefined;
  const exited = (): string | undefined => {
    if (spawnError) return `${name} could not start (${spawnError.message}); is ${command} installed? (npm test's pretest installs it)`;
    if (child.exitCode !== null || child.signalCode !== null) return `${name} exited (${child.exitCode ?? child.signalCode})`;
    return undefined;
  };
  return {
    child,
    log: () => `--- ${name} ---\n${output}`,
    exited,
    close: () =>
      (closing ??= (async () => {
        if (spawnError || child.exitCode !== null || child.signalCode !== null) return;
        child.kill('SIGTERM');
        try {
          await waitForExit(child, { timeout: 10_000, message: `${name} to exit on SIGTERM` });
        } catch {
          child.kill('SIGKILL');
          await waitForExit(child, { timeout: 5_000, message: `${name} to exit on SIGKILL` });
        }
      })()),
  };
}

async function ready(daemon: Daemon, url: string, what: string): Promise<void> {
  await waitFor(() => fetch(`${url}/-/ready`).then((r) => r.ok), {
    timeout: 60_000,
    interval: 250,
    message: `${what} ready at ${url}`,
    stopIf: daemon.exited,
    detail: daemon.log,
  });
}

export interface PromVector {
  metric: Record<string, string>;
  value: [number, string];
}

export interface Prometheus {
  url: string;
  /** An instant query; rejects with Prometheus's error when it refuses the expression. */
  query(expr: string): Promise<PromVector[]>;
  /** The last output of the process, for error messages. */
  log(): string;
  close(): Promise<void>;
}

export interface PrometheusOptions {
  /** A temp folder of the test: the config and the TSDB go here. */
  dir: string;
  /** host:port of the /metrics endpoints scraped as job `crystalwatch`. */
  targets: string[];
  /** Rule files, relative to the repository root (e.g. `deploy/prometheus/rules/alerts.yml`). */
  ruleFiles?: string[];
  /** host:port of an Alertmanager that gets the firing rules. */
  alertmanager?: string;
  /** Scrape and rule evaluation interval in seconds. Default 1. */
  intervalS?: number;
}

export async function startPrometheus(options: PrometheusOptions): Promise<Prometheus> {
  const interval = `${options.intervalS ?? 1}s`;
  const config = {
    global: { scrape_interval: interval, evaluation_interval: interval },
    rule_files: (options.ruleFiles ?? []).map((f) => join(root, f)),
    ...(options.alertmanager ? { alerting: { alertmanagers: [{ static_configs: [{ targets: [options.alertmanager] }] }] } } : {}),
    scrape_configs: [{ job_name: 'crystalwatch', static_configs: [{ targets: options.targets }] }],
  };
  const file = join(options.dir, 'prometheus.yml');
  await writeFile(file, `${JSON.stringify(config, null, 2)}\n`); // JSON is YAML
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const daemon = launch('prometheus', 'prometheus', [
    `--config.file=${file}`,
    `--storage.tsdb.path=${join(options.dir, 'tsdb')}`,
    '--storage.tsdb.retention.time=1h',
    `--web.listen-address=127.0.0.1:${port}`,
    '--log.level=warn',
  ]);
  try {
    await ready(daemon, url, 'Prometheus');
  } catch (err) {
    await daemon.close();
    throw err;
  }
  return {
    url,
    log: daemon.log,
    close: daemon.close,
    async query(expr) {
      const response = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
      const body = (await response.json()) as { status: string; error?: string; data?: { result: PromVector[] } };
      if (body.status !== 'success') throw new Error(`prometheus rejected ${expr}: ${body.error}`);
      return body.data?.result ?? [];
    },
  };
}

/**
 * Waits until every query returns at least one series (a query that returns nothing is a broken
 * panel); the error at the deadline lists those that still return nothing.
 */
export async function waitForEveryQuery(
  prometheus: Prometheus,
  queries: { name: string; expr: string }[],
  options: { timeout: number; interval: number },
): Promise<void> {
  let empty: string[] = [];
  await waitFor(
    async () => {
      empty = [];
      for (const q of queries) if ((await prometheus.query(q.expr)).length === 0) empty.push(`${q.name}: ${q.expr}`);
      return empty.length === 0;
    },
    {
      ...options,
      message: `all ${queries.length} queries to return data`,
      detail: () => `queries that returned nothing:\n${empty.join('\n')}\n${prometheus.log()}`,
    },
  );
}

export interface Alertmanager {
  url: string;
  /** host:port, for Prometheus's `alerting` section. */
  address: string;
  log(): string;
  close(): Promise<void>;
}

/** An Alertmanager that routes every alert, grouped by alertname and camera, at once to `webhookUrl`. */
export async function startAlertmanager(options: { dir: string; webhookUrl: string }): Promise<Alertmanager> {
  const config = {
    route: { receiver: 'test-webhook', group_by: ['alertname', 'camera'], group_wait: '0s', group_interval: '1s', repeat_interval: '1h' },
    receivers: [{ name: 'test-webhook', webhook_configs: [{ url: options.webhookUrl }] }],
  };
  const file = join(options.dir, 'alertmanager.yml');
  await writeFile(file, `${JSON.stringify(config, null, 2)}\n`);
  const port = await freePort();
  const address = `127.0.0.1:${port}`;
  const url = `http://${address}`;
  const daemon = launch('alertmanager', 'prometheus-alertmanager', [
    `--config.file=${file}`,
    `--storage.path=${join(options.dir, 'alertmanager')}`,
    `--web.listen-address=${address}`,
    '--cluster.listen-address=',
    '--log.level=warn',
  ]);
  try {
    await ready(daemon, url, 'Alertmanager');
  } catch (err) {
    await daemon.close();
    throw err;
  }
  return { url, address, log: daemon.log, close: daemon.close };
}

export interface ToolResult {
  status: number | null;
  stdout: string;
  /** stdout, stderr and a spawn error together, for assertion messages. */
  output: string;
}

/** Runs `promtool` or `amtool` in the repository root (paths in `args` are relative to it). */
export function tool(command: 'promtool' | 'amtool', args: string[]): ToolResult {
  const r = spawnSync(command, args, { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout ?? '', output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}
