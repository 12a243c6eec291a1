/**
 * The OPC UA server seen from node-opcua's client, as a SCADA sees it: browse, read, subscribe,
 * the PgOnset alarm (events, acknowledge), run-control methods, and a clean close.
 * One server (security None on loopback, anonymous) is shared by the tests of this file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AttributeIds,
  BrowseDirection,
  ClientMonitoredItem,
  ClientSubscription,
  DataType,
  MethodIds,
  ObjectTypeIds,
  OPCUACertificateManager,
  OPCUAClient,
  StatusCodes,
  TimestampsToReturn,
  constructEventFilter,
  ofType,
  type ClientSession,
  type DataValue,
  type NodeId,
  type Variant,
} from 'node-opcua';
import { pino } from 'pino';
import { NAMESPACE_URI, OpcUaAlertSink, OpcUaServer, showCurrentAlerts, type OpcUaAcknowledgement } from '../src/opcua/index.js';
import type { Alert } from '../src/bus/messages.js';
import { waitFor, waitForEvent } from './helpers/wait.js';
import { alert as buildAlert } from './helpers/messages.js';

let dataDir: string;
let server: OpcUaServer;
let client: OPCUAClient;
let session: ClientSession;
let ns: number;
const acknowledgements: { alertId: string; ack: OpcUaAcknowledgement }[] = [];
const runCalls: string[] = [];
let refuseAcknowledgements = false;
const logLines: { level: number; msg: string }[] = [];

const id = (path: string) => `ns=${ns};s=${path}`;
const cam = (camera: string, leaf?: string) => id(`crystalwatch/Cameras/${camera}${leaf ? `/${leaf}` : ''}`);

async function read(nodeId: string): Promise<DataValue> {
  return session.read({ nodeId, attributeId: AttributeIds.Value });
}

async function call(method: 'StartRun' | 'EndRun', ...args: string[]) {
  const result = await session.call({
    objectId: id('crystalwatch'),
    methodId: id(`crystalwatch/${method}`),
    inputArguments: args.map((value) => ({ dataType: DataType.String, value })),
  });
  return result.statusCode;
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'cw-opcua-'));
  server = new OpcUaServer({
    logger: pino({ level: 'debug' }, { write: (line: string) => void logLines.push(JSON.parse(line)) }),
    port: 0,
    security: 'None',
    dataDir,
    onAcknowledge: (alertId, ack) => {
      if (refuseAcknowledgements) throw new Error('audit trail unavailable');
      acknowledgements.push({ alertId, ack });
    },
    onStartRun: (runId, camera) => {
      if (runId === 'R-taken') throw new Error('run R-taken already started');
      runCalls.push(`start ${runId} ${camera ?? '*'}`);
    },
    onEndRun: (camera) => void runCalls.push(`end ${camera ?? '*'}`),
    maxCameras: 6,
  });
  server.updateCamera('cam-1', { pPG: 0.12, predicted: 'cex', cameraState: 'ok', modelVersion: 'default-1.0.0', runId: 'R-7' });
  await server.start();
  client = OPCUAClient.create({
    endpointMustExist: false,
    connectionStrategy: { maxRetry: 0 },
    clientCertificateManager: new OPCUACertificateManager({ rootFolder: join(dataDir, 'client-pki'), automaticallyAcceptUnknownCertificate: true }),
  });
  await client.connect(server.endpointUrl);
  session = await client.createSession();
  const namespaces = await session.readNamespaceArray();
  ns = namespaces.indexOf(NAMESPACE_URI);
  expect(ns).toBeGreaterThan(0);
});

afterAll(async () => {
  await session?.close().catch(() => {});
  await client?.disconnect().catch(() => {});
  await server?.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe('OPC UA address space', () => {
  it('browses Objects/crystalwatch/Cameras/<id> with the variables, the condition and the methods', async () => {
    const root = await session.browse({
      nodeId: id('crystalwatch'),
      referenceTypeId: 'HasComponent',
      includeSubtypes: true,
      browseDirection: BrowseDirection.Forward,
      resultMask: 63,
    });
    expect(root.references?.map((r) => r.browseName.name).sort()).toEqual(['Cameras', 'EndRun', 'StartRun']);
    // The event hierarchy an alarm client follows: Server → crystalwatch (notifier) → cameras (sources).
    const sources = await session.browse({
      nodeId: id('crystalwatch'),
      referenceTypeId: 'HasEventSource',
      includeSubtypes: false,
      browseDirection: BrowseDirection.Forward,
      resultMask: 63,
    });
    expect(sources.references?.map((r) => r.browseName.name)).toEqual(['cam-1']);
    const notifiers = await session.browse({
      nodeId: 'i=2253',
      referenceTypeId: 'HasNotifier',
      includeSubtypes: false,
      browseDirection: BrowseDirection.Forward,
      resultMask: 63,
    });
    expect(notifiers.references?.map((r) => r.nodeId.toString())).toContain(id('crystalwatch'));
    const cameras = await session.browse(id('crystalwatch/Cameras'));
    expect(cameras.references?.map((r) => r.browseName.name)).toEqual(['cam-1']);
    const camera = await session.browse(cam('cam-1'));
    expect(camera.references?.map((r) => r.browseName.name).sort()).toEqual(
      ['Alarm', 'AlertId', 'CameraState', 'FramesPerSecond', 'LastFrameTime', 'ModelVersion', 'PPG', 'PgOnset', 'Predicted', 'RunId', 'UsableFraction'].sort(),
    );
    const path = await session.translateBrowsePath({
      startingNode: 'i=85', // Objects
      relativePath: {
        elements: ['crystalwatch', 'Cameras', 'cam-1', 'PPG'].map((name) => ({
          referenceTypeId: 'i=33',
          includeSubtypes: true,
          isInverse: false,
          targetName: { namespaceIndex: ns, name },
        })),
      },
    });
    expect(path.statusCode).toBe(StatusCodes.Good);
    expect(path.targets?.[0]!.targetId.toString()).toBe(cam('cam-1', 'PPG'));
  });

  it('reads the values given to updateCamera, typed; fields never given say BadWaitingForInitialData', async () => {
    const ppg = await read(cam('cam-1', 'PPG'));
    expect(ppg.value.dataType).toBe(DataType.Double);
    expect(ppg.value.value).toBe(0.12);
    expect((await read(cam('cam-1', 'Predicted'))).value.value).toBe('cex');
    expect((await read(cam('cam-1', 'CameraState'))).value.value).toBe('ok');
    expect((await read(cam('cam-1', 'ModelVersion'))).value.value).toBe('default-1.0.0');
    expect((await read(cam('cam-1', 'RunId'))).value.value).toBe('R-7');
    expect((await read(cam('cam-1', 'Alarm'))).value.value).toBe(false);
    expect((await read(cam('cam-1', 'FramesPerSecond'))).statusCode).toBe(StatusCodes.BadWaitingForInitialData);

    server.updateCamera('cam-1', { framesPerSecond: 4.5, usableFraction: 0.98, lastFrameTime: '2026-11-22T10:00:03.250Z' });
    const fps = await waitFor(
      async () => {
        const value = await read(cam('cam-1', 'FramesPerSecond'));
        return value.statusCode === StatusCodes.Good && value;
      },
      { timeout: 5000, message: 'FramesPerSecond written' },
    );
    expect(fps.value.value).toBe(4.5);
    expect((await read(cam('cam-1', 'UsableFraction'))).value.value).toBe(0.98);
    const last = await read(cam('cam-1', 'LastFrameTime'));
    expect(last.value.dataType).toBe(DataType.DateTime);
    expect((last.value.value as Date).toISOString()).toBe('2026-11-22T10:00:03.250Z');
    expect((await read(cam('cam-1', 'PPG'))).value.value).toBe(0.12); // a partial update keeps the rest
  });

  it('is read-only for clients', async () => {
    const status = await session.write({
      nodeId: cam('cam-1', 'PPG'),
      attributeId: AttributeIds.Value,
      value: { value: { dataType: DataType.Double, value: 0.99 } },
    });
    expect(status.name).toBe('BadNotWritable');
    expect((await read(cam('cam-1', 'PPG'))).value.value).not.toBe(0.99);
  });

  it('a subscription to PPG sees the values updateCamera gives, the last of a burst included', async () => {
    const subscription = ClientSubscription.create(session, {
      requestedPublishingInterval: 50,
      requestedLifetimeCount: 100,
      requestedMaxKeepAliveCount: 10,
      publishingEnabled: true,
    });
    try {
      const item = ClientMonitoredItem.create(
        subscription,
        { nodeId: cam('cam-1', 'PPG'), attributeId: AttributeIds.Value },
        { samplingInterval: 0, queueSize: 100, discardOldest: true },
        TimestampsToReturn.Both,
      );
      const seen: number[] = [];
      item.on('changed', (value: DataValue) => void seen.push(value.value.value as number));
      await waitFor(() => seen.includes(0.12), { timeout: 5000, message: 'the initial PPG 0.12 on the subscription' });
      server.updateCamera('cam-1', { pPG: 0.31 });
      await waitFor(() => seen.includes(0.31), { timeout: 5000, message: 'PPG 0.31 after updateCamera' });
      for (const pPG of [0.5, 0.6, 0.77]) server.updateCamera('cam-1', { pPG });
      await waitFor(() => seen.at(-1) === 0.77, { timeout: 5000, message: `PPG 0.77 (the last of a burst), saw ${seen.join(', ')}` });
    } finally {
      await subscription.terminate();
    }
  });

  it('adds at most maxCameras cameras (many at once over several flushes); the rest are dropped', async () => {
    for (let i = 2; i <= 7; i++) server.updateCamera(`cam-${i}`, { pPG: i / 10 });
    server.updateCamera('cam-7', { pPG: 0.71 });
    await waitFor(async () => (await read(cam('cam-6', 'PPG'))).value.value === 0.6, { timeout: 5000, message: 'cam-6 published' });
    const cameras = await session.browse(id('crystalwatch/Cameras'));
    const six = ['cam-1', 'cam-2', 'cam-3', 'cam-4', 'cam-5', 'cam-6'];
    expect(cameras.references?.map((r) => r.browseName.name).sort()).toEqual(six);
    expect(server.cameras).toEqual(six);
    expect(
      logLines.filter((line) => line.level === 40 && line.msg.includes('camera cam-7 not published')),
      'one warning for cam-7',
    ).toHaveLength(1);
    expect(() => server.raiseAlarm({ id: 'a-7', camera: 'cam-7', runId: 'R-7', startsAt: new Date().toISOString(), message: 'PG' })).toThrow(/maxCameras/);
  });
});

describe('OPC UA PgOnset alarm', () => {
  interface AlarmEvent {
    eventId: Buffer;
    conditionId: NodeId;
    sourceName: string;
    message: string;
    severity: number;
    active: boolean;
    acked: boolean;
    retain: boolean;
    clientUserId: string | null;
  }
  const fields = ['EventId', 'ConditionId', 'SourceName', 'Message', 'Severity', 'ActiveState.Id', 'AckedState.Id', 'Retain', 'ClientUserId'];

  /** Subscribes to AlarmConditionType events on the Server object, as an alarm client does. */
  async function alarmEvents(): Promise<{ events: AlarmEvent[]; subscription: ClientSubscription }> {
    const subscription = ClientSubscription.create(session, {
      requestedPublishingInterval: 50,
      requestedLifetimeCount: 100,
      requestedMaxKeepAliveCount: 10,
      publishingEnabled: true,
    });
    const item = ClientMonitoredItem.create(
      subscription,
      { nodeId: 'i=2253', attributeId: AttributeIds.EventNotifier },
      { samplingInterval: 0, queueSize: 100, discardOldest: false, filter: constructEventFilter(fields, ofType(`ns=0;i=${ObjectTypeIds.AlarmConditionType}`)) },
      TimestampsToReturn.Both,
    );
    const events: AlarmEvent[] = [];
    item.on('changed', (values: Variant[]) => {
      const v = values.map((variant) => variant.value);
      events.push({
        eventId: v[0],
        conditionId: v[1],
        sourceName: v[2],
        message: v[3]?.text,
        severity: v[4],
        active: v[5],
        acked: v[6],
        retain: v[7],
        clientUserId: v[8],
      });
    });
    await waitForEvent(item, 'initialized', { timeout: 10_000, message: 'the alarm event monitored item to initialize' });
    return { events, subscription };
  }

  const acknowledge = (event: AlarmEvent, comment: string) =>
    session.call({
      objectId: event.conditionId,
      methodId: `ns=0;i=${MethodIds.AcknowledgeableConditionType_Acknowledge}`,
      inputArguments: [
        { dataType: DataType.ByteString, value: event.eventId },
        { dataType: DataType.LocalizedText, value: { text: comment } },
      ],
    });

  it('goes active at raiseAlarm, is acknowledged from the client with the comment reaching onAcknowledge, and clears at resolve', async () => {
    const { events, subscription } = await alarmEvents();
    try {
      server.raiseAlarm({
        id: 'pg-1',
        camera: 'cam-1',
        runId: 'R-7',
        startsAt: '2026-11-22T10:00:05.000Z',
        message: 'PG onset on cam-1 (run R-7): stop the batch',
      });
      const fired = await waitFor(() => events.find((e) => e.active && !e.acked), { timeout: 5000, message: 'an active, unacknowledged PgOnset event' });
      expect(fired).toMatchObject({ sourceName: 'cam-1', message: 'PG onset on cam-1 (run R-7): stop the batch', severity: 800, retain: true });
      expect(fired.conditionId.toString()).toBe(cam('cam-1', 'PgOnset'));
      expect((await read(cam('cam-1', 'Alarm'))).value.value).toBe(true);
      expect((await read(cam('cam-1', 'AlertId'))).value.value).toBe('pg-1');

      server.raiseAlarm({ id: 'pg-1', camera: 'cam-1', runId: 'R-7', startsAt: '2026-11-22T10:00:05.000Z', message: 'again' }); // a redelivery
      const result = await acknowledge(fired, 'batch stopped by operator');
      expect(result.statusCode).toBe(StatusCodes.Good);
      expect(acknowledgements).toEqual([{ alertId: 'pg-1', ack: { by: 'opcua-anonymous', comment: 'batch stopped by operator' } }]);
      const acked = await waitFor(() => events.find((e) => e.acked && e.retain), {
        timeout: 5000,
        message: 'an acknowledged event that is still retained (the alarm is active)',
      });
      expect(acked.active).toBe(true);
      expect(events.filter((e) => e.active && !e.acked)).toHaveLength(1); // the redelivery raised nothing

      const again = await acknowledge(acked, 'twice');
      expect(again.statusCode).toBe(StatusCodes.BadConditionBranchAlreadyAcked);
      expect(acknowledgements).toHaveLength(1);

      server.resolveAlarm('pg-1');
      const cleared = await waitFor(() => events.find((e) => !e.active), { timeout: 5000, message: 'an inactive event after resolveAlarm' });
      expect(cleared).toMatchObject({ acked: true, retain: false });
      expect((await read(cam('cam-1', 'Alarm'))).value.value).toBe(false);
    } finally {
      await subscription.terminate();
    }
  });

  it('shows an acknowledgement made elsewhere (markAcknowledged) without calling onAcknowledge', async () => {
    const { events, subscription } = await alarmEvents();
    try {
      server.raiseAlarm({ id: 'pg-2', camera: 'cam-2', runId: 'R-7', startsAt: new Date().toISOString(), message: 'PG onset on cam-2' });
      await waitFor(() => events.find((e) => e.sourceName === 'cam-2' && e.active), { timeout: 5000, message: 'cam-2 active' });
      server.markAcknowledged('pg-2', 'alice (web)');
      const acked = await waitFor(() => events.find((e) => e.sourceName === 'cam-2' && e.acked), { timeout: 5000, message: 'cam-2 acknowledged' });
      expect(acked.clientUserId).toBe('alice (web)');
      expect(acknowledgements.map((a) => a.alertId)).not.toContain('pg-2');
      server.resolveAlarm('pg-2');
      await waitFor(() => events.find((e) => e.sourceName === 'cam-2' && !e.active && !e.retain), {
        timeout: 5000,
        message: 'cam-2 resolved and gone from alarm lists',
      });
    } finally {
      await subscription.terminate();
    }
  });

  it('refuses the client acknowledgement when the lifecycle does not take it; the condition stays unacknowledged', async () => {
    const { events, subscription } = await alarmEvents();
    try {
      server.raiseAlarm({ id: 'pg-3', camera: 'cam-3', runId: 'R-7', startsAt: new Date().toISOString(), message: 'PG onset on cam-3' });
      const fired = await waitFor(() => events.find((e) => e.sourceName === 'cam-3' && e.active), { timeout: 5000, message: 'cam-3 active' });
      refuseAcknowledgements = true;
      const result = await acknowledge(fired, 'try');
      expect(result.statusCode).toBe(StatusCodes.BadInternalError);
      refuseAcknowledgements = false;
      expect(events.some((e) => e.sourceName === 'cam-3' && e.acked)).toBe(false);
      const retry = await acknowledge(fired, 'retry');
      expect(retry.statusCode).toBe(StatusCodes.Good);
      expect(acknowledgements.at(-1)).toEqual({ alertId: 'pg-3', ack: { by: 'opcua-anonymous', comment: 'retry' } });
    } finally {
      refuseAcknowledgements = false;
      await subscription.terminate();
    }
  });
});

