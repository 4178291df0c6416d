import { defineVar, engineEnv, envSchema, invalid, type EnvOf } from '@streamcast/config';

export const DEFAULT_GATEWAY_URL = 'http://127.0.0.1:3000';

/**
 * The runner's environment: REDIS_URL (+ REDIS_PREFIX and retention, as the gateways') to
 * publish straight into Redis; otherwise GATEWAY_URL (+ STREAMCAST_TOKEN) over POST /publish.
 */
export const runnerEnv = envSchema({
  ...engineEnv,
  GATEWAY_URL: defineVar((raw) => {
    if (raw === undefined || raw === '') return DEFAULT_GATEWAY_URL;
    let url: URL | undefined;
    try {
      url = new URL(raw);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      return invalid(`GATEWAY_URL must be an http:// or https:// URL (got ${JSON.stringify(raw)})`);
    }
    return raw;
  }),
  STREAMCAST_TOKEN: defineVar((raw) => (raw === undefined || raw === '' ? undefined : raw)),
});

export type RunnerEnv = EnvOf<typeof runnerEnv>;
