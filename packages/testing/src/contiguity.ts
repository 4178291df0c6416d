import type { SseEvent } from './sse-client';

export interface ContiguityOptions {
  /** The event type that carries the sequence. @default 'n' */
  event?: string;
  /** The sequence number of an event's data. @default (data) => data.seq */
  seq?: (data: any) => number;
  /** Seq the first event must have (a client that started before the producer). */
  firstSeq?: number;
}

export interface ContiguityReport {
  /** Events of the type, in order of arrival. */
  seqs: number[];
  /** Reasons of the `reset` events, in order. */
  resets: string[];
  /** Events after which the next one was not seq + 1 (each right after a reset). */
  jumps: number;
  /**
   * Seq values stored twice by a producer retry (a publish whose reply was lost, then sent
   * again): two distinct events with distinct ids, each delivered once.
   */
  retriedTwice: number;
  /** What breaks the rule; empty when it holds. */
  problems: string[];
}

/**
 * Checks one client's events against the rule of the fault tests: every event exactly once and
 * in order (seq, seq + 1, …), or a `reset` before the first gap. After a reset the sequence may
 * jump forward (never back); without one it may not skip. No event id is delivered twice.
 */
export function checkContiguousOrReset(
  events: readonly SseEvent[],
  options: ContiguityOptions = {},
): ContiguityReport {
  const type = options.event ?? 'n';
  const seqOf = options.seq ?? ((data: { seq: number }) => data.seq);
  const report: ContiguityReport = {
    seqs: [],
    resets: [],
    jumps: 0,
    retriedTwice: 0,
    problems: [],
  };
  const ids = new Set<string>();
  let prev: number | undefined;
  let prevId: string | undefined;
  let afterReset = false;
  for (const [i, e] of events.entries()) {
    if (e.event === 'reset') {
      report.resets.push((JSON.parse(e.data) as { reason: string }).reason);
      afterReset = true;
      continue;
    }
    if (e.event !== type) continue;
    const seq = seqOf(JSON.parse(e.data));
    report.seqs.push(seq);
    if (e.id !== undefined) {
      if (ids.has(e.id)) {
        report.problems.push(`event #${i} (seq ${seq}): id ${e.id} delivered twice`);
      }
      ids.add(e.id);
    }
    if (prev === undefined) {
      if (options.firstSeq !== undefined && seq !== options.firstSeq && !afterReset) {
        report.problems.push(`event #${i}: first seq ${seq}, expected ${options.firstSeq}`);
      }
    } else if (seq === prev + 1) {
      // in order
    } else if (afterReset && seq > prev) {
      report.jumps++;
    } else if (seq === prev && e.id !== prevId) {
      report.retriedTwice++;
    } else {
      const why = afterReset
        ? ' (after a reset, but not forward)'
        : ' with no reset before the gap';
      report.problems.push(`event #${i}: seq ${seq} after ${prev}${why}`);
    }
    prev = seq;
    prevId = e.id;
    afterReset = false;
  }
  return report;
}

/** Throws, listing what is wrong, unless `client`'s events pass checkContiguousOrReset. */
export function expectContiguousOrReset(
  client: { events: readonly SseEvent[] },
  options: ContiguityOptions = {},
): ContiguityReport {
  const report = checkContiguousOrReset(client.events, options);
  if (report.problems.length > 0) {
    const tail = report.seqs.slice(-10).join(', ');
    throw new Error(
      `not contiguous-or-reset: ${report.problems.slice(0, 5).join('; ')}` +
        ` (${report.seqs.length} events, resets ${JSON.stringify(report.resets)},` +
        ` last seqs ${tail})`,
    );
  }
  return report;
}
