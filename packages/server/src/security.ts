import type { GatewayConfig } from '@streamcast/config';
import { Authorizer, Guard, StreamCounter } from '@streamcast/http';
import type { Cluster, Redis } from 'ioredis';
import type { Logger } from 'pino';

type SecurityConfig = Pick<
  GatewayConfig,
  | 'JWT_SECRET'
  | 'JWT_JWKS_URL'
  | 'JWT_JWKS_FILE'
  | 'JWT_ISSUER'
  | 'JWT_AUDIENCE'
  | 'JWT_CLOCK_SKEW_S'
  | 'PUBLIC_TOPICS'
  | 'CORS_ORIGINS'
  | 'MAX_CONNECTIONS'
  | 'MAX_STREAMS_PER_IP'
  | 'MAX_STREAMS_PER_SUBJECT'
  | 'CLUSTER_MAX_STREAMS_PER_IP'
  | 'CLUSTER_MAX_STREAMS_PER_SUBJECT'
  | 'STREAM_COUNT_TTL_S'
  | 'PUBLISH_RATE_PER_MIN'
  | 'REDIS_PREFIX'
>;

/**
 * The gateway's guard from its configuration: JWT keys and claims, public topics, trusted
 * origins, stream limits (counted across the cluster in `redis` when there is one) and the
 * publish rate.
 */
export function buildGuard(
  config: SecurityConfig,
  redis: Redis | Cluster | undefined,
  log: Logger,
): Guard {
  const auth = new Authorizer({
    secret: config.JWT_SECRET,
    jwksUrl: config.JWT_JWKS_URL,
    jwksFile: config.JWT_JWKS_FILE,
    issuer: config.JWT_ISSUER,
    audience: config.JWT_AUDIENCE,
    clockSkewS: config.JWT_CLOCK_SKEW_S,
    publicTopics: config.PUBLIC_TOPICS,
    corsOrigins: config.CORS_ORIGINS,
  });
  const limitsLog = log.child({ component: 'limits' });
  const streams = new StreamCounter({
    limits: {
      maxConnections: config.MAX_CONNECTIONS,
      maxPerIp: config.MAX_STREAMS_PER_IP,
      maxPerSubject: config.MAX_STREAMS_PER_SUBJECT,
      clusterMaxPerIp: config.CLUSTER_MAX_STREAMS_PER_IP,
      clusterMaxPerSubject: config.CLUSTER_MAX_STREAMS_PER_SUBJECT,
    },
    redis,
    keyPrefix: config.REDIS_PREFIX,
    countTtlMs: config.STREAM_COUNT_TTL_S * 1000,
    onWarning: (message, detail) => limitsLog.warn(detail ?? {}, message),
  });
  return new Guard({ auth, streams, publishRatePerMin: config.PUBLISH_RATE_PER_MIN });
}
