import type { Command } from 'commander';

// Placeholder until this area's commands land; each says so honestly instead of pretending.
export function registerClassifyCommands(program: Command): void {
  program.command('classify').description('(not available yet in this build)').action(() => { console.error('crystalwatch classify: not available yet in this build'); process.exitCode = 2; });
  program.command('predict').description('(not available yet in this build)').action(() => { console.error('crystalwatch predict: not available yet in this build'); process.exitCode = 2; });
}
