import { account } from './accounting';
import type { ConnReport } from './client-protocol';
import { TopicLedger } from './publisher';

function ledger(sentAt: number[], failed: number[] = []): TopicLedger {
  const l = new TopicLedger();
  sentAt.forEach((at, seq) => {
    l.next(at);
    if (!failed.includes(seq)) {
      l.acked[seq] = 1;
      l.ackedCount++;
    }
  });
  return l;
}

function conn(readyAt: number, ranges: number[], dups = 0): ConnReport {
  return { t: 0, k: 0, readyAt, ranges, dups, drops: 0, lostAt: 0, resumedAt: 0, open: true };
}

describe('account', () => {
  // Ten events on one topic, sent at 100, 110, … 190 ms.
  const times = Array.from({ length: 10 }, (_, i) => 100 + i * 10);

  it('counts every event sent after a connection was live as owed, and each received one once', () => {
    const { perConnection, totals } = account([conn(50, [0, 9])], [ledger(times)]);
    expect(perConnection[0]).toEqual({
      expected: 10,
      delivered: 10,
      lost: 0,
      duplicated: 0,
      early: 0,
      unconfirmed: 0,
    });
    expect(totals).toMatchObject({ expected: 10, delivered: 10, lost: 0, connectionsWithLoss: 0 });
  });

  it('finds the events missing inside and at the end of what a connection received', () => {
    // Received 0-3 and 6-7: 4, 5, 8 and 9 missing.
    const { perConnection, totals } = account([conn(50, [0, 3, 6, 7], 2)], [ledger(times)]);
    expect(perConnection[0]).toMatchObject({ expected: 10, delivered: 6, lost: 4, duplicated: 2 });
    expect(totals).toMatchObject({ connectionsWithLoss: 1, connectionsWithDuplicates: 1 });
  });

  it('owes a late connection only what was sent after its first frame, and counts earlier ones as early', () => {
    // Live at 135 ms: events 4-9 (140 ms on) are owed; 3 arrived anyway.
    const { perConnection } = account([conn(135, [3, 9])], [ledger(times)]);
    expect(perConnection[0]).toEqual({
      expected: 6,
      delivered: 6,
      lost: 0,
      duplicated: 0,
      early: 1,
      unconfirmed: 0,
    });
  });

  it('owes nothing for publishes that failed, and counts them apart when they arrive anyway', () => {
    const { perConnection } = account([conn(50, [0, 9])], [ledger(times, [5])]);
    expect(perConnection[0]).toMatchObject({ expected: 9, delivered: 9, lost: 0, unconfirmed: 1 });
  });

  it('owes nothing to a connection that never opened', () => {
    const { perConnection } = account([conn(0, [])], [ledger(times)]);
    expect(perConnection[0]).toMatchObject({ expected: 0, delivered: 0, lost: 0 });
  });
});
