import type { ConnReport } from './client-protocol';
import type { TopicLedger } from './publisher';

/** Exact counts for one connection. */
export interface ConnAccount {
  /** Events confirmed by the publish target on the connection's topic after it was live. */
  expected: number;
  /** Of those, received (each counted once). */
  delivered: number;
  /** expected - delivered. */
  lost: number;
  /** Events received more than once. */
  duplicated: number;
  /** Events sent before the connection was live, received anyway (not owed to it). */
  early: number;
  /** Events received that the target never confirmed (a publish that failed after storing). */
  unconfirmed: number;
}

export interface Totals extends ConnAccount {
  connections: number;
  connectionsWithLoss: number;
  connectionsWithDuplicates: number;
}

/**
 * Checks what each connection received against what was published on its topic. A connection
 * is owed every confirmed event sent after its first frame arrived (the API guarantees events
 * published after the response began); those sent before may arrive, and count as `early`.
 */
export function account(
  conns: readonly ConnReport[],
  ledgers: readonly TopicLedger[],
): { perConnection: ConnAccount[]; totals: Totals } {
  const prefixes = new Map<number, Int32Array>();
  const prefixOf = (k: number): Int32Array => {
    let p = prefixes.get(k);
    if (!p) {
      const ledger = ledgers[k];
      p = ledger ? ledger.ackedPrefix() : new Int32Array(1);
      prefixes.set(k, p);
    }
    return p;
  };
  const totals: Totals = {
    connections: conns.length,
    expected: 0,
    delivered: 0,
    lost: 0,
    duplicated: 0,
    early: 0,
    unconfirmed: 0,
    connectionsWithLoss: 0,
    connectionsWithDuplicates: 0,
  };
  const perConnection = conns.map((c): ConnAccount => {
    const ledger = ledgers[c.k];
    const prefix = prefixOf(c.k);
    const sent = ledger?.seq ?? 0;
    // A connection that never opened is owed nothing (it is counted as failed).
    const from = c.readyAt > 0 && ledger ? ledger.firstSentAfter(c.readyAt) : sent;
    const acked = (a: number, b: number) => (prefix[b] as number) - (prefix[a] as number); // [a, b)
    const expected = acked(from, sent);
    let delivered = 0;
    let early = 0;
    let received = 0;
    for (let i = 0; i < c.ranges.length; i += 2) {
      const lo = c.ranges[i] as number;
      const hi = Math.min(c.ranges[i + 1] as number, sent - 1);
      if (hi < lo) continue;
      received += hi - lo + 1;
      if (hi >= from) delivered += acked(Math.max(lo, from), hi + 1);
      if (lo < from) early += acked(lo, Math.min(hi + 1, from));
    }
    const account: ConnAccount = {
      expected,
      delivered,
      lost: expected - delivered,
      duplicated: c.dups,
      early,
      unconfirmed: received - delivered - early,
    };
    totals.expected += account.expected;
    totals.delivered += account.delivered;
    totals.lost += account.lost;
    totals.duplicated += account.duplicated;
    totals.early += account.early;
    totals.unconfirmed += account.unconfirmed;
    if (account.lost > 0) totals.connectionsWithLoss++;
    if (account.duplicated > 0) totals.connectionsWithDuplicates++;
    return account;
  });
  return { perConnection, totals };
}
