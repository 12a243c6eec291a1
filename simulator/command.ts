/**
 * `crystalwatch simulate dataset` and `crystalwatch simulate frames`.
 */
import { InvalidArgumentError, type Command } from 'commander';
import { resolve } from 'node:path';
import { generateDataset, parseSplit, type DatasetLayout } from './dataset.js';
import { FrameCamera } from './camera.js';
import { FRAME } from './physics.js';

function parseNumber(what: string, check: (n: number) => boolean, hint: string) {
  return (text: string): number => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || !check(n)) throw new InvalidArgumentError(`${what} must be ${hint}, got "${text}"`);
    return n;
  };
}

function parseSize(text: string): { width: number; height: number } {
  const m = /^(\d+)[x×](\d+)$/i.exec(text.trim());
  if (!m) throw new InvalidArgumentError(`--size must be WIDTHxHEIGHT in pixels like 1280x960, got "${text}"`);
  const width = Number(m[1]);
  const height = Number(m[2]);
  if (width < 64 || height < 64 || width > 8192 || height > 8192) throw new InvalidArgumentError(`--size sides must be 64..8192 px, got ${width}x${height}`);
  return { width, height };
}

/** A progress line on stderr: redrawn in place on a terminal, every 10 % otherwise. */
export function progressBar(label: string, stream: NodeJS.WriteStream = process.stderr): (done: number, total: number) => void {
  const start = Date.now();
  let lastDecile = -1;
  return (done, total) => {
    const fraction = total > 0 ? done / total : 1;
    const rate = done / Math.max(0.001, (Date.now() - start) / 1000);
    const text = `${label} ${done}/${total} (${(fraction * 100).toFixed(0)} %, ${rate.toFixed(1)}/s)`;
    if (stream.isTTY) {
      const width = 30;
      const filled = Math.round(fraction * width);
      stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}${done === total ? '\n' : ''}`);
    } else {
      const decile = Math.floor(fraction * 10);
      if (decile !== lastDecile) {
        lastDecile = decile;
        stream.write(`${text}\n`);
      }
    }
  };
}

export function registerSimulatorCommands(program: Command): void {
  const simulate = program.command('simulate').description('Synthetic in-situ probe camera: labelled crop datasets and live frames of a batch');

  simulate
    .command('dataset')
    .description('Write N labelled grayscale crops (half CEX, half PG; the odd one PG) in a class-folder layout')
    .requiredOption('--out <dir>', 'output folder (created)')
    .requiredOption(
      '--count <n>',
      'number of crops in total',
      parseNumber('--count', (n) => Number.isInteger(n) && n >= 1, 'a positive integer'),
    )
    .option('--seed <s>', 'seed: same seed, same bytes', parseNumber('--seed', Number.isInteger, 'an integer'), 0)
    .option('--layout <layout>', 'opencrystaldata (cex/ pg/) or binary (0/ = CEX, 1/ = PG)', 'opencrystaldata')
    .option('--split <train/valid/test>', 'also split into train/ valid/ test/, e.g. 70/25/5')
    .option('--json', 'print the file list with labels as JSON on stdout')
    .action(async (opts: { out: string; count: number; seed: number; layout: string; split?: string; json?: boolean }) => {
      if (opts.layout !== 'opencrystaldata' && opts.layout !== 'binary') {
        throw new Error(`--layout must be "opencrystaldata" or "binary", got "${opts.layout}"`);
      }
      const out = resolve(opts.out);
      const t0 = Date.now();
      const { files } = await generateDataset({
        out,
        count: opts.count,
        seed: opts.seed,
        layout: opts.layout as DatasetLayout,
        split: opts.split ? parseSplit(opts.split) : null,
        onProgress: progressBar('simulate dataset'),
      });
      const seconds = (Date.now() - t0) / 1000;
      if (opts.json) process.stdout.write(`${JSON.stringify({ out, count: files.length, seconds, files }, null, 2)}\n`);
      else console.error(`wrote ${files.length} crops to ${out} in ${seconds.toFixed(1)} s`);
    });

  simulate
    .command('frames')
    .description('Drop full probe frames (PNG + JSON truth sidecar) into a folder at a steady rate; PG appears at --pg-onset')
    .requiredOption('--out <dir>', 'drop folder (created)')
    .option('--camera <id>', 'camera id, used in file names', 'cam-1')
    .option(
      '--fps <f>',
      'frames per second',
      parseNumber('--fps', (n) => n > 0 && n <= 1000, 'a number in (0, 1000]'),
      FRAME.fps,
    )
    .option(
      '--duration <s>',
      'seconds of batch to film (default: until Ctrl-C)',
      parseNumber('--duration', (n) => n >= 0, 'a number of seconds ≥ 0'),
    )
    .option('--size <WxH>', `frame size in pixels (default: ${FRAME.widthPx}x${FRAME.heightPx})`, parseSize)
    .option(
      '--pg-onset <s>',
      'seconds after start when PG starts to nucleate (default: never)',
      parseNumber('--pg-onset', (n) => n >= 0, 'a number of seconds ≥ 0'),
    )
    .option('--seed <s>', 'seed of the batch', parseNumber('--seed', Number.isInteger, 'an integer'), 0)
    .option('--write <mode>', 'atomic (temp file + rename) or slow (in place, in chunks over 100–300 ms)', 'atomic')
    .option(
      '--faults <p>',
      'fraction of image files to truncate or corrupt',
      parseNumber('--faults', (n) => n >= 0 && n <= 1, 'a fraction in 0..1'),
      0,
    )
    .option('--fast', 'render back to back instead of in real time (capture times still follow --fps)')
    .option('--json', 'print one JSON line per frame written (path and truth) on stdout')
    .action(
      async (opts: {
        out: string;
        camera: string;
        fps: number;
        duration?: number;
        size?: { width: number; height: number };
        pgOnset?: number;
        seed: number;
        write: string;
        faults: number;
        fast?: boolean;
        json?: boolean;
      }) => {
        if (opts.write !== 'atomic' && opts.write !== 'slow') throw new Error(`--write must be "atomic" or "slow", got "${opts.write}"`);
        const size = opts.size ?? { width: FRAME.widthPx, height: FRAME.heightPx };
        const total = opts.duration === undefined ? 0 : Math.ceil(opts.duration * opts.fps - 1e-9);
        const progress = progressBar(`simulate frames ${opts.camera}`);
        let pgFrames = 0;
        const camera = new FrameCamera({
          out: resolve(opts.out),
          camera: opts.camera,
          fps: opts.fps,
          durationS: opts.duration,
          width: size.width,
          height: size.height,
          pgOnsetS: opts.pgOnset ?? null,
          seed: opts.seed,
          write: opts.write,
          faults: opts.faults,
          realTime: !opts.fast,
          onFrame: (path, truth) => {
            if (truth.label === 'pg') pgFrames++;
            if (opts.json) process.stdout.write(`${JSON.stringify({ path, ...truth })}\n`);
            if (total > 0) progress(camera.framesWritten, total);
            else if (camera.framesWritten % 10 === 0)
              process.stderr.write(`simulate frames ${opts.camera}: ${camera.framesWritten} frames (${pgFrames} with PG)\n`);
          },
          onError: (err) => process.stderr.write(`simulate frames: could not write a frame: ${err.message}\n`),
        });
        const stop = (): void => void camera.close();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
        try {
          await camera.start();
          await camera.done();
        } finally {
          await camera.close();
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
        if (!opts.json) console.error(`wrote ${camera.framesWritten} frames (${pgFrames} with PG) to ${resolve(opts.out)}`);
      },
    );
}
