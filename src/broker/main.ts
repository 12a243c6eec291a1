/**
 * The broker alone: `node dist/src/broker/main.js [--port 0] [--data-dir ...]`
 * takes the same options as `crystalwatch broker` and prints the same
 * {"event":"listening",...} line, without loading the other stages (the CNN
 * backends, the simulator). Benchmarks use it so a broker measurement never
 * depends on the rest of the build.
 */
import { Command } from 'commander';
import { registerBrokerCommands } from './command.js';

const program = new Command('crystalwatch-broker').showHelpAfterError('(run with --help for usage)');
registerBrokerCommands(program);
try {
  await program.parseAsync(['broker', ...process.argv.slice(2)], { from: 'user' });
} catch (err) {
  console.error(`crystalwatch broker: ${(err as Error).message}`);
  process.exitCode = 1;
}
