/**
 * What an OpcUaServer is given, and the checks that refuse an unsafe or meaningless setup before
 * anything listens. Pure: no node-opcua import here, so validation costs nothing at CLI start.
 */
import { isIP } from 'node:net';
import type { Logger } from '../config/logger.js';

/** `None` is plain text on the wire, allowed on loopback only; `SignAndEncrypt` uses the server's certificate. */
export type OpcUaSecurity = 'None' | 'SignAndEncrypt';
export const OPCUA_SECURITY_MODES: readonly OpcUaSecurity[] = ['None', 'SignAndEncrypt'];

export interface OpcUaUser {
  username: string;
  password: string;
}

/** Who acknowledged from OPC UA, and what they wrote in the Acknowledge call's comment ('' when none). */
export interface OpcUaAcknowledgement {
  by: string;
  comment: string;
}

export interface OpcUaServerOptions {
  /** Interface to bind. Default 127.0.0.1; `0.0.0.0` (or a plant-network address) needs `SignAndEncrypt`. */
  host?: string;
  /** TCP port, default 4840 (the IANA port for OPC UA). 0 = an ephemeral port: read `port` after start. */
  port?: number;
  security: OpcUaSecurity;
  /** When non-empty, sessions must log in with one of these; anonymous sessions are refused. */
  users?: OpcUaUser[];
  /** The process's data dir: the PKI lives in `<dataDir>/opcua/pki` (certificate generated on first start). */
  dataDir: string;
  logger?: Logger;
  /**
   * A client called Acknowledge on a camera's PgOnset condition. The condition is marked acknowledged
   * only after this resolves; when it throws, the client's call fails (BadInternalError) and the
   * condition stays unacknowledged. `by` is the session's user name, or `opcua-anonymous`.
   */
  onAcknowledge(alertId: string, acknowledgement: OpcUaAcknowledgement): Promise<void> | void;
  /** The StartRun method; `camera` is undefined when the client passed '' (every camera). */
  onStartRun(runId: string, camera?: string): Promise<void> | void;
  /** The EndRun method; `camera` is undefined when the client passed '' (every camera). */
  onEndRun(camera?: string): Promise<void> | void;
  /** At most this many cameras get nodes (default 64); updates for more are dropped with a warning. */
  maxCameras?: number;
}

/** The options after defaults and checks. */
export interface ResolvedOpcUaOptions extends Omit<OpcUaServerOptions, 'host' | 'port' | 'users' | 'maxCameras'> {
  host: string;
  port: number;
  users: OpcUaUser[];
  maxCameras: number;
}

export const DEFAULT_OPCUA_PORT = 4840;
export const DEFAULT_MAX_CAMERAS = 64;
/** Same floor as the web token: a shorter password is a typo or a placeholder. */
export const MIN_PASSWORD_LENGTH = 8;

/** The options are not usable; the message names the option, the value and what to do. */
export class OpcUaOptionsError extends Error {
  override readonly name = 'OpcUaOptionsError';
}

/** 127.0.0.0/8, ::1 and `localhost`: the hosts from which no other machine can connect. */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || bare === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(bare);
  return false;
}

/** Defaults filled in; throws OpcUaOptionsError for anything a plant should not run with. */
export function resolveOpcUaOptions(options: OpcUaServerOptions): ResolvedOpcUaOptions {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? DEFAULT_OPCUA_PORT;
  const maxCameras = options.maxCameras ?? DEFAULT_MAX_CAMERAS;
  const users = options.users ?? [];

  if (!OPCUA_SECURITY_MODES.includes(options.security)) {
    throw new OpcUaOptionsError(`opcua security must be one of ${OPCUA_SECURITY_MODES.join(', ')}, got ${JSON.stringify(options.security)}`);
  }
  if (options.security === 'None' && !isLoopbackHost(host)) {
    throw new OpcUaOptionsError(
      `opcua security "None" sends values, methods and passwords unencrypted, so it is allowed only on a loopback host; got host ${JSON.stringify(host)}. ` +
        'Use security "SignAndEncrypt" to listen on a plant network, or host 127.0.0.1',
    );
  }
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new OpcUaOptionsError(`opcua port must be an integer 0–65535 (0 = ephemeral), got ${JSON.stringify(port)}`);
  }
  if (!Number.isInteger(maxCameras) || maxCameras < 1) {
    throw new OpcUaOptionsError(`opcua maxCameras must be an integer ≥ 1, got ${JSON.stringify(maxCameras)}`);
  }
  if (typeof options.dataDir !== 'string' || options.dataDir === '') {
    throw new OpcUaOptionsError('opcua dataDir is required: the server keeps its certificate and trusted clients in <dataDir>/opcua/pki');
  }
  for (const hook of ['onAcknowledge', 'onStartRun', 'onEndRun'] as const) {
    if (typeof options[hook] !== 'function') throw new OpcUaOptionsError(`opcua ${hook} must be a function, got ${typeof options[hook]}`);
  }
  checkUsers(users);
  return { ...options, host, port, users, maxCameras };
}

function checkUsers(users: OpcUaUser[]): void {
  const seen = new Set<string>();
  users.forEach((user, index) => {
    if (typeof user?.username !== 'string' || user.username.trim() === '') {
      throw new OpcUaOptionsError(`opcua users[${index}].username must be a non-empty string`);
    }
    if (typeof user.password !== 'string' || user.password.length < MIN_PASSWORD_LENGTH) {
      throw new OpcUaOptionsError(`opcua users[${index}] (${JSON.stringify(user.username)}): password must be at least ${MIN_PASSWORD_LENGTH} characters`);
    }
    if (seen.has(user.username)) throw new OpcUaOptionsError(`opcua users: ${JSON.stringify(user.username)} is listed twice; keep one entry per user`);
    seen.add(user.username);
  });
}
