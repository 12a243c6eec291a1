/**
 * The crystalwatch part of the address space:
 *
 *   Objects/crystalwatch                      event notifier (Server HasNotifier crystalwatch)
 *     StartRun(RunId, Camera), EndRun(Camera)  methods.ts
 *     Cameras/<camera id>                     event source (crystalwatch HasEventSource camera)
 *       PPG, Predicted, CameraState, FramesPerSecond, UsableFraction, LastFrameTime,
 *       ModelVersion, RunId, Alarm, AlertId   read-only variables
 *       PgOnset                               AlarmConditionType, alarms.ts
 *
 * NodeIds are strings that repeat the browse path (`ns=<urn:crystalwatch>;s=crystalwatch/Cameras/cam-1/PPG`),
 * so a SCADA engineer can type a tag without browsing. Nodes are created once per camera and
 * then only written.
 */
import type { AddressSpace, Namespace, UAObject, UAVariable } from 'node-opcua';
import { ALARM_VARIABLES, CAMERA_VARIABLES, opcUaValue, type CameraValues, type CameraVariable } from './camera-values.js';

type OpcUa = typeof import('node-opcua');

export const NAMESPACE_URI = 'urn:crystalwatch';
export const ROOT_PATH = 'crystalwatch';
export const CAMERAS_PATH = `${ROOT_PATH}/Cameras`;

export const cameraPath = (camera: string) => `${CAMERAS_PATH}/${camera}`;

export interface CrystalwatchNodes {
  namespace: Namespace;
  root: UAObject;
  cameras: UAObject;
}

export function addCrystalwatchNodes(opcua: OpcUa, addressSpace: AddressSpace): CrystalwatchNodes {
  const namespace = addressSpace.registerNamespace(NAMESPACE_URI);
  const objects = addressSpace.rootFolder.objects;
  const root = namespace.addObject({
    browseName: 'crystalwatch',
    nodeId: `s=${ROOT_PATH}`,
    description: 'crystalwatch: in-situ camera PG impurity monitoring of a cephalexin crystallizer',
    organizedBy: objects,
    eventNotifier: opcua.EventNotifierFlags.SubscribeToEvents,
    notifierOf: objects.server,
  });
  const cameras = namespace.addObject({
    typeDefinition: 'FolderType',
    componentOf: root,
    browseName: 'Cameras',
    nodeId: `s=${CAMERAS_PATH}`,
    description: 'One object per camera, added when its first value arrives',
  });
  return { namespace, root, cameras };
}

/** The nodes of one camera; `variables` is keyed by CameraValues field (plus alarm and alertId). */
export interface CameraNodes {
  camera: string;
  object: UAObject;
  variables: Map<string, UAVariable>;
}

export function addCameraNodes(opcua: OpcUa, nodes: CrystalwatchNodes, camera: string): CameraNodes {
  const object = nodes.namespace.addObject({
    browseName: camera,
    // Also the SourceName of its alarm events: the bare id, not the namespaced browse name.
    displayName: camera,
    nodeId: `s=${cameraPath(camera)}`,
    description: `Camera ${camera}`,
    organizedBy: nodes.cameras,
    eventNotifier: opcua.EventNotifierFlags.SubscribeToEvents,
    eventSourceOf: nodes.root,
  });
  const variables = new Map<string, UAVariable>();
  const add = (field: string, spec: CameraVariable) => {
    const variable = nodes.namespace.addVariable({
      componentOf: object,
      browseName: spec.browseName,
      nodeId: `s=${cameraPath(camera)}/${spec.browseName}`,
      description: spec.description,
      dataType: spec.dataType,
      accessLevel: 'CurrentRead',
      userAccessLevel: 'CurrentRead',
      // Written on change (exception-based): subscriptions need no sampling timer.
      minimumSamplingInterval: 0,
    });
    variables.set(field, variable);
    return variable;
  };
  for (const [field, spec] of Object.entries(CAMERA_VARIABLES)) {
    // Until a value arrives, a read says so instead of inventing one.
    add(field, spec).setValueFromSource({ dataType: opcua.DataType.Null }, opcua.StatusCodes.BadWaitingForInitialData);
  }
  add('alarm', ALARM_VARIABLES.alarm).setValueFromSource({ dataType: opcua.DataType.Boolean, value: false });
  add('alertId', ALARM_VARIABLES.alertId).setValueFromSource({ dataType: opcua.DataType.String, value: '' });
  return { camera, object, variables };
}

/** Writes the fields present in `values`; a LastFrameTime that is not a date is skipped. */
export function writeCameraValues(opcua: OpcUa, nodes: CameraNodes, values: CameraValues, now = new Date()): void {
  for (const [field, value] of Object.entries(values) as [keyof CameraValues, CameraValues[keyof CameraValues]][]) {
    const variable = nodes.variables.get(field);
    if (!variable || value === undefined) continue;
    const converted = opcUaValue(field, value);
    if (converted instanceof Date && Number.isNaN(converted.getTime())) continue;
    const dataType = opcua.DataType[CAMERA_VARIABLES[field].dataType];
    variable.setValueFromSource({ dataType, value: converted }, opcua.StatusCodes.Good, now);
  }
}
