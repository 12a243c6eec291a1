/**
 * Who may talk to the OPC UA server: user/password (anonymous refused once users are configured)
 * and SignAndEncrypt with the certificate generated into <dataDir>/opcua/pki, trusted the way an
 * operator trusts a SCADA: its refused certificate moved from rejected/ to trusted/certs/.
 */
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { copyFile, mkdir, mkdtemp, readdir, readFile, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AttributeIds,
  DataType,
  MessageSecurityMode,
  MethodIds,
  OPCUACertificateManager,
  OPCUAClient,
  SecurityPolicy,
  StatusCodes,
  UserTokenType,
  type ClientSession,
  type UserIdentityInfo,
} from 'node-opcua';
import { NAMESPACE_URI, OpcUaServer, pkiFolder, type OpcUaAcknowledgement, type OpcUaServerOptions } from '../src/opcua/index.js';
import { waitFor } from './helpers/wait.js';

const dirs: string[] = [];
const servers: OpcUaServer[] = [];
const clients: OPCUAClient[] = [];
const operator = { username: 'operator', password: 'crystal-batch-42' };

afterEach(async () => {
  for (const client of clients.splice(0)) await client.disconnect().catch(() => {});
  for (const server of servers.splice(0)) await server.close();
});
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function startServer(options: Partial<OpcUaServerOptions>): Promise<{ server: OpcUaServer; dataDir: string }> {
  const dataDir = await mkdtemp(join(tmpdir(), 'cw-opcua-sec-'));
  dirs.push(dataDir);
  const server = new OpcUaServer({ port: 0, security: 'None', dataDir, onAcknowledge: () => {}, onStartRun: () => {}, onEndRun: () => {}, ...options });
  servers.push(server);
  await server.start();
  return { server, dataDir };
}

function newClient(
  pki: string,
  security: { mode: MessageSecurityMode; policy: SecurityPolicy } = { mode: MessageSecurityMode.None, policy: SecurityPolicy.None },
): OPCUAClient {
  const client = OPCUAClient.create({
    endpointMustExist: false,
    securityMode: security.mode,
    securityPolicy: security.policy,
    connectionStrategy: { maxRetry: 0 },
    // Trusts only what is in its trusted/certs folder: the test puts the server's certificate there.
    clientCertificateManager: new OPCUACertificateManager({ rootFolder: pki, automaticallyAcceptUnknownCertificate: false }),
  });
  clients.push(client);
  return client;
}

async function connect(
  server: OpcUaServer,
  pki: string,
  identity?: UserIdentityInfo,
  security?: { mode: MessageSecurityMode; policy: SecurityPolicy },
): Promise<ClientSession> {
  const client = newClient(pki, security);
  await client.connect(server.endpointUrl);
  return client.createSession(identity);
}

const login = (username: string, password: string): UserIdentityInfo => ({ type: UserTokenType.UserName, userName: username, password });

describe('OPC UA users', () => {
  it('refuses anonymous sessions and wrong passwords; the logged-in user is who acknowledges', async () => {
    const acknowledgements: { alertId: string; ack: OpcUaAcknowledgement }[] = [];
    const { server, dataDir } = await startServer({ users: [operator], onAcknowledge: (alertId, ack) => void acknowledgements.push({ alertId, ack }) });
    const pki = join(dataDir, 'client-pki');
    const probe = newClient(pki);
    await probe.connect(server.endpointUrl);
    const tokenTypes = (await probe.getEndpoints()).flatMap((endpoint) => (endpoint.userIdentityTokens ?? []).map((policy) => policy.tokenType));
    expect(tokenTypes).toContain(UserTokenType.UserName);
    expect(tokenTypes).not.toContain(UserTokenType.Anonymous);
    await expect(connect(server, pki)).rejects.toThrow(/anonymous/i);
    await expect(connect(server, pki, login('operator', 'wrong-password'))).rejects.toThrow(/BadUserAccessDenied|denied/i);
    await expect(connect(server, pki, login('intruder', operator.password))).rejects.toThrow(/BadUserAccessDenied|denied/i);

    const session = await connect(server, pki, login(operator.username, operator.password));
    server.raiseAlarm({ id: 'pg-9', camera: 'cam-1', runId: 'R-1', startsAt: new Date().toISOString(), message: 'PG onset on cam-1' });
    const ns = (await session.readNamespaceArray()).indexOf(NAMESPACE_URI);
    const condition = `ns=${ns};s=crystalwatch/Cameras/cam-1/PgOnset`;
    const eventIdNode = await session.translateBrowsePath({
      startingNode: condition,
      relativePath: { elements: [{ referenceTypeId: 'i=46', isInverse: false, includeSubtypes: true, targetName: { namespaceIndex: 0, name: 'EventId' } }] },
    });
    const eventId = (await session.read({ nodeId: eventIdNode.targets![0]!.targetId, attributeId: AttributeIds.Value })).value.value as Buffer;
    const result = await session.call({
      objectId: condition,
      methodId: `ns=0;i=${MethodIds.AcknowledgeableConditionType_Acknowledge}`,
      inputArguments: [
        { dataType: DataType.ByteString, value: eventId },
        { dataType: DataType.LocalizedText, value: { text: 'seen at the DCS' } },
      ],
    });
    expect(result.statusCode).toBe(StatusCodes.Good);
    expect(acknowledgements).toEqual([{ alertId: 'pg-9', ack: { by: 'operator', comment: 'seen at the DCS' } }]);
  });
});

