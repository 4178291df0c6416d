#!/usr/bin/env node
'use strict';
// Runs the TypeScript source directly, as every process of this repository does (no build step).
const { join } = require('node:path');
process.env.TS_NODE_PROJECT =
  process.env.TS_NODE_PROJECT || join(__dirname, '..', '..', '..', 'tsconfig.json');
require('ts-node/register/transpile-only');
require('../src/main.ts').main(process.argv.slice(2));
