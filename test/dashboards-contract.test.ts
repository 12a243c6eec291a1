/**
 * The dashboard against the stages' own metric declarations: every metric a panel queries is
 * declared by some stage's metrics.ts, with its type matching how the panel reads it (histograms
 * through _bucket/_sum/_count, counters through rate/increase), and every label a panel selects
 * or groups by is one of that metric's label names. Catches a renamed metric or label before
 * Grafana shows an empty panel.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { panelQueries } from '../dashboards/queries.js';
import { ingestMetrics } from '../src/ingest/metrics.js';
import { classifyMetrics } from '../src/classify/metrics.js';
import { createQualityMetrics } from '../src/quality/metrics.js';
import { createAlertMetrics } from '../src/alert/metrics.js';

interface Declared {
  type: string;
  labelNames: string[];
}

function declaredMetrics(): Map<string, Declared> {
  const registry = new Registry();
  ingestMetrics(registry);
  classifyMetrics(registry);
  createQualityMetrics(registry);
  createAlertMetrics(registry);
  const out = new Map<string, Declared>();
  for (const metric of registry.getMetricsAsArray()) {
    const m = metric as unknown as { name: string; type: string; labelNames?: string[] };
    out.set(m.name, { type: String(m.type), labelNames: [...(m.labelNames ?? [])] });
  }
  return out;
}

describe("impurity dashboard vs the stages' metric declarations", () => {
  const declared = declaredMetrics();
  const queries = panelQueries(JSON.parse(readFileSync('dashboards/impurity.json', 'utf8')));

  it('queries only declared metrics, read the way their type allows', () => {
    expect(declared.get('crystalwatch_confusion_total')).toEqual({ type: 'counter', labelNames: ['camera', 'actual', 'predicted'] });
    expect(declared.get('crystalwatch_inference_seconds')?.type).toBe('histogram');
    const problems: string[] = [];
    for (const q of queries) {
      for (const match of q.expr.matchAll(/(crystalwatch_[a-z0-9_]+)/g)) {
        const used = match[1]!;
        const base = used.replace(/_(bucket|sum|count)$/, '');
        const metric = declared.get(used) ?? declared.get(base);
        if (!metric) {
          problems.push(`${q.panel}: ${used} is not declared by any stage`);
          continue;
        }
        if (used !== base && !declared.has(used) && metric.type !== 'histogram') problems.push(`${q.panel}: ${used} but ${base} is a ${metric.type}`);
        if (metric.type === 'histogram' && used === base) problems.push(`${q.panel}: histogram ${base} used without _bucket/_sum/_count`);
        const before = q.expr.slice(Math.max(0, match.index - 12), match.index);
        if (metric.type === 'counter' && !/(rate|increase|changes)\($/.test(before))
          problems.push(`${q.panel}: counter ${used} read without rate/increase/changes`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('selects and groups only by labels the metrics have', () => {
    const problems: string[] = [];
    for (const q of queries) {
      const names = [...q.expr.matchAll(/(crystalwatch_[a-z0-9_]+)/g)].map((m) => m[1]!.replace(/_(bucket|sum|count)$/, ''));
      const labels = new Set(names.flatMap((n) => declared.get(n)?.labelNames ?? []));
      const selectors = [...q.expr.matchAll(/crystalwatch_[a-z0-9_]+\{([^}]*)\}/g)].flatMap((m) =>
        [...m[1]!.matchAll(/([a-z_]+)\s*(=~|!=|!~|=)/g)].map((l) => l[1]!),
      );
      const grouped = [...q.expr.matchAll(/by \(([^)]*)\)/g)].flatMap((m) => m[1]!.split(',').map((s) => s.trim()));
      for (const label of [...selectors, ...grouped]) {
        if (label === 'le' || label === '') continue;
        if (!labels.has(label)) problems.push(`${q.panel}: label "${label}" is not a label of ${[...new Set(names)].join(', ')}`);
      }
    }
    expect(problems).toEqual([]);
  });
});
