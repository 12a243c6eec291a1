/**
 * Security of the endpoint: which message security it offers, who may open a session, and where
 * the certificates live. node-opcua is passed in (it is loaded lazily by the server).
 *
 * PKI layout (node-opcua-pki, the usual OPC UA folders) under `<dataDir>/opcua/pki`:
 *   own/certs/certificate.pem   the server's self-signed certificate, generated on first start
 *   own/private/private_key.pem its key
 *   trusted/certs/              client certificates the operator trusts
 *   rejected/                   certificates of clients that tried and were refused
 * Unknown client certificates are never accepted automatically: trusting one is an operator's act.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import type { OPCUACertificateManager, OPCUAServerOptions } from 'node-opcua';
import type { OpcUaUser, ResolvedOpcUaOptions } from './options.js';

type OpcUa = typeof import('node-opcua');

/** Where the PKI of a data dir lives; the certificate a SCADA must trust is `<pki>/own/certs/certificate.pem`. */
export function pkiFolder(dataDir: string): string {
  return join(dataDir, 'opcua', 'pki');
}

export function serverCertificateFile(dataDir: string): string {
  return join(pkiFolder(dataDir), 'own', 'certs', 'certificate.pem');
}

/** The node-opcua options that carry security, and the certificate managers to dispose after shutdown. */
export interface SecuritySettings {
  serverOptions: Pick<
    OPCUAServerOptions,
    'securityModes' | 'securityPolicies' | 'allowAnonymous' | 'userManager' | 'serverCertificateManager' | 'userCertificateManager'
  >;
  certificateManagers: OPCUACertificateManager[];
}

export function securitySettings(opcua: OpcUa, options: ResolvedOpcUaOptions): SecuritySettings {
  const serverCertificateManager = new opcua.OPCUACertificateManager({
    rootFolder: pkiFolder(options.dataDir),
    automaticallyAcceptUnknownCertificate: false,
  });
  // node-opcua wants one for X509 user tokens even when none are offered; without it, it would
  // create a shared one in the home directory.
  const userCertificateManager = new opcua.OPCUACertificateManager({
    rootFolder: join(options.dataDir, 'opcua', 'user-pki'),
    automaticallyAcceptUnknownCertificate: false,
  });
  const encrypted = options.security === 'SignAndEncrypt';
  // Only the policies with OAEP/PSS padding: the PKCS#1 v1.5 ones (Basic128Rsa15, Basic256) are
  // deprecated by the OPC Foundation, and Node disabled PKCS#1 v1.5 decryption (CVE-2023-46809).
  const { Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss, None } = opcua.SecurityPolicy;
  return {
    serverOptions: {
      securityModes: [encrypted ? opcua.MessageSecurityMode.SignAndEncrypt : opcua.MessageSecurityMode.None],
      // On a None channel node-opcua offers user/password only with a policy that encrypts the
      // password with the server certificate: listing them adds no endpoint, just that.
      securityPolicies: encrypted ? [Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss] : [None, Basic256Sha256, Aes128_Sha256_RsaOaep],
      allowAnonymous: options.users.length === 0,
      ...(options.users.length > 0 ? { userManager: { isValidUser: passwordChecker(options.users) } } : {}),
      serverCertificateManager,
      userCertificateManager,
    },
    certificateManagers: [serverCertificateManager, userCertificateManager],
  };
}

/** Compares digests in constant time, so response times say nothing about a password's prefix. */
export function passwordChecker(users: OpcUaUser[]): (username: string, password: string) => boolean {
  const digest = (text: string) => createHash('sha256').update(text, 'utf8').digest();
  const byName = new Map(users.map((user) => [user.username, digest(user.password)]));
  const nobody = digest('');
  return (username, password) => {
    const expected = byName.get(username);
    const matches = timingSafeEqual(expected ?? nobody, digest(typeof password === 'string' ? password : ''));
    return expected !== undefined && matches;
  };
}
