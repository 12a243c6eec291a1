/**
 * What a user of the deployment relies on, checked without Docker or a cluster:
 * - the image: its entry point runs `crystalwatch run`, and the files its final stage copies are
 *   enough to run it (the layout is assembled from the Dockerfile's COPY lines and run here);
 * - `.dockerignore` keeps data/, node_modules/ and .git out of the build context and lets in
 *   everything the build compiles and the image copies;
 * - docker-compose 1.29 accepts the compose file (with every profile) and each stage runs the
 *   image's entry point; Prometheus (promtool) accepts the config the compose service writes at
 *   start; Grafana's provisioning points at the dashboards we generate;
 * - kustomize builds the manifests, with the probes and the GPU request they promise.
 * The compose and Kubernetes parts need docker-compose and kubectl (npm test's pretest installs
 * them); without them those parts are skipped and say so.
 */
import { afterAll, assert, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix, relative, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';

const root = resolve(import.meta.dirname, '..');
const onPath = (command: string): boolean => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
const skipped = (tool: string): string => ` (skipped: ${tool} is not installed; npm test's pretest installs it, or apt-get install ${tool})`;

// --- Dockerfile ------------------------------------------------------------------------------

interface Instruction {
  keyword: string;
  args: string;
}
interface Stage {
  from: string;
  name?: string;
  instructions: Instruction[];
}

/** The Dockerfile's stages and instructions (comments dropped, `\` continuations joined). */
function parseDockerfile(text: string): Stage[] {
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, keyword = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line)!;
    const instruction = { keyword: keyword.toUpperCase(), args: args.replace(/\s+/g, ' ') };
    if (instruction.keyword === 'FROM') {
      const [from = '', as, name] = instruction.args.split(' ');
      stages.push({ from, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else if (stages.length > 0) {
      stages.at(-1)!.instructions.push(instruction);
    }
  }
  return stages;
}

/** An exec-form instruction (`["a", "b"]`) as its argument list. */
const execForm = (stage: Stage, keyword: string): string[] => {
  const found = stage.instructions.filter((i) => i.keyword === keyword).at(-1);
  if (!found) return [];
  expect(found.args, `${keyword} in exec form`).toMatch(/^\[/);
  return JSON.parse(found.args) as string[];
};

/** ENV lines as a map (the `KEY=value KEY2=value2` form). */
const envOf = (stage: Stage): Record<string, string> =>
  Object.fromEntries(stage.instructions.filter((i) => i.keyword === 'ENV').flatMap((i) => [...i.args.matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1], m[2]])));

const stages = parseDockerfile(readFileSync(join(root, 'Dockerfile'), 'utf8'));
const image = stages.at(-1)!;

/**
 * The final stage's files, assembled in `dir` from its `COPY --from=<build stage>` lines: the build
 * stage copies the checkout and runs `npm ci` and tsc, so its /app is this checkout with
 * node_modules and dist (node_modules is linked, not copied). Returns the image path → local path map.
 */
function assembleImage(dir: string): (imagePath: string) => string {
  const workdir = image.instructions.filter((i) => i.keyword === 'WORKDIR').at(-1)?.args ?? '/';
  const buildStage = stages.find((s) => image.instructions.some((i) => i.keyword === 'COPY' && i.args.includes(`--from=${s.name}`)))!;
  const buildDir = buildStage.instructions.filter((i) => i.keyword === 'WORKDIR').at(-1)?.args ?? '/';
  const local = (imagePath: string): string => join(dir, posix.relative(workdir, posix.resolve(workdir, imagePath)));
  for (const copy of image.instructions.filter((i) => i.keyword === 'COPY')) {
    const words = copy.args.split(' ').filter((w) => !w.startsWith('--'));
    const dest = words.pop()!;
    for (const source of words) {
      const inCheckout = join(root, posix.relative(buildDir, source));
      const target = dest.endsWith('/') ? join(local(dest), posix.basename(source)) : local(dest);
      if (posix.basename(source) === 'node_modules') symlinkSync(inCheckout, target);
      else cpSync(inCheckout, target, { recursive: true });
    }
  }
  return local;
}

describe('the image (Dockerfile)', () => {
  let dir = '';
  let local: (imagePath: string) => string;
  beforeAll(() => {
    expect(existsSync(join(root, 'dist', 'src', 'cli.js')), 'dist/ is missing: npm run build').toBe(true);
    dir = mkdtempSync(join(tmpdir(), 'crystalwatch-image-'));
    local = assembleImage(dir);
  });
  afterAll(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Runs `argv` (argv[0] looked up as the image's PATH would) in the assembled image. */
  const inImage = (argv: string[], extra: string[] = []) => {
    const [command, ...rest] = argv;
    const link = image.instructions.map((i) => new RegExp(`ln -s (\\S+) /usr/(?:local/)?bin/${command}\\b`).exec(i.args)).find(Boolean);
    expect(link, `the image puts ${command} on PATH`).toBeTruthy();
    const file = local(link![1]!);
    expect(statSync(file).mode & 0o111, `${link![1]} is executable`).not.toBe(0);
    // Run as the kernel would: node with the shebang's flags (the heap flag of bin/crystalwatch.js).
    const shebang = /^#!\/usr\/bin\/env (?:-S )?node((?: --[\w-]+=\S+)*)$/.exec(readFileSync(file, 'utf8').split('\n')[0]!);
    expect(shebang, `${link![1]} starts node through env`).toBeTruthy();
    const flags = shebang![1]!.trim().split(' ').filter(Boolean);
    expect(flags).toContain('--initial-old-space-size=64');
    return spawnSync(process.execPath, [...flags, file, ...rest, ...extra], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, ...envOf(image) },
      timeout: 120_000,
    });
  };

  it('runs `crystalwatch run` by default, as a user that is not root, serving on all interfaces', () => {
    expect([...execForm(image, 'ENTRYPOINT'), ...execForm(image, 'CMD')]).toEqual(['crystalwatch', 'run']);
    const user = image.instructions.filter((i) => i.keyword === 'USER').at(-1)?.args;
    expect(user === undefined || user === 'root' || user === '0', 'the image runs as root').toBe(false);
    // Inside a container 127.0.0.1 is unreachable from outside: the image must listen on every interface.
    expect(envOf(image).CRYSTALWATCH_WEB_HOST).toBe('0.0.0.0');
  });

  it('has every file `crystalwatch run` needs: the command starts from the copied files alone', () => {
    const help = inImage([...execForm(image, 'ENTRYPOINT'), ...execForm(image, 'CMD')], ['--help']);
    expect(help.status, help.stderr).toBe(0);
    expect(help.stdout).toContain('Usage: crystalwatch run');
  });

  it('ships the default model: `crystalwatch predict` classifies a simulated frame with it', () => {
    const frames = join(dir, 'frames');
    const simulate = inImage([
      'crystalwatch',
      'simulate',
      'frames',
      '--out',
      frames,
      '--duration',
      '1',
      '--fps',
      '1',
      '--size',
      '320x240',
      '--fast',
      '--pg-onset',
      '0',
    ]);
    expect(simulate.status, simulate.stderr).toBe(0);
    const png = readdirSync(frames).filter((f) => f.endsWith('.png'));
    expect(png).toHaveLength(1);
    const predict = inImage(['crystalwatch', 'predict', '--json', join(frames, png[0]!)]);
    expect(predict.status, predict.stderr).toBe(0);
    const [line] = predict.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { predicted: string; pPG: number | null });
    assert(line, 'one line of predict --json');
    expect(['cex', 'pg', 'unusable']).toContain(line.predicted);
  });

  it('serves the live page from the copied static files', () => {
    const script = [
      "import { Registry } from 'prom-client';",
      "import { WebServer } from './dist/src/web/index.js';",
      'const web = new WebServer({ registry: new Registry(), port: 0 });',
      'await web.start();',
      'const page = await fetch(`${web.url}/`);',
      "console.log(JSON.stringify({ status: page.status, type: page.headers.get('content-type'), html: (await page.text()).includes('<html') }));",
      'await web.close();',
    ].join('\n');
    const served = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    expect(served.status, served.stderr).toBe(0);
    expect(JSON.parse(served.stdout.trim().split('\n').at(-1)!)).toMatchObject({ status: 200, type: expect.stringMatching(/^text\/html/), html: true });
  });
});

