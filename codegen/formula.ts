// Formulas for comments, in the lecture's notation: `dhpreact = dh * (1 - h**2)`,
// `dh = dlogits @ W2.T`. Values of the same fused group are expanded in place; everything
// else appears by name.

import type { Graph } from '../ir/graph.js';
import { fmtNumber } from '../ir/print.js';
import type { Inst, ValueId } from '../ir/types.js';
import { convOptions, poolOptions } from './ts/conv.js';

interface F {
  readonly s: string;
  readonly p: number; // precedence: 1 add, 2 mul, 3 unary, 4 power, 5 atom
}

const atom = (s: string): F => ({ s, p: 5 });
const par = (f: F, min: number) => (f.p >= min ? f.s : `(${f.s})`);
const bin = (op: string, p: number) => (a: F, b: F): F => ({ s: `${par(a, p)} ${op} ${par(b, p + 1)}`, p });
const fn = (name: string) => (a: F): F => atom(`${name}(${a.s})`);

function render(g: Graph, inst: Inst, arg: (i: number) => F, top = true): F {
  const a = () => arg(0);
  const b = () => arg(1);
  const axes = (x: readonly number[]) => (x.length === 1 ? String(x[0]) : `(${x.join(', ')})`);
  switch (inst.op) {
    case 'add':
      return bin('+', 1)(a(), b());
    case 'sub':
      return bin('-', 1)(a(), b());
    case 'mul':
      return bin('*', 2)(a(), b());
    case 'div':
      return bin('/', 2)(a(), b());
    case 'pow': {
      const e = b().s;
      if (e === '2') return { s: `${par(a(), 5)}²`, p: 4 };
      if (e === '-1') return bin('/', 2)(atom('1'), a());
      return { s: `${par(a(), 5)}**${par(b(), 5)}`, p: 4 };
    }
    case 'square':
      return { s: `${par(a(), 5)}²`, p: 4 };
    case 'neg':
      return { s: `-${par(a(), 3)}`, p: 3 };
    case 'exp':
    case 'log':
    case 'tanh':
    case 'sigmoid':
    case 'relu':
    case 'sqrt':
    case 'abs':
    case 'sin':
    case 'cos':
    case 'erf':
    case 'log1p':
    case 'expm1':
      return fn(inst.op)(a());
    case 'maximum':
    case 'minimum':
      return atom(`${inst.op}(${a().s}, ${b().s})`);
    case 'gt':
      return atom(`(${a().s} > ${b().s})`);
    case 'ge':
      return atom(`(${a().s} >= ${b().s})`);
    case 'select':
      return atom(`where(${a().s}, ${b().s}, ${arg(2).s})`);
    case 'broadcast':
    case 'stop_gradient':
    case 'custom_grad':
    case 'reshape':
      return a();
    case 'sum':
    case 'max':
      return atom(`${par(a(), 5)}.${inst.op}(${axes(inst.attrs.axes)})`);
    case 'argmax_mask':
      return atom(`argmax_mask(${a().s})`);
    case 'matmul': {
      const x = inst.attrs.transA ? atom(`${par(a(), 5)}.T`) : a();
      const y = inst.attrs.transB ? atom(`${par(b(), 5)}.T`) : b();
      return bin('@', 2)(x, y);
    }
    case 'one_hot':
      return atom(`onehot(${a().s}, ${inst.attrs.depth})`);
    case 'bn_apply':
    case 'ln_apply':
      return bin('*', 2)(bin('-', 1)(a(), b()), arg(2));
    case 'softmax':
      return atom(`softmax(${a().s}, ${inst.attrs.axis})`);
    case 'log_softmax':
      return atom(`log_softmax(${a().s}, ${inst.attrs.axis})`);
    case 'xent':
      return atom(`cross_entropy(${a().s}, ${b().s})`);
    case 'gather':
      return atom(`${par(a(), 5)}[${b().s}]`);
    case 'scatter_add':
      return atom(`scatter_add(${a().s}, ${b().s})`);
    case 'pick':
      return atom(`${par(a(), 5)}[range(n), ${b().s}]`);
    case 'transpose':
      return atom(`${par(a(), 5)}.permute(${inst.attrs.perm.join(', ')})`);
    case 'concat':
      return atom(`cat([${inst.args.map((_x, i) => arg(i).s).join(', ')}], ${inst.attrs.axis})`);
    case 'slice':
      return atom(`${par(a(), 5)}[${inst.attrs.starts.map((s, d) => { const n = inst.attrs.sizes[d]!; return typeof n === 'number' ? `${s}:${s + n}` : ':'; }).join(', ')}]`);
    case 'pad':
      return atom(`pad(${a().s})`);
    case 'conv':
    case 'conv_input_grad':
    case 'conv_weight_grad': {
      // PyTorch's names: conv2d, its input gradient conv_transpose2d (dy convolved with the
      // flipped weights), its weight gradient torch.nn.grad.conv2d_weight (x correlated with dy)
      const fname = { conv: 'conv2d', conv_input_grad: 'conv_transpose2d', conv_weight_grad: 'conv2d_weight' }[inst.op];
      const shaped = (k: number) => `${arg(k).s}: [${g.type(inst.args[k]!).shape.join(', ')}]`;
      // inside a conv group's formula (relu(conv2d(x, W) + b)) the result's shape is the line's
      return atom(`${fname}(${shaped(0)}, ${shaped(1)}${convOptions(inst.attrs)})${top ? ` → [${g.type(inst.result).shape.join(', ')}]` : ''}`);
    }
    case 'max_pool':
    case 'avg_pool':
      return atom(`${inst.op}2d(${a().s}: [${g.type(inst.args[0]!).shape.join(', ')}]${poolOptions(inst.attrs)}) → [${g.type(inst.result).shape.join(', ')}]`);
    case 'max_pool_grad':
      return atom(`max_pool2d_backward(${a().s}, ${b().s}${poolOptions(inst.attrs)}) → [${g.type(inst.result).shape.join(', ')}]`);
    case 'max_pool_pick':
      // the value of b at each window's first maximum of a: max_pool2d_backward's adjoint
      return atom(`max_pool2d_pick(${a().s}, ${b().s}${poolOptions(inst.attrs)}) → [${g.type(inst.result).shape.join(', ')}]`);
    case 'avg_pool_grad':
      return atom(`avg_pool2d_backward(${a().s}${poolOptions(inst.attrs)}) → [${g.type(inst.result).shape.join(', ')}]`);
    // the index primitives, as torch writes them
    case 'argmax':
    case 'argmin':
      return atom(`${par(a(), 5)}.${inst.op}(${inst.attrs.axis}${inst.attrs.keepDims ? ', keepdim=True' : ''})`);
    case 'cumsum':
      return atom(inst.attrs.reverse ? `${par(a(), 5)}.flip(${inst.attrs.axis}).cumsum(${inst.attrs.axis}).flip(${inst.attrs.axis})` : `${par(a(), 5)}.cumsum(${inst.attrs.axis})`);
    case 'flip':
      return atom(`${par(a(), 5)}.flip(${axes(inst.attrs.axes)})`);
    case 'arange':
      return atom(`arange(${inst.attrs.shape[0]})`);
    case 'cast':
      return atom(`${par(a(), 5)}.float()`);
    case 'input':
    case 'param':
    case 'fwd':
      return atom(g.value(inst.result).name);
    case 'dim':
      return atom(inst.attrs.name);
    case 'buffer':
    case 'mode':
    case 'dropout_mask':
      return atom(g.value(inst.result).name);
    case 'const': {
      const d = inst.attrs.data;
      if (d.length === 1) return atom(fmtNumber(d[0]!));
      // a temporary holding a constant of equal elements is shown as what it is, as PyTorch writes it
      if (g.value(inst.result).temp && d.every((x) => Object.is(x, d[0]))) {
        const shape = g.type(inst.result).shape.join(', ');
        return atom(d[0] === 1 ? `ones(${shape})` : d[0] === 0 ? `zeros(${shape})` : `full((${shape}), ${fmtNumber(d[0]!)})`);
      }
      return atom(g.value(inst.result).name);
    }
  }
}

/**
 * The formula of value v: operands computed by `inline` instructions (and scalar constants)
 * are expanded, the others are named (by `nameOf`, when given: a shared kernel's formals).
 */
export function formula(g: Graph, v: ValueId, inline: (inst: Inst) => boolean, nameOf?: (name: string) => string): string {
  const named = (name: string) => atom(nameOf ? nameOf(name) : name);
  const go = (w: ValueId, top: boolean): F => {
    const d = g.def(w);
    const uniformTemp = d.op === 'const' && g.value(w).temp && d.attrs.data.every((x) => Object.is(x, d.attrs.data[0]));
    const expand = top || inline(d) || (d.op === 'const' && d.attrs.data.length === 1) || uniformTemp || d.op === 'dim';
    if (!expand) return named(d.op === 'fwd' ? d.attrs.name : g.value(w).name);
    return render(g, d, (i) => go(d.args[i]!, false), top);
  };
  return go(v, true).s;
}
