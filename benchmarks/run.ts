/**
 * `npm run bench`: every scenario, one table each, headed by machine, Node version and
 * parameters; each scenario runs against streamcast and, in the same run and on the same core
 * pinning, against Nchan (when libnginx-mod-nchan is installed). Parameters come from the
 * environment (benchmarks/README.md); progress goes to stderr, the tables to stdout. The exit
 * code is 1 when streamcast failed a check (events lost or duplicated, clients not resumed).
 */
import { clusterBenchOk, formatClusterBench, runClusterBench } from './cluster.bench';
import { fanoutOk, formatFanout, runFanout } from './fanout.bench';
import { formatIdle, runIdleAll } from './idle.bench';
import { withContext } from './lib/context';
import { deliveryOk } from './lib/delivery';
import { nchanMissing } from './lib/nginx';
import { header } from './lib/report';
import { formatResume, resumeOk, runResume } from './resume.bench';
import { formatStorm, runStorm, stormOk } from './storm.bench';
import { formatThroughput, runThroughput, throughputOk } from './throughput.bench';
import { formatTopics, runTopics } from './topics.bench';

void withContext(async (ctx) => {
  process.stdout.write(`${header(ctx)}\n`);
  const missing = nchanMissing();
  if (missing) process.stderr.write(`bench: ${missing}\n`);
  const only = ctx.params.only;
  // Nchan's shortfalls are findings, not failures of this repository.
  const ours = (r: { server: string }) => r.server !== 'nchan';
  let ok = true;
  if (only.has('fanout') || only.has('naive')) {
    const rows = await runFanout(ctx);
    process.stdout.write(`\n${formatFanout(ctx, rows)}\n`);
    ok = rows.filter(ours).every(fanoutOk) && ok;
  }
  if (only.has('topics')) {
    const rows = await runTopics(ctx);
    process.stdout.write(`\n${formatTopics(ctx, rows)}\n`);
    ok = rows.filter(ours).every((r) => deliveryOk(r)) && ok;
  }
  if (only.has('throughput')) {
    const rows = await runThroughput(ctx);
    process.stdout.write(`\n${formatThroughput(ctx, rows)}\n`);
    ok = rows.filter(ours).every(throughputOk) && ok;
  }
  if (only.has('idle')) {
    const results = await runIdleAll(ctx);
    process.stdout.write(`\n${formatIdle(results)}\n`);
  }
  if (only.has('storm')) {
    const rows = await runStorm(ctx);
    process.stdout.write(`\n${formatStorm(ctx, rows)}\n`);
    ok = rows.filter(ours).every(stormOk) && ok;
  }
  if (only.has('resume')) {
    const rows = await runResume(ctx);
    process.stdout.write(`\n${formatResume(ctx, rows)}\n`);
    ok = rows.filter(ours).every(resumeOk) && ok;
  }
  if (only.has('cluster')) {
    const result = await runClusterBench(ctx);
    process.stdout.write(`\n${formatClusterBench(ctx, result)}\n`);
    ok = clusterBenchOk(result) && ok;
  }
  return ok;
});
