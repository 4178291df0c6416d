import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster, Redis } from 'ioredis';
import { randomId } from './file-id';
import { uploadKeys } from './keys';

/**
 * What uploads share across processes: which file ids are in use, and which jobs have published
 * their terminal event. Redis when gateways and workers share one, a Map in one process.
 */
export interface UploadStore {
  /** Takes `fileId` for `jobId` unless another upload holds it (Redis: SET NX EX). */
  reserve(fileId: string, jobId: string, ttlS: number): Promise<boolean>;
  /** Frees `fileId` if `jobId` still holds it. */
  release(fileId: string, jobId: string): Promise<void>;
  /**
   * Runs `publish` (the job's `complete` or `failed`) unless this job has published its terminal
   * event already, by any attempt in any process; resolves whether it ran. A job run again after
   * its worker died therefore ends exactly once.
   */
  finishOnce(jobId: string, publish: () => Promise<unknown>): Promise<boolean>;
}

/** The script this store defines on its client. */
interface Scripts {
  uploadDelIfEqual(key: string, value: string): Promise<number>;
}

const DEL_IF_EQUAL = readFileSync(join(__dirname, 'lua', 'del-if-equal-1.lua'), 'utf8');

/** A claim outlives any publish (which gives up after 5 s); then another attempt may try. */
const CLAIM_MS = 15_000;

export class RedisUploadStore implements UploadStore {
  private readonly keys: ReturnType<typeof uploadKeys>;
  private readonly client: (Redis | Cluster) & Scripts;

  constructor(
    client: Redis | Cluster,
    keyPrefix: string,
    private readonly retentionS: number,
  ) {
    this.keys = uploadKeys(keyPrefix);
    this.client = client as (Redis | Cluster) & Scripts;
    if (typeof (client as Partial<Scripts>).uploadDelIfEqual !== 'function') {
      client.defineCommand('uploadDelIfEqual', { numberOfKeys: 1, lua: DEL_IF_EQUAL });
    }
  }

  async reserve(fileId: string, jobId: string, ttlS: number): Promise<boolean> {
    return (await this.client.set(this.keys.fileId(fileId), jobId, 'EX', ttlS, 'NX')) === 'OK';
  }

  async release(fileId: string, jobId: string): Promise<void> {
    await this.client.uploadDelIfEqual(this.keys.fileId(fileId), jobId);
  }

  async finishOnce(jobId: string, publish: () => Promise<unknown>): Promise<boolean> {
    const key = this.keys.done(jobId);
    for (;;) {
      const claim = `claim:${randomId()}`;
      if ((await this.client.set(key, claim, 'PX', CLAIM_MS, 'NX')) === 'OK') {
        try {
          await publish();
        } catch (err) {
          await this.client.uploadDelIfEqual(key, claim).catch(() => undefined);
          throw err;
        }
        // Killed between the publish and this line, the next attempt publishes again: the only
        // window for a second terminal event, a few milliseconds wide.
        await this.client.set(key, 'done', 'EX', this.retentionS);
        return true;
      }
      const value = await this.client.get(key);
      if (value === 'done') return false;
      // Another attempt is publishing (or died doing it: its claim expires).
      if (value !== null) await sleep(200);
    }
  }
}

/** The store of one process (`npm start` without Redis). */
export class MemoryUploadStore implements UploadStore {
  private readonly ids = new Map<string, { jobId: string; timer: NodeJS.Timeout }>();
  private readonly done = new Map<string, NodeJS.Timeout>();

  constructor(private readonly retentionS: number) {}

  async reserve(fileId: string, jobId: string, ttlS: number): Promise<boolean> {
    if (this.ids.has(fileId)) return false;
    const timer = setTimeout(() => this.ids.delete(fileId), ttlS * 1000).unref();
    this.ids.set(fileId, { jobId, timer });
    return true;
  }

  async release(fileId: string, jobId: string): Promise<void> {
    const held = this.ids.get(fileId);
    if (held?.jobId !== jobId) return;
    clearTimeout(held.timer);
    this.ids.delete(fileId);
  }

  async finishOnce(jobId: string, publish: () => Promise<unknown>): Promise<boolean> {
    if (this.done.has(jobId)) return false;
    await publish();
    if (this.done.has(jobId)) return false;
    this.done.set(jobId, setTimeout(() => this.done.delete(jobId), this.retentionS * 1000).unref());
    return true;
  }

  close(): void {
    for (const { timer } of this.ids.values()) clearTimeout(timer);
    for (const timer of this.done.values()) clearTimeout(timer);
    this.ids.clear();
    this.done.clear();
  }
}
