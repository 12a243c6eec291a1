import type { Command } from 'commander';

// Placeholder until this area's commands land; each says so honestly instead of pretending.
export function registerModelCommands(program: Command): void {
  program.command('train').description('(not available yet in this build)').action(() => { console.error('crystalwatch train: not available yet in this build'); process.exitCode = 2; });
  program.command('evaluate').description('(not available yet in this build)').action(() => { console.error('crystalwatch evaluate: not available yet in this build'); process.exitCode = 2; });
  program.command('export').description('(not available yet in this build)').action(() => { console.error('crystalwatch export: not available yet in this build'); process.exitCode = 2; });
}