describe('OPC UA SignAndEncrypt', () => {
  it('serves only encrypted channels, with the certificate generated in <dataDir>/opcua/pki, to a client the operator trusted', async () => {
    const { server, dataDir } = await startServer({ security: 'SignAndEncrypt', users: [operator] });
    expect(server.certificateFile).toBe(join(pkiFolder(dataDir), 'own', 'certs', 'certificate.pem'));
    const pem = await readFile(server.certificateFile, 'utf8');
    const serverCertificate = Buffer.from(pem.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, ''), 'base64');

    // Only encrypted endpoints are offered, and a plain-text session is refused.
    const probe = newClient(join(dataDir, 'plain-pki'));
    await probe.connect(server.endpointUrl);
    const endpoints = await probe.getEndpoints();
    expect(endpoints.length).toBeGreaterThan(0);
    expect(new Set(endpoints.map((endpoint) => endpoint.securityMode))).toEqual(new Set([MessageSecurityMode.SignAndEncrypt]));
    expect(endpoints.map((endpoint) => endpoint.securityPolicyUri).sort()).toEqual(
      [SecurityPolicy.Aes128_Sha256_RsaOaep, SecurityPolicy.Aes256_Sha256_RsaPss, SecurityPolicy.Basic256Sha256].sort(),
    );
    await expect(connect(server, join(dataDir, 'plain-pki'), login(operator.username, operator.password))).rejects.toThrow(/must exist|Bad/);

    // The SCADA trusts the server's certificate (copied from the file above) ...
    const pki = join(dataDir, 'scada-pki');
    await mkdir(join(pki, 'trusted', 'certs'), { recursive: true });
    await copyFile(server.certificateFile, join(pki, 'trusted', 'certs', 'crystalwatch.pem'));
    const encrypted = { mode: MessageSecurityMode.SignAndEncrypt, policy: SecurityPolicy.Basic256Sha256 };
    // ... but the server does not know the SCADA yet: refused, its certificate lands in rejected/.
    await expect(connect(server, pki, login(operator.username, operator.password), encrypted)).rejects.toThrow(/BadSecurityChecksFailed/);
    const rejected = join(pkiFolder(dataDir), 'rejected');
    const refused = await waitFor(async () => (await readdir(rejected)).filter((name) => name.endsWith('.pem') || name.endsWith('.der')), {
      timeout: 5000,
      message: `the SCADA's certificate in ${rejected}`,
    });
    expect(refused).toHaveLength(1);

    // The operator trusts it; the next connection is accepted, encrypted.
    await rename(join(rejected, refused[0]!), join(pkiFolder(dataDir), 'trusted', 'certs', refused[0]!));
    const session = await waitFor(() => connect(server, pki, login(operator.username, operator.password), encrypted), {
      timeout: 10_000,
      interval: 250,
      message: 'an encrypted session once the SCADA certificate is trusted',
    });
    expect(session.endpoint.securityMode).toBe(MessageSecurityMode.SignAndEncrypt);
    expect(Buffer.compare(Buffer.from(session.endpoint.serverCertificate), serverCertificate)).toBe(0);
    server.updateCamera('cam-1', { pPG: 0.42 });
    const ns = (await session.readNamespaceArray()).indexOf(NAMESPACE_URI);
    await waitFor(
      async () => (await session.read({ nodeId: `ns=${ns};s=crystalwatch/Cameras/cam-1/PPG`, attributeId: AttributeIds.Value })).value.value === 0.42,
      {
        timeout: 5000,
        message: 'PPG 0.42 over the encrypted session',
      },
    );
  });

  it('keeps its certificate across restarts (generated once)', async () => {
    const { server, dataDir } = await startServer({ security: 'SignAndEncrypt' });
    const first = await readFile(server.certificateFile, 'utf8');
    await server.close();
    const again = new OpcUaServer({ port: 0, security: 'SignAndEncrypt', dataDir, onAcknowledge: () => {}, onStartRun: () => {}, onEndRun: () => {} });
    servers.push(again);
    await again.start();
    expect(await readFile(again.certificateFile, 'utf8')).toBe(first);
  });
});
