import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import calculateSlot from 'cluster-key-slot';
import Redis from 'ioredis';
import { RedisProcess } from './redis';
import { sleep, waitFor } from './wait';

export interface TestRedisClusterOptions {
  /** @default 3 */
  masters?: number;
  /** Replicas of each master. @default 1 */
  replicas?: number;
  /** `cluster-node-timeout`: how long a dead master takes to be failed over. @default 1000 */
  nodeTimeoutMs?: number;
  /** `requirepass` (and `masterauth`) of every node; redis-cli and connect() use it too. */
  password?: string;
}

/** One line of CLUSTER NODES. */
export interface ClusterNodeInfo {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** Master's id (replicas); '-' for masters. */
  masterId: string;
  failed: boolean;
  /** Slots served (masters), as [from, to] ranges. */
  slots: Array<[number, number]>;
}

/**
 * A real Redis Cluster for tests: `masters × (1 + replicas)` redis-server processes with
 * `--cluster-enabled yes` on free ports of 127.0.0.1, joined by `redis-cli --cluster create`,
 * AOF on (a restarted node keeps its data), in a temporary directory removed by stop().
 */
export class TestRedisCluster {
  private constructor(
    readonly dir: string,
    readonly nodes: RedisProcess[],
    readonly nodeTimeoutMs: number,
    readonly password?: string,
  ) {}

  static async start(options: TestRedisClusterOptions = {}): Promise<TestRedisCluster> {
    const masters = options.masters ?? 3;
    const replicas = options.replicas ?? 1;
    const nodeTimeoutMs = options.nodeTimeoutMs ?? 1000;
    const dir = mkdtempSync(join(tmpdir(), 'streamcast-cluster-'));
    const cluster = new TestRedisCluster(dir, [], nodeTimeoutMs, options.password);
    const auth = options.password
      ? ['--requirepass', options.password, '--masterauth', options.password]
      : [];
    try {
      for (let i = 0; i < masters * (1 + replicas); i++) {
        const nodeDir = join(dir, `node-${i}`);
        mkdirSync(nodeDir);
        cluster.nodes.push(
          await RedisProcess.start({
            dir: nodeDir,
            args: [
              '--cluster-enabled',
              'yes',
              '--cluster-config-file',
              'nodes.conf',
              '--cluster-node-timeout',
              String(nodeTimeoutMs),
              // A replica may always take over, however long it was cut off (tests kill masters).
              '--cluster-replica-validity-factor',
              '0',
              '--cluster-allow-replica-migration',
              'no',
              '--repl-diskless-sync-delay',
              '0',
              '--appendonly',
              'yes',
              '--appendfsync',
              'no',
              ...auth,
            ],
          }),
        );
      }
      await cluster.redisCli([
        '--cluster',
        'create',
        ...cluster.nodes.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas',
        String(replicas),
        '--cluster-yes',
      ]);
      await cluster.waitHealthy();
      return cluster;
    } catch (err) {
      await cluster.stop();
      throw err;
    }
  }

  /** Seed nodes as `REDIS_CLUSTER_NODES` names them. */
  get seeds(): string {
    return this.nodes.map((n) => `127.0.0.1:${n.port}`).join(',');
  }

  get startupNodes(): Array<{ host: string; port: number }> {
    return this.nodes.map((n) => ({ host: '127.0.0.1', port: n.port }));
  }

  node(port: number): RedisProcess {
    const node = this.nodes.find((n) => n.port === port);
    if (!node) throw new Error(`no cluster node on port ${port}`);
    return node;
  }

  /** A plain connection to one node (the caller disconnects it). */
  connect(port: number): Redis {
    return new Redis({
      host: '127.0.0.1',
      port,
      lazyConnect: false,
      maxRetriesPerRequest: 1,
      password: this.password,
    });
  }

  /** CLUSTER NODES as one live node sees it. */
  async clusterNodes(viaPort?: number): Promise<ClusterNodeInfo[]> {
    const ports = viaPort ? [viaPort] : this.nodes.map((n) => n.port);
    for (const port of ports) {
      const redis = this.connect(port);
      try {
        const text = (await redis.call('CLUSTER', 'NODES')) as string;
        return parseClusterNodes(text);
      } catch {
        // a dead node: ask the next
      } finally {
        redis.disconnect();
      }
    }
    throw new Error('no cluster node answers');
  }

