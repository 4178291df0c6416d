import type { Publisher } from '@streamcast/publisher';
import type { Emission, Producer, ProducerContext } from './types';

/** A step returns the events to publish (possibly none). */
export type Step = () => Emission[] | void | Promise<Emission[] | void>;

interface Scheduled {
  due: number;
  seq: number;
  step: Step;
}

/** Further failures of a run are reported at most this often. */
const FAILURE_REPORT_MS = 10_000;
/** Further behind schedule than this (a slow publish, a suspended process), skip ahead: no burst. */
const MAX_LAG_MS = 1_000;

/**
 * Runs a producer's steps on a virtual clock, one at a time.
 *
 * Steps are ordered by their virtual due time (ties by scheduling order), never by when timers
 * happen to fire, and a step's random draws happen while it runs: the same seed gives the same
 * sequence of events, however loaded the machine is. The next step waits for the previous one's
 * publishes, so a slow or failing target never piles up work.
 */
export class ProducerRuntime implements Producer {
  private readonly queue: Scheduled[] = [];
  private seq = 0;
  /** Virtual time: ms since start, as the schedule sees it. */
  private clock = 0;
  /** Real time (Date.now) at virtual 0. */
  private origin = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private failures = 0;
  private lastReport = 0;

  constructor(
    readonly name: string,
    private readonly publisher: Publisher,
    private readonly context: ProducerContext,
  ) {}

  /** Virtual ms since start. */
  get elapsed(): number {
    return this.clock;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** Wall clock for payload timestamps. */
  now(): number {
    return this.context.now ? this.context.now() : Date.now();
  }

  /** Runs `step` once, `delayMs` after the current virtual time. */
  after(delayMs: number, step: Step): void {
    if (this.stopped) return;
    this.queue.push({ due: this.clock + Math.max(0, delayMs), seq: this.seq++, step });
    this.arm();
  }

  /**
   * Runs `step` every `interval()` ms (drawn again each time), the first time after `firstMs`
   * (default: one interval).
   */
  every(interval: number | (() => number), step: Step, firstMs?: number): void {
    const next = () => (typeof interval === 'number' ? interval : interval());
    const loop: Step = async () => {
      try {
        return await step();
      } finally {
        this.after(next(), loop); // a failed step is reported; the loop goes on
      }
    };
    this.after(firstMs ?? next(), loop);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.queue.length = 0;
    await this.running;
  }

  private arm(): void {
    if (this.stopped || this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const next = this.earliest();
    if (!next) return;
    let delay = this.origin + next.due - Date.now();
    if (delay < -MAX_LAG_MS) {
      this.origin -= delay; // shift the schedule instead of firing a burst of overdue steps
      delay = 0;
    }
    this.timer = setTimeout(() => this.fire(), Math.max(0, delay));
    // The producer alone never keeps a process alive; its host (a server, the runner) does.
    this.timer.unref();
  }

  private earliest(): Scheduled | undefined {
    let best: Scheduled | undefined;
    for (const item of this.queue) {
      if (!best || item.due < best.due || (item.due === best.due && item.seq < best.seq))
        best = item;
    }
    return best;
  }

  private fire(): void {
    this.timer = undefined;
    const item = this.earliest();
    if (this.stopped || !item) return;
    this.queue.splice(this.queue.indexOf(item), 1);
    this.clock = item.due;
    this.running = this.run(item.step).finally(() => {
      this.running = undefined;
      this.arm();
    });
  }

  private async run(step: Step): Promise<void> {
    let emissions: Emission[] | void;
    try {
      emissions = await step();
    } catch (err) {
      this.report(err as Error, true);
      return;
    }
    if (emissions && emissions.length > 0) await this.publishAll(emissions);
  }

  /** In order within a topic (subscribers see a believable course), topics concurrently. */
  private async publishAll(emissions: Emission[]): Promise<void> {
    const byTopic = new Map<string, Emission[]>();
    for (const emission of emissions) {
      const list = byTopic.get(emission.topic);
      if (list) list.push(emission);
      else byTopic.set(emission.topic, [emission]);
    }
    await Promise.all(
      [...byTopic.values()].map(async (list) => {
        for (const { topic, event, data } of list) {
          if (this.stopped) return; // stop(): nothing new starts; the publish in flight finishes
          await this.publishOne(topic, event, data);
        }
      }),
    );
  }

  private async publishOne(topic: string, event: string, data: unknown): Promise<void> {
    try {
      await this.publisher.publish(topic, event, data);
      if (this.failures > 0) {
        this.context.log(`${this.name}: publishing again after ${this.failures} failed publishes`);
        this.failures = 0;
      }
    } catch (err) {
      // A failed publish (Redis down, gateway away) is dropped; the next step publishes afresh.
      this.failures++;
      this.report(err as Error, false);
    }
  }

  private report(err: Error, always: boolean): void {
    const now = Date.now();
    if (!always && this.failures > 1 && now - this.lastReport < FAILURE_REPORT_MS) return;
    this.lastReport = now;
    const reported =
      always || this.failures <= 1
        ? err
        : Object.assign(new Error(`${err.message} (${this.failures} failures so far)`), {
            name: err.name,
            cause: err,
          });
    if (this.context.onError) this.context.onError(reported);
    else
      this.context.log(
        `${this.name}: ${always ? 'step failed' : 'publish failed'}: ${reported.message}`,
      );
  }
}
