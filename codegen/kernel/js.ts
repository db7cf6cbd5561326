// A sketch of a renderer over the kernel form: one kernel as the source of a plain JavaScript
// function `(A, dims) => void` (A: the arrays by name). No target uses it yet (issue #29: the
// flat TypeScript renderer is the next step); it shows the shape a renderer takes (a table of
// ALU primitives, the loop nest of the domain with the reduced axes inside, the epilogue after
// them) and the tests run every example's kernels through it.

import type { Size } from '../../ir/dims.js';
import { fmtNumber } from '../../ir/print.js';
import type { Access, BinaryOp, Kernel, UnaryOp } from './form.js';
import { argsOf, epilogueNodes } from './form.js';
import { storedAfterReduction } from './eval.js';

const UNARY: { readonly [K in UnaryOp]: (a: string) => string } = {
  neg: (a) => `-${a}`,
  recip: (a) => `1 / ${a}`,
  abs: (a) => `Math.abs(${a})`,
  exp: (a) => `Math.exp(${a})`,
  log: (a) => `Math.log(${a})`,
  sqrt: (a) => `Math.sqrt(${a})`,
  tanh: (a) => `Math.tanh(${a})`,
  cast: (a) => `+${a}`,
};

const BINARY: { readonly [K in BinaryOp]: (a: string, b: string) => string } = {
  add: (a, b) => `${a} + ${b}`,
  sub: (a, b) => `${a} - ${b}`,
  mul: (a, b) => `${a} * ${b}`,
  div: (a, b) => `${a} / ${b}`,
  max: (a, b) => `Math.max(${a}, ${b})`,
  min: (a, b) => `Math.min(${a}, ${b})`,
  pow: (a, b) => `Math.pow(${a}, ${b})`,
  lt: (a, b) => `${a} < ${b}`,
  le: (a, b) => `${a} <= ${b}`,
  eq: (a, b) => `${a} === ${b}`,
};

function size(s: Size): string {
  return [String(s.coef), ...s.syms.map((x) => `dims.${x}`)].join(' * ');
}

function index(a: Access): string {
  const terms = a.strides.flatMap((s, d) => (s.coef === 0 ? [] : [`${size(s)} * d${d}`]));
  return [...terms, size(a.offset)].join(' + ');
}

function literal(x: number): string {
  return fmtNumber(x).replace(/^(-?)inf$/, '$1Infinity').replace(/^nan$/, 'NaN');
}

/** The statement of node i (`const vI = …;`); `reduce` nodes read their accumulator. */
function statement(k: Kernel, i: number): string {
  const n = k.nodes[i]!;
  const v = (j: number) => `v${j}`;
  let e: string;
  switch (n.op) {
    case 'const':
      e = literal(n.value);
      break;
    case 'load': {
      const read = `A[${JSON.stringify(n.access.arg)}][${index(n.access)}]`;
      const guards = (n.access.guards ?? []).map((g) => `d${g.axis} >= ${g.lo} && d${g.axis} < ${size(g.hi)}`);
      e = guards.length ? `${guards.join(' && ')} ? ${read} : 0` : read;
      break;
    }
    case 'coord':
      e = `d${n.axis}`;
      break;
    case 'dim':
      e = `dims.${n.name}`;
      break;
    case 'reduce':
      e = `acc${i}`;
      break;
    case 'where':
      e = `${v(n.args[0])} ? ${v(n.args[1])} : ${v(n.args[2])}`;
      break;
    default:
      e = argsOf(n).length === 1 ? UNARY[n.op as UnaryOp](v(n.args[0]!)) : BINARY[n.op as BinaryOp](v(n.args[0]!), v(n.args[1]!));
  }
  return `const v${i} = ${e};`;
}

/** The body of `function (A, dims)` computing kernel k. */
export function renderJs(k: Kernel): string {
  const epi = epilogueNodes(k);
  const kept = k.domain.map((_d, i) => i).filter((d) => !k.axes.includes(d));
  const dim = (d: number) => (typeof k.domain[d] === 'number' ? String(k.domain[d]) : `dims.${k.domain[d]}`);
  const loop = (d: number) => `for (let d${d} = 0; d${d} < ${dim(d)}; d${d}++)`;
  const store = (after: boolean) =>
    k.stores.filter((s) => storedAfterReduction(k, s.access.strides) === after).map((s) => `A[${JSON.stringify(s.access.arg)}][${index(s.access)}] = v${s.node};`);
  const body = k.nodes.flatMap((_n, i) => (epi[i] ? [] : [statement(k, i)]));
  const reduces = k.nodes.flatMap((n, i) => (n.op === 'reduce' ? [{ i, red: n.red, x: n.args[0] }] : []));
  const inner = [
    ...k.axes.map(loop).map((l) => `${l} {`),
    ...body,
    ...reduces.map((r) => (r.red === 'sum' ? `acc${r.i} += v${r.x};` : `if (v${r.x} > acc${r.i}) acc${r.i} = v${r.x};`)),
    ...store(false),
    ...k.axes.map(() => '}'),
  ];
  // the epilogue reads invariant values at the reduced coordinates 0, as the evaluator does
  const epilogue = k.axes.length ? ['{', ...k.axes.map((d) => `const d${d} = 0;`), ...k.nodes.map((_n, i) => statement(k, i)), ...store(true), '}'] : [];
  return [
    ...kept.map((d) => `${loop(d)} {`),
    ...reduces.map((r) => `let acc${r.i} = ${r.red === 'sum' ? '0' : '-Infinity'};`),
    ...inner,
    ...epilogue,
    ...kept.map(() => '}'),
  ].join('\n');
}
