// A build of the compiler at another revision, kept beside the current one in the same bench run
// (`--baseline REV`): REV checked out in a temporary git worktree (detached), node_modules linked
// from this checkout, its dist/ built there (npm run build: tsc -p tsconfig.build.json); the bench
// then builds the same models with its bin/graphc.js and times them as extra contenders. REV may
// also be a folder that already holds a built checkout (its bin/graphc.js and dist/), used as is.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync, rmSync, symlinkSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { graphcBuild, ROOT } from './models.mjs';

/** A new build more than this much slower than the baseline's is flagged (issue 29's "Keep"). */
export const SLOWER = 1.05;

const git = (...args) => spawnSync('git', ['-C', ROOT, ...args], { encoding: 'utf8' });

/**
 * { label, cli, dir, dispose() }: label names the revision (`main 6a27fbb`), cli is its
 * bin/graphc.js. Throws with the reason when REV is unknown or its build fails.
 */
export function prepareBaseline(rev, log = console.log) {
  if (existsSync(path.join(rev, 'bin/graphc.js'))) {
    const dir = path.resolve(rev);
    if (!existsSync(path.join(dir, 'dist/src/cli.js'))) throw new Error(`--baseline ${rev}: ${dir}/dist/src/cli.js is missing: run \`npm run build\` there`);
    const head = spawnSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout?.trim();
    return { label: `${path.basename(dir)}${head ? ` ${head}` : ''}`, cli: path.join(dir, 'bin/graphc.js'), dir, dispose() {} };
  }
  const commit = git('rev-parse', '--verify', '--quiet', `${rev}^{commit}`).stdout.trim();
  if (!commit) throw new Error(`--baseline ${rev}: not a commit of ${ROOT} (a branch, tag or commit; or a folder with a built checkout)`);
  const dir = path.join(mkdtempSync(path.join(os.tmpdir(), 'graphc-baseline-')), 'graphc');
  const added = git('worktree', 'add', '--detach', dir, commit);
  if (added.status !== 0) throw new Error(`--baseline ${rev}: git worktree add failed: ${added.stderr.trim()}`);
  const onSignal = () => {
    dispose();
    process.exit(130);
  };
  const dispose = () => {
    process.off('SIGINT', onSignal);
    git('worktree', 'remove', '--force', dir);
    rmSync(path.dirname(dir), { recursive: true, force: true });
    git('worktree', 'prune');
  };
  process.once('SIGINT', onSignal); // ^C: the temporary worktree goes too
  try {
    symlinkSync(realpathSync(path.join(ROOT, 'node_modules')), path.join(dir, 'node_modules'));
    const label = `${rev} ${commit.slice(0, 7)}`;
    log(`baseline: building the compiler at ${label} in ${dir} (npm run build)`);
    const t0 = performance.now();
    const built = spawnSync('npm', ['run', 'build'], { cwd: dir, encoding: 'utf8' });
    if (built.status !== 0) throw new Error(`--baseline ${rev}: npm run build failed in ${dir}:\n${(built.stdout + built.stderr).trim()}`);
    log(`baseline: built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    return { label, cli: path.join(dir, 'bin/graphc.js'), dir, dispose };
  } catch (e) {
    dispose();
    throw e;
  }
}

/** `new / baseline` of two times, flagged when the new one is more than 5% slower. */
export function versusBaseline(newMs, baseMs) {
  const r = newMs / baseMs;
  return `${r.toFixed(2)}×${r > SLOWER ? `  SLOWER than the baseline by more than ${Math.round((SLOWER - 1) * 100)}%` : '  ok'}`;
}

/** Builds a model file (examples/NAME.ts, or any path) with the baseline's compiler into outDir; throws when it fails. */
export function baselineBuild(baseline, modelFile, outDir, target = 'ts,wasm') {
  const file = path.resolve(ROOT, modelFile);
  const b = graphcBuild(file, outDir, { target, cli: baseline.cli });
  if (!b.ok) throw new Error(`the baseline (${baseline.label}) could not build ${modelFile}:\n${b.error}`);
  return b;
}
