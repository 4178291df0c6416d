import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis from 'ioredis';
import { FaultProxy } from './fault-proxy';
import { canConnect, freePort, redisServerPath } from './ports';
import { RedisProcess } from './redis';
import { waitFor } from './wait';

export interface SentinelClusterOptions {
  /** Sentinel processes (quorum: a majority of them). @default 1 */
  sentinels?: number;
  /** Master group name. @default 'mymaster' */
  name?: string;
  /** Sentinels' `down-after-milliseconds`. @default 500 */
  downAfterMs?: number;
  /**
   * Sentinels' `failover-timeout`. Also how long they leave a replica that replicates from
   * another address (the proxy below) alone, so keep it above the test's length. @default 60000
   */
  failoverTimeoutMs?: number;
  /**
   * The replica replicates through a FaultProxy, so a test can stall replication: writes the
   * master acknowledges meanwhile are lost by a failover, as with a lagging replica. @default false
   */
  proxyReplication?: boolean;
}

/**
 * One master, one replica (asynchronous replication, no `min-replicas`: a failover may lose
 * acknowledged writes) and 1-3 Sentinels, all on 127.0.0.1 and free ports, in a temporary
 * directory. Uses Debian's `redis-sentinel` (falls back to `redis-server --sentinel`).
 */
export class SentinelCluster {
  private readonly sentinelChildren: ChildProcess[] = [];
  private constructor(
    readonly name: string,
    readonly dir: string,
    readonly master: RedisProcess,
    readonly replica: RedisProcess,
    readonly sentinelPorts: number[],
    readonly replicationProxy: FaultProxy | undefined,
  ) {}

  static async start(options: SentinelClusterOptions = {}): Promise<SentinelCluster> {
    const name = options.name ?? 'mymaster';
    const count = options.sentinels ?? 1;
    const dir = mkdtempSync(join(tmpdir(), 'streamcast-sentinel-'));
    // No 5 s wait for more replicas before the first (diskless) sync.
    const master = await RedisProcess.start({
      dir: mkdir(dir, 'master'),
      args: ['--repl-diskless-sync-delay', '0'],
    });
    let proxy: FaultProxy | undefined;
    let replica: RedisProcess | undefined;
    let cluster: SentinelCluster | undefined;
    try {
      proxy = options.proxyReplication ? await FaultProxy.start(master.port) : undefined;
      const upstream = proxy?.port ?? master.port;
      replica = await RedisProcess.start({
        dir: mkdir(dir, 'replica'),
        args: ['--replicaof', '127.0.0.1', String(upstream)],
      });
      await waitInSync(master, replica);
      const ports: number[] = [];
      for (let i = 0; i < count; i++) ports.push(await freePort());
      cluster = new SentinelCluster(name, dir, master, replica, ports, proxy);
      const quorum = Math.floor(count / 2) + 1;
      for (const [i, port] of ports.entries()) {
        const conf = join(mkdir(dir, `sentinel-${i}`), 'sentinel.conf');
        writeFileSync(
          conf,
          [
            `port ${port}`,
            'bind 127.0.0.1',
            'protected-mode no',
            'daemonize no',
            `dir ${join(dir, `sentinel-${i}`)}`,
            `sentinel monitor ${name} 127.0.0.1 ${master.port} ${quorum}`,
            `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 500}`,
            `sentinel failover-timeout ${name} ${options.failoverTimeoutMs ?? 60_000}`,
            `sentinel parallel-syncs ${name} 1`,
            '',
          ].join('\n'),
        );
        cluster.sentinelChildren.push(spawnSentinel(conf));
      }
      for (const port of ports) {
        await waitFor(() => canConnect(port), `sentinel on port ${port}`, 10_000, 25);
      }
      await cluster.waitForQuorum();
      return cluster;
    } catch (err) {
      if (cluster) await cluster.stop();
      else {
        await replica?.stop();
        await proxy?.stop();
        await master.stop();
        rmSync(dir, { recursive: true, force: true });
      }
      throw err;
    }
  }

  /** The gateway's environment for these Sentinels. */
  get env(): { REDIS_SENTINELS: string; REDIS_SENTINEL_NAME: string } {
    return {
      REDIS_SENTINELS: this.sentinelPorts.map((p) => `127.0.0.1:${p}`).join(','),
      REDIS_SENTINEL_NAME: this.name,
    };
  }

