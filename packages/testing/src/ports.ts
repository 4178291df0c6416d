// Local-process helpers live in @streamcast/local (shared with scripts/cluster.ts); the tests
// keep importing them from here.
export {
  canConnect,
  freePort,
  nginxPath,
  portIsFree,
  redisServerPath,
  which,
} from '@streamcast/local';
