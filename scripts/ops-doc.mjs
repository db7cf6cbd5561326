// Writes docs/ops.md from the op table (ir/ops.ts), the emitters' tables and the DSL (src/dsl.ts).
// `node scripts/ops-doc.mjs` writes it; `--check` exits 1 with a diff when the committed file is
// stale (npm run docs:ops, npm run check:docs). Reads the compiled dist/ (npm ci or npm run build).
//
// The gradient formulas are not written by hand: for each op, a tiny graph holding that op goes
// through the reverse pass (ir/autodiff.ts), and each operand's gradient is printed by formula()
// (codegen/formula.ts), the text the emitted comments use.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { OPS } from '../dist/ir/ops.js';
import { Graph } from '../dist/ir/graph.js';
import { Builder } from '../dist/ir/builder.js';
import { reverseMode } from '../dist/ir/autodiff.js';
import { formatType } from '../dist/ir/types.js';
import { formula } from '../dist/codegen/formula.js';
import { LOWERING } from '../dist/codegen/kernel/rules.js';
import { isConv } from '../dist/codegen/wasm.js';
import { unifiedDiff } from '../dist/src/textdiff.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const OUT = join(root, 'docs/ops.md');

// One example per op: its operands (`i32` marks an index operand) and attributes. The shapes only
// make the formulas concrete; the shape rule is the op table's.
const conv = { stride: [1, 1], padding: [0, 0, 0, 0], dilation: [1, 1], groups: 1 };
const pool = { kernel: [2, 2], stride: [2, 2], padding: [0, 0] };
const EXAMPLES = {
  select: [['2,3', '2,3', '2,3'], {}],
  sum: [['2,3'], { axes: [1], keepDims: false }],
  max: [['2,3'], { axes: [1], keepDims: false }],
  argmax_mask: [['2,3'], { axes: [1] }],
  matmul: [['2,3', '3,4'], { transA: false, transB: false }],
  transpose: [['2,3'], { perm: [1, 0] }],
  reshape: [['2,3'], { shape: [3, 2] }],
  broadcast: [['1,3'], { shape: [2, 3] }],
  concat: [['2,3', '1,3'], { axis: 0 }],
  slice: [['4,3'], { starts: [1, 0], sizes: [2, 3] }],
  pad: [['2,3'], { starts: [1, 0], shape: [4, 3] }],
  gather: [['5,3', 'i32 2'], {}],
  scatter_add: [['i32 2', '2,3'], { shape: [5, 3] }],
  pick: [['2,5', 'i32 2'], {}],
  one_hot: [['i32 2'], { depth: 5 }],
  softmax: [['2,5'], { axis: 1 }],
  log_softmax: [['2,5'], { axis: 1 }],
  xent: [['2,5', 'i32 2'], {}],
  bn_apply: [['4,3', '1,3', '1,3'], {}],
  ln_apply: [['2,5', '2,1', '2,1'], {}],
  conv: [['1,1,4,4', '1,1,3,3'], conv],
  conv_input_grad: [['1,1,2,2', '1,1,3,3'], { ...conv, size: [4, 4] }],
  conv_weight_grad: [['1,1,4,4', '1,1,2,2'], { ...conv, kernel: [3, 3] }],
  max_pool: [['1,1,4,4'], pool],
  max_pool_grad: [['1,1,4,4', '1,1,2,2'], { ...pool, size: [4, 4] }],
  max_pool_pick: [['1,1,4,4', '1,1,4,4'], pool],
  avg_pool: [['1,1,4,4'], pool],
  avg_pool_grad: [['1,1,2,2'], { ...pool, size: [4, 4] }],
  argmax: [['2,3'], { axis: 1, keepDims: false }],
  argmin: [['2,3'], { axis: 1, keepDims: false }],
  cumsum: [['2,3'], { axis: 1 }],
  flip: [['2,3'], { axes: [1] }],
  arange: [[], { shape: [4] }],
  cast: [['i32 2,3'], {}],
};
const exampleOf = (op, def) => EXAMPLES[op] ?? [Array(def.arity).fill('2,3'), {}];
const NAMES = ['a', 'b', 'c'];

/** The forward graph `y = op(a, b, ...)`, `loss = y.sum()`; its operands and result. */
function tinyGraph(op, def) {
  const [operands, attrs] = exampleOf(op, def);
  const g = new Graph(`op_${op}`, 'forward');
  const b = new Builder(g);
  const args = operands.map((o, i) => {
    const [dtype, dims] = o.startsWith('i32 ') ? ['i32', o.slice(4)] : ['f32', o];
    const shape = dims.split(',').map(Number);
    const name = { exact: NAMES[i] };
    return dtype === 'i32' ? b.source('input', { name: NAMES[i] }, { dtype, shape }, name) : b.param(NAMES[i], shape, 'randn', 1, name);
  });
  const y = b.emit(op, args, attrs, { exact: 'y' });
  const axes = g.type(y).shape.map((_d, i) => i);
  // an i32 result (argmax's indices, arange) has no gradient and no loss
  if (g.type(y).dtype === 'f32') g.outputs.push({ name: 'loss', value: b.emit('sum', [y], { axes, keepDims: false }, { exact: 'loss' }) });
  return { g, args, y };
}