  get sentinels(): Array<{ host: string; port: number }> {
    return this.sentinelPorts.map((port) => ({ host: '127.0.0.1', port }));
  }

  /** The master's port, as the first Sentinel that answers names it. */
  async masterPort(): Promise<number> {
    for (const port of this.sentinelPorts) {
      const addr = await sentinelCall<[string, string] | null>(port, [
        'GET-MASTER-ADDR-BY-NAME',
        this.name,
      ]).catch(() => null);
      if (addr) return Number(addr[1]);
    }
    throw new Error('no sentinel named a master');
  }

  /** Holds replication (the replica falls behind); needs `proxyReplication`. */
  stallReplication(): void {
    if (!this.replicationProxy) throw new Error('start the cluster with proxyReplication');
    this.replicationProxy.stall();
  }

  /**
   * kill -9 of the master; resolves once every Sentinel names the replica as master and it
   * answers as one. Returns the failover's duration in ms.
   */
  async killMasterAndFailOver(timeoutMs = 20_000): Promise<number> {
    const started = Date.now();
    await this.master.kill();
    const target = this.replica.port;
    await waitFor(
      async () => {
        for (const port of this.sentinelPorts) {
          const addr = await sentinelCall<[string, string] | null>(port, [
            'GET-MASTER-ADDR-BY-NAME',
            this.name,
          ]).catch(() => null);
          if (Number(addr?.[1]) !== target) return false;
        }
        const role = await call<unknown[]>(target, ['ROLE']).catch(() => undefined);
        return role?.[0] === 'master';
      },
      'the sentinels to promote the replica',
      timeoutMs,
      100,
    );
    return Date.now() - started;
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.sentinelChildren.map(
        (child) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGKILL');
          }),
      ),
    );
    await this.replicationProxy?.stop();
    await this.replica.stop();
    await this.master.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Until every Sentinel sees the replica and (with several) enough of its peers to fail over. */
  private async waitForQuorum(): Promise<void> {
    await waitFor(
      async () => {
        for (const port of this.sentinelPorts) {
          const replicas = await sentinelCall<string[][]>(port, ['REPLICAS', this.name]).catch(
            () => [],
          );
          const seen = replicas.some((fields) => {
            const info = toMap(fields);
            const healthy = !/s_down|disconnected/.test(info.flags ?? '');
            return Number(info.port) === this.replica.port && healthy;
          });
          if (!seen) return false;
          const ok = await sentinelCall<string>(port, ['CKQUORUM', this.name]).catch(() => '');
          if (!String(ok).startsWith('OK')) return false;
        }
        return true;
      },
      'the sentinels to see the replica and each other',
      30_000,
      100,
    );
  }
}

function mkdir(parent: string, name: string): string {
  const path = join(parent, name);
  mkdirSync(path, { recursive: true });
  return path;
}

function spawnSentinel(conf: string): ChildProcess {
  const found = spawnSync('sh', ['-c', 'command -v redis-sentinel'], { encoding: 'utf8' });
  const sentinel = found.stdout.trim();
  const [cmd, args] = sentinel ? [sentinel, [conf]] : [redisServerPath(), [conf, '--sentinel']];
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  child.unref();
  return child;
}

async function waitInSync(master: RedisProcess, replica: RedisProcess): Promise<void> {
  await waitFor(
    async () => {
      const info = await call<string>(replica.port, ['INFO', 'replication']).catch(() => '');
      if (!/master_link_status:up/.test(info)) return false;
      const onMaster = await call<string>(master.port, ['INFO', 'replication']).catch(() => '');
      const online = new RegExp(`slave0:ip=127\\.0\\.0\\.1,port=${replica.port},state=online`);
      return online.test(onMaster);
    },
    'the replica to sync with the master',
    20_000,
    50,
  );
}

/** One command on a short-lived connection that gives up at once if nothing answers. */
async function call<T>(port: number, args: string[]): Promise<T> {
  const client = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1000,
    commandTimeout: 1000,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.call(args[0] as string, ...args.slice(1))) as T;
  } finally {
    client.disconnect();
  }
}

function sentinelCall<T>(port: number, args: string[]): Promise<T> {
  return call<T>(port, ['SENTINEL', ...args]);
}

function toMap(fields: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < fields.length; i += 2) out[fields[i] as string] = fields[i + 1] as string;
  return out;
}
