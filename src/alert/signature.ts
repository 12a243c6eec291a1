/**
 * Webhook signatures. Each delivery attempt is signed afresh:
 *
 *   X-Crystalwatch-Timestamp: <Unix seconds of the attempt>
 *   X-Crystalwatch-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>
 *
 * Signing the timestamp with the body lets a receiver refuse a captured request replayed later
 * (check the timestamp is recent) without trusting anything unsigned. The body is the alert JSON
 * exactly as sent; verify the raw bytes, not a re-serialisation.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-crystalwatch-signature';
export const TIMESTAMP_HEADER = 'x-crystalwatch-timestamp';

export function signWebhook(body: string, secret: string, timestampSeconds: number): string {
  return `v1=${createHmac('sha256', secret).update(`${timestampSeconds}.${body}`).digest('hex')}`;
}

/**
 * Checks a received webhook: the signature over timestamp and raw body, and a timestamp within
 * `toleranceSeconds` (default 300) of `nowMs`. Returns why it was refused, or undefined when valid.
 */
export function webhookSignatureProblem(
  rawBody: string,
  headers: Record<string, string | string[] | undefined>,
  secret: string,
  options: { toleranceSeconds?: number; nowMs?: number } = {},
): string | undefined {
  const signature = headers[SIGNATURE_HEADER];
  const timestamp = headers[TIMESTAMP_HEADER];
  if (typeof signature !== 'string' || typeof timestamp !== 'string') return `missing ${SIGNATURE_HEADER} or ${TIMESTAMP_HEADER} header`;
  const seconds = Number(timestamp);
  if (!Number.isInteger(seconds)) return `${TIMESTAMP_HEADER} must be Unix seconds, got ${JSON.stringify(timestamp)}`;
  const skew = Math.abs((options.nowMs ?? Date.now()) / 1000 - seconds);
  if (skew > (options.toleranceSeconds ?? 300))
    return `timestamp ${seconds} is ${Math.round(skew)} s away from now (tolerance ${options.toleranceSeconds ?? 300} s)`;
  const expected = Buffer.from(signWebhook(rawBody, secret, seconds));
  const got = Buffer.from(signature);
  if (expected.length !== got.length || !timingSafeEqual(expected, got)) return 'signature does not match the body and timestamp';
  return undefined;
}