  async masters(): Promise<ClusterNodeInfo[]> {
    return (await this.clusterNodes()).filter(
      (n) => n.role === 'master' && !n.failed && n.slots.length > 0,
    );
  }

  /** Port of the master serving a slot. */
  async masterOfSlot(slot: number): Promise<number> {
    for (const master of await this.masters()) {
      if (master.slots.some(([a, b]) => slot >= a && slot <= b)) return master.port;
    }
    throw new Error(`no master serves slot ${slot}`);
  }

  /** Port of a replica of the master on `masterPort`. */
  async replicaOf(masterPort: number): Promise<number> {
    const nodes = await this.clusterNodes();
    const master = nodes.find((n) => n.port === masterPort);
    const replica = nodes.find(
      (n) => n.role === 'replica' && !n.failed && n.masterId === master?.id,
    );
    if (!replica) throw new Error(`no replica of ${masterPort}`);
    return replica.port;
  }

  /** Waits until every live node says cluster_state:ok and they agree on the slot owners. */
  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    await waitFor(
      async () => {
        const views: string[] = [];
        for (const node of this.nodes) {
          if (node.pid === undefined) continue;
          const redis = this.connect(node.port);
          try {
            const info = (await redis.call('CLUSTER', 'INFO')) as string;
            if (!/cluster_state:ok/.test(info)) return false;
            const nodes = parseClusterNodes((await redis.call('CLUSTER', 'NODES')) as string);
            if (nodes.some((n) => n.failed && n.role === 'master' && n.slots.length > 0))
              return false;
            views.push(
              JSON.stringify(
                nodes
                  .filter((n) => n.role === 'master' && n.slots.length > 0)
                  .map((n) => [n.port, n.slots])
                  .sort(),
              ),
            );
          } catch {
            return false;
          } finally {
            redis.disconnect();
          }
        }
        return views.length > 0 && views.every((v) => v === views[0]);
      },
      'redis cluster healthy',
      timeoutMs,
      100,
    );
  }

  /** `redis-cli --cluster reshard`: moves `count` slots from one master to another. */
  async reshard(fromPort: number, toPort: number, count: number): Promise<void> {
    const nodes = await this.clusterNodes();
    const from = nodes.find((n) => n.port === fromPort);
    const to = nodes.find((n) => n.port === toPort);
    if (!from || !to) throw new Error('reshard: unknown node');
    await this.redisCli([
      '--cluster',
      'reshard',
      `127.0.0.1:${fromPort}`,
      '--cluster-from',
      from.id,
      '--cluster-to',
      to.id,
      '--cluster-slots',
      String(count),
      '--cluster-yes',
      '--cluster-pipeline',
      '100',
    ]);
    await this.waitHealthy();
  }

  /**
   * Moves one slot by hand, as the Redis Cluster specification describes: SETSLOT IMPORTING on
   * the target, MIGRATING on the source, MIGRATE every key, then SETSLOT NODE on both and the rest.
   * `pauseMs` waits between the key moves (publishes go on meanwhile, with ASK / TRYAGAIN);
   * `whileImporting` runs once every key is on the target, before the slot is handed over.
   */
  async migrateSlot(
    slot: number,
    toPort: number,
    pauseMs = 0,
    whileImporting?: () => Promise<void>,
  ): Promise<void> {
    const nodes = await this.clusterNodes();
    const fromPort = await this.masterOfSlot(slot);
    if (fromPort === toPort) return;
    const from = nodes.find((n) => n.port === fromPort) as ClusterNodeInfo;
    const to = nodes.find((n) => n.port === toPort) as ClusterNodeInfo;
    const source = this.connect(fromPort);
    const target = this.connect(toPort);
    try {
      await target.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', from.id);
      await source.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', to.id);
      for (;;) {
        const keys = (await source.call('CLUSTER', 'GETKEYSINSLOT', slot, 10)) as string[];
        if (keys.length === 0) break;
        await source.call(
          'MIGRATE',
          '127.0.0.1',
          toPort,
          '',
          0,
          5000,
          ...(this.password ? ['AUTH', this.password] : []),
          'KEYS',
          ...keys,
        );
        if (pauseMs > 0) await sleep(pauseMs);
      }
      if (whileImporting) await whileImporting();
      await target.call('CLUSTER', 'SETSLOT', slot, 'NODE', to.id);
      await source.call('CLUSTER', 'SETSLOT', slot, 'NODE', to.id);
      for (const n of nodes) {
        if (n.role !== 'master' || n.failed || n.port === fromPort || n.port === toPort) continue;
        const other = this.connect(n.port);
        await other.call('CLUSTER', 'SETSLOT', slot, 'NODE', to.id).catch(() => {});
        other.disconnect();
      }
    } finally {
      source.disconnect();
      target.disconnect();
    }
    await this.waitHealthy();
  }

  /** CLUSTER FAILOVER on a replica of the master on `masterPort`; resolves to the new master's port. */
  async failover(masterPort: number): Promise<number> {
    const replicaPort = await this.replicaOf(masterPort);
    const replica = this.connect(replicaPort);
    try {
      await replica.call('CLUSTER', 'FAILOVER');
    } finally {
      replica.disconnect();
    }
    await waitFor(
      async () =>
        (await this.clusterNodes(replicaPort)).find((n) => n.port === replicaPort)?.role ===
        'master',
      `replica ${replicaPort} promoted`,
      20_000,
      50,
    );
    await this.waitHealthy();
    return replicaPort;
  }

  /**
   * SIGKILL of a master; waits until its replica took over (past cluster-node-timeout) and the
   * cluster is healthy again. Resolves to the new master's port. The killed node stays down.
   */
  async killMaster(masterPort: number): Promise<number> {
    const replicaPort = await this.replicaOf(masterPort);
    await this.node(masterPort).kill();
    await waitFor(
      async () =>
        (await this.clusterNodes(replicaPort)).find((n) => n.port === replicaPort)?.role ===
        'master',
      `replica ${replicaPort} promoted`,
      30_000,
      100,
    );
    await this.waitHealthy();
    return replicaPort;
  }

  /** SIGKILL and start again on the same port and data (AOF): the node comes back. */
  async restart(port: number, downMs = 0): Promise<void> {
    const node = this.node(port);
    await node.kill();
    if (downMs > 0) await sleep(downMs);
    await node.launch();
    await this.waitHealthy();
  }

  /** A key's slot (hash tags honoured). */
  static slotOf(key: string): number {
    return calculateSlot(key);
  }

  /** redis-cli with the cluster's password (REDISCLI_AUTH: not on its command line). */
  private redisCli(args: string[]): Promise<string> {
    return redisCli(args, this.password);
  }

  async stop(): Promise<void> {
    for (const node of this.nodes) await node.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function parseClusterNodes(text: string): ClusterNodeInfo[] {
  const out: ClusterNodeInfo[] = [];
  for (const line of text.split('\n')) {
    const parts = line.trim().split(' ');
    if (parts.length < 8) continue;
    const [id, address, flags, masterId] = parts as [string, string, string, string];
    const port = Number(/:(\d+)/.exec(address)?.[1]);
    const slots: Array<[number, number]> = [];
    for (const range of parts.slice(8)) {
      if (range.startsWith('[')) continue; // a slot being migrated
      const [a, b] = range.split('-').map(Number) as [number, number?];
      slots.push([a, b ?? a]);
    }
    out.push({
      id,
      port,
      role: flags.includes('master') ? 'master' : 'replica',
      masterId,
      failed: /fail(?!\?)/.test(flags) || flags.includes('noaddr'),
      slots,
    });
  }
  return out;
}

function redisCli(args: string[], password: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const env = password ? { ...process.env, REDISCLI_AUTH: password } : process.env;
    const child = spawn('redis-cli', args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0) resolve(output);
      else
        reject(
          new Error(
            `redis-cli ${args.slice(0, 2).join(' ')} failed (${code}): ${output.slice(-2000)}`,
          ),
        );
    });
  });
}
