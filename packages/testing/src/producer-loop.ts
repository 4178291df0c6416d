import { sleep } from './wait';

export interface ProducerLoop {
  /** Events stored so far (acknowledged publishes). */
  readonly stored: number;
  /** Publishes that failed (Redis away); each seq is tried again until stored. */
  readonly failures: number;
  /** The id each stored seq got, by seq. */
  readonly ids: readonly string[];
  /** Stops after the publish in flight; resolves to the number stored. */
  stop(): Promise<number>;
}

/**
 * A producer publishing seq 0, 1, 2 … continuously through `publish` (e.g. a publisher's, with
 * `{ seq }` as data) until stopped. A seq whose publish failed is published again, so the seqs
 * acknowledged are 0 … stored - 1 with no gap.
 */
export function startProducerLoop(
  publish: (seq: number) => Promise<string>,
  options: { intervalMs?: number } = {},
): ProducerLoop {
  const intervalMs = options.intervalMs ?? 5;
  let running = true;
  let failures = 0;
  const ids: string[] = [];
  const loop = (async () => {
    while (running) {
      try {
        ids.push(await publish(ids.length));
      } catch {
        failures++;
      }
      await sleep(intervalMs);
    }
  })();
  return {
    get stored() {
      return ids.length;
    },
    get failures() {
      return failures;
    },
    ids,
    stop: async () => {
      running = false;
      await loop;
      return ids.length;
    },
  };
}
