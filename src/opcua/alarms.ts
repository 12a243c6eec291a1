/**
 * The PG onset as an OPC UA alarm: one `AlarmConditionType` instance per camera (`PgOnset`, source
 * the camera object), showing that camera's current alert. A SCADA sees it in its alarm list
 * (events bubble up to the Server object), acknowledges it with the standard Acknowledge method,
 * and that acknowledgement is handed to the alert lifecycle before the condition shows it.
 *
 * States follow OPC UA Part 9 (and ISA-18.2): raise → Active, Unacknowledged, Retain; resolve →
 * Inactive, Retain until acknowledged; acknowledge → Acknowledged, Retain while still active.
 */
import type {
  AddressSpace,
  ISessionContext,
  MethodCallInterceptor,
  UAAlarmConditionEx,
  UAMethod,
  UAObject,
  UAObjectType,
  UAVariable,
  Variant,
} from 'node-opcua';
import type { Logger } from '../config/logger.js';
import { cameraPath, type CameraNodes, type CrystalwatchNodes } from './address-space.js';
import type { OpcUaServerOptions } from './options.js';

type OpcUa = typeof import('node-opcua');

/** What the server shows of an alert. `message` is what an operator reads in the SCADA's alarm list. */
export interface PgAlarm {
  id: string;
  camera: string;
  runId: string;
  startsAt: string | Date;
  message: string;
}

/** OPC UA severities run 1–1000; 801–1000 is "high" in most SCADAs: stopping a batch is urgent. */
export const PG_ONSET_SEVERITY = 800;
/** `by` of an acknowledgement from a session that did not log in. */
export const ANONYMOUS_USER = 'opcua-anonymous';
export const CONDITION_NAME = 'PgOnset';
const MAX_MESSAGE_LENGTH = 1024;

interface CameraAlarm {
  camera: string;
  condition: UAAlarmConditionEx;
  alarm: UAVariable;
  alertId: UAVariable;
  current?: { id: string; message: string; active: boolean; acknowledged: boolean };
}

export class PgOnsetAlarms {
  private readonly byCamera = new Map<string, CameraAlarm>();
  private readonly byCondition = new Map<string, CameraAlarm>();
  /** Alert ids whose Acknowledge call from a client is being handed to the lifecycle. */
  private readonly clientAcks = new Set<string>();
  private readonly interceptor: MethodCallInterceptor = (context, object, method, inputArguments) =>
    this.beforeAcknowledge(context, object, method, inputArguments);

  constructor(
    private readonly opcua: OpcUa,
    private readonly addressSpace: AddressSpace,
    private readonly nodes: CrystalwatchNodes,
    private readonly onAcknowledge: OpcUaServerOptions['onAcknowledge'],
    private readonly logger: Logger,
  ) {
    // Binds Acknowledge on AcknowledgeableConditionType (the id SCADAs call) and ConditionRefresh.
    addressSpace.installAlarmsAndConditionsService();
    addressSpace.addMethodCallInterceptor(this.interceptor);
  }

  /** Creates the camera's PgOnset condition (once, when the camera's nodes are created). */
  attach(camera: CameraNodes): void {
    const condition = this.nodes.namespace.instantiateAlarmCondition('AlarmConditionType', {
      browseName: CONDITION_NAME,
      nodeId: `s=${cameraPath(camera.camera)}/${CONDITION_NAME}`,
      conditionName: CONDITION_NAME,
      description: `PG impurity onset on camera ${camera.camera}: stop the batch`,
      componentOf: camera.object,
      conditionSource: camera.object,
      conditionClass: this.addressSpace.findNode(this.opcua.ObjectTypeIds.ProcessConditionClassType) as UAObjectType,
      inputNode: camera.variables.get('pPG')!,
    });
    // node-opcua fills SourceName with the namespaced browse name ("2:cam-1"); alarm lists show the camera id.
    condition.sourceName.setValueFromSource({ dataType: this.opcua.DataType.String, value: camera.camera });
    const state: CameraAlarm = { camera: camera.camera, condition, alarm: camera.variables.get('alarm')!, alertId: camera.variables.get('alertId')! };
    condition.on('acknowledged', () => this.acknowledged(state));
    this.byCamera.set(camera.camera, state);
    this.byCondition.set(condition.nodeId.toString(), state);
  }

  has(camera: string): boolean {
    return this.byCamera.has(camera);
  }

  /** Activates the camera's condition for this alert. The same alert again (a redelivery) changes nothing. */
  raise(alarm: PgAlarm): void {
    const state = this.stateOf(alarm.camera);
    if (state.current?.id === alarm.id) return;
    const message = alarm.message.slice(0, MAX_MESSAGE_LENGTH);
    const time = new Date(alarm.startsAt);
    state.current = { id: alarm.id, message, active: true, acknowledged: false };
    state.alertId.setValueFromSource({ dataType: this.opcua.DataType.String, value: alarm.id });
    state.alarm.setValueFromSource({ dataType: this.opcua.DataType.Boolean, value: true });
    state.condition.activateAlarm();
    state.condition.raiseNewCondition({
      message,
      severity: PG_ONSET_SEVERITY,
      quality: this.opcua.StatusCodes.Good,
      retain: true,
      time: Number.isNaN(time.getTime()) ? new Date() : time,
    });
  }

