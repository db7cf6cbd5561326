#!/usr/bin/env node
// The graphc command. The compiler itself is TypeScript, built into dist/ by `npm ci` (prepare).
import { main } from '../dist/src/cli.js';

process.exitCode = await main(process.argv.slice(2));
