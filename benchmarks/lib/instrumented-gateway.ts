/**
 * The gateway's main.ts with two benchmark hooks, run in the same process:
 *
 * - SIGUSR2 runs a full garbage collection (the idle benchmark reads RSS with and without
 *   garbage); `gc` is obtained at run time, so the gateway needs no --expose-gc flag.
 * - CPU_PROF_DIR=<dir>: the V8 CPU profiler runs from start to exit and the profile is written to
 *   <dir>/gateway-<pid>.cpuprofile (NODE_OPTIONS cannot carry --cpu-prof). Summarise it with
 *   `node -r ts-node/register/transpile-only benchmarks/lib/profile-summary.ts <file>`.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { join } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
process.on('SIGUSR2', () => gc());

const dir = process.env.CPU_PROF_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.start');
  process.on('exit', () => {
    // The in-process session answers synchronously, so this works inside 'exit'.
    session.post('Profiler.stop', (err, result) => {
      if (err) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `gateway-${process.pid}.cpuprofile`), JSON.stringify(result.profile));
    });
  });
}

require('../../apps/gateway/src/main');
