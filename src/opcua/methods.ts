/**
 * Run control from the control system: `StartRun(RunId, Camera)` and `EndRun(Camera)` on
 * `Objects/crystalwatch`. OPC UA methods take every declared argument, so "all cameras" is the
 * empty string. The status says what happened: Good, BadInvalidArgument (an id that breaks the
 * camera/run id rule, also logged with the reason) or BadInvalidState (the hook refused, e.g. a
 * run already started; logged with the hook's message).
 */
import type { ISessionContext, UAMethod, Variant } from 'node-opcua';
import { identityProblem } from '../bus/messages.js';
import type { Logger } from '../config/logger.js';
import { ROOT_PATH, type CrystalwatchNodes } from './address-space.js';
import type { OpcUaServerOptions } from './options.js';

type OpcUa = typeof import('node-opcua');
type Hooks = Pick<OpcUaServerOptions, 'onStartRun' | 'onEndRun'>;

export function addRunMethods(opcua: OpcUa, nodes: CrystalwatchNodes, hooks: Hooks, logger: Logger): { startRun: UAMethod; endRun: UAMethod } {
  const { DataType, StatusCodes } = opcua;
  const cameraArgument = { name: 'Camera', dataType: DataType.String, description: { text: 'Camera id, or empty for every camera' } };
  const startRun = nodes.namespace.addMethod(nodes.root, {
    browseName: 'StartRun',
    nodeId: `s=${ROOT_PATH}/StartRun`,
    description: 'Start a run (batch): frames from now on belong to RunId',
    inputArguments: [
      { name: 'RunId', dataType: DataType.String, description: { text: 'Run (batch) id: 1–64 letters, digits, ".", "_" or "-"' } },
      cameraArgument,
    ],
    outputArguments: [],
  });
  const endRun = nodes.namespace.addMethod(nodes.root, {
    browseName: 'EndRun',
    nodeId: `s=${ROOT_PATH}/EndRun`,
    description: 'End the current run (batch); its batch report is written',
    inputArguments: [cameraArgument],
    outputArguments: [],
  });

  /** Runs a hook after checking the ids; the result is the method's status. */
  const call = async (name: string, ids: { runId?: string; camera?: string }, hook: () => Promise<void> | void) => {
    for (const [what, value] of [
      ['run id', ids.runId],
      ['camera id', ids.camera],
    ] as const) {
      const problem = value === undefined ? undefined : identityProblem(what, value);
      if (problem) {
        logger.warn({ method: name, ...ids }, `OPC UA ${name} refused: ${problem}`);
        return { statusCode: StatusCodes.BadInvalidArgument };
      }
    }
    try {
      await hook();
      logger.info({ method: name, ...ids }, `OPC UA ${name}`);
      return { statusCode: StatusCodes.Good };
    } catch (err) {
      logger.warn({ err, method: name, ...ids }, `OPC UA ${name} refused: ${(err as Error).message}`);
      return { statusCode: StatusCodes.BadInvalidState };
    }
  };

  // node-opcua tells a promise-returning method from a callback one by its arity: keep two parameters.
  startRun.bindMethod(async (inputArguments: Variant[], _context: ISessionContext) => {
    const runId = stringArgument(inputArguments[0]);
    const camera = stringArgument(inputArguments[1]) || undefined;
    if (runId === '') return { statusCode: StatusCodes.BadInvalidArgument };
    return call('StartRun', { runId, camera }, () => hooks.onStartRun(runId, camera));
  });
  endRun.bindMethod(async (inputArguments: Variant[], _context: ISessionContext) => {
    const camera = stringArgument(inputArguments[0]) || undefined;
    return call('EndRun', { camera }, () => hooks.onEndRun(camera));
  });
  return { startRun, endRun };
}

/** node-opcua has checked the type already; a null String arrives as null. */
function stringArgument(argument: Variant | undefined): string {
  return typeof argument?.value === 'string' ? argument.value : '';
}
