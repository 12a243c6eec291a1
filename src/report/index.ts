/** The batch report of a run (see README.md). */
export { writeRunReport, type RunReportOptions, type RunReportResult, type ReportPhase } from './write.js';
export { ChromiumMissingError, chromiumPath } from './pdf.js';
export type { ReportFigures, CameraFigures, DetectionFigures, ClassificationFigures } from './figures.js';
export { registerReportCommands } from './command.js';
export type { AuditSource, AuditEntry, AuditFigures } from './audit.js';
