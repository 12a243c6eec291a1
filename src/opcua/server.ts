/**
 * crystalwatch's OPC UA server: per-camera values, the PG onset alarm and run control for a
 * plant's control system (DCS/SCADA). The address space is in address-space.ts, the alarm in
 * alarms.ts, the methods in methods.ts, security in security.ts; this file owns the lifecycle.
 *
 *   const opcua = new OpcUaServer({ security: 'None', dataDir, onAcknowledge, onStartRun, onEndRun });
 *   await opcua.start();                 // loads node-opcua, generates the certificate on first start
 *   opcua.updateCamera('cam-1', { pPG: 0.12, predicted: 'cex' });   // per frame: cheap, coalesced
 *   opcua.raiseAlarm({ id, camera, runId, startsAt, message });
 *   await opcua.close();                 // idempotent; frees the port, leaves no timer
 */
import type { OPCUACertificateManager, OPCUAServer } from 'node-opcua';
import { silentLogger, type Logger } from '../config/logger.js';
import { addCameraNodes, addCrystalwatchNodes, writeCameraValues, type CameraNodes, type CrystalwatchNodes } from './address-space.js';
import { PgOnsetAlarms, type PgAlarm } from './alarms.js';
import { PendingCameraValues, type CameraValues } from './camera-values.js';
import { loadOpcUa } from './load.js';
import { addRunMethods } from './methods.js';
import { resolveOpcUaOptions, type OpcUaServerOptions, type ResolvedOpcUaOptions } from './options.js';
import { pkiFolder, securitySettings, serverCertificateFile } from './security.js';

type OpcUa = typeof import('node-opcua');

/** Values reach the address space at most this often; a burst of frames costs one write per variable. */
export const FLUSH_INTERVAL_MS = 100;
/** A camera's nodes and condition take ~15 ms to build: many new cameras are spread over flushes, not one stall. */
const NEW_CAMERAS_PER_FLUSH = 4;

export class OpcUaServerClosedError extends Error {
  override readonly name = 'OpcUaServerClosedError';
  constructor(what: string) {
    super(`opcua: ${what} after close(); the OPC UA server is shut down (a new process start brings it back)`);
  }
}

export class OpcUaServerNotStartedError extends Error {
  override readonly name = 'OpcUaServerNotStartedError';
  constructor(what: string) {
    super(`opcua: ${what} before start() finished; await start() first`);
  }
}

interface Running {
  opcua: OpcUa;
  server: OPCUAServer;
  nodes: CrystalwatchNodes;
  cameras: Map<string, CameraNodes>;
  alarms: PgOnsetAlarms;
  certificateManagers: OPCUACertificateManager[];
}

export class OpcUaServer {
  private readonly options: ResolvedOpcUaOptions;
  private readonly logger: Logger;
  private readonly pending: PendingCameraValues;
  private starting: Promise<void> | undefined;
  private closing: Promise<void> | undefined;
  private running: Running | undefined;
  private flushTimer: NodeJS.Timeout | undefined;

  /** Throws OpcUaOptionsError for unsafe or invalid options (e.g. security None on a non-loopback host). */
  constructor(options: OpcUaServerOptions) {
    this.options = resolveOpcUaOptions(options);
    this.logger = (options.logger ?? silentLogger).child({ stage: 'opcua' });
    this.pending = new PendingCameraValues(this.options.maxCameras);
  }

  /** The port listened on (the ephemeral one when `port: 0`); 0 before start. */
  get port(): number {
    return this.running?.server.endpoints[0]?.port ?? 0;
  }

  /** `opc.tcp://host:port`: what a client connects to. */
  get endpointUrl(): string {
    const host = this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host;
    return `opc.tcp://${host}:${this.port}`;
  }

  /** The certificate a client must trust for SignAndEncrypt (generated on first start). */
  get certificateFile(): string {
    return serverCertificateFile(this.options.dataDir);
  }

  get cameras(): string[] {
    return this.pending.cameras;
  }

  /** Loads node-opcua, builds the address space and listens. A second call returns the first one's promise. */
  start(): Promise<void> {
    if (this.closing) return Promise.reject(new OpcUaServerClosedError('start()'));
    this.starting ??= this.listen();
    return this.starting;
  }

  /** Idempotent: stops listening (the port is free when it resolves), ends sessions, clears timers. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /**
   * Merges `values` into the camera's pending values; they are written within FLUSH_INTERVAL_MS.
   * The camera's nodes are created on its first update (before start: at start). Beyond
   * `maxCameras` cameras, updates of new ones are dropped (logged once per camera). A no-op after close.
   */
  updateCamera(camera: string, values: CameraValues): void {
    if (this.closing) return;
    if (this.pending.admit(camera) === 'full') {
      if (this.pending.noteRefused(camera)) {
        this.logger.warn(
          { camera, maxCameras: this.options.maxCameras },
          `OPC UA: camera ${camera} not published, the server already shows ${this.options.maxCameras} cameras; raise opcua maxCameras`,
        );
      }
      return;
    }
    this.pending.merge(camera, values);
    this.scheduleFlush();
  }

