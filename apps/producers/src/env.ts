import { engineEnv } from '@streamcast/config';
import { z } from 'zod';

export const DEFAULT_GATEWAY_URL = 'http://127.0.0.1:3000';

/**
 * The runner's environment: REDIS_URL (+ REDIS_PREFIX and retention, as the gateways') to
 * publish straight into Redis; otherwise GATEWAY_URL (+ STREAMCAST_TOKEN) over POST /publish.
 */
export const runnerEnv = z.object({
  ...engineEnv,
  GATEWAY_URL: z
    .string()
    .optional()
    .transform((raw, ctx) => {
      if (raw === undefined || raw === '') return DEFAULT_GATEWAY_URL;
      let url: URL | undefined;
      try {
        url = new URL(raw);
      } catch {
        url = undefined;
      }
      if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
        ctx.addIssue({
          code: 'custom',
          message: `GATEWAY_URL must be an http:// or https:// URL (got ${JSON.stringify(raw)})`,
        });
        return z.NEVER;
      }
      return raw;
    }),
  STREAMCAST_TOKEN: z
    .string()
    .optional()
    .transform((raw) => (raw === undefined || raw === '' ? undefined : raw)),
});

export type RunnerEnv = z.infer<typeof runnerEnv>;
