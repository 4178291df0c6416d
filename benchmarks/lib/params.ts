/** Benchmark parameters, from the environment (see benchmarks/README.md). */
export interface BenchParams {
  /** SSE subscribers of the one fan-out topic. @default 1000 */
  subscribers: number;
  /** Measured seconds of the saturated fan-out run, per server. @default 10 */
  /** 0: no saturated run (the first fixed-rate run then meets a fresh server: its RSS alone). */
  seconds: number;
  /** Events per second of the fan-out fixed-rate runs, one run each, in order. @default [20, 50] */
  rates: number[];
  /** Measured seconds of the fixed-rate run, per server. @default 5 */
  rateSeconds: number;
  /**
   * Rounds of the fan-out and many-topics scenarios: each round starts every server afresh;
   * their tables give each figure's median over the rounds. @default 3
   */
  rounds: number;
  /** Saturated run: events the publisher may be ahead of the slowest subscriber. @default 200 */
  window: number;
  /** Size of each event's JSON data. @default 128 */
  payloadBytes: number;
  /** Publishes in flight at once. @default 32 */
  concurrency: number;
  /** Client processes holding the SSE connections. @default 2 */
  clientProcesses: number;
  /** Idle connections to hold open on one gateway. @default 10000 */
  idleConnections: number;
  /** Topics the idle connections are spread over. @default 100 */
  idleTopics: number;
  /** Seconds the idle connections stay idle before RSS is read. @default 5 */
  idleSeconds: number;
  /** Many topics: subscribers, spread evenly over `topicsCount` topics. @default 2000 */
  topicsSubscribers: number;
  /** @default 200 */
  topicsCount: number;
  /**
   * Events per second of the many-topics fixed-rate runs, over all topics; the batch and
   * into-Redis runs take the last. @default [200, 1000]
   */
  topicsRates: number[];
  /** Many topics: an extra streamcast fixed-rate run publishing in batches gathered this long; 0: none. */
  topicsBatchMs: number;
  /** Many topics: an extra streamcast fixed-rate run published straight into Redis (1) or not (0). @default 1 */
  topicsEngine: boolean;
  /** node-http (plain node:http) in the fan-out, many-topics and resume scenarios (1) or not (0). @default 1 */
  nodeHttp: boolean;
  /** Maximum throughput (open loop, loss accounted): subscribers. @default 1000 */
  tpSubscribers: number;
  /** Topics of the throughput scenario. @default 10 */
  tpTopics: number;
  /** Seconds of open-loop publishing. @default 10 */
  tpSeconds: number;
  /** Resume storm: subscribers on the server that is killed. @default 5000 */
  stormSubscribers: number;
  /** Topics of the storm's subscribers. @default 50 */
  stormTopics: number;
  /** Events per second published through the storm. @default 100 */
  stormRate: number;
  /** Servers behind the storm's balancer (one is killed). @default 3 */
  stormServers: number;
  /**
   * The reconnection delay of the storm: the gateways' RETRY_MS, and the clients' delay for
   * Nchan, which sends no retry: (EventSource's default is about 3 s). @default 3000
   */
  stormRetryMs: number;
  /** Resume cost: new resumed streams a round. @default 2500 */
  resumeConnections: number;
  /** Resume cost: rounds on the same server. @default 5 */
  resumeRounds: number;
  /** Cluster scenario: seconds of publishing, on one Redis and on the cluster each. @default 10 */
  clusterSeconds: number;
  /** Cluster scenario: topics published round-robin (their spread over masters is reported). @default 1000 */
  clusterTopics: number;
  /** Scenarios to run. @default all */
  only: Set<string>;
}

export const SCENARIOS = [
  'fanout',
  'naive',
  'topics',
  'throughput',
  'idle',
  'storm',
  'resume',
  'cluster',
];

/** A bad parameter: reported as one line, without a stack. */
export class ParamError extends Error {}

/** `text` as an integer in min-max, or undefined. */
function intIn(text: string, min: number, max: number): number | undefined {
  const value = Number(text);
  return /^\d+$/.test(text.trim()) && value >= min && value <= max ? value : undefined;
}

