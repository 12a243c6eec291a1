/**
 * The plant integration end to end, with the real `crystalwatch run` (embedded broker, the
 * shipped model, a simulated camera): a batch is started through the API, PG appears, the
 * control system reads the camera and the alarm over OPC UA (StartRun/EndRun too), an operator
 * acknowledges with a comment, the batch is ended with the real `crystalwatch run-control` CLI,
 * and then: the batch report (HTML, PDF) is in <dataDir>/reports/<run>/, the audit trail holds
 * the whole story through `GET /api/audit`, `crystalwatch audit verify` says it is intact, and
 * SIGTERM exits with 0.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { AttributeIds, DataType, OPCUACertificateManager, OPCUAClient, type ClientSession } from 'node-opcua';
import { afterAll, describe, expect, it } from 'vitest';
import type { Alert } from '../src/bus/messages.js';
import { NAMESPACE_URI } from '../src/opcua/index.js';
import { cli, cliProcesses } from './helpers/demo.js';
import { freePort } from './helpers/ports.js';
import { waitFor, waitForExit } from './helpers/wait.js';

const TOKEN = 'plant-test-token';
const { start, killAll } = cliProcesses();
let dir = '';
let client: OPCUAClient | undefined;
let session: ClientSession | undefined;

afterAll(async () => {
  await session?.close().catch(() => undefined);
  await client?.disconnect().catch(() => undefined);
  killAll();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('crystalwatch run in a plant: runs, OPC UA, acknowledgement, batch report, audit trail', () => {
  it('tells the whole story of one batch', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cw-plant-'));
    const watch = path.join(dir, 'cam-1');
    const dataDir = path.join(dir, 'data');
    await mkdir(watch, { recursive: true });
    const webPort = await freePort();
    const opcuaPort = await freePort();
    const url = `http://127.0.0.1:${webPort}`;
    const config = path.join(dir, 'plant.json');
    await writeFile(
      config,
      JSON.stringify({
        dataDir,
        web: { port: webPort, token: TOKEN },
        opcua: { enabled: true, port: opcuaPort },
        cameras: [{ id: 'cam-1', watch }],
        alert: { resolveAfterCleanFrames: 1000 },
        log: { level: 'warn' },
      }),
    );
    const api = async (method: string, route: string, body?: unknown) => {
      const response = await fetch(`${url}${route}`, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };

    const run = start(['run', '--config', config]);
    await waitFor(() => fetch(`${url}/readyz`).then((r) => r.ok), { timeout: 120_000, message: 'crystalwatch run to be ready' });
    const started = await api('POST', '/api/runs', { action: 'start', runId: 'B-17', camera: 'cam-1', by: 'shift-lead' });
    expect(started, JSON.stringify(started.body)).toMatchObject({ status: 201 });
    expect((await fetch(`${url}/api/audit`)).status).toBe(401);

    start(['simulate', 'frames', '--out', watch, '--fps', '4', '--pg-onset', '4', '--seed', '11']);
    const alert = await waitFor(
      async () => ((await (await fetch(`${url}/api/alerts`)).json()) as Alert[]).find((a) => a.state === 'firing' && (a.reason ?? 'pg-onset') === 'pg-onset'),
      { timeout: 120_000, message: 'the PG onset alert' },
    );
    expect(alert.runId).toBe('B-17');

    // The control system's view over OPC UA.
    client = OPCUAClient.create({
      endpointMustExist: false,
      connectionStrategy: { maxRetry: 3, initialDelay: 200 },
      clientCertificateManager: new OPCUACertificateManager({ rootFolder: path.join(dir, 'client-pki'), automaticallyAcceptUnknownCertificate: true }),
    });
    await client.connect(`opc.tcp://127.0.0.1:${opcuaPort}`);
    session = await client.createSession();
    const ns = (await session.readNamespaceArray()).indexOf(NAMESPACE_URI);
    const node = (leaf: string) => `ns=${ns};s=crystalwatch/Cameras/cam-1/${leaf}`;
    const read = async (leaf: string) => (await session!.read({ nodeId: node(leaf), attributeId: AttributeIds.Value })).value.value as unknown;
    await waitFor(async () => (await read('Alarm')) === true, { timeout: 10_000, message: 'OPC UA Alarm of cam-1 to be true' });
    expect(await read('RunId')).toBe('B-17');
    expect(await read('PPG')).toBeGreaterThan(0);
    expect(await read('CameraState')).toBe('ok');
    expect(await (await fetch(`${url}/metrics`)).text()).toContain('crystalwatch_run_info{camera="cam-1",run="B-17"} 1');

    const acked = await api('POST', `/api/alerts/${alert.id}/ack`, { by: 'operator-3', comment: 'batch stopped at the valve' });
    expect(acked).toMatchObject({ status: 200, body: { acknowledgedBy: 'operator-3', acknowledgedComment: 'batch stopped at the valve' } });

    // A second batch started and ended from OPC UA, the first ended with the real CLI.
    const callMethod = (method: string, args: string[]) =>
      session!.call({
        objectId: `ns=${ns};s=crystalwatch`,
        methodId: `ns=${ns};s=crystalwatch/${method}`,
        inputArguments: args.map((value) => ({ dataType: DataType.String, value })),
      });
    const ended = spawnSync(process.execPath, [cli, 'run-control', 'end', '--camera', 'cam-1', '--url', url, '--token', TOKEN], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(ended.status, ended.stderr).toBe(0);
    expect(JSON.parse(ended.stdout)).toMatchObject({ ended: [{ runId: 'B-17', camera: 'cam-1' }] });
    expect((await callMethod('StartRun', ['B-18', 'cam-1'])).statusCode.isGood()).toBe(true);
    await waitFor(async () => (await api('GET', '/api/runs')).body.runs && JSON.stringify((await api('GET', '/api/runs')).body).includes('B-18'), {
      timeout: 10_000,
      message: 'run B-18 from OPC UA to be open',
    });
    expect((await callMethod('EndRun', ['cam-1'])).statusCode.isGood()).toBe(true);

    // The batch report of B-17, written at its end.
    const reportDir = path.join(dataDir, 'reports', 'B-17');
    await waitFor(() => existsSync(path.join(reportDir, 'report.pdf')), { timeout: 90_000, message: `report.pdf in ${reportDir}` });
    const html = await readFile(path.join(reportDir, 'report.html'), 'utf8');
    expect(html).toContain('B-17');
    expect(html).toContain('operator-3');
    expect((await readFile(path.join(reportDir, 'report.pdf'))).subarray(0, 5).toString()).toBe('%PDF-');

    // The audit trail: the whole story, in order.
    const kinds = async () => (await api('GET', '/api/audit?limit=1000')).body.records as { kind: string; data: Record<string, unknown> }[];
    await waitFor(async () => (await kinds()).some((r) => r.kind === 'run.ended' && r.data.runId === 'B-18'), {
      timeout: 20_000,
      message: 'run.ended of B-18 in the audit trail',
    });
    const records = await kinds();
    const story = records.map((r) => r.kind);
    expect(story[0]).toBe('config.loaded');
    for (const kind of ['run.started', 'alert.fired', 'alert.acknowledged', 'run.ended']) expect(story, kind).toContain(kind);
    expect(story.indexOf('run.started')).toBeLessThan(story.indexOf('alert.fired'));
    expect(records.find((r) => r.kind === 'alert.acknowledged')?.data).toMatchObject({
      alertId: alert.id,
      who: 'operator-3',
      comment: 'batch stopped at the valve',
    });

    run.kill('SIGTERM');
    expect(await waitForExit(run, { timeout: 10_000, message: 'crystalwatch run to exit after SIGTERM' })).toBe(0);
    // B-18's report: written (at its end or at the shutdown), or owed to the next start — never lost.
    const pending = JSON.parse(await readFile(path.join(dataDir, 'reports', 'pending.json'), 'utf8')) as { runs: string[] };
    expect(existsSync(path.join(dataDir, 'reports', 'B-18', 'report.pdf')) || pending.runs.includes('B-18')).toBe(true);
    const verify = spawnSync(process.execPath, [cli, 'audit', 'verify', '--data-dir', dataDir], { encoding: 'utf8', timeout: 30_000 });
    expect(verify.status, verify.stdout + verify.stderr).toBe(0);
  }, 400_000);
});
