import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, createServer } from 'node:net';

/*
 * What starting local processes needs, shared by `npm run cluster` (scripts/cluster.ts), the test
 * helpers (@streamcast/testing) and the benchmarks: free ports on 127.0.0.1, "does it answer",
 * and where a program is installed. Node built-ins only: nothing here may pull a test-only
 * dependency into what imports it.
 */

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

/** Whether 127.0.0.1:`port` can be listened on right now. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The path of program `name` on PATH, else the first of `fallbacks` that exists. */
export function which(name: string, fallbacks: string[] = []): string | undefined {
  const found = spawnSync('sh', ['-c', 'command -v "$0"', name], { encoding: 'utf8' });
  const path = found.stdout?.trim();
  if (found.status === 0 && path) return path;
  return fallbacks.find((p) => existsSync(p));
}

/** redis-server from PATH, or where Debian and `make install` put it. */
export function redisServerPath(): string {
  const path = which('redis-server', ['/usr/bin/redis-server', '/usr/local/bin/redis-server']);
  if (!path)
    throw new Error(
      'redis-server is not installed: apt-get install redis-server, or set REDIS_URL',
    );
  return path;
}

/** nginx from NGINX_BIN, PATH, or where Debian puts it (/usr/sbin is not on every user's PATH). */
export function nginxPath(): string {
  const path =
    process.env.NGINX_BIN || which('nginx', ['/usr/sbin/nginx', '/usr/local/sbin/nginx']);
  if (!path)
    throw new Error(
      'nginx is not installed: apt-get install nginx-light (or nginx), or set NGINX_BIN',
    );
  return path;
}
