// What of a wasm module runs as JS loops: the steps of its units (comment lines naming the IR
// instructions, then the code) whose code has a `for` loop. In a static module none does: an
// elementwise, reduction or layout group, or a matmul's epilogue, is a kernel of the kernel form,
// and every routine (gather, scatter_add, xent, argmax, cumsum, …) a kernel of its own
// (test/conformance.test.ts asserts it for every case).

import { LOWERING } from '../codegen/kernel/rules.js';
import type { OpKind } from '../ir/ops.js';

/** The JS loop steps of a wasm module's source: each as the ops of its IR lines. */
export function jsLoopSteps(source: string): { ops: string[]; routine: boolean }[] {
  const out: { ops: string[]; routine: boolean }[] = [];
  for (const block of source.split(/\n\s*\n/)) {
    const lines = block.split('\n');
    const ops = lines.flatMap((l) => {
      const m = /^\s*\/\/\s+%\S+: \S+ = ([a-z_]+) /.exec(l);
      return m ? [m[1]!] : [];
    });
    if (ops.length === 0 || !lines.some((l) => /^\s*for \(/.test(l))) continue;
    const first = ops[0] as OpKind;
    out.push({ ops, routine: first !== 'matmul' && first in LOWERING && 'routine' in LOWERING[first] });
  }
  return out;
}

/** The JS loop steps that are kernels of the kernel form (elementwise, reduction, layout groups, matmul epilogues). */
export function kernelJsSteps(source: string): string[] {
  return jsLoopSteps(source).filter((s) => !s.routine).map((s) => s.ops.join(' '));
}
