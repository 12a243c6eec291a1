import type { Command } from 'commander';

// Placeholder until this area's commands land; each says so honestly instead of pretending.
export function registerAppCommands(program: Command): void {
  program.command('demo').description('(not available yet in this build)').action(() => { console.error('crystalwatch demo: not available yet in this build'); process.exitCode = 2; });
  program.command('run').description('(not available yet in this build)').action(() => { console.error('crystalwatch run: not available yet in this build'); process.exitCode = 2; });
  program.command('config').description('(not available yet in this build)').action(() => { console.error('crystalwatch config: not available yet in this build'); process.exitCode = 2; });
  program.command('monitor').description('(not available yet in this build)').action(() => { console.error('crystalwatch monitor: not available yet in this build'); process.exitCode = 2; });
  program.command('bench').description('(not available yet in this build)').action(() => { console.error('crystalwatch bench: not available yet in this build'); process.exitCode = 2; });
}
