/**
 * The PromQL behind a dashboard, so tests (and the lead's end-to-end test) can run every panel's
 * query against a real Prometheus and require data from each.
 */

export interface PanelQuery {
  /** Panel title (annotations appear as "annotation: <name>"). */
  panel: string;
  refId?: string;
  expr: string;
  /** True when the panel asks for an instant query (tables, stats). */
  instant: boolean;
}

interface PanelJson {
  title?: string;
  type?: string;
  panels?: PanelJson[];
  targets?: { expr?: string; refId?: string; instant?: boolean; range?: boolean; hide?: boolean }[];
}

/** Every PromQL expression of a dashboard JSON: panels, panels inside (collapsed) rows, and annotations. */
export function panelQueries(dashboardJson: unknown, options: { annotations?: boolean } = {}): PanelQuery[] {
  const root = dashboardJson as { panels?: PanelJson[]; annotations?: { list?: { name?: string; expr?: string }[] } };
  const out: PanelQuery[] = [];
  const walk = (panels: PanelJson[] | undefined) => {
    for (const panel of panels ?? []) {
      for (const target of panel.targets ?? []) {
        if (typeof target.expr === 'string' && target.expr.trim() && !target.hide) {
          out.push({ panel: panel.title ?? '(untitled)', refId: target.refId, expr: target.expr, instant: target.instant === true && target.range !== true });
        }
      }
      walk(panel.panels);
    }
  };
  walk(root.panels);
  if (options.annotations ?? true) {
    for (const a of root.annotations?.list ?? []) {
      if (typeof a.expr === 'string' && a.expr.trim()) out.push({ panel: `annotation: ${a.name ?? '(unnamed)'}`, expr: a.expr, instant: false });
    }
  }
  return out;
}

/**
 * Replace Grafana's variables with what Grafana would send: `$camera` → ".*" (All), the interval
 * macros → fixed durations. Pass your own values to pin a camera or to fit a short test run.
 */
export function substituteVariables(expr: string, values: Record<string, string> = {}): string {
  const defaults: Record<string, string> = {
    camera: '.*',
    __rate_interval: '1m',
    __interval: '15s',
    __range: '1h',
    __range_s: '3600',
    __interval_ms: '15000',
    ...values,
  };
  // Longest names first so "$__range_s" is not read as "$__range" + "_s".
  const names = Object.keys(defaults).sort((a, b) => b.length - a.length);
  let result = expr;
  for (const name of names) {
    const value = defaults[name]!;
    result = result.split(`\${${name}}`).join(value).split(`[[${name}]]`).join(value);
    result = result.replace(new RegExp(`\\$${name.replace(/[$()*+.?[\\\]^{|}]/g, '\\$&')}(?![A-Za-z0-9_])`, 'g'), value);
  }
  const left = /\$[A-Za-z_][A-Za-z0-9_]*/.exec(result);
  if (left) throw new Error(`substituteVariables: no value for ${left[0]} in ${JSON.stringify(expr)}; pass it in values`);
  return result;
}