describe('OPC UA alert sink', () => {
  /** Reads a condition field by browse path (e.g. AckedState/Id), as a client without events would. */
  async function conditionField(camera: string, ...path: string[]): Promise<unknown> {
    const target = await session.translateBrowsePath({
      startingNode: cam(camera, 'PgOnset'),
      relativePath: {
        elements: path.map((name) => ({ referenceTypeId: 'i=33', isInverse: false, includeSubtypes: true, targetName: { namespaceIndex: 0, name } })),
      },
    });
    return (await read(target.targets![0]!.targetId.toString())).value.value;
  }
  const alert = (overrides: Partial<Alert>): Alert =>
    buildAlert({ id: 'pg-x', runId: 'R-7', startsAt: '2026-11-22T11:00:00.000Z', evidence: { frames: [] }, ...overrides });

  it('shows the newest PG onset per camera after a restart, and follows deliveries', async () => {
    showCurrentAlerts(server, [
      alert({ id: 'pg-old', startsAt: '2026-11-22T09:00:00.000Z', state: 'resolved', acknowledgedAt: '2026-11-22T09:05:00.000Z' }),
      alert({ id: 'pg-5', acknowledgedAt: '2026-11-22T11:01:00.000Z', acknowledgedBy: 'bob' }),
      alert({ id: 'silent-1', camera: 'cam-2', reason: 'camera-silent', action: 'check-camera' }),
    ]);
    expect((await read(cam('cam-1', 'AlertId'))).value.value).toBe('pg-5');
    expect(await conditionField('cam-1', 'ActiveState', 'Id')).toBe(true);
    expect(await conditionField('cam-1', 'AckedState', 'Id')).toBe(true);
    expect((await read(cam('cam-2', 'AlertId'))).value.value).toBe('pg-2'); // camera-silent alerts are not PG onsets

    const sink = new OpcUaAlertSink(server);
    expect(sink.wants('firing', alert({ reason: 'camera-silent' }))).toBe(false);
    await sink.deliver(alert({ id: 'pg-5', state: 'resolved' }), 'resolved');
    expect((await read(cam('cam-1', 'Alarm'))).value.value).toBe(false);
    expect(await conditionField('cam-1', 'Retain')).toBe(false);
    await sink.deliver(alert({ id: 'pg-6', startsAt: '2026-11-22T12:00:00.000Z' }), 'firing');
    expect(await conditionField('cam-1', 'Message')).toEqual(
      expect.objectContaining({ text: 'PG onset on camera cam-1 (run R-7) since 2026-11-22T12:00:00.000Z: stop the batch' }),
    );
    await sink.deliver(alert({ id: 'pg-6', acknowledgedBy: 'carol' }), 'acknowledged');
    expect(await conditionField('cam-1', 'AckedState', 'Id')).toBe(true);
    expect(await conditionField('cam-1', 'ClientUserId')).toBe('carol');
    expect(acknowledgements.map((a) => a.alertId)).not.toContain('pg-6');
  });
});