/** `y = op(a, ...)` with operand and result types, and `da = formula` for each operand. */
function describe(op, def) {
  if (def.category === 'source') return { signature: `${op} {${Object.keys(def.attrs).join(', ')}}: a value declared with its type`, grads: ['(a source: gradients end here)'] };
  const { g, args, y } = tinyGraph(op, def);
  const signature = `${args.map((a, i) => `${NAMES[i]}: ${formatType(g.type(a))}`).join(', ')} → y: ${formatType(g.type(y))}`;
  if (def.grad === 'none') return { signature, grads: ['no gradient flows through it'] };
  if (def.grad === null) return { signature, grads: ['none: it appears only in gradients, and differentiating it again is an error'] };
  const gradOf = new Map();
  const bwd = reverseMode(g, gradOf);
  const dy = gradOf.get(y);
  const dyName = bwd.value(dy).name;
  const grads = bwd.outputs.map((o) => {
    const text = o.value === dy ? 'dy' : formula(bwd, o.value, (inst) => inst.result !== dy, (n) => (n === dyName ? 'dy' : n));
    return `d${o.name} = ${text}${text === '0' ? ' (no gradient flows to it)' : ''}`;
  });
  return { signature, grads: grads.length ? grads : ['(index operands only: none)'] };
}

/** Which targets have a kernel for op, read from the emitters' tables. */
function targets(op) {
  // the flat module renders the kernel form: elementwise ops and reductions as kernels, matmul
  // groups as its tiled kernels, the other routines and the layout ops as statements of their own
  const s = LOWERING[op];
  if ('none' in s || 'unsupported' in s) return { ts: 'nothing to emit (a source or a view)', wasm: '—', gpu: '—' };
  const ts = 'alu' in s ? 'elementwise expression' : 'reduce' in s ? 'reduce group' : op === 'matmul' ? 'matmul group' : 'statement';
  // the wasm module's decisions: matmul and convolutions, SIMD reductions and row softmax; the
  // elementwise and layout ops are kernels of the kernel form (codegen/wasm/kernel.ts)
  const wasm = op === 'matmul'
    ? 'SIMD matmul'
    : isConv(op)
      ? 'SIMD (im2col around the matmul kernel)'
      : op === 'sum' || op === 'max'
        ? 'SIMD reduction'
        : op === 'softmax'
          ? 'SIMD softmax over the last axis'
          : 'alu' in s
            ? 'SIMD kernel (kernel form)'
            : 'layout' in s
              ? 'SIMD copy (kernel form)'
              : 'flat TS code';
  // the GPU.js module renders the kernel form too (codegen/gpu-kernel.ts); routines are kernels of their own
  const gpu = 'alu' in s ? 'elementwise expression' : 'reduce' in s ? 'reduce group' : 'kernel';
  return { ts, wasm, gpu };
}

const cell = (s) => String(s).replaceAll('|', '\\|');
const code = (s) => `\`${cell(s)}\``;

function opsSection() {
  const lines = [
    '| op | category | attributes | arity | example: operands → result | gradient | flat TS | wasm | GPU.js | test |',
    '|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const [op, def] of Object.entries(OPS)) {
    const attrs = Object.entries(def.attrs).map(([k, kind]) => `${k}: ${kind}`).join(', ') || '—';
    const { signature, grads } = op === 'custom_grad'
      ? { signature: 'y, xs..., reads... → y', grads: ["the user's backward (g.customGrad), run by the reverse pass"] }
      : op === 'scan'
        ? { signature: 'carries..., xs..., closed... → token (a region: the body graph)', grads: ['a reverse scan over the stored carries (ir/scan-grad.ts)'] }
        : op === 'scan_out'
          ? { signature: 'token → result index (a final carry, or the ys stacked)', grads: ['with its scan (ir/scan-grad.ts)'] }
          : describe(op, def);
    const t = targets(op);
    const gradCell = grads.map((x) => (x.startsWith('d') && x.includes(' = ') ? code(x).replace(' (no gradient flows to it)`', '` (no gradient flows to it)') : cell(x))).join('<br>');
    const test = def.category === 'conv' ? '[ops](../test/ops.test.ts), [conv](../test/conv.test.ts)' : '[ops](../test/ops.test.ts)';
    lines.push(`| \`${op}\` | ${def.category} | ${cell(attrs)} | ${def.arity} | ${def.category === 'source' ? cell(signature) : code(signature)} | ${gradCell} | ${t.ts} | ${t.wasm} | ${t.gpu} | ${test} |`);
  }
  return lines;
}

