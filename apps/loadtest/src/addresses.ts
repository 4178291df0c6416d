import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

/** 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
export function isLoopback(address: string): boolean {
  const a = address.toLowerCase().replace(/^\[|\]$/g, '');
  if (isIP(a) === 4) return a.startsWith('127.');
  if (a.startsWith('::ffff:')) return isLoopback(a.slice(7));
  return a === '::1' || a === '0:0:0:0:0:0:0:1';
}

/**
 * A load test sends a lot of traffic: it goes only to loopback addresses, or to hosts and
 * addresses the user named with --target. A name is accepted when it is listed, or when every
 * address it resolves to is loopback or listed. Throws, naming the first host refused.
 */
export async function checkAddresses(
  hosts: ReadonlyArray<[flag: string, host: string]>,
  allowed: readonly string[],
): Promise<void> {
  const listed = new Set(allowed.map((h) => h.toLowerCase().replace(/^\[|\]$/g, '')));
  for (const [flag, raw] of hosts) {
    const host = raw.toLowerCase().replace(/^\[|\]$/g, '');
    if (listed.has(host) || isLoopback(host)) continue;
    const refuse = (why: string) =>
      new Error(
        `${flag} ${raw}: ${why}; only loopback addresses are load-tested unless listed with --target ${raw}`,
      );
    if (isIP(host)) throw refuse('not a loopback address');
    let addresses: string[];
    try {
      addresses = (await lookup(host, { all: true })).map((a) => a.address);
    } catch {
      throw refuse('cannot be resolved');
    }
    const outside = addresses.find((a) => !isLoopback(a) && !listed.has(a));
    if (outside !== undefined || addresses.length === 0) {
      throw refuse(`resolves to ${outside ?? 'nothing'}, not a loopback address`);
    }
  }
}
