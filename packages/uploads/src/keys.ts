/**
 * Every Redis key of uploads, in one place. None starts with `<prefix>:{`, so none can meet a
 * topic's keys (`<prefix>:{<topic>}:log`…). BullMQ's keys are `<prefix>:uploads:{jobs}:…`: the
 * queue name is a hash tag, so the whole queue lives in one Redis Cluster slot, as BullMQ asks.
 */
export const QUEUE_NAME = '{jobs}';

export function uploadKeys(prefix: string) {
  const base = `${prefix}:uploads`;
  return {
    /** BullMQ's `prefix` option. */
    bullPrefix: base,
    /** Holds a file id while an upload uses it: the job id, with a TTL. */
    fileId: (fileId: string) => `${base}:id:${fileId}`,
    /** A job's terminal event (`complete` / `failed`) was published: `done`, or `claim:<token>` while publishing. */
    done: (jobId: string) => `${base}:done:${jobId}`,
  };
}
