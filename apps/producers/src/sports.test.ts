import { validateEvent } from '@streamcast/events';
import { runProducer, type Recorded } from './test-support';

const fast = { minuteMs: 1, halfTimeMinutes: 3, pauseMinutes: 2 };

interface Status {
  status: string;
  time: number;
}
interface Score {
  homeScore: number;
  awayScore: number;
}
interface MatchEvent {
  time: number;
  type: string;
  player: string;
}

/** The events of one topic, cut into matches at each kick-off. */
function matchesOf(events: Recorded[], topic: string): Recorded[][] {
  const out: Recorded[][] = [];
  for (const e of events.filter((x) => x.topic === topic)) {
    if (e.event === 'matchStatus' && (e.data as Status).status === 'kick-off') out.push([]);
    out[out.length - 1]?.push(e);
  }
  return out;
}

const fullTimes = (events: Recorded[], topic: string) =>
  events.filter(
    (e) =>
      e.topic === topic && e.event === 'matchStatus' && (e.data as Status).status === 'full-time',
  ).length;

describe('sports producer', () => {
  const ids = ['123', '456', 'derby_7'];
  let events: Recorded[];

  beforeAll(async () => {
    // Every match plays twice through: kick-off … full-time, a pause, a new kick-off … full-time.
    events = await runProducer('sports', { ...fast, matches: ids.join(',') }, 2024, 1, (all) =>
      ids.every((id) => fullTimes(all, `matches/${id}`) >= 2),
    );
  });

  it('publishes only valid scoreUpdate, matchStatus and matchEvent on matches/<id>', () => {
    for (const e of events) {
      expect(ids.map((id) => `matches/${id}`)).toContain(e.topic);
      expect(['scoreUpdate', 'matchStatus', 'matchEvent']).toContain(e.event);
      expect(() => validateEvent(e.topic, e.event, e.data)).not.toThrow();
    }
  });

  it('plays a 90-minute course: kick-off, first half, half-time, second half, full-time', () => {
    for (const id of ids) {
      const matches = matchesOf(events, `matches/${id}`).slice(0, 2);
      expect(matches).toHaveLength(2);
      for (const match of matches) {
        const statuses = match
          .filter((e) => e.event === 'matchStatus')
          .map((e) => e.data as Status);
        const expected: Status[] = [
          { status: 'kick-off', time: 0 },
          ...Array.from({ length: 45 }, (_, i) => ({ status: 'first-half', time: i + 1 })),
          { status: 'half-time', time: 45 },
          ...Array.from({ length: 46 }, (_, i) => ({ status: 'second-half', time: 45 + i })),
          { status: 'full-time', time: 90 },
        ];
        expect(statuses).toEqual(expected);
      }
    }
  });

  it('never lowers a score, and every goal is followed by the score it makes', () => {
    let goals = 0;
    for (const id of ids) {
      for (const match of matchesOf(events, `matches/${id}`)) {
        expect(match[1]).toEqual({
          topic: `matches/${id}`,
          event: 'scoreUpdate',
          data: { homeScore: 0, awayScore: 0 },
        });
        let score: Score = { homeScore: 0, awayScore: 0 };
        let minute = 0;
        match.forEach((e, i) => {
          if (e.event === 'matchStatus') minute = (e.data as Status).time;
          if (e.event === 'matchEvent') {
            const me = e.data as MatchEvent;
            expect(me.time).toBe(minute); // events carry the minute they happened in
            expect(['goal', 'yellow-card', 'red-card', 'substitution']).toContain(me.type);
            if (me.type === 'goal') {
              goals++;
              const next = match[i + 1];
              expect(next?.event).toBe('scoreUpdate');
              const after = next?.data as Score;
              const team = me.player.replace(/^.*\((\w+)\)$/, '$1');
              expect(after.homeScore + after.awayScore).toBe(score.homeScore + score.awayScore + 1);
              expect(team).toMatch(/^\w+$/);
            }
          }
          if (e.event === 'scoreUpdate' && i > 1) {
            const s = e.data as Score;
            expect(s.homeScore).toBeGreaterThanOrEqual(score.homeScore);
            expect(s.awayScore).toBeGreaterThanOrEqual(score.awayScore);
            expect(
              match[i - 1]?.event === 'matchEvent' && (match[i - 1]?.data as MatchEvent).type,
            ).toBe('goal');
            score = s;
          }
        });
      }
    }
    expect(goals).toBeGreaterThan(3); // about 2.5 a match
  });

  it('sends off a player on a red card: he is not heard of again in that match', () => {
    for (const id of ids) {
      for (const match of matchesOf(events, `matches/${id}`)) {
        const off = new Set<string>();
        for (const e of match.filter((x) => x.event === 'matchEvent')) {
          const me = e.data as MatchEvent;
          const named =
            me.type === 'substitution' ? (me.player.split(' for ')[1] ?? '') : me.player;
          expect(off.has(named)).toBe(false);
          if (me.type === 'red-card') off.add(me.player);
        }
      }
    }
  });

  it('gives the same course for the same seed', async () => {
    const a = await runProducer('sports', { ...fast, matches: '1,2' }, 9, 300);
    const b = await runProducer('sports', { ...fast, matches: '1,2' }, 9, 300);
    expect(b.slice(0, 300)).toEqual(a.slice(0, 300));
  });
});