  /** Shows an alert (PG onset) as the camera's active, unacknowledged PgOnset condition. */
  raiseAlarm(alarm: PgAlarm): void {
    const running = this.require('raiseAlarm');
    if (this.pending.admit(alarm.camera) === 'full') {
      throw new Error(
        `opcua: alert ${alarm.id} of camera ${alarm.camera} cannot be shown, the server already shows ${this.options.maxCameras} cameras; raise opcua maxCameras`,
      );
    }
    this.cameraNodes(running, alarm.camera);
    running.alarms.raise(alarm);
  }

  /** The alert ended: the condition goes inactive (it stays in alarm lists until acknowledged). */
  resolveAlarm(alertId: string): void {
    this.require('resolveAlarm').alarms.resolve(alertId);
  }

  /** The alert was acknowledged elsewhere (web page, API): the condition shows it, onAcknowledge is not called. */
  markAcknowledged(alertId: string, by: string): void {
    this.require('markAcknowledged').alarms.markAcknowledged(alertId, by);
  }

  private require(what: string): Running {
    if (this.closing) throw new OpcUaServerClosedError(what);
    if (!this.running) throw new OpcUaServerNotStartedError(what);
    return this.running;
  }

  private async listen(): Promise<void> {
    const opcua = await loadOpcUa(this.logger);
    if (this.closing) throw new OpcUaServerClosedError('start()');
    const { host, port, security, users } = this.options;
    const settings = securitySettings(opcua, this.options);
    const server = new opcua.OPCUAServer({
      host,
      port,
      // What endpoint URLs advertise; a wildcard bind advertises the machine's name (node-opcua's default).
      hostname: ['0.0.0.0', '::', ''].includes(host) ? undefined : host,
      ...settings.serverOptions,
      serverInfo: { applicationName: { text: 'crystalwatch', locale: 'en' }, productUri: 'urn:crystalwatch' },
      buildInfo: { productName: 'crystalwatch', productUri: 'urn:crystalwatch', manufacturerName: 'crystalwatch' },
    });
    let step = `create the certificate and address space in ${pkiFolder(this.options.dataDir)} (is it writable?)`;
    try {
      await server.initialize();
      step = 'build the crystalwatch address space';
      const nodes = addCrystalwatchNodes(opcua, server.engine.addressSpace!);
      addRunMethods(opcua, nodes, this.options, this.logger);
      const alarms = new PgOnsetAlarms(opcua, server.engine.addressSpace!, nodes, this.options.onAcknowledge, this.logger);
      this.running = { opcua, server, nodes, cameras: new Map(), alarms, certificateManagers: settings.certificateManagers };
      this.flush();
      step = `listen on ${host}:${port} (is the port free? set opcua.port)`;
      await server.start();
    } catch (err) {
      this.running?.alarms.dispose();
      this.running = undefined;
      await shutdownQuietly(server, settings.certificateManagers);
      throw new Error(`opcua: cannot ${step}: ${(err as Error).message}`, { cause: err });
    }
    this.logger.info(
      { endpoint: this.endpointUrl, security, users: users.length, certificate: this.certificateFile },
      `OPC UA server listening on ${this.endpointUrl} (security ${security}${users.length > 0 ? ', user/password' : ', anonymous allowed'})`,
    );
  }

  private async shutdown(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    await this.starting?.catch(() => {});
    const running = this.running;
    this.running = undefined;
    if (!running) return;
    running.alarms.dispose();
    await shutdownQuietly(running.server, running.certificateManagers, this.logger);
  }

  private scheduleFlush(): void {
    if (!this.running || this.flushTimer) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flush();
    }, FLUSH_INTERVAL_MS);
  }

  private flush(): void {
    const running = this.running;
    if (!running) return;
    const now = new Date();
    let added = 0;
    for (const [camera, values] of this.pending.take()) {
      if (!running.cameras.has(camera) && added++ >= NEW_CAMERAS_PER_FLUSH) {
        this.pending.merge(camera, values); // next flush
        continue;
      }
      writeCameraValues(running.opcua, this.cameraNodes(running, camera), values, now);
    }
    if (this.pending.hasPending) this.scheduleFlush();
  }

  private cameraNodes(running: Running, camera: string): CameraNodes {
    let nodes = running.cameras.get(camera);
    if (!nodes) {
      nodes = addCameraNodes(running.opcua, running.nodes, camera);
      running.alarms.attach(nodes);
      running.cameras.set(camera, nodes);
      this.logger.info({ camera }, `OPC UA: camera ${camera} added`);
    }
    return nodes;
  }
}

/** Shuts node-opcua down without waiting for clients (timeout 0) and releases the PKI watchers. */
async function shutdownQuietly(server: OPCUAServer, certificateManagers: OPCUACertificateManager[], logger?: Logger): Promise<void> {
  try {
    await server.shutdown(0);
  } catch (err) {
    logger?.warn({ err }, 'OPC UA server shutdown failed');
  }
  for (const manager of certificateManagers) await manager.dispose().catch(() => {});
}
