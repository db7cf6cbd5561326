// The conformance matrix (test/conformance.test.ts) on the WebGPU module: every case of
// test/conformance-cases.ts built for `--target webgpu` (emitWebgpu, in process), run in one
// Chromium page on SwiftShader's WebGPU adapter with one device for all, forward's y and loss,
// valueAndGrad's loss, gradients and updated buffers against the float64 interpreter at every
// size of the case, at the matrix's own tolerance (the WGSL renderer decomposes the builtins that
// WGSL leaves inexact or undefined at their edges: log, sin, cos; the specials as IEEE's).
// SwiftShader compiles each pipeline on the CPU, once per set of sizes, and every case took 230 s
// on a shared 2-core machine: CI runs the first case of each op (and every case of argmax, argmin
// and cumsum, the line routines of routines.ts, and the static conv cases, the implicit GEMM of
// gemm.ts) at the case's own sizes; GRAPHC_WEBGPU_ALL=1 runs
// every case, a symbolic one also at the sizes 1 and 13 as the Node matrix does.

import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { indent } from '../../codegen/module.js';
import { emitWebgpu } from '../../codegen/webgpu/module.js';
import { CASES, casesOf } from '../conformance-cases.js';
import { buildCase, expectClose, initBuffers, referenceOf, sizesOf } from '../conformance-build.js';
import { ROOT } from '../helpers.js';
import { harness, launch, type Session } from './chromium.js';

// web-out/ is served by the test server and ignored by git
const OUT = path.join(ROOT, 'web-out', 'webgpu-conformance');
const ALL = Boolean(process.env.GRAPHC_WEBGPU_ALL);
const EVERY_CASE_OF = new Set(['argmax', 'argmin', 'cumsum']);
// and the static conv cases: groups, stride 3, dilation and uneven padding through the implicit GEMM
const extra = (e: { op: string; c: { dims?: object } }) => e.op === 'conv' && e.c.dims === undefined;
const CASES_RUN = casesOf(CASES).filter((e, i, list) => ALL || EVERY_CASE_OF.has(e.op) || extra(e) || list.findIndex((x) => x.op === e.op) === i);

let s: Session;
let page: Page;
let errors: string[];

beforeAll(async () => {
  mkdirSync(OUT, { recursive: true });
  s = await launch({ webgpu: true });
  ({ page, errors } = await harness(s));
});
afterAll(async () => {
  await s?.close();
});

type Plain = Record<string, number[]>;
type Got = { fwd: { y: number[]; loss: number }; vg: { loss: number; grads: Plain; buffers: Plain } };

type Harness = Record<string, (...a: unknown[]) => Promise<unknown>>;
/** The case's module in the page (harness.mjs's webgpuConformance): forward and valueAndGrad at each call. */
const runInPage = (url: string, calls: { params: Plain; inputs: Plain; buffers?: Plain }[], train: boolean): Promise<Got[]> =>
  page.evaluate(([u, c, t]) => (globalThis as unknown as { harness: Harness }).harness.webgpuConformance!(u, c, t), [url, calls, train] as const) as Promise<Got[]>;

const plainOf = (v: Record<string, ArrayLike<number>>): Plain => Object.fromEntries(Object.entries(v).map(([k, a]) => [k, Array.from(a)]));

describe.each(CASES_RUN)('$op: $label', ({ op, label, c, index }) => {
  it('the WebGPU module agrees with the float64 interpreter', async () => {
    const name = `conf_${op}_${index}`;
    const m = buildCase(name, c);
    const calls = sizesOf(c).slice(0, ALL ? undefined : 1).map((dims) => referenceOf(m, c, 11 + index, dims));
    writeFileSync(path.join(OUT, `${name}.webgpu.js`), indent(emitWebgpu(m.info, false)));
    const buffers = c.train ? plainOf(initBuffers(m)) : undefined;
    const got = await runInPage(`/web-out/webgpu-conformance/${name}.webgpu.js`, calls.map((k) => ({ params: plainOf(k.params), inputs: plainOf(k.inputs), buffers })), c.train === true);
    expect(errors).toEqual([]);
    got.forEach((r, k) => {
      const { dims, ref, ref32, sums32 } = calls[k]!;
      const at = `${op} (${label}) on webgpu${c.dims ? ` at ${JSON.stringify(dims)}` : ''}`;
      const close = (what: string, g: ArrayLike<number> | number | undefined, a: ArrayLike<number>, b: ArrayLike<number>, d: ArrayLike<number>) => expectClose(`${at}: ${what}`, g, a, b, d);
      close('forward y', r.fwd.y, ref.y, ref32.y, sums32.y);
      close('forward loss', r.fwd.loss, ref.loss, ref32.loss, sums32.loss);
      close('valueAndGrad loss', r.vg.loss, ref.loss, ref32.loss, sums32.loss);
      expect(Object.keys(r.vg.grads).sort(), `${at}: gradients`).toEqual(Object.keys(ref.grads).sort());
      for (const [g, v] of Object.entries(ref.grads)) close(`d loss / d ${g}`, r.vg.grads[g], v, ref32.grads[g]!, sums32.grads[g]!);
      for (const [b, v] of Object.entries(ref.buffers)) close(`buffer ${b} after valueAndGrad`, r.vg.buffers[b], v, ref32.buffers[b]!, sums32.buffers[b]!);
    });
  });
});
