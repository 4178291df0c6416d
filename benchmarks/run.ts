/**
 * `npm run bench`: every scenario, one table each, headed by machine, Node version and
 * parameters. Parameters come from the environment (benchmarks/README.md); progress goes to
 * stderr, the tables to stdout.
 */
import { fanoutOk, formatFanout, runFanout, type FanoutRow } from './fanout.bench';
import { formatIdle, runIdle } from './idle.bench';
import { withContext } from './lib/context';
import { header } from './lib/report';

void withContext(async (ctx) => {
  process.stdout.write(`${header(ctx)}\n`);
  const only = ctx.params.only;
  let ok = true;
  if (only.has('fanout') || only.has('naive')) {
    const rows: FanoutRow[] = [];
    if (only.has('fanout')) rows.push(...(await runFanout(ctx, 'streamcast')));
    if (only.has('naive')) rows.push(...(await runFanout(ctx, 'naive')));
    process.stdout.write(`\n${formatFanout(ctx, rows)}\n`);
    ok = rows.every(fanoutOk);
  }
  if (only.has('idle')) {
    const result = await runIdle(ctx);
    process.stdout.write(`\n${formatIdle(result)}\n`);
  }
  return ok;
});
