/**
 * `crystalwatch run-control start|end|list`: batches from the command line, through a running
 * crystalwatch's web API (`POST /api/runs`), so they reach every process through the `runs` topic.
 */
import type { Command } from 'commander';

interface Target {
  url: string;
  token?: string;
}

async function call(target: Target, method: 'GET' | 'POST', body?: unknown): Promise<unknown> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (target.token) headers.authorization = `Bearer ${target.token}`;
  const url = new URL('/api/runs', target.url);
  let response: Response;
  try {
    response = await fetch(url, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}), signal: AbortSignal.timeout(15_000) });
  } catch (err) {
    throw new Error(`cannot reach crystalwatch at ${url.origin} (${(err as Error).message}); is it running? pass --url`);
  }
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON: shown as is */
  }
  if (!response.ok) {
    const error = parsed && typeof parsed === 'object' && 'error' in parsed ? String((parsed as { error: unknown }).error) : text;
    const hint = response.status === 401 || response.status === 403 ? ' (pass --token or set CRYSTALWATCH_WEB_TOKEN)' : '';
    throw new Error(`${method} ${url.pathname}: ${response.status} ${error}${hint}`);
  }
  return parsed;
}

export function registerRunControlCommands(program: Command): void {
  const runControl = program.command('run-control').description('start and end batches (runs) on a running crystalwatch');
  const common = (c: Command) =>
    c
      .option('--url <url>', 'the crystalwatch web address', process.env.CRYSTALWATCH_URL ?? 'http://127.0.0.1:8080')
      .option('--token <token>', 'web token (default: CRYSTALWATCH_WEB_TOKEN)', process.env.CRYSTALWATCH_WEB_TOKEN);
  const print = (value: unknown): void => {
    process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  };

  common(runControl.command('start').description('start a run on one camera (or every camera without --camera)'))
    .requiredOption('--run <id>', 'run (batch) id')
    .option('--camera <id>', 'camera id')
    .action(async (o: Target & { run: string; camera?: string }) =>
      print(await call(o, 'POST', { action: 'start', runId: o.run, ...(o.camera ? { camera: o.camera } : {}) })),
    );
  common(runControl.command('end').description("end a camera's run (or every open run without --camera)"))
    .option('--run <id>', 'only the run with this id')
    .option('--camera <id>', 'camera id')
    .action(async (o: Target & { run?: string; camera?: string }) =>
      print(await call(o, 'POST', { action: 'end', ...(o.run ? { runId: o.run } : {}), ...(o.camera ? { camera: o.camera } : {}) })),
    );
  common(runControl.command('list').description('the open runs')).action(async (o: Target) => print(await call(o, 'GET')));
}
