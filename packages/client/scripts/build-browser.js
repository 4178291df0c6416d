#!/usr/bin/env node
'use strict';
/**
 * After `tsc -b` (dist/esm: the ES module for bundlers; dist/cjs: CommonJS for require):
 * - dist/esm/package.json marks that folder's .js files as ES modules;
 * - dist/streamcast-client.js, the plain script every gateway serves as /streamcast-client.js:
 *   the CommonJS build wrapped in a function that defines the global `Streamcast`. No bundler:
 *   the client imports nothing.
 */
const { mkdirSync, readFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');

/** The plain-script form of the CommonJS build's text. */
function wrapClientScript(cjs) {
  if (/\brequire\(/.test(cjs)) {
    throw new Error('@streamcast/client must not import anything: it is served as one plain script');
  }
  return (
    '/* @streamcast/client: defines the global Streamcast (docs/client.md, "Client library") */\n' +
    '(function (root) {\n' +
    "'use strict';\n" +
    'var exports = {};\n' +
    `${cjs.replace(/^"use strict";\n/, '').trim()}\n` +
    'root.Streamcast = exports;\n' +
    "})(typeof globalThis !== 'undefined' ? globalThis : self);\n"
  );
}

function main() {
  const dist = join(__dirname, '..', 'dist');
  mkdirSync(join(dist, 'esm'), { recursive: true });
  writeFileSync(join(dist, 'esm', 'package.json'), '{ "type": "module" }\n');
  const cjs = readFileSync(join(dist, 'cjs', 'index.js'), 'utf8');
  writeFileSync(join(dist, 'streamcast-client.js'), wrapClientScript(cjs));
}

module.exports = { wrapClientScript, main };
if (require.main === module) main();
