#!/usr/bin/env node
'use strict';
// The compiled program (npm run build).
require('../dist/main.js').main(process.argv.slice(2));
