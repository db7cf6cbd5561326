// The text of the kernel form: one block a kernel or routine, one line a node, index maps as
// affine expressions of the domain coordinates d0, d1, ... Each store carries, as a comment, the
// formula of what it stores (derived from the DAG; the parser skips it, the printer makes it
// again). parse.ts reads this text back; print → parse → print is the identity.
//
//   kernel k3 [32, 64] reduce (0)
//     # %bnmeani: f32[1,64] = mul %t2, %t3 @ makemore.ts:46:41
//     %0: f32 = load hprebn[64*d0 + d1]
//     %1: f32 = reduce.sum %0 acc f64
//     ...
//     store bnmeani[d1] = %3  # sum(hprebn) * 0.03125
//   end

import type { Dim, Size } from '../../ir/dims.js';
import type { Poly } from '../../ir/layout.js';
import { fmtNumber } from '../../ir/print.js';
import type { Access, ArrayDecl, HostProgram, Kernel, Launch, Node, Routine, Step, StepSlice, View } from './form.js';
import { argsOf, offsetTerms } from './form.js';

/** A size as a product: `64`, `B`, `64*B`, `-2*B*T`. */
export function fmtSize(s: Size): string {
  if (s.syms.length === 0) return String(s.coef);
  if (s.coef === 0) return '0';
  return [...(s.coef === 1 ? [] : [String(s.coef)]), ...s.syms].join('*');
}

function fmtDim(d: Dim): string {
  return String(d);
}

export function fmtDims(ds: readonly Dim[]): string {
  return `[${ds.map(fmtDim).join(', ')}]`;
}

/** offset + Σ stride·d_k as `64*d0 + d1 - 128` (`2*B*d0 + d2 - 2*B - 1`); `0` when it is zero everywhere. */
export function fmtAffine(strides: readonly Size[], offset: Size | Poly): string {
  const terms: string[] = [];
  strides.forEach((s, d) => {
    if (s.coef === 0) return;
    const mag = fmtSize({ coef: Math.abs(s.coef), syms: s.syms });
    terms.push(`${s.coef < 0 ? '-' : ''}${mag === '1' ? '' : `${mag}*`}d${d}`);
  });
  for (const t of offsetTerms(offset)) terms.push(fmtSize(t));
  if (terms.length === 0) return '0';
  return terms.reduce((acc, t, i) => (i === 0 ? t : t.startsWith('-') ? `${acc} - ${t.slice(1)}` : `${acc} + ${t}`), '');
}

export function fmtAccess(a: Access): string {
  const guards = (a.guards ?? []).map((g) => `${g.lo} <= d${g.axis} < ${fmtSize(g.hi)}`);
  return `${a.arg}[${fmtAffine(a.strides, a.offset)}]${guards.length ? ` if ${guards.join(', ')}` : ''}`;
}

/** A sum of sizes as `2*B + 1`; `0` for none. */
export function fmtPoly(p: Poly): string {
  return fmtAffine([], p);
}

function fmtView(v: View): string {
  return `${v.arg}: ${fmtDims(v.shape)} strides [${v.strides.map(fmtSize).join(', ')}] + ${fmtSize(v.offset)}`;
}

function fmtNode(n: Node, i: number): string {
  const head = `%${i}: ${n.dtype} = `;
  switch (n.op) {
    case 'const':
      return head + `const ${fmtNumber(n.value)}`;
    case 'load':
      return head + `load ${fmtAccess(n.access)}`;
    case 'coord':
      return head + `coord d${n.axis}`;
    case 'dim':
      return head + `dim ${n.name}`;
    case 'reduce':
      return head + `reduce.${n.red} %${n.args[0]} acc ${n.acc}`;
    default:
      return head + `${n.op}${n.op === 'where' && n.rare ? '.rare' : ''} ${n.args.map((a) => `%${a}`).join(', ')}`;
  }
}

const INFIX: Partial<Record<Node['op'], [string, number]>> = { add: ['+', 1], sub: ['-', 1], mul: ['*', 2], div: ['/', 2], lt: ['<', 0], le: ['<=', 0], eq: ['==', 0] };

/** Past this many nodes written out, a formula names its shared subexpressions (%j) instead. */
const FORMULA_NODES = 200;

/**
 * The formula of node i in the lecture's notation, loads by array name (for comments). A DAG whose
 * written-out tree would pass FORMULA_NODES (a decomposed sin shares its reduction hundreds of
 * times: written out it is exponential) shows a node used more than once as `%j`.
 */
