import { randomBytes } from 'node:crypto';

/** A fresh history epoch: 10 random base-36 characters. */
export function newEpoch(): string {
  const bytes = randomBytes(10);
  let out = '';
  for (const byte of bytes) out += (byte % 36).toString(36);
  return out;
}
