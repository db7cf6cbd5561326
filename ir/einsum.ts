// g.einsum(spec, ...xs) (torch.einsum's notation, without '...' and diagonals) as transposes,
// reshapes, matmuls, broadcast products and sums: operands are contracted left to right; a pair
// that shares a summed letter and has letters of its own becomes one (batched) matmul, any other
// pair a broadcast product summed over the shared letters.

import type { Builder } from './builder.js';
import { CompileError } from './errors.js';
import type { Dim } from './dims.js';
import { asDim, numelSize } from './dims.js';
import type { ValueId } from './types.js';
import { formatType, sameShape } from './types.js';

interface Term {
  v: ValueId;
  letters: string[];
}

const fail = (b: Builder, spec: string, what: string, fix: string) => new CompileError(`einsum: '${spec}': ${what}`, fix).withLoc(b.loc);

/** The operands' letters and the output's, checked against the operands. */
function parse(b: Builder, spec: string, xs: ValueId[]): { terms: string[][]; out: string[]; sizes: Map<string, Dim> } {
  const s = spec.replace(/\s+/g, '');
  const sides = s.split('->');
  if (sides.length > 2) throw fail(b, spec, "'->' appears more than once", "write the operands, '->', then the output's letters: 'ij,jk->ik'");
  if (s.includes('...')) throw fail(b, spec, "'...' (an ellipsis) is not supported", 'name every axis with a letter: \'bij,bjk->bik\'');
  const lhs = sides[0]!.split(',');
  if (lhs.length !== xs.length)
    throw fail(b, spec, `${lhs.length} operand${lhs.length === 1 ? '' : 's'} in the spec, ${xs.length} tensor${xs.length === 1 ? '' : 's'} passed`, 'give one comma-separated term per tensor');
  const sizes = new Map<string, Dim>();
  const terms = lhs.map((term, k) => {
    const bad = [...term].find((c) => !/[a-zA-Z]/.test(c));
    if (bad !== undefined) throw fail(b, spec, `'${bad}' in operand ${k} is not a letter`, 'name each axis with one letter a-z or A-Z');
    const t = b.type(xs[k]!);
    if (t.dtype !== 'f32') throw fail(b, spec, `operand ${k} is ${formatType(t)} but f32 is needed`, 'einsum multiplies f32 tensors');
    if (term.length !== t.shape.length)
      throw fail(b, spec, `operand ${k} ('${term}') names ${term.length} axes, but it is ${formatType(t)}`, `give operand ${k} one letter per axis (${t.shape.length})`);
    const letters = [...term];
    for (const [i, c] of letters.entries()) {
      if (letters.indexOf(c) !== i) throw fail(b, spec, `'${c}' appears twice in operand ${k} ('${term}'): diagonals are not supported`, 'give each axis of an operand its own letter');
      const d = t.shape[i]!;
      const prev = sizes.get(c);
      if (prev !== undefined && prev !== d) throw fail(b, spec, `'${c}' is ${prev} in an earlier operand but ${d} in operand ${k} (${formatType(t)})`, `the axes named '${c}' must have one size`);
      sizes.set(c, d);
    }
    return letters;
  });
  let out: string[];
  if (sides.length === 2) {
    out = [...sides[1]!];
    for (const [i, c] of out.entries()) {
      if (!sizes.has(c)) throw fail(b, spec, `the output's '${c}' is not a letter of any operand`, 'the output names axes of the operands');
      if (out.indexOf(c) !== i) throw fail(b, spec, `'${c}' appears twice in the output`, 'name each output axis once');
    }
  } else {
    const all = terms.flat();
    out = [...sizes.keys()].filter((c) => all.filter((x) => x === c).length === 1).sort();
  }
  return { terms, out, sizes };
}

function arrange(b: Builder, t: Term, order: string[], sizes: Map<string, Dim>): ValueId {
  const present = order.filter((c) => t.letters.includes(c));
  const perm = present.map((c) => t.letters.indexOf(c));
  const v = perm.every((p, i) => p === i) ? t.v : b.transpose(t.v, perm);
  const shape = order.map((c) => (t.letters.includes(c) ? sizes.get(c)! : 1));
  return sameShape(shape, b.type(v).shape) ? v : b.reshape(v, shape);
}

/** Sums t over the letters that `keep` does not hold. */
function sumOut(b: Builder, t: Term, keep: Set<string>): Term {
  const axes = t.letters.flatMap((c, i) => (keep.has(c) ? [] : [i]));
  if (axes.length === 0) return t;
  return { v: b.sum(t.v, axes), letters: t.letters.filter((c) => keep.has(c)) };
}

/** The size of axes merged into one: a number, the one axis, or a product dimension (`B*T`). */
function product(dims: Dim[]): Dim {
  return asDim(numelSize(dims));
}

function pairUp(b: Builder, A: Term, B: Term, keep: Set<string>, sizes: Map<string, Dim>): Term {
  const batch = A.letters.filter((c) => B.letters.includes(c) && keep.has(c));
  const contract = A.letters.filter((c) => B.letters.includes(c) && !keep.has(c));
  const aOnly = A.letters.filter((c) => !B.letters.includes(c));
  const bOnly = B.letters.filter((c) => !A.letters.includes(c));
  const dims = (cs: string[]) => cs.map((c) => sizes.get(c)!);
  if (contract.length > 0 && (aOnly.length > 0 || bOnly.length > 0)) {
    // [...batch, m, k] × [...batch, k, n], each of m, k and n the letters it stands for merged (symbolic ones into a product dimension)
    const [m, k, n] = [product(dims(aOnly)), product(dims(contract)), product(dims(bOnly))];
    const a = arrange(b, A, [...batch, ...aOnly, ...contract], sizes);
    const c = arrange(b, B, [...batch, ...contract, ...bOnly], sizes);
    const shapeOf = (v: ValueId, shape: Dim[]) => (sameShape(shape, b.type(v).shape) ? v : b.reshape(v, shape));
    const y = b.matmul(shapeOf(a, [...dims(batch), m, k]), shapeOf(c, [...dims(batch), k, n]));
    const letters = [...batch, ...aOnly, ...bOnly];
    return { v: shapeOf(y, dims(letters)), letters };
  }
  const order = [...batch, ...aOnly, ...bOnly, ...contract];
  const y = b.mul(arrange(b, A, order, sizes), arrange(b, B, order, sizes));
  const kept = batch.length + aOnly.length + bOnly.length;
  const letters = order.slice(0, kept);
  return { v: contract.length ? b.sum(y, contract.map((_c, i) => kept + i)) : y, letters };
}

export function einsum(b: Builder, spec: string, xs: ValueId[]): ValueId {
  const { terms, out, sizes } = parse(b, spec, xs);
  const ops: Term[] = terms.map((letters, k) => ({ v: xs[k]!, letters }));
  let cur = ops[0]!;
  for (let k = 1; k <= ops.length; k++) {
    const later = new Set([...out, ...ops.slice(k + 1).flatMap((t) => t.letters)]);
    if (k === ops.length) {
      cur = sumOut(b, cur, new Set(out));
      break;
    }
    const next = ops[k]!;
    const keepA = new Set([...later, ...next.letters]);
    const keepB = new Set([...later, ...cur.letters]);
    cur = pairUp(b, sumOut(b, cur, keepA), sumOut(b, next, keepB), later, sizes);
  }
  const perm = out.map((c) => cur.letters.indexOf(c));
  return perm.every((p, i) => p === i) ? cur.v : b.transpose(cur.v, perm);
}
