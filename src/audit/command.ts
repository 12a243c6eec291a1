/**
 * `crystalwatch audit verify|list`: read-only, so they work while a process is appending
 * (neither takes the writer's lock).
 *
 *   crystalwatch audit verify [--data-dir DIR] [--json]    exit 0 intact, 1 otherwise (one line per problem)
 *   crystalwatch audit list [--data-dir DIR] [--after SEQ] [--limit N] [--json]
 */
import { InvalidArgumentError, type Command } from 'commander';
import { auditPaths } from './paths.js';
import type { AuditRecord } from './record.js';
import { readAuditPage } from './scan.js';
import { verifyAuditTrail } from './verify.js';

// The same default as the config's `dataDir` (src/config: CRYSTALWATCH_DATA_DIR, else ./data).
const DEFAULT_DATA_DIR = process.env.CRYSTALWATCH_DATA_DIR ?? './data';

const integer = (name: string, min: number, max: number) => (raw: string) => {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min || n > max)
    throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  return n;
};

export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the hash-chained audit trail in <data-dir>/audit/: verify it, list its records');

  audit
    .command('verify')
    .description("check every record's digest, every link, the order and the end of the trail; exit 0 when intact, 1 otherwise")
    .option('--data-dir <dir>', 'the data dir holding audit/ (CRYSTALWATCH_DATA_DIR when set)', DEFAULT_DATA_DIR)
    .option('--json', 'print the whole result as JSON on stdout', false)
    .action(async (o: { dataDir: string; json: boolean }) => {
      const result = await verifyAuditTrail(o.dataDir);
      const where = auditPaths(o.dataDir).log;
      if (o.json) {
        process.stdout.write(`${JSON.stringify({ trail: where, ...result })}\n`);
      } else if (result.ok) {
        process.stdout.write(`${where}: intact, ${result.records} records, last ${result.lastSeq} (sha256 ${result.lastHash})\n`);
      } else {
        process.stdout.write(
          `${where}: NOT intact, ${result.problems.length} problem${result.problems.length === 1 ? '' : 's'} in ${result.records} records:\n`,
        );
        for (const p of result.problems) process.stdout.write(`  ${p.kind}: ${p.message}\n`);
      }
      if (!o.json) for (const note of result.notes) process.stdout.write(`  note: ${note}\n`);
      if (!result.ok) process.exitCode = 1;
    });

  audit
    .command('list')
    .description('print records in file order, a page at a time')
    .option('--data-dir <dir>', 'the data dir holding audit/ (CRYSTALWATCH_DATA_DIR when set)', DEFAULT_DATA_DIR)
    .option('--after <seq>', 'only records after this seq (the "next" of the previous page)', integer('--after', 0, Number.MAX_SAFE_INTEGER), 0)
    .option('--limit <n>', 'at most this many records', integer('--limit', 1, 100_000), 100)
    .option('--json', 'print {records, next?} as JSON on stdout', false)
    .action(async (o: { dataDir: string; after: number; limit: number; json: boolean }) => {
      const paths = auditPaths(o.dataDir);
      const page = await readAuditPage(paths.log, { after: o.after, limit: o.limit });
      if (o.json) {
        process.stdout.write(`${JSON.stringify(page)}\n`);
        return;
      }
      if (page.records.length === 0) process.stdout.write(`${paths.log}: no records after ${o.after}\n`);
      for (const record of page.records) process.stdout.write(`${describe(record)}\n`);
      if (page.next !== undefined) process.stdout.write(`(more: --after ${page.next})\n`);
    });
}

function describe(record: AuditRecord): string {
  const data = JSON.stringify(record.data);
  return [String(record.seq).padStart(6), record.at, record.kind.padEnd(19), record.actor ?? '-', data.length > 160 ? `${data.slice(0, 159)}…` : data].join(
    '  ',
  );
}