/** GraphBuilder's members and Tensor's public methods, with their TSDoc, from src/dsl.ts. */
function dslSection() {
  const file = join(root, 'src/dsl.ts');
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const doc = (n) => ts.getJSDocCommentsAndTags(n).filter(ts.isJSDoc).map((d) => ts.getTextOfJSDocComment(d.comment) ?? '').join(' ').replace(/\s+/g, ' ').trim();
  const internal = (n) => ts.getJSDocTags(n).some((t) => t.tagName.text === 'internal');
  const sig = (m) => {
    const params = m.parameters.map((p) => p.getText(sf).replace(/\s+/g, ' ')).join(', ');
    return `${m.name.getText(sf)}(${params})${m.type ? `: ${m.type.getText(sf).replace(/\s+/g, ' ')}` : ''}`;
  };
  const rows = (members, prefix) =>
    members
      .filter((m) => (ts.isMethodSignature(m) || ts.isMethodDeclaration(m)) && !internal(m) && !m.modifiers?.some((k) => k.kind === ts.SyntaxKind.PrivateKeyword))
      .map((m) => `| ${code(prefix + sig(m))} | ${cell(doc(m)) || '—'} |`);
  const out = [];
  ts.forEachChild(sf, (n) => {
    if (ts.isInterfaceDeclaration(n) && n.name.text === 'GraphBuilder')
      out.push('### `g`: the GraphBuilder', '', '| call | what it does |', '|---|---|', ...rows(n.members, 'g.'), '');
    if (ts.isClassDeclaration(n) && n.name?.text === 'Tensor')
      out.push('### Tensor methods', '', '| call | what it does |', '|---|---|', ...rows(n.members, 'x.'), '');
  });
  return out;
}

function render() {
  return [
    '<!-- generated by graphc, do not edit: npm run docs:ops writes it from ir/ops.ts, the emitters\' tables and src/dsl.ts -->',
    '',
    '# Op reference',
    '',
    'What a model file can call, and the primitive ops the compiler turns it into. A model calls the',
    'DSL (`g.` and tensor methods, below); the tracer turns each call into primitives of the op table',
    '(`ir/ops.ts`), composites (`g.batchNorm`, `g.crossEntropy`, `x.mean`, ...) into several, and',
    'the rewrite pass fuses recognised long forms into the fused primitives (`softmax`, `xent`,',
    '`bn_apply`, ...). `npm run check:docs` fails in CI when this file is stale.',
    '',
    '## The DSL',
    '',
    ...dslSection(),
    '## Primitive ops',
    '',
    'One row per entry of the op table. **attributes**: the attribute schema (`ints` a list of',
    'integers, `dims` a shape whose entries may be symbols, `flag` a boolean present only when',
    'true). **example**: the types of one instance (a, b, c are the operands). **gradient**: the',
    'gradient of the loss with respect to each operand, given `dy`, the gradient of the result:',
    'the reverse pass run on that example and printed as the emitted comments print it (before',
    'the backward passes simplify it; where an operand was broadcast, the reverse pass also sums',
    'the result back over the broadcast axes). **flat TS / wasm / GPU.js**: the kernel each target',
    'has for it (from `LOWERING` in `codegen/kernel/rules.ts`, the decisions of',
    '`codegen/wasm.ts`, the kernel form\'s wasm renderer `codegen/wasm/kernel.ts` for the other elementwise and layout ops, the flat module\'s code for the other routines, and the GPU.js renderer',
    '`codegen/gpu-kernel.ts`). **test**: test/ops.test.ts checks every op of the table on the flat',
    'module against the float64 interpreter and finite differences, and fails when one is missing.',
    '',
    ...opsSection(),
    '',
  ].join('\n');
}

const text = render();
if (process.argv.includes('--check')) {
  const old = (() => {
    try {
      return readFileSync(OUT, 'utf8');
    } catch {
      return '';
    }
  })();
  if (old !== text) {
    process.stdout.write(unifiedDiff(old, text, 'docs/ops.md (committed)', 'docs/ops.md (generated)'));
    console.error('docs/ops.md is stale: run npm run docs:ops and commit it');
    process.exit(1);
  }
  console.log('docs/ops.md is current');
} else {
  writeFileSync(OUT, text);
  console.log(`wrote docs/ops.md (${Object.keys(OPS).length} ops)`);
}
