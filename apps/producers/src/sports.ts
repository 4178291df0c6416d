import { z } from 'zod';
import { booleanOption, integerOption, listOption } from './options';
import { Dice } from './random';
import { ProducerRuntime } from './runtime';
import type { Emission, ProducerDefinition } from './types';

// prettier-ignore
const TEAMS = [
  'Lions', 'Eagles', 'Sharks', 'Wolves', 'Falcons', 'Tigers', 'Bears', 'Rovers',
  'Dragons', 'Comets', 'Hornets', 'Pirates', 'Ravens', 'Bulls', 'Panthers', 'Stags',
];

// prettier-ignore
const SURNAMES = [
  'Silva', 'Müller', 'Rossi', 'García', 'Smith', 'Dubois', 'Kowalski', 'Jansen', 'Costa', 'Novak',
  'Larsen', 'Hughes', 'Moreau', 'Ferrari', 'Santos', 'Schmidt', 'López', 'Andersen', 'Kim', 'Tanaka',
  'Okafor', 'Mensah', 'Nielsen', 'Bianchi', 'Fernández', 'Wright', 'Petrov', 'Horvat', 'Lindqvist', 'Diallo',
  'Martins', 'Keller', 'Romero', 'Walsh', 'Vidal', 'Dumont', 'Berg', 'Marino', 'Yilmaz', 'Suárez',
  'Fischer', 'Lambert', 'Oliveira', 'Conti', 'Pereira', 'Zielinski', 'Murphy', 'Sato', 'Haddad', 'Ibrahim',
];

/** Per team per minute: about 1.4 (home) and 1.1 (away) goals and 1.8 yellow cards a match. */
const RATES = {
  goal: { home: 0.0155, away: 0.0125 },
  yellow: 0.02,
  red: 0.0007,
  /** Per team per minute once substitutions begin (minute 55), while any are left. */
  substitution: 0.07,
};
const MAX_SUBSTITUTIONS = 5;
/** Fewer players than this and a team gets no more red cards (a match would be abandoned). */
const MIN_PLAYERS = 8;

export const sportsOptions = z
  .object({
    matches: listOption('match ids, each played on matches/<id>', ['123', '456', '789'], {
      what: '1-64 of A-Z a-z 0-9 _ - (as the /api/match/:id route)',
      pattern: /^[A-Za-z0-9_-]{1,64}$/,
      maxItems: 32,
    }),
    minuteMs: integerOption('how long one match minute lasts', 1000, 1, 600_000),
    halfTimeMinutes: integerOption('length of the half-time break, in match minutes', 15, 0, 60),
    restart: booleanOption('after full-time, play a new match on the same id', true),
    pauseMinutes: integerOption(
      'match minutes between full-time and the next kick-off',
      30,
      0,
      1440,
    ),
  })
  .strict();

interface Side {
  team: string;
  /** Players on the pitch; [0] is the goalkeeper. */
  onField: string[];
  bench: string[];
  booked: Set<string>;
  substitutionsLeft: number;
}

interface Match {
  id: string;
  topic: string;
  phase: 'first-half' | 'half-time' | 'second-half' | 'full-time';
  minute: number;
  home: Side;
  away: Side;
  homeScore: number;
  awayScore: number;
}

/**
 * Football matches minute by minute on `matches/<id>`: kick-off, a `matchStatus` every minute
 * (`first-half`/`second-half` with the minute, so pages can show the clock), goals, cards and
 * substitutions as `matchEvent`, a `scoreUpdate` after each goal, half-time at 45, full-time at
 * 90; then, with `restart`, a new fixture on the same id. Statuses in order: `kick-off` (0),
 * `first-half` (1-45), `half-time` (45), `second-half` (45-90), `full-time` (90).
 */
