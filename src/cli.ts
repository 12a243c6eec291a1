/**
 * The `crystalwatch` command. Each area registers its own sub-commands, so this
 * file only decides the order they are listed in `--help`.
 */
import { Command } from 'commander';
import { createRequire } from 'node:module';
import { registerAppCommands } from './app/command.js';
import { registerBrokerCommands } from './broker/command.js';
import { registerIngestCommands } from './ingest/command.js';
import { registerClassifyCommands } from './classify/command.js';
import { registerModelCommands } from './model/command.js';
import { registerSimulatorCommands } from '../simulator/command.js';
import { registerDashboardCommands } from '../dashboards/command.js';
import { registerReportCommands } from './report/command.js';
import { registerAuditCommands } from './audit/command.js';
import { registerRunControlCommands } from './runs/command.js';

const require = createRequire(import.meta.url);
const { version } = require('../../package.json') as { version: string };

export function buildProgram(): Command {
  const program = new Command('crystalwatch')
    .description('Watch a crystallizer camera, classify every frame CEX vs PG, and stop the batch when PG appears.')
    .version(version)
    .showHelpAfterError('(run with --help for usage)');
  registerAppCommands(program);
  registerRunControlCommands(program);
  registerBrokerCommands(program);
  registerIngestCommands(program);
  registerClassifyCommands(program);
  registerSimulatorCommands(program);
  registerModelCommands(program);
  registerReportCommands(program);
  registerDashboardCommands(program);
  registerAuditCommands(program);
  return program;
}

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  console.error(`crystalwatch: ${(err as Error).message}`);
  process.exitCode = 1;
}