describe('OPC UA ConditionRefresh', () => {
  it('replays the retained conditions to a client that connects after they were raised', async () => {
    server.raiseAlarm({ id: 'pg-r', camera: 'cam-4', runId: 'R-7', startsAt: new Date().toISOString(), message: 'PG onset on cam-4' });
    const subscription = ClientSubscription.create(session, {
      requestedPublishingInterval: 50,
      requestedLifetimeCount: 100,
      requestedMaxKeepAliveCount: 10,
      publishingEnabled: true,
    });
    try {
      const item = ClientMonitoredItem.create(
        subscription,
        { nodeId: 'i=2253', attributeId: AttributeIds.EventNotifier },
        { samplingInterval: 0, queueSize: 100, discardOldest: false, filter: constructEventFilter(['SourceName', 'ActiveState.Id', 'Retain']) },
        TimestampsToReturn.Both,
      );
      const sources: string[] = [];
      item.on('changed', (values: Variant[]) => void (values[2]?.value === true && sources.push(values[0]!.value)));
      await waitForEvent(item, 'initialized', { timeout: 10_000, message: 'the ConditionRefresh monitored item to initialize' });
      const refresh = await session.call({
        objectId: `ns=0;i=${ObjectTypeIds.ConditionType}`,
        methodId: `ns=0;i=${MethodIds.ConditionType_ConditionRefresh}`,
        inputArguments: [{ dataType: DataType.UInt32, value: subscription.subscriptionId }],
      });
      expect(refresh.statusCode).toBe(StatusCodes.Good);
      await waitFor(() => sources.includes('cam-4'), { timeout: 5000, message: `cam-4's retained condition in the refresh, saw ${sources.join(', ')}` });
    } finally {
      await subscription.terminate();
    }
  });
});

