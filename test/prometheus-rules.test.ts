/**
 * The shipped Prometheus and Alertmanager configuration is valid, and every alert and
 * recording rule behaves as its promtool unit tests say (deploy/prometheus/tests/).
 */
import { describe, expect, it } from 'vitest';
import { readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { tool } from './helpers/prometheus.js';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('deploy/prometheus and deploy/alertmanager', () => {
  it('promtool accepts the Prometheus config and its rule files', () => {
    const config = tool('promtool', ['check', 'config', 'deploy/prometheus/prometheus.yml']);
    expect(config.output).toContain('SUCCESS: 2 rule files found');
    expect(config.status, config.output).toBe(0);
    const rules = tool('promtool', ['check', 'rules', 'deploy/prometheus/rules/quality.yml', 'deploy/prometheus/rules/alerts.yml']);
    expect(rules.output).toContain('SUCCESS: 16 rules found');
    expect(rules.output).toContain('SUCCESS: 5 rules found');
    expect(rules.status, rules.output).toBe(0);
  });

  it('every rule passes its promtool unit tests', () => {
    const files = readdirSync(`${root}/deploy/prometheus/tests`)
      .filter((f) => f.endsWith('.test.yml'))
      .map((f) => `deploy/prometheus/tests/${f}`);
    expect(files).toEqual(['deploy/prometheus/tests/alerts.test.yml', 'deploy/prometheus/tests/quality.test.yml']);
    const result = tool('promtool', ['test', 'rules', ...files]);
    expect(result.status, result.output).toBe(0);
    expect(result.output.match(/SUCCESS/g)).toHaveLength(2);
  });

  it('every alert rule has a unit test', async () => {
    const rules = parse(await readFile(`${root}/deploy/prometheus/rules/alerts.yml`, 'utf8')) as { groups: { rules: { alert?: string }[] }[] };
    const tests = await readFile(`${root}/deploy/prometheus/tests/alerts.test.yml`, 'utf8');
    const alerts = rules.groups.flatMap((g) => g.rules.map((r) => r.alert)).filter(Boolean);
    expect(alerts).toEqual(['PGOnset', 'ModelQualityDropped', 'PipelineStalled', 'ConsumerLagHigh', 'CameraBlind']);
    for (const name of alerts) expect(tests).toContain(`alertname: ${name}\n`);
  });

  it('amtool accepts the Alertmanager config, which routes PGOnset to the early-stop webhook', () => {
    const check = tool('amtool', ['check-config', 'deploy/alertmanager/alertmanager.yml']);
    expect(check.status, check.output).toBe(0);
    const route = tool('amtool', ['config', 'routes', 'test', '--config.file=deploy/alertmanager/alertmanager.yml', 'alertname=PGOnset', 'camera=cam-1']);
    expect(route.stdout.trim()).toBe('early-stop');
    const other = tool('amtool', ['config', 'routes', 'test', '--config.file=deploy/alertmanager/alertmanager.yml', 'alertname=CameraBlind', 'camera=cam-1']);
    expect(other.stdout.trim()).toBe('operators');
  });
});