  /** Deactivates the condition if it still shows this alert; it stays retained until acknowledged. */
  resolve(alertId: string): void {
    const state = this.stateShowing(alertId);
    if (!state?.current?.active) return;
    const current = state.current;
    current.active = false;
    state.alarm.setValueFromSource({ dataType: this.opcua.DataType.Boolean, value: false });
    state.condition.deactivateAlarm(!current.acknowledged);
    state.condition.raiseNewCondition({
      message: `${current.message} (resolved)`,
      severity: PG_ONSET_SEVERITY,
      quality: this.opcua.StatusCodes.Good,
      retain: !current.acknowledged,
    });
  }

  /** Shows an acknowledgement made elsewhere (the web page, the API); onAcknowledge is not called. */
  markAcknowledged(alertId: string, by: string): void {
    const state = this.stateShowing(alertId);
    if (!state?.current || state.current.acknowledged || this.clientAcks.has(alertId)) return;
    const branch = state.condition.currentBranch();
    if (branch.getAckedState()) return;
    branch.setClientUserId(by);
    state.condition.acknowledgeAndAutoConfirmBranch(branch, `acknowledged by ${by}`);
  }

  dispose(): void {
    this.addressSpace.removeMethodCallInterceptor(this.interceptor);
  }

  private stateOf(camera: string): CameraAlarm {
    const state = this.byCamera.get(camera);
    if (!state) throw new Error(`opcua: camera ${JSON.stringify(camera)} has no PgOnset condition yet (internal: nodes are created before alarms)`);
    return state;
  }

  private stateShowing(alertId: string): CameraAlarm | undefined {
    for (const state of this.byCamera.values()) if (state.current?.id === alertId) return state;
    return undefined;
  }

  /** node-opcua acknowledged the branch (a client's call or markAcknowledged). */
  private acknowledged(state: CameraAlarm): void {
    const current = state.current;
    if (!current) return;
    current.acknowledged = true;
    // node-opcua clears Retain on every acknowledgement; an alarm that is still active must stay
    // in the operators' alarm lists. Deferred so the event carries the ClientUserId node-opcua
    // records right after this listener.
    queueMicrotask(() => {
      if (state.current !== current || !current.active) return;
      const branch = state.condition.currentBranch();
      branch.setRetain(true);
      state.condition.raiseNewBranchState(branch);
    });
  }

  /**
   * Runs before node-opcua's Acknowledge: hands a valid acknowledgement to the lifecycle and lets
   * the call proceed only when that succeeded. Calls node-opcua refuses anyway (unknown event id,
   * disabled condition) pass through, so the client gets node-opcua's status.
   */
  private async beforeAcknowledge(context: ISessionContext, object: UAObject | UAObjectType | null, method: UAMethod, inputArguments: Variant[]) {
    const { StatusCodes } = this.opcua;
    if (method.browseName.name !== 'Acknowledge' || !object) return StatusCodes.Good;
    const state = this.byCondition.get(object.nodeId.toString());
    if (!state || !state.condition.getEnabledState()) return StatusCodes.Good;
    const eventId = inputArguments[0]?.value;
    const branch = state.condition.findBranchForEventId(Buffer.isBuffer(eventId) ? eventId : null);
    if (!branch) return StatusCodes.Good;
    // node-opcua answers Good to a second Acknowledge and changes nothing; Part 9 has a status for it.
    if (branch.getAckedState()) return StatusCodes.BadConditionBranchAlreadyAcked;
    const current = state.current;
    if (!current || current.acknowledged) return StatusCodes.Good;
    const comment = (inputArguments[1]?.value as { text?: string | null } | undefined)?.text ?? '';
    const by = this.userOf(context);
    this.clientAcks.add(current.id);
    try {
      await this.onAcknowledge(current.id, { by, comment });
      return StatusCodes.Good;
    } catch (err) {
      this.logger.error(
        { err, alertId: current.id, by },
        'OPC UA acknowledgement refused: the alert lifecycle did not take it; the condition stays unacknowledged',
      );
      return StatusCodes.BadInternalError;
    } finally {
      // node-opcua runs the method body after the interceptors' promise settles (microtasks);
      // until then an echo of this acknowledgement from the lifecycle must not ack it first.
      setImmediate(() => this.clientAcks.delete(current.id));
    }
  }

  private userOf(context: ISessionContext): string {
    const token = context.session?.userIdentityToken;
    if (token instanceof this.opcua.UserNameIdentityToken && typeof token.userName === 'string' && token.userName !== '') return token.userName;
    return ANONYMOUS_USER;
  }
}
