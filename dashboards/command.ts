import type { Command } from 'commander';

// Placeholder until this area's commands land; each says so honestly instead of pretending.
export function registerDashboardCommands(program: Command): void {
  program.command('dashboards').description('(not available yet in this build)').action(() => { console.error('crystalwatch dashboards: not available yet in this build'); process.exitCode = 2; });
}
