/** Secrets in the effective config, masked wherever it is shown (`crystalwatch config`, the audit digest). */
import type { Config } from './index.js';

/** Paths of secrets; `*` stands for every element of an array. */
const SECRET_PATHS = ['kafka.sasl.password', 'web.token', 'alert.webhooks.*.secret', 'opcua.users.*.password'];

/** The effective config with secrets replaced by "***", for `crystalwatch config --print`. */
export function maskSecrets(config: Config): unknown {
  const copy = structuredClone(config) as unknown as Record<string, unknown>;
  for (const secret of SECRET_PATHS) maskPath(copy, secret.split('.'));
  return copy;
}

function maskPath(node: unknown, at: string[]): void {
  if (node === null || typeof node !== 'object') return;
  const [head, ...rest] = at;
  if (head === undefined) return;
  const obj = node as Record<string, unknown>;
  if (head === '*') {
    for (const child of Object.values(obj)) maskPath(child, rest);
    return;
  }
  if (!(head in obj)) return;
  if (rest.length === 0) {
    if (obj[head] !== undefined) obj[head] = '***';
    return;
  }
  maskPath(obj[head], rest);
}