export function formulaOf(k: Kernel, i: number): string {
  const uses = new Map<number, number>();
  const tree = new Map<number, number>();
  const treeSize = (j: number): number => {
    let t = tree.get(j);
    if (t === undefined) {
      const n = k.nodes[j]!;
      t = 1 + (n.op === 'load' ? 0 : argsOf(n).reduce((sum, a) => sum + treeSize(a), 0));
      tree.set(j, Math.min(t, Number.MAX_SAFE_INTEGER));
    }
    return t;
  };
  const shared = treeSize(i) > FORMULA_NODES;
  if (shared) for (const n of k.nodes) if (n.op !== 'load') for (const a of argsOf(n)) uses.set(a, (uses.get(a) ?? 0) + 1);
  const go = (j: number, min: number): string => {
    const n = k.nodes[j]!;
    if (shared && j !== i && (uses.get(j) ?? 0) > 1 && n.op !== 'const' && n.op !== 'load' && n.op !== 'coord' && n.op !== 'dim') return `%${j}`;
    const par = (s: string, p: number) => (p < min ? `(${s})` : s);
    switch (n.op) {
      case 'const':
        return fmtNumber(n.value);
      case 'load':
        return n.access.arg;
      case 'coord':
        return `d${n.axis}`;
      case 'dim':
        return n.name;
      case 'reduce':
        return `${n.red}(${go(n.args[0], 0)})`;
      case 'neg':
        return par(`-${go(n.args[0], 3)}`, 3);
      case 'where':
        return `where${n.rare ? '.rare' : ''}(${n.args.map((a) => go(a, 0)).join(', ')})`;
      default: {
        const inf = INFIX[n.op];
        const a = argsOf(n);
        if (inf) return par(`${go(a[0]!, inf[1])} ${inf[0]} ${go(a[1]!, inf[1] + 1)}`, inf[1]);
        return `${n.op}(${a.map((x) => go(x, 0)).join(', ')})`;
      }
    }
  };
  return go(i, 0);
}

export function printKernel(k: Kernel, indent = ''): string[] {
  const red = k.axes.length ? ` reduce (${k.axes.join(', ')})` : '';
  return [
    `${indent}kernel ${k.name} ${fmtDims(k.domain)}${red}`,
    ...k.notes.map((n) => `${indent}  # ${n}`),
    ...k.nodes.map((n, i) => `${indent}  ${fmtNode(n, i)}`),
    ...k.stores.map((s) => `${indent}  store ${fmtAccess(s.access)} = %${s.node}  # ${formulaOf(k, s.node)}`),
    `${indent}end`,
  ];
}

export function printRoutine(r: Routine): string[] {
  return [
    `routine ${r.name} ${r.op} ${JSON.stringify(r.attrs)}`,
    ...r.notes.map((n) => `  # ${n}`),
    ...r.inputs.map((v) => `  in ${fmtView(v)}`),
    `  out ${fmtView(r.output)}`,
    ...(r.epilogue ? printKernel(r.epilogue, '  ') : []),
    'end',
  ];
}

export function printLaunch(l: Launch): string {
  return (l.kind === 'kernel' ? printKernel(l) : printRoutine(l)).join('\n') + '\n';
}

function fmtArray(a: ArrayDecl): string {
  const p = a.place;
  const where = p.kind === 'buffer' ? `buffer ${p.id}` : p.kind === 'const' ? `const [${p.data.map(fmtNumber).join(', ')}]` : 'scratch';
  return `array ${a.name}: ${a.dtype}[${fmtSize(a.numel)}] ${where}`;
}

function fmtStep(s: Step, pad: string): string[] {
  if (s.kind === 'stage') return [`${pad}stage ${s.array} = ${s.source} ${JSON.stringify(s.key)}`];
  if (s.kind === 'launch') return [`${pad}launch ${s.launch.name}`];
  if (s.kind === 'loop') {
    const m = s.moves;
    const q = `${pad}  `;
    const sl = (x: StepSlice) => `axis ${x.axis} of [${x.shape.join(',')}]`;
    return [
      `${pad}loop ${s.scan} ${fmtSize(s.length)}${s.reverse ? ' reverse' : ''}`,
      ...m.init.map((x) => `${q}in ${x.to} = ${x.from}`),
      ...m.xs.map((x) => `${q}slice ${x.step} = ${x.stacked} ${sl(x)}`),
      ...s.steps.flatMap((x) => fmtStep(x, q)),
      ...m.ys.map((x) => `${q}stack ${x.stacked} ${sl(x)} = ${x.step}`),
      ...m.carries.map((x) => `${q}carry ${x.to} = ${x.from}`),
      ...m.out.map((x) => `${q}out ${x.to} = ${x.from}`),
      `${pad}endloop`,
    ];
  }
  return [`${pad}read ${JSON.stringify(s.output)} = ${s.array}`];
}

/** The launches of some steps, loops' included, each once in order. */
function collect(steps: readonly Step[], seen: Set<string>, into: Launch[]): void {
  for (const s of steps)
    if (s.kind === 'loop') collect(s.steps, seen, into);
    else if (s.kind === 'launch' && !seen.has(s.launch.name)) (seen.add(s.launch.name), into.push(s.launch));
}

/** The whole host program: buffers, arrays, entry points, then each launch once. */
export function printProgram(p: HostProgram): string {
  const out = [`program ${p.name}`, ...p.buffers.map((b) => `buffer ${b.id}: ${b.dtype}[${fmtSize(b.size)}]`), ...p.arrays.map(fmtArray)];
  const seen = new Set<string>();
  const launches: Launch[] = [];
  for (const e of p.entries) {
    out.push('', `entry ${e.name}`, ...e.steps.flatMap((s) => fmtStep(s, '  ')), 'end');
    collect(e.steps, seen, launches);
  }
  for (const l of launches) out.push('', ...(l.kind === 'kernel' ? printKernel(l) : printRoutine(l)));
  return out.join('\n') + '\n';
}
