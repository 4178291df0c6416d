#!/usr/bin/env node
'use strict';
// `npm run check:packages`: builds, packs every publishable workspace (not "private") and checks
// each tarball with @arethetypeswrong/cli (CommonJS, ESM and bundler resolution of its types).
const { execFileSync } = require('node:child_process');
const { mkdtempSync, readdirSync, readFileSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');

const root = join(__dirname, '..');
const dirs = readdirSync(join(root, 'packages')).filter(
  (d) => JSON.parse(readFileSync(join(root, 'packages', d, 'package.json'), 'utf8')).private !== true,
);
const out = mkdtempSync(join(tmpdir(), 'streamcast-pack-'));
try {
  execFileSync('npm', ['run', '--silent', 'build'], { cwd: root, stdio: 'inherit' });
  execFileSync('npm', ['pack', '--silent', '--pack-destination', out, ...dirs.map((d) => `--workspace=packages/${d}`)], {
    cwd: root,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const attw = join(root, 'node_modules', '@arethetypeswrong', 'cli', 'dist', 'index.js');
  let failed = 0;
  for (const tarball of readdirSync(out).filter((f) => f.endsWith('.tgz'))) {
    // The client's plain script (/streamcast-client.js) is not a module: nothing to type.
    const exclude = tarball.startsWith('streamcast-client-') ? ['--exclude-entrypoints', './streamcast-client.js'] : [];
    try {
      execFileSync(process.execPath, [attw, join(out, tarball), '--format', 'table-flipped', ...exclude], { stdio: 'inherit' });
    } catch {
      failed++;
    }
  }
  if (failed) {
    process.stderr.write(`check:packages: ${failed} package(s) with type problems\n`);
    process.exitCode = 1;
  }
} finally {
  rmSync(out, { recursive: true, force: true });
}
