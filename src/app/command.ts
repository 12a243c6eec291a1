import { Command, InvalidArgumentError, Option } from 'commander';
import { ConfigError, loadConfig, maskSecrets } from '../config/index.js';
import { DEFAULT_MODEL_DIR, DEFAULT_WEB_HOST, DEFAULT_WEB_PORT } from '../config/defaults.js';
import { createLogger } from '../config/logger.js';
import { webExposureProblem } from '../web/auth.js';
import { closeOnSignals, exitPastStragglers, Lifecycle } from './lifecycle.js';
import { startDemo } from './demo.js';
import { startPipeline } from './pipeline.js';
import { BENCH_AREAS, runBenchmarks } from './bench.js';

const integer = (name: string, min: number, max: number) => (raw: string) => {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  return n;
};
const positive = (name: string) => (raw: string) => {
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${name} must be a positive number, got "${raw}"`);
  return n;
};
const size = (raw: string) => {
  const m = /^(\d{2,5})x(\d{2,5})$/.exec(raw);
  if (!m) throw new InvalidArgumentError(`--size must look like 1280x960, got "${raw}"`);
  return { width: Number(m[1]), height: Number(m[2]) };
};

export function registerAppCommands(program: Command): void {
  program
    .command('demo')
    .description('run the whole pipeline on one machine: embedded Kafka, simulated cameras, ingest, classify, metrics, alerts and the live page (npm start)')
    .option('--cameras <n>', 'simulated cameras', integer('--cameras', 1, 16), 2)
    .option('--fps <f>', 'frames per second per camera', positive('--fps'), 2)
    .option('--onset <seconds>', 'seconds until PG appears in cam-1', positive('--onset'), 60)
    .option('--no-onset', 'never let PG appear (a clean batch)')
    .option('--port <port>', 'web server port (0 = any free port)', integer('--port', 0, 65535), DEFAULT_WEB_PORT)
    .option('--host <host>', 'web server address', DEFAULT_WEB_HOST)
    .option('--data-dir <dir>', 'drop folders and broker data', './data/demo')
    .option('--model <dir>', 'model folder with card.json', DEFAULT_MODEL_DIR)
    .option('--size <WxH>', 'frame size', size, { width: 1280, height: 960 })
    .option('--duration <seconds>', 'stop by itself after this long', positive('--duration'))
    .option('--keep-data', 'keep frames and Kafka data from an earlier demo run', false)
    .option('--seed <n>', 'simulator seed', integer('--seed', 0, 2 ** 31), 1)
    .option('--opcua-port <port>', 'serve OPC UA for a control system on this port (security None, so loopback only)', integer('--opcua-port', 0, 65535))
    .option('--json', 'print status and alerts as JSON lines on stdout (logs stay on stderr)', false)
    .action(async (o) => {
      const logger = createLogger({ level: o.json ? 'warn' : (process.env.CRYSTALWATCH_LOG_LEVEL ?? 'warn'), pretty: !o.json && process.stderr.isTTY });
      const demo = await startDemo(
        {
          cameras: o.cameras,
          fps: o.fps,
          onsetS: o.onset === false ? null : o.onset,
          port: o.port,
          host: o.host,
          dataDir: o.dataDir,
          model: o.model,
          width: o.size.width,
          height: o.size.height,
          durationS: o.duration,
          keepData: o.keepData,
          seed: o.seed,
          opcuaPort: o.opcuaPort,
          status: o.json ? 'json' : 'pretty',
        },
        logger,
      );
      const lifecycle = new Lifecycle(logger);
      lifecycle.add('demo', demo);
      await waitForStop(lifecycle, logger, o.duration);
    });

  program
    .command('run')
    .description('run the stages for real cameras from one config file (JSON or YAML); every option also by environment variable')
    .option('-c, --config <file>', 'config file (JSON or YAML)')
    .addOption(new Option('--stages <list>', 'comma list of stages to run in this process').argParser((v) => v.split(',').map((s) => s.trim())))
    .action(async (o) => {
      const config = await loadConfigOrExit(o.config, o.stages ? { stages: o.stages } : {});
      const exposed = webExposureProblem(config);
      if (exposed) {
        console.error(`crystalwatch run: refusing to start: ${exposed}`);
        process.exit(2);
      }
      const logger = createLogger({ level: config.log.level, pretty: config.log.pretty });
      const lifecycle = new Lifecycle(logger);
      lifecycle.add('pipeline', await startPipeline(config, logger));
      logger.info({ stages: config.stages }, 'crystalwatch running');
      await waitForStop(lifecycle, logger);
    });

  program
    .command('config')
    .description('show the effective configuration (defaults, file, environment) with secrets masked')
    .option('-c, --config <file>', 'config file (JSON or YAML)')
    .option('--print', 'print it as JSON (the default)', true)
    .action(async (o) => {
      const config = await loadConfigOrExit(o.config, {});
      process.stdout.write(`${JSON.stringify(maskSecrets(config), null, 2)}\n`);
    });

  program
    .command('bench')
    .description('run the benchmarks and print one JSON document (stable figure names)')
    .option('--quick', 'short runs, for CI smoke tests', false)
    .option('--only <areas>', `comma list of areas (${BENCH_AREAS.join(', ')})`)
    .option('--out <file>', 'also write the JSON to this file')
    .action(async (o) => {
      const result = await runBenchmarks({ quick: o.quick, only: o.only?.split(','), out: o.out });
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
      if (Object.keys(result.errors).length > 0) process.exitCode = 1;
    });
}

async function loadConfigOrExit(file: string | undefined, overrides: Record<string, unknown>) {
  try {
    return await loadConfig({ file, overrides });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`crystalwatch: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
}

/** Resolves once the lifecycle is closed: by SIGINT/SIGTERM or after `durationS`. */
function waitForStop(lifecycle: Lifecycle, logger: ReturnType<typeof createLogger>, durationS?: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      removeHandlers();
      if (timer) clearTimeout(timer);
      exitPastStragglers((resources) => logger.warn({ resources }, 'still running 1 s after closing; exiting'));
      resolve();
    };
    const removeHandlers = closeOnSignals(lifecycle, logger, done);
    const timer = durationS ? setTimeout(() => void lifecycle.close().then(done), durationS * 1000) : undefined;
  });
}
