'use strict';
/**
 * Preloaded into the benchmarks' gateway (`node -r ./gateway-hooks.js <gateway main>`), plain
 * JavaScript so that the compiled gateway runs with no compiler in its heap:
 *
 * - SIGUSR2 runs a full garbage collection (the idle benchmark reads RSS with and without
 *   garbage); `gc` is obtained at run time, so the gateway needs no --expose-gc flag.
 * - CPU_PROF_DIR=<dir>: the V8 CPU profiler runs from start to exit and the profile is written to
 *   <dir>/gateway-<pid>.cpuprofile (NODE_OPTIONS cannot carry --cpu-prof). Summarise it with
 *   `node -r ts-node/register/transpile-only benchmarks/lib/profile-summary.ts <file>`.
 */
const { mkdirSync, writeFileSync } = require('node:fs');
const { Session } = require('node:inspector');
const { join } = require('node:path');
const { setFlagsFromString } = require('node:v8');
const { runInNewContext } = require('node:vm');

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc');
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
