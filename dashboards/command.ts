/**
 * `crystalwatch dashboards`: write the Grafana dashboards built as code in this folder as JSON
 * (what Grafana provisions), or with `--check` fail when the committed JSON is out of date.
 */
import type { Command } from 'commander';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { allDashboards } from './impurity.js';

export interface DashboardFileStatus {
  file: string;
  status: 'written' | 'unchanged' | 'outdated' | 'missing';
}

/** Stable JSON: two-space indent and a final newline, so diffs of the committed files stay readable. */
export function renderDashboard(dashboard: unknown): string {
  return `${JSON.stringify(dashboard, null, 2)}\n`;
}

/** Write (or, with check, compare) every dashboard into `outDir`. */
export async function writeDashboards(outDir: string, options: { check?: boolean } = {}): Promise<DashboardFileStatus[]> {
  const statuses: DashboardFileStatus[] = [];
  if (!options.check) await mkdir(outDir, { recursive: true });
  for (const [name, dashboard] of Object.entries(allDashboards())) {
    const file = join(outDir, name);
    const wanted = renderDashboard(dashboard);
    const current = await readFile(file, 'utf8').catch(() => undefined);
    if (options.check) statuses.push({ file, status: current === undefined ? 'missing' : current === wanted ? 'unchanged' : 'outdated' });
    else if (current === wanted) statuses.push({ file, status: 'unchanged' });
    else {
      await writeFile(file, wanted);
      statuses.push({ file, status: 'written' });
    }
  }
  return statuses;
}

export function registerDashboardCommands(program: Command): void {
  program
    .command('dashboards')
    .description('Write the Grafana dashboards (built as code in dashboards/*.ts) as JSON for provisioning; --check fails when the JSON is out of date.')
    .option('--out <dir>', 'folder to write the dashboard JSON into', 'dashboards')
    .option('--check', 'write nothing; exit 1 when a JSON file differs from what the code builds', false)
    .option('--json', 'print the result as JSON', false)
    .action(async (opts: { out: string; check: boolean; json: boolean }) => {
      const outDir = resolve(opts.out);
      const statuses = await writeDashboards(outDir, { check: opts.check });
      const stale = statuses.filter((s) => s.status === 'outdated' || s.status === 'missing');
      if (opts.json) console.log(JSON.stringify({ outDir, check: opts.check, files: statuses }, null, 2));
      else for (const s of statuses) console.error(`dashboards: ${s.file}: ${s.status}`);
      if (stale.length > 0) {
        console.error(
          `dashboards: ${stale.map((s) => s.file).join(', ')} ${stale.length === 1 ? 'is' : 'are'} out of date with dashboards/*.ts; run \`npm run dashboards\` and commit the result`,
        );
        process.exitCode = 1;
      }
    });
}
