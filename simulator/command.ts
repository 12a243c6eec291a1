import type { Command } from 'commander';

// Placeholder until the simulator lands.
export function registerSimulatorCommands(program: Command): void {
  const simulate = program.command('simulate').description('(not available yet in this build)');
  for (const c of ['frames', 'dataset']) simulate.command(c).description('(not available yet in this build)').action(() => { console.error(`crystalwatch simulate ${c}: not available yet in this build`); process.exitCode = 2; });
}
