// npm run demo:web: builds what the page needs (scripts/web/build.mjs), then serves it on
// localhost with the cross-origin isolation headers and prints its address.
//
//   npm run demo:web -- [--port N] [--no-build]
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { demoOptions } from '../demo/options.mjs';
import { buildWeb, OUT } from './build.mjs';
import { startServer } from './server.mjs';

const USAGE = 'usage: npm run demo:web -- [--port N] [--no-build]';
const { values: opts, int } = demoOptions(USAGE, { port: { type: 'string', default: '8080' }, 'no-build': { type: 'boolean', default: false } });
const port = int('port', 0, 65535);
if (!opts['no-build']) buildWeb();
else if (!existsSync(path.join(OUT, 'names.json'))) {
  console.error('--no-build: web-out/ holds no build yet; run npm run demo:web once without it');
  process.exit(2);
}
let server;
try {
  server = await startServer({ port });
} catch (e) {
  console.error(`could not listen on 127.0.0.1:${port}: ${e.message} (try --port 0 for any free port)`);
  process.exit(1);
}
console.log(`serving the graphc training page at ${server.url}  (Ctrl-C stops it)`);
process.on('SIGINT', () => server.close().then(() => process.exit(0)));