// --- .dockerignore ---------------------------------------------------------------------------

/** Docker's .dockerignore rules: last matching pattern wins, `!` re-includes, a match on a folder excludes what is inside. */
function dockerignore(text: string): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((line) => {
      const include = line.startsWith('!');
      const pattern = posix
        .normalize(line.slice(include ? 1 : 0).trim())
        .replace(/^\/+/, '')
        .replace(/\/+$/, '');
      const regex = pattern
        .split(/(\*\*\/?|\*|\?)/)
        .map((part) => {
          if (part === '**/') return '(?:.*/)?';
          if (part === '**') return '.*';
          if (part === '*') return '[^/]*';
          if (part === '?') return '[^/]';
          return part.replace(/[.+^${}()|[\]\\]/g, '\\$&');
        })
        .join('');
      return { include, regex: new RegExp(`^${regex}$`) };
    });
  return (path) => {
    const parts = path.split('/');
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let excluded = false;
    for (const rule of rules) if (candidates.some((c) => rule.regex.test(c))) excluded = !rule.include;
    return excluded;
  };
}

describe('.dockerignore', () => {
  const excluded = dockerignore(readFileSync(join(root, '.dockerignore'), 'utf8'));

  it('keeps local data, installed modules, build output and git history out of the build context', () => {
    for (const path of [
      'data',
      'data/cameras/cam-1/f-000001.png',
      'node_modules',
      'node_modules/kafkajs/package.json',
      'dist/src/cli.js',
      '.git/HEAD',
      'test-artifacts/page.png',
      'npm-debug.log',
    ]) {
      expect(excluded(path), path).toBe(true);
    }
  });

  it('lets in everything the build compiles and the image copies', () => {
    const build = JSON.parse(readFileSync(join(root, 'tsconfig.build.json'), 'utf8')) as { include: string[]; extends?: string };
    const copied = image.instructions
      .filter((i) => i.keyword === 'COPY')
      .flatMap((i) =>
        i.args
          .split(' ')
          .filter((w) => !w.startsWith('--'))
          .slice(0, -1),
      )
      .map((source) => posix.relative('/app', source))
      .filter((p) => !['node_modules', 'dist'].includes(p));
    const needed = [
      'package.json',
      'package-lock.json',
      'tsconfig.build.json',
      build.extends ? posix.normalize(build.extends) : 'tsconfig.json',
      ...build.include,
      ...copied,
    ];
    const files = needed.flatMap((p) =>
      statSync(join(root, p)).isDirectory()
        ? readdirSync(join(root, p), { recursive: true, withFileTypes: true })
            .filter((e) => e.isFile())
            .map((e) => relative(root, join(e.parentPath, e.name)))
        : [p],
    );
    expect(files.length).toBeGreaterThan(100);
    expect(files.filter(excluded), 'files the image build needs but .dockerignore leaves out').toEqual([]);
  });
});

