/**
 * QUIT, as @fastify/redis's closeClient does, except that a connection closing before QUIT's
 * answer came back (ioredis then rejects it with "Connection is closed.", as a drained gateway
 * once did in CI) is what QUIT was for, not a failed stop: the gateway would otherwise exit 1
 * after a clean drain.
 */
export async function quitRedis(client: {
  status: string;
  quit(): Promise<unknown>;
}): Promise<void> {
  if (client.status === 'end') return;
  try {
    await client.quit();
  } catch (err) {
    if (client.status !== 'end' || (err as Error | null)?.message !== 'Connection is closed.') {
      throw err;
    }
  }
}