function int(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = intIn(raw, min, max);
  if (value === undefined) {
    throw new ParamError(
      `bench: ${name} must be an integer ${min}-${max} (got ${JSON.stringify(raw)})`,
    );
  }
  return value;
}

/** A comma list of integers, each as int() takes it. */
function ints(name: string, fallback: number[], min: number, max: number): number[] {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const values = raw.split(',').map((item) => intIn(item, min, max));
  if (values.some((value) => value === undefined)) {
    throw new ParamError(
      `bench: ${name} must be a comma list of integers ${min}-${max} (got ${JSON.stringify(raw)})`,
    );
  }
  return values as number[];
}

export function readParams(): BenchParams {
  const onlyRaw = process.env.BENCH_ONLY;
  const only = new Set(
    onlyRaw
      ? onlyRaw
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : SCENARIOS,
  );
  for (const name of only) {
    if (!SCENARIOS.includes(name)) {
      throw new ParamError(
        `bench: BENCH_ONLY must list some of ${SCENARIOS.join(', ')} (got ${JSON.stringify(onlyRaw)})`,
      );
    }
  }
  return {
    subscribers: int('BENCH_SUBSCRIBERS', 1000, 1, 15_000),
    seconds: int('BENCH_SECONDS', 10, 0, 600),
    rates: ints('BENCH_RATE', [20, 50], 1, 100_000),
    rateSeconds: int('BENCH_RATE_SECONDS', 5, 1, 600),
    rounds: int('BENCH_ROUNDS', 3, 1, 20),
    window: int('BENCH_WINDOW', 200, 1, 100_000),
    payloadBytes: int('BENCH_PAYLOAD_BYTES', 128, 64, 65_536),
    concurrency: int('BENCH_CONCURRENCY', 32, 1, 1024),
    clientProcesses: int('BENCH_CLIENT_PROCESSES', 2, 1, 32),
    idleConnections: int('BENCH_IDLE_CONNECTIONS', 10_000, 1, 60_000),
    idleTopics: int('BENCH_IDLE_TOPICS', 100, 1, 10_000),
    idleSeconds: int('BENCH_IDLE_SECONDS', 5, 0, 600),
    topicsSubscribers: int('BENCH_TOPICS_SUBSCRIBERS', 2000, 1, 15_000),
    topicsCount: int('BENCH_TOPICS', 200, 1, 10_000),
    topicsRates: ints('BENCH_TOPICS_RATE', [200, 1000], 1, 100_000),
    topicsBatchMs: int('BENCH_TOPICS_BATCH_MS', 10, 0, 1000),
    topicsEngine: int('BENCH_TOPICS_ENGINE', 1, 0, 1) === 1,
    nodeHttp: int('BENCH_NODE_HTTP', 1, 0, 1) === 1,
    tpSubscribers: int('BENCH_TP_SUBSCRIBERS', 1000, 1, 15_000),
    tpTopics: int('BENCH_TP_TOPICS', 10, 1, 10_000),
    tpSeconds: int('BENCH_TP_SECONDS', 10, 1, 600),
    stormSubscribers: int('BENCH_STORM_SUBSCRIBERS', 5000, 1, 8000),
    stormTopics: int('BENCH_STORM_TOPICS', 50, 1, 10_000),
    stormRate: int('BENCH_STORM_RATE', 100, 1, 100_000),
    stormServers: int('BENCH_STORM_SERVERS', 3, 2, 8),
    stormRetryMs: int('BENCH_STORM_RETRY_MS', 3000, 0, 60_000),
    resumeConnections: int('BENCH_RESUME_CONNECTIONS', 2500, 1, 10_000),
    resumeRounds: int('BENCH_RESUME_ROUNDS', 5, 1, 100),
    clusterSeconds: int('BENCH_CLUSTER_SECONDS', 10, 1, 600),
    clusterTopics: int('BENCH_CLUSTER_TOPICS', 1000, 1, 100_000),
    only,
  };
}
