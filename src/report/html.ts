/**
 * The report as one self-contained HTML document: styles inline, charts as inline SVG, frames as
 * data URIs, no script and nothing fetched, so it opens anywhere, archives as one file and
 * prints (to PDF) exactly as it shows.
 */
import type { ReportFigures } from './figures.js';
import { esc, time } from './format.js';
import { alertsSection, auditSection, cameraSection, modelSection, notesSection, qualitySection, summarySection, type ReportView } from './sections.js';

const CSS = `
:root { color-scheme: light; }
body { font: 10.5pt/1.4 system-ui, "DejaVu Sans", sans-serif; color: #1a1a1a; margin: 0 auto; max-width: 980px; padding: 16px 24px; }
header.report { border-bottom: 2px solid #1f4e9c; margin-bottom: 12px; }
header.report h1 { font-size: 18pt; margin: 0 0 4px; }
header.report dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; margin: 6px 0 10px; }
header.report dt { color: #555; }
header.report dd { margin: 0; }
h2 { font-size: 14pt; border-bottom: 1px solid #ccc; padding-bottom: 2px; margin: 22px 0 8px; }
h3 { font-size: 11pt; margin: 14px 0 6px; }
table { border-collapse: collapse; margin: 4px 0 10px; font-size: 9.5pt; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
th { background: #eef2f8; }
table.kv thead { display: none; }
table.kv td:first-child { color: #555; white-space: nowrap; }
table.confusion td:first-child { font-weight: bold; }
code { font: 9pt ui-monospace, "DejaVu Sans Mono", monospace; word-break: break-all; }
pre { font: 8.5pt ui-monospace, "DejaVu Sans Mono", monospace; margin: 0; white-space: pre-wrap; }
.note { color: #9c3d00; }
.legend { color: #555; font-size: 9pt; margin-top: 0; }
.chart svg { max-width: 100%; height: auto; }
.evidence-grid { display: flex; flex-wrap: wrap; gap: 8px; }
figure.evidence { margin: 0; width: 320px; break-inside: avoid; }
figure.evidence img { display: block; max-width: 100%; height: auto; border: 1px solid #999; }
figure.evidence figcaption { font-size: 8pt; color: #333; }
.missing { width: 320px; height: 60px; border: 1px dashed #999; color: #777; display: flex; align-items: center; justify-content: center; font-size: 9pt; }
footer.report { border-top: 1px solid #ccc; margin-top: 24px; padding-top: 4px; color: #555; font-size: 8.5pt; }
@page { size: A4; margin: 14mm 12mm 16mm; }
@media print {
  body { max-width: none; padding: 0; }
  section.camera { break-before: page; }
  h2, h3 { break-after: avoid; }
  table, .chart, figure { break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
}
`;

/** When the run started and ended, by whom, as the `runs` topic says. */
function runLine(f: ReportFigures): string {
  const event = (state: 'started' | 'ended') => {
    const e = f.run.events.filter((x) => x.state === state).sort((a, b) => Date.parse(a.at) - Date.parse(b.at));
    const pick = state === 'started' ? e[0] : e[e.length - 1];
    return pick ? `${state} ${time(pick.at)} by ${esc(pick.by)} (${esc(pick.source)}${pick.camera ? `, ${esc(pick.camera)}` : ''})` : `${state}: not recorded`;
  };
  return `${event('started')}; ${event('ended')}`;
}

export function renderHtml(view: ReportView): string {
  const f = view.figures;
  const cameras = f.cameras.map((c) => c.camera);
  const title = `crystalwatch batch report — run ${f.runId}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="crystalwatch ${esc(f.version)}">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<header class="report">
<h1>Batch report — run <span class="run-id">${esc(f.runId)}</span></h1>
<dl>
<dt>run</dt><dd>${esc(f.runId)}</dd>
<dt>cameras</dt><dd>${cameras.length ? cameras.map(esc).join(', ') : 'none (no predictions for this run)'}</dd>
<dt>time span</dt><dd>${time(f.span.from)} → ${time(f.span.to)} (capture times)</dd>
<dt>started / ended</dt><dd>${runLine(f)}</dd>
<dt>generated</dt><dd>${time(f.generatedAt)} by crystalwatch ${esc(f.version)}</dd>
</dl>
</header>
<main>
${summarySection(f)}
${alertsSection(f)}
${f.cameras.map((c) => cameraSection(c, view)).join('\n')}
${qualitySection(f)}
${modelSection(f)}
${auditSection(f)}
${notesSection(f)}
</main>
<footer class="report">crystalwatch ${esc(f.version)} · run ${esc(f.runId)} · generated ${time(f.generatedAt)} · figures in report.json</footer>
</body>
</html>
`;
}
