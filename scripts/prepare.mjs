// npm's prepare script: builds the compiler into dist/ after `npm ci` / `npm install` in this
// repository. `npm pack` and `npm publish` run prepare too, after prepack, which has just built
// dist/ (package.json "prepack"): there it does nothing, so that a pack builds once. In an
// installed package (dist/ shipped, no sources) it does nothing either.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';

if (['pack', 'publish'].includes(process.env.npm_command ?? '')) process.exit(0);
if (!existsSync(new URL('../tsconfig.build.json', import.meta.url))) process.exit(0);
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const r = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
process.exit(r.status ?? 1);