// --- docker-compose --------------------------------------------------------------------------

const compose = (...args: string[]) =>
  execFileSync('docker-compose', ['-f', 'deploy/docker-compose.yml', ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, CAMERA_DIR: '/srv/camera1' },
  });

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  environment?: Record<string, string>;
  volumes?: (string | { source?: string; target: string })[];
  entrypoint?: string[] | string;
  command?: string[] | string;
  profiles?: string[];
  deploy?: { resources?: { reservations?: { devices?: { driver?: string; count?: number; capabilities?: string[] }[] } } };
  ports?: unknown[];
}

describe.skipIf(!onPath('docker-compose'))(`docker-compose${onPath('docker-compose') ? '' : skipped('docker-compose')}`, () => {
  let config: { services: Record<string, ComposeService>; volumes: Record<string, unknown> };
  beforeAll(() => {
    config = parse(compose('--profile', 'gpu', '--profile', 'simulator', 'config')) as typeof config;
  });

  it('is accepted by docker-compose 1.29 with every service and profile', () => {
    expect(Object.keys(config.services).sort()).toEqual([
      'alertmanager',
      'classify',
      'classify-gpu',
      'grafana',
      'ingest',
      'kafka',
      'monitor',
      'prometheus',
      'simulator',
    ]);
    // `up` without --profile leaves the GPU classifier and the simulator off.
    const profiled = Object.entries(config.services)
      .filter(([, s]) => s.profiles?.length)
      .map(([name, s]) => `${name}:${s.profiles!.join(',')}`);
    expect(profiled.sort()).toEqual(['classify-gpu:gpu', 'simulator:simulator']);
  });

  it('runs Kafka in KRaft mode and sizes it for image records', () => {
    const kafka = config.services.kafka;
    assert(kafka, 'a kafka service in the compose file');
    expect(kafka.image).toMatch(/^apache\/kafka:/);
    expect(kafka.environment?.KAFKA_PROCESS_ROLES).toBe('broker,controller');
    expect(Number(kafka.environment?.KAFKA_MESSAGE_MAX_BYTES)).toBeGreaterThan(16 * 1024 * 1024);
    for (const name of ['ingest', 'classify', 'monitor']) expect(config.services[name]!.environment?.KAFKA_BROKERS, name).toBe('kafka:9092');
  });

  it('mounts the camera folder into ingest and reserves a GPU for classify-gpu', () => {
    const ingest = config.services.ingest;
    assert(ingest, 'a ingest service in the compose file');
    expect(JSON.stringify(ingest.volumes)).toContain('/srv/camera1');
    expect(ingest.environment?.CRYSTALWATCH_CAMERAS).toBe('camera1=/frames/camera1');
    const devices = config.services['classify-gpu']!.deploy?.resources?.reservations?.devices ?? [];
    expect(devices).toEqual([{ driver: 'nvidia', count: 1, capabilities: ['gpu'] }]);
    expect(config.services['classify-gpu']!.profiles).toEqual(['gpu']);
  });

  it('builds every stage from the repository Dockerfile and runs its entry point with the stages it names', () => {
    const stageNames = ['ingest', 'classify', 'classify-gpu', 'monitor'];
    for (const name of [...stageNames, 'simulator']) expect(config.services[name]!.build, name).toEqual({ context: root, dockerfile: 'Dockerfile' });
    for (const name of stageNames) {
      const service = config.services[name]!;
      // No override: the container runs the image's ENTRYPOINT + CMD, i.e. `crystalwatch run`.
      expect([service.entrypoint, service.command], name).toEqual([undefined, undefined]);
      expect(service.environment?.CRYSTALWATCH_STAGES, name).toMatch(/^[a-z]+(,[a-z]+)*$/);
    }
    expect(config.services.monitor?.environment?.CRYSTALWATCH_STAGES?.split(',')).toContain('web');
  });

  it('runs the simulator with options the `simulate frames` command accepts', () => {
    const simulator = config.services.simulator;
    assert(simulator, 'a simulator service in the compose file');
    const { entrypoint, command } = simulator;
    expect(entrypoint).toEqual(['crystalwatch', 'simulate', 'frames']);
    expect(command).toEqual(['--out', '/frames/camera1', '--camera', 'camera1', '--fps', '2', '--pg-onset', '600']);
    // The same arguments, into a temp folder and for one second of batch, with the real command.
    const out = mkdtempSync(join(tmpdir(), 'crystalwatch-compose-sim-'));
    try {
      const args = (command as string[]).map((a) => (a === '/frames/camera1' ? out : a));
      const run = spawnSync(
        process.execPath,
        [join(root, 'bin', 'crystalwatch.js'), ...(entrypoint as string[]).slice(1), ...args, '--duration', '1', '--fast', '--size', '160x120'],
        { encoding: 'utf8', timeout: 60_000 },
      );
      expect(run.status, run.stderr).toBe(0);
      expect(readdirSync(out).filter((f) => f.startsWith('camera1-') && f.endsWith('.png'))).toHaveLength(2);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it.skipIf(!onPath('promtool'))(
    `gives Prometheus a config promtool accepts, with the compose targets and our rules${onPath('promtool') ? '' : skipped('promtool')}`,
    () => {
      const command = config.services.prometheus?.command;
      const script = Array.isArray(command) ? command.join(' ') : String(command);
      const [rewrite = ''] = script.split(' && exec ');
      const dir = mkdtempSync(join(tmpdir(), 'crystalwatch-compose-prom-'));
      try {
        // Run the same rewrite the container runs, on the same file, then point the rules at this checkout.
        const local = rewrite
          .replace('> /prometheus/prometheus.yml', `> ${join(dir, 'rewritten.yml')}`)
          .replace('/etc/prometheus/crystalwatch.yml', resolve(root, 'deploy/prometheus/prometheus.yml'));
        execFileSync('sh', ['-c', local]);
        const rewritten = readFileSync(join(dir, 'rewritten.yml'), 'utf8');
        expect(rewritten).toContain("['ingest:8080', 'classify:8080', 'monitor:8080']");
        expect(rewritten).toContain("['alertmanager:9093']");
        expect(rewritten).not.toMatch(/^\s*- targets: \['127\.0\.0\.1/m);
        writeFileSync(join(dir, 'prometheus.yml'), rewritten.replaceAll('/etc/prometheus/rules/', `${resolve(root, 'deploy/prometheus/rules')}/`));
        const out = execFileSync('promtool', ['check', 'config', join(dir, 'prometheus.yml')], { encoding: 'utf8' });
        expect(out).toMatch(/SUCCESS/);
        expect(out).toMatch(/rules found/);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );

  it('provisions Grafana with the Prometheus datasource and the generated dashboards', () => {
    const grafana = config.services.grafana;
    assert(grafana, 'a grafana service in the compose file');
    const mounts = JSON.stringify(grafana.volumes);
    expect(mounts).toContain(`${root}/dashboards`);
    expect(mounts).toContain(`${root}/deploy/grafana/provisioning`);
    const datasources = parse(readFileSync('deploy/grafana/provisioning/datasources/prometheus.yml', 'utf8')) as {
      datasources: { uid: string; type: string; url: string }[];
    };
    expect(datasources.datasources[0]).toMatchObject({ uid: 'prometheus', type: 'prometheus', url: 'http://prometheus:9090' });
    const providers = parse(readFileSync('deploy/grafana/provisioning/dashboards/crystalwatch.yml', 'utf8')) as { providers: { options: { path: string } }[] };
    expect(providers.providers[0]!.options.path).toBe('/var/lib/grafana/dashboards/crystalwatch');
    expect(mounts).toContain('/var/lib/grafana/dashboards/crystalwatch');
    expect(existsSync('dashboards/impurity.json')).toBe(true);
  });
});

// --- Kubernetes ------------------------------------------------------------------------------

interface K8sObject {
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: {
    replicas?: number;
    template?: {
      metadata?: { annotations?: Record<string, string> };
      spec: { containers: K8sContainer[]; volumes?: { name: string; persistentVolumeClaim?: { claimName: string } }[] };
    };
  };
}
interface K8sContainer {
  name: string;
  image: string;
  env?: { name: string; value?: string }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
}

describe.skipIf(!onPath('kubectl'))(`kubernetes (kustomize)${onPath('kubectl') ? '' : skipped('kubectl')}`, () => {
  let objects: K8sObject[] = [];
  beforeAll(() => {
    objects = parseAllDocuments(execFileSync('kubectl', ['kustomize', 'deploy/k8s'], { cwd: root, encoding: 'utf8' })).map((d) => {
      expect(d.errors).toEqual([]);
      return d.toJSON() as K8sObject;
    });
  });
  const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
  const deployment = (name: string) => byKind('Deployment').find((d) => d.metadata.name === name)!;

  it('builds with every object in the crystalwatch namespace', () => {
    expect(
      byKind('Deployment')
        .map((d) => d.metadata.name)
        .sort(),
    ).toEqual(['classify', 'ingest', 'monitor']);
    expect(byKind('ConfigMap')).toHaveLength(1);
    expect(byKind('Secret')).toHaveLength(1);
    for (const o of objects.filter((o) => !['Namespace', 'PersistentVolume'].includes(o.kind)))
      expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe('crystalwatch');
  });

  it('probes /healthz and /readyz, takes config from the ConfigMap and is scraped by Prometheus', () => {
    const configMap = byKind('ConfigMap')[0]!.metadata.name;
    for (const d of byKind('Deployment')) {
      const container = d.spec!.template!.spec.containers[0]!;
      expect(container.livenessProbe?.httpGet?.path, d.metadata.name).toBe('/healthz');
      expect(container.readinessProbe?.httpGet?.path, d.metadata.name).toBe('/readyz');
      expect(container.envFrom?.map((e) => e.configMapRef?.name).filter(Boolean)).toEqual([configMap]);
      expect(container.image).toBe('registry.example.com/crystalwatch:0.1.0');
      expect(d.spec!.template!.metadata?.annotations?.['prometheus.io/scrape']).toBe('true');
    }
    expect(deployment('monitor').spec!.template!.spec.containers[0]!.envFrom?.some((e) => e.secretRef)).toBe(true);
  });

  it('requests an NVIDIA GPU for classify, with replicas no more than the frames partitions', () => {
    const classify = deployment('classify');
    const resources = classify.spec!.template!.spec.containers[0]!.resources!;
    expect(String(resources.limits?.['nvidia.com/gpu'])).toBe('1');
    const data = (byKind('ConfigMap')[0] as unknown as { data: Record<string, string> }).data;
    const partitions = Number(data.CRYSTALWATCH_KAFKA_PARTITIONS);
    expect(classify.spec!.replicas).toBeLessThanOrEqual(partitions);
    const hpa = byKind('HorizontalPodAutoscaler')[0] as unknown as { spec: { maxReplicas: number } };
    expect(hpa.spec.maxReplicas).toBeLessThanOrEqual(partitions);
  });

  it('runs ingest beside the camera share with a persistent ledger, one replica at a time', () => {
    const ingest = deployment('ingest');
    expect(ingest.spec!.replicas).toBe(1);
    expect((ingest.spec as unknown as { strategy: { type: string } }).strategy.type).toBe('Recreate');
    const claims = ingest.spec!.template!.spec.volumes!.map((v) => v.persistentVolumeClaim?.claimName);
    expect(claims).toEqual(['camera-share', 'ingest-data']);
    const pvcs = byKind('PersistentVolumeClaim')
      .map((p) => p.metadata.name)
      .sort();
    expect(pvcs).toEqual(['camera-share', 'ingest-data']);
  });
});
