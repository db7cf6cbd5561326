// The symbolic wasm module embeds the kernel generators' sources (codegen/wasm/symbolic.ts), among
// them steps.ts, whose exp and tanh are codegen/wasm/kernel-alu.ts's unaryOnStack: the kernel
// form's decomposition of them (codegen/kernel/decompose.ts) rendered by the static renderer,
// which the module does not embed. Here unaryOnStack's calls on its Body are recorded at build
// time, with stand-ins for its temporaries, and written into the module as a table and a replay
// function (one exp rule for both modules).

import type { Body, Local } from './encode.js';
import { unaryOnStack } from './kernel-alu.js';
import { EXP_TEMPS, STEP_TEMPS } from './steps.js';

type Unary = 'exp' | 'tanh';

/** The temporaries steps.ts gives unaryOnStack for each op. */
export const TEMPS: Record<Unary, number> = { exp: EXP_TEMPS, tanh: STEP_TEMPS };

/** unaryOnStack's calls on its Body for `op`, its temporaries as stand-ins `{ tmp: k }`. */
function calls(op: Unary): unknown[][] {
  const tmp = Array.from({ length: TEMPS[op] }, (_, k) => ({ tmp: k }) as unknown as Local);
  const out: unknown[][] = [];
  const f: Body = new Proxy({} as Body, { get: (_t, m) => (...args: unknown[]) => (out.push([m, ...args]), f) });
  unaryOnStack(f, op, tmp);
  return out;
}

/** A JavaScript literal of a recorded argument: numbers exactly (−0, NaN, ±∞ too), stand-ins as `{ tmp: k }`. */
function literal(a: unknown): string {
  if (typeof a === 'number') return Object.is(a, -0) ? '-0' : Number.isNaN(a) ? 'NaN' : a === Infinity ? 'Infinity' : a === -Infinity ? '-Infinity' : String(a);
  if (typeof a === 'string') return JSON.stringify(a);
  if (Array.isArray(a)) return `[${a.map(literal).join(', ')}]`;
  if (a !== null && typeof a === 'object' && Object.keys(a).join() === 'tmp') return `{ tmp: ${(a as { tmp: number }).tmp} }`;
  throw new Error(`internal: unaryOnStack passed ${String(a)} to its Body, which the symbolic module cannot replay`);
}

/** The replay's source, TypeScript: the table and `unaryOnStack(f, op, tmp)`. */
function replaySource(): string[] {
  const table = (['exp', 'tanh'] as const).map((op) => `  ${op}: [${calls(op).map(literal).join(', ')}],`);
  return [
    "// unaryOnStack: the kernel form's exp and tanh (codegen/kernel/decompose.ts via codegen/wasm/kernel-alu.ts) as their calls on the Body, recorded at build time",
    'const UNARY_ON_STACK: Record<string, unknown[][]> = {',
    ...table,
    '};',
    "function unaryOnStack(f: Body, op: 'exp' | 'tanh', tmp: readonly Local[]): void {",
    '  const call = f as unknown as Record<string, (...a: unknown[]) => unknown>;',
    "  for (const [m, ...args] of UNARY_ON_STACK[op]!) call[m as string]!.apply(f, args.map((a) => (a !== null && typeof a === 'object' && 'tmp' in a ? tmp[(a as { tmp: number }).tmp] : a)));",
    '}',
  ];
}

let source: string[] | undefined;

/**
 * The replay as TypeScript source (the module's generators are transpiled together where it is
 * JavaScript). test/symbolic-wasm.test.ts runs it against unaryOnStack on real bodies.
 */
export function unaryOnStackDecl(): string[] {
  return (source ??= replaySource());
}
