#!/usr/bin/env node
'use strict';
// `npm run build`'s second step (`--clean`: `npm run clean`'s), after `tsc -b tsconfig.build.json`: what tsc does not emit.
// - each package's Lua scripts (src/lua, loaded at run time from __dirname) into dist/lua;
// - the browser client's plain script and ESM marker (packages/client/scripts/build-browser.js).
const { cpSync, existsSync, readdirSync, rmSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
if (process.argv.includes('--clean')) {
  // `npm run clean`, after `tsc -b --clean`: what is left of every dist/ (Lua, the client's script).
  for (const group of ['packages', 'apps']) {
    for (const name of readdirSync(join(root, group))) {
      rmSync(join(root, group, name, 'dist'), { recursive: true, force: true });
    }
  }
  process.exit(0);
}
for (const group of ['packages', 'apps']) {
  for (const name of readdirSync(join(root, group))) {
    const lua = join(root, group, name, 'src', 'lua');
    if (!existsSync(lua)) continue;
    const out = join(root, group, name, 'dist', 'lua');
    rmSync(out, { recursive: true, force: true });
    cpSync(lua, out, { recursive: true });
  }
}
require('../packages/client/scripts/build-browser.js').main();
