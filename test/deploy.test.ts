/**
 * What CI can check of the deployment without Docker or a cluster: docker-compose 1.29 accepts
 * the compose file (with every profile), kustomize builds the manifests, the manifests have the
 * probes and the GPU request they promise, Prometheus (promtool) accepts the config the compose
 * service writes at start, and Grafana's provisioning points at the dashboards we generate.
 */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parse, parseAllDocuments } from 'yaml';

const root = process.cwd();
const compose = (...args: string[]) => execFileSync('docker-compose', ['-f', 'deploy/docker-compose.yml', ...args], { cwd: root, encoding: 'utf8', env: { ...process.env, CAMERA_DIR: '/srv/camera1' } });

interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile: string };
  environment?: Record<string, string>;
  volumes?: (string | { source?: string; target: string })[];
  command?: string[] | string;
  profiles?: string[];
  deploy?: { resources?: { reservations?: { devices?: { driver?: string; count?: number; capabilities?: string[] }[] } } };
  ports?: unknown[];
}

describe('docker-compose', () => {
  const config = parse(compose('--profile', 'gpu', '--profile', 'simulator', 'config')) as { services: Record<string, ComposeService>; volumes: Record<string, unknown> };

  it('is accepted by docker-compose 1.29 with every service and profile', () => {
    expect(Object.keys(config.services).sort()).toEqual(['alertmanager', 'classify', 'classify-gpu', 'grafana', 'ingest', 'kafka', 'monitor', 'prometheus', 'simulator']);
    // `up` without --profile leaves the GPU classifier and the simulator off.
    const profiled = Object.entries(config.services).filter(([, s]) => s.profiles?.length).map(([name, s]) => `${name}:${s.profiles!.join(',')}`);
    expect(profiled.sort()).toEqual(['classify-gpu:gpu', 'simulator:simulator']);
  });

  it('runs Kafka in KRaft mode and sizes it for image records', () => {
    const kafka = config.services.kafka;
    expect(kafka.image).toMatch(/^apache\/kafka:/);
    expect(kafka.environment?.KAFKA_PROCESS_ROLES).toBe('broker,controller');
    expect(Number(kafka.environment?.KAFKA_MESSAGE_MAX_BYTES)).toBeGreaterThan(16 * 1024 * 1024);
    for (const name of ['ingest', 'classify', 'monitor']) expect(config.services[name].environment?.KAFKA_BROKERS, name).toBe('kafka:9092');
  });

  it('mounts the camera folder into ingest, reserves a GPU for classify-gpu and builds the repo Dockerfile', () => {
    const ingest = config.services.ingest;
    expect(JSON.stringify(ingest.volumes)).toContain('/srv/camera1');
    expect(ingest.environment?.CRYSTALWATCH_CAMERAS).toBe('camera1=/frames/camera1');
    const devices = config.services['classify-gpu'].deploy?.resources?.reservations?.devices ?? [];
    expect(devices).toEqual([{ driver: 'nvidia', count: 1, capabilities: ['gpu'] }]);
    expect(config.services['classify-gpu'].profiles).toEqual(['gpu']);
    expect(config.services.simulator.command).toEqual(['--out', '/frames/camera1', '--camera', 'camera1', '--fps', '2', '--pg-onset', '600']);
    expect(config.services.classify.build).toEqual({ context: root, dockerfile: 'Dockerfile' });
    expect(existsSync(join(root, 'Dockerfile'))).toBe(true);
    const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
    expect(dockerfile).toContain('ARG NODE_IMAGE=node:20-bookworm-slim');
    expect(dockerfile).toMatch(/FROM \$\{NODE_IMAGE\} AS build[\s\S]*npm ci[\s\S]*ENTRYPOINT \["crystalwatch"\]/);
  });

  it('gives Prometheus a config promtool accepts, with the compose targets and our rules', () => {
    const command = config.services.prometheus.command;
    const script = Array.isArray(command) ? command.join(' ') : String(command);
    const [rewrite] = script.split(' && exec ');
    const dir = mkdtempSync(join(tmpdir(), 'crystalwatch-compose-prom-'));
    try {
      // Run the same rewrite the container runs, on the same file, then point the rules at this checkout.
      const local = rewrite.replace('> /prometheus/prometheus.yml', `> ${join(dir, 'rewritten.yml')}`).replace('/etc/prometheus/crystalwatch.yml', resolve(root, 'deploy/prometheus/prometheus.yml'));
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
  });

  it('provisions Grafana with the Prometheus datasource and the generated dashboards', () => {
    const grafana = config.services.grafana;
    const mounts = JSON.stringify(grafana.volumes);
    expect(mounts).toContain(`${root}/dashboards`);
    expect(mounts).toContain(`${root}/deploy/grafana/provisioning`);
    const datasources = parse(readFileSync('deploy/grafana/provisioning/datasources/prometheus.yml', 'utf8')) as { datasources: { uid: string; type: string; url: string }[] };
    expect(datasources.datasources[0]).toMatchObject({ uid: 'prometheus', type: 'prometheus', url: 'http://prometheus:9090' });
    const providers = parse(readFileSync('deploy/grafana/provisioning/dashboards/crystalwatch.yml', 'utf8')) as { providers: { options: { path: string } }[] };
    expect(providers.providers[0].options.path).toBe('/var/lib/grafana/dashboards/crystalwatch');
    expect(mounts).toContain('/var/lib/grafana/dashboards/crystalwatch');
    expect(existsSync('dashboards/impurity.json')).toBe(true);
  });
});

interface K8sObject {
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: {
    replicas?: number;
    template?: { metadata?: { annotations?: Record<string, string> }; spec: { containers: K8sContainer[]; volumes?: { name: string; persistentVolumeClaim?: { claimName: string } }[] } };
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

describe('kubernetes (kustomize)', () => {
  const objects = parseAllDocuments(execFileSync('kubectl', ['kustomize', 'deploy/k8s'], { cwd: root, encoding: 'utf8' })).map((d) => {
    expect(d.errors).toEqual([]);
    return d.toJSON() as K8sObject;
  });
  const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
  const deployment = (name: string) => byKind('Deployment').find((d) => d.metadata.name === name)!;

  it('builds with every object in the crystalwatch namespace', () => {
    expect(byKind('Deployment').map((d) => d.metadata.name).sort()).toEqual(['classify', 'ingest', 'monitor']);
    expect(byKind('ConfigMap')).toHaveLength(1);
    expect(byKind('Secret')).toHaveLength(1);
    for (const o of objects.filter((o) => !['Namespace', 'PersistentVolume'].includes(o.kind))) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe('crystalwatch');
  });

  it('probes /healthz and /readyz, takes config from the ConfigMap and is scraped by Prometheus', () => {
    const configMap = byKind('ConfigMap')[0].metadata.name;
    for (const d of byKind('Deployment')) {
      const container = d.spec!.template!.spec.containers[0];
      expect(container.livenessProbe?.httpGet?.path, d.metadata.name).toBe('/healthz');
      expect(container.readinessProbe?.httpGet?.path, d.metadata.name).toBe('/readyz');
      expect(container.envFrom?.map((e) => e.configMapRef?.name).filter(Boolean)).toEqual([configMap]);
      expect(container.image).toBe('registry.example.com/crystalwatch:0.1.0');
      expect(d.spec!.template!.metadata?.annotations?.['prometheus.io/scrape']).toBe('true');
    }
    expect(deployment('monitor').spec!.template!.spec.containers[0].envFrom?.some((e) => e.secretRef)).toBe(true);
  });

  it('requests an NVIDIA GPU for classify, with replicas no more than the frames partitions', () => {
    const classify = deployment('classify');
    const resources = classify.spec!.template!.spec.containers[0].resources!;
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
    const pvcs = byKind('PersistentVolumeClaim').map((p) => p.metadata.name).sort();
    expect(pvcs).toEqual(['camera-share', 'ingest-data']);
  });
});
