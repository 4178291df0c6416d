#!/usr/bin/env node
'use strict';
// The compiled program (npm run build).
require('../dist/tail.js').main(process.argv.slice(2));
