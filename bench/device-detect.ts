/**
 * What the GPU device check finds on a machine before it measures anything: the NVIDIA driver
 * (`nvidia-smi -L`), a Vulkan loader and ICD (what Dawn, behind the `webgpu` package, needs),
 * onnxruntime-node's execution providers and whether their shared libraries are installed next
 * to the binding, and the machine's own Python onnxruntime (information only). The parsers are
 * pure and unit-tested; every probe of the system has its own timeout and never throws.
 */
import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export interface NvidiaGpu {
  index: number;
  name: string;
  uuid?: string;
}

/** `nvidia-smi -L` lines: `GPU 0: NVIDIA H200 (UUID: GPU-1a2b…)`. */
export function parseNvidiaSmiList(text: string): NvidiaGpu[] {
  const gpus: NvidiaGpu[] = [];
  for (const line of text.split('\n')) {
    const m = /^GPU (\d+): (.+?)(?: \(UUID: ([^)]+)\))?\s*$/.exec(line.trim());
    if (m) gpus.push({ index: Number(m[1]), name: m[2]!, ...(m[3] ? { uuid: m[3] } : {}) });
  }
  return gpus;
}

/** The paths `ldconfig -p` lists for `libvulkan.so.1` (the Vulkan loader Dawn opens). */
export function vulkanLoadersFromLdconfig(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*libvulkan\.so\.1 .*=>\s*(\S+)\s*$/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

/** Where Vulkan loaders look for ICD manifests, the NVIDIA container mount last. */
export const ICD_DIRS = ['/etc/vulkan/icd.d', '/usr/share/vulkan/icd.d', '/usr/local/share/vulkan/icd.d', '/usr/local/nvidia/share/vulkan/icd.d'];

/**
 * ICD manifests the loader will use: `VK_DRIVER_FILES` (or the older `VK_ICD_FILENAMES`), a
 * colon-separated list, overrides the search directories when set.
 */
export function icdManifests(env: NodeJS.ProcessEnv, listDir: (dir: string) => string[]): { source: string; files: string[] } {
  const named = env.VK_DRIVER_FILES ?? env.VK_ICD_FILENAMES;
  if (named) return { source: env.VK_DRIVER_FILES ? 'VK_DRIVER_FILES' : 'VK_ICD_FILENAMES', files: named.split(':').filter(Boolean) };
  const files: string[] = [];
  for (const dir of ICD_DIRS) for (const f of listDir(dir)) if (f.endsWith('.json')) files.push(join(dir, f));
  return { source: 'search directories', files };
}

export interface ToolRun {
  ok: boolean;
  stdout: string;
  error?: string;
}

/** Run a program with a deadline; a missing program or a timeout is an answer, not an exception. */
export function runTool(file: string, args: string[], timeoutMs: number): Promise<ToolRun> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 << 20 }, (err, stdout, stderr) => {
      if (!err) return resolve({ ok: true, stdout });
      const code = (err as NodeJS.ErrnoException).code;
      const why =
        code === 'ENOENT'
          ? `${file} not found on PATH`
          : err.killed
            ? `${file} ${args.join(' ')} did not finish within ${timeoutMs} ms`
            : // The last line: where Python's traceback names the error.
              `${file} ${args[0] ?? ''} failed: ${(String(stderr).trim() || err.message).split('\n').pop()}`;
      resolve({ ok: false, stdout, error: why });
    });
  });
}

function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export async function detectNvidia(): Promise<{ present: boolean; gpus: NvidiaGpu[]; reason?: string; driver?: string }> {
  const list = await runTool('nvidia-smi', ['-L'], 15_000);
  if (!list.ok) return { present: false, gpus: [], reason: list.error };
  const gpus = parseNvidiaSmiList(list.stdout);
  const q = await runTool('nvidia-smi', ['--query-gpu=driver_version,memory.total', '--format=csv,noheader'], 15_000);
  return {
    present: gpus.length > 0,
    gpus,
    ...(q.ok ? { driver: q.stdout.trim().split('\n')[0] } : {}),
    ...(gpus.length ? {} : { reason: 'nvidia-smi -L listed no GPU' }),
  };
}

export async function detectVulkan(): Promise<{ loader: string[]; icd: { source: string; files: string[]; missing: string[] }; reason?: string }> {
  const ld = await runTool('ldconfig', ['-p'], 10_000);
  const loader = ld.ok ? vulkanLoadersFromLdconfig(ld.stdout) : [];
  const icd = icdManifests(process.env, listDir);
  const missing = icd.files.filter((f) => !existsSync(f));
  const reason =
    loader.length === 0
      ? 'no libvulkan.so.1 in the ldconfig cache: carry .gl (scripts/device-pack.sh fetches the loaders) so scripts/device-check.sh unpacks them'
      : icd.files.length === missing.length
        ? `no Vulkan ICD manifest (${icd.source}${icd.source === 'search directories' ? ': ' + ICD_DIRS.join(', ') : ''}); set VK_DRIVER_FILES`
        : undefined;
  return { loader, icd: { ...icd, missing }, ...(reason ? { reason } : {}) };
}

const require = createRequire(import.meta.url);

/** onnxruntime-node's providers as its build lists them, and whether each GPU provider's library is installed. */
export async function detectOrtNode(): Promise<{
  version?: string;
  backends: { name: string; bundled: boolean }[];
  binDir?: string;
  providers: Record<'cuda' | 'tensorrt', { library: string; status: 'present' | 'absent'; reason?: string }>;
}> {
  const ort = (await import('onnxruntime-node')) as typeof import('onnxruntime-node');
  const backends = ort.listSupportedBackends().map((b) => ({ name: b.name, bundled: b.bundled }));
  let binDir: string | undefined;
  let version: string | undefined;
  try {
    const pkg = require.resolve('onnxruntime-node/package.json');
    version = (require(pkg) as { version: string }).version;
    binDir = join(dirname(pkg), 'bin', 'napi-v6', process.platform, process.arch);
  } catch {
    binDir = undefined;
  }
  const providers = {} as Record<'cuda' | 'tensorrt', { library: string; status: 'present' | 'absent'; reason?: string }>;
  for (const p of ['cuda', 'tensorrt'] as const) {
    const library = `libonnxruntime_providers_${p}.so`;
    const listed = backends.find((b) => b.name === p);
    const there = binDir !== undefined && existsSync(join(binDir, library));
    providers[p] = there
      ? { library, status: 'present' }
      : {
          library,
          status: 'absent',
          reason: `${library} is not in ${binDir ?? 'the binding folder'}: the npm package bundles the CPU provider only (listSupportedBackends: ${listed ? `bundled ${listed.bundled}` : 'not listed'}); ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci downloads it, which this offline device cannot, and the bundle does not carry it`,
        };
  }
  return { version, backends, binDir, providers };
}

/** The device's own Python onnxruntime, for comparison: its version and providers. */
export async function detectOrtPython(): Promise<{ version?: string; providers?: string[]; device?: string; reason?: string }> {
  const code =
    'import json, onnxruntime as o; print(json.dumps({"version": o.__version__, "providers": o.get_available_providers(), "device": o.get_device()}))';
  const run = await runTool('python3', ['-c', code], 60_000);
  if (!run.ok) return { reason: run.error };
  try {
    return JSON.parse(run.stdout.trim().split('\n').pop()!) as { version: string; providers: string[]; device: string };
  } catch {
    return { reason: `python3 printed no JSON: ${run.stdout.slice(0, 200)}` };
  }
}
