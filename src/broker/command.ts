import type { Command } from 'commander';

// Placeholder until this area's commands land; each says so honestly instead of pretending.
export function registerBrokerCommands(program: Command): void {
  program.command('broker').description('(not available yet in this build)').action(() => { console.error('crystalwatch broker: not available yet in this build'); process.exitCode = 2; });
}
