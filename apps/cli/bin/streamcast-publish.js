#!/usr/bin/env node
'use strict';
// The compiled program (npm run build).
require('../dist/publish.js').main(process.argv.slice(2));