export const sportsProducer: ProducerDefinition<typeof sportsOptions> = {
  name: 'sports',
  description:
    'football matches on `matches/<id>`: `matchStatus` ({status, time}), `matchEvent` ({time, type, player}), `scoreUpdate` ({homeScore, awayScore})',
  options: sportsOptions,
  start(publisher, options, context) {
    const dice = new Dice(context.random);
    const runtime = new ProducerRuntime('sports', publisher, context);
    const playing = new Set<string>(); // teams in a match right now: nobody plays two at once

    const side = (team: string, names: string[]): Side => ({
      team,
      onField: names.slice(0, 11).map((n) => `${n} (${team})`),
      bench: names.slice(11, 16).map((n) => `${n} (${team})`),
      booked: new Set(),
      substitutionsLeft: MAX_SUBSTITUTIONS,
    });

    const newMatch = (id: string): Match => {
      const free = TEAMS.filter((t) => !playing.has(t));
      const [home, away] = dice.shuffle(free.length >= 2 ? free : TEAMS);
      const names = dice.shuffle(SURNAMES);
      playing.add(home as string).add(away as string);
      return {
        id,
        topic: `matches/${id}`,
        phase: 'first-half',
        minute: 0,
        home: side(home as string, names.slice(0, 16)),
        away: side(away as string, names.slice(16, 32)),
        homeScore: 0,
        awayScore: 0,
      };
    };

    const kickOff = (id: string) => (): Emission[] => {
      const match = newMatch(id);
      runtime.after(options.minuteMs, () => play(match));
      return [
        { topic: match.topic, event: 'matchStatus', data: { status: 'kick-off', time: 0 } },
        { topic: match.topic, event: 'scoreUpdate', data: { homeScore: 0, awayScore: 0 } },
      ];
    };

    /** What happens to one side in the current minute. */
    const events = (match: Match, own: Side, other: Side, home: boolean): Emission[] => {
      const out: Emission[] = [];
      const time = match.minute;
      const event = (type: string, player: string) =>
        out.push({ topic: match.topic, event: 'matchEvent', data: { time, type, player } });
      const outfield = () => own.onField.slice(1);
      const sendOff = (player: string) => {
        own.onField.splice(own.onField.indexOf(player), 1);
        event('red-card', player);
      };

      // A side a player short scores less; the side facing ten scores more.
      const strength = own.onField.length / other.onField.length;
      if (dice.chance((home ? RATES.goal.home : RATES.goal.away) * strength)) {
        event('goal', dice.pick(outfield()));
        if (home) match.homeScore++;
        else match.awayScore++;
        out.push({
          topic: match.topic,
          event: 'scoreUpdate',
          data: { homeScore: match.homeScore, awayScore: match.awayScore },
        });
      }
      if (dice.chance(RATES.yellow)) {
        const player = dice.pick(outfield());
        if (!own.booked.has(player)) {
          own.booked.add(player);
          event('yellow-card', player);
        } else if (own.onField.length > MIN_PLAYERS) {
          event('yellow-card', player); // a second yellow: off he goes
          sendOff(player);
        }
      }
      if (own.onField.length > MIN_PLAYERS && dice.chance(RATES.red))
        sendOff(dice.pick(outfield()));
      if (
        match.phase === 'second-half' &&
        time >= 55 &&
        own.substitutionsLeft > 0 &&
        own.bench.length > 0 &&
        dice.chance(RATES.substitution)
      ) {
        const off = dice.pick(outfield());
        const on = own.bench.shift() as string;
        own.onField[own.onField.indexOf(off)] = on;
        own.substitutionsLeft--;
        event('substitution', `${on.replace(` (${own.team})`, '')} for ${off}`);
      }
      return out;
    };

    const play = (match: Match): Emission[] => {
      const status = (s: string, time = match.minute): Emission => ({
        topic: match.topic,
        event: 'matchStatus',
        data: { status: s, time },
      });
      if (match.phase === 'half-time') {
        match.phase = 'second-half';
        runtime.after(options.minuteMs, () => play(match));
        return [status('second-half')];
      }
      match.minute++;
      const out = [
        status(match.phase),
        ...events(match, match.home, match.away, true),
        ...events(match, match.away, match.home, false),
      ];
      if (match.phase === 'first-half' && match.minute === 45) {
        match.phase = 'half-time';
        out.push(status('half-time'));
        runtime.after(options.halfTimeMinutes * options.minuteMs, () => play(match));
      } else if (match.phase === 'second-half' && match.minute === 90) {
        match.phase = 'full-time';
        out.push(status('full-time'));
        playing.delete(match.home.team);
        playing.delete(match.away.team);
        if (options.restart)
          runtime.after(options.pauseMinutes * options.minuteMs, kickOff(match.id));
      } else {
        runtime.after(options.minuteMs, () => play(match));
      }
      return out;
    };

    options.matches.forEach((id, i) => {
      // Several matches at once, kick-offs a few minutes apart; the first starts right away.
      runtime.after(i === 0 ? 0 : dice.int(1, 8) * options.minuteMs, kickOff(id));
    });
    return runtime;
  },
};
