/**
 * node-opcua is loaded on first use only (importing it costs about 0.6 s and 70 MB of modules
 * nobody needs when OPC UA is off), and its console output is routed into the process logger:
 * node-opcua prints to stdout, which crystalwatch keeps for what machines read (`--json`).
 */
import { format } from 'node:util';
import type { Logger } from '../config/logger.js';

type OpcUa = typeof import('node-opcua');

let loading: Promise<OpcUa> | undefined;
let currentLogger: Logger | undefined;

/**
 * node-opcua-secure-channel probes RSA PKCS#1 v1.5 at import and warns when Node refuses it
 * (CVE-2023-46809). Only the deprecated policies use it and this server does not offer them.
 */
const IRRELEVANT_WARNINGS = [/NODE-OPCUA-W27/, /security-revert=CVE-2023-46809/];

/** Loads node-opcua once per process; later calls get the same module. Its logs go to `logger`. */
export function loadOpcUa(logger: Logger): Promise<OpcUa> {
  currentLogger = logger.child({ component: 'node-opcua' });
  loading ??= import('node-opcua').then((opcua) => {
    opcua.setWarningLogger((_context: unknown, ...args: unknown[]) => {
      const text = format(...args);
      if (IRRELEVANT_WARNINGS.some((pattern) => pattern.test(text))) currentLogger?.debug(text);
      else currentLogger?.warn(text);
    });
    opcua.setErrorLogger((_context: unknown, ...args: unknown[]) => currentLogger?.error(format(...args)));
    return opcua;
  });
  return loading;
}
