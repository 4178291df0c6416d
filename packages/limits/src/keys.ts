import { createHash } from 'node:crypto';

const PLAIN_RE = /^[A-Za-z0-9_\-.:@]{1,128}$/;

/**
 * The Redis hash counting one client's streams across the cluster:
 * `<prefix>:streams:ip:<ip>` or `<prefix>:streams:sub:<subject>`. A subject outside a plain
 * alphabet (it comes from a token) is hashed, so keys stay short and printable.
 */
export function streamsKey(prefix: string, kind: 'ip' | 'sub', id: string): string {
  const part = PLAIN_RE.test(id)
    ? id
    : `h.${createHash('sha256').update(id).digest('hex').slice(0, 32)}`;
  return `${prefix}:streams:${kind}:${part}`;
}