describe('OPC UA run methods', () => {
  it('StartRun and EndRun call the hooks; "" means every camera', async () => {
    expect(await call('StartRun', 'R-8', 'cam-1')).toBe(StatusCodes.Good);
    expect(await call('StartRun', 'R-9', '')).toBe(StatusCodes.Good);
    expect(await call('EndRun', 'cam-1')).toBe(StatusCodes.Good);
    expect(await call('EndRun', '')).toBe(StatusCodes.Good);
    expect(runCalls).toEqual(['start R-8 cam-1', 'start R-9 *', 'end cam-1', 'end *']);
  });

  it('refuses ids that break the id rule, a missing run id, and what the hook refuses', async () => {
    expect(await call('StartRun', 'R 8; drop', '')).toBe(StatusCodes.BadInvalidArgument);
    expect(await call('StartRun', '', '')).toBe(StatusCodes.BadInvalidArgument);
    expect(await call('EndRun', '../cam')).toBe(StatusCodes.BadInvalidArgument);
    expect(await call('StartRun', 'R-taken', '')).toBe(StatusCodes.BadInvalidState);
    expect(await call('StartRun', 'R-10')).toBe(StatusCodes.BadArgumentsMissing);
    expect(runCalls).toHaveLength(4);
  });
});

describe('OPC UA close', () => {
  it('is idempotent, frees the port and leaves no timer behind', async () => {
    const extra = new OpcUaServer({ port: 0, security: 'None', dataDir, onAcknowledge: () => {}, onStartRun: () => {}, onEndRun: () => {} });
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const timersBefore = timers();
    await extra.start();
    const port = extra.port;
    expect(port).toBeGreaterThan(0);
    const timersRunning = timers();
    extra.updateCamera('cam-9', { pPG: 0.4 });
    expect(timers()).toBe(timersRunning + 1); // the pending flush
    const closing = [extra.close(), extra.close()];
    expect(timers()).toBe(timersRunning); // cleared at once, not left to fire
    await Promise.all(closing);
    await extra.close();
    await new Promise<void>((resolve, reject) => {
      const probe = createServer();
      probe.once('error', reject);
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve()));
    });
    expect(timers(), process.getActiveResourcesInfo().join(', ')).toBeLessThanOrEqual(timersBefore);
    expect(() => extra.raiseAlarm({ id: 'x', camera: 'cam-9', runId: 'R', startsAt: new Date().toISOString(), message: 'x' })).toThrow(/after close/);
    extra.updateCamera('cam-9', { pPG: 0.5 }); // a no-op, not a throw
    await expect(extra.start()).rejects.toThrow(/after close/);
  });
});
