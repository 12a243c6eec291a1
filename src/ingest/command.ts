import type { Command } from 'commander';

// Placeholder until this area's commands land; each says so honestly instead of pretending.
export function registerIngestCommands(program: Command): void {
  program.command('ingest').description('(not available yet in this build)').action(() => { console.error('crystalwatch ingest: not available yet in this build'); process.exitCode = 2; });
}
