/**
 * OPC UA for the plant's control system. Importing this module does not load node-opcua: the
 * server loads it in start(), so a process with OPC UA off pays nothing. See src/opcua/README.md.
 */
export { OpcUaServer, OpcUaServerClosedError, OpcUaServerNotStartedError, FLUSH_INTERVAL_MS } from './server.js';
export {
  DEFAULT_MAX_CAMERAS,
  DEFAULT_OPCUA_PORT,
  MIN_PASSWORD_LENGTH,
  OPCUA_SECURITY_MODES,
  OpcUaOptionsError,
  isLoopbackHost,
  resolveOpcUaOptions,
  type OpcUaAcknowledgement,
  type OpcUaSecurity,
  type OpcUaServerOptions,
  type OpcUaUser,
} from './options.js';
export { ANONYMOUS_USER, CONDITION_NAME, PG_ONSET_SEVERITY, type PgAlarm } from './alarms.js';
export { CAMERA_STATES, CAMERA_VARIABLES, type CameraState, type CameraValues } from './camera-values.js';
export { NAMESPACE_URI } from './address-space.js';
export { pkiFolder, serverCertificateFile } from './security.js';
export { OpcUaAlertSink, pgAlarmOf, showCurrentAlerts, type AlertChangeKind } from './alert-sink.js';
