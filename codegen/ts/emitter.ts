// The flat TypeScript target's unit emitter: the code of one fused group (an elementwise loop
// nest, a reduction, a matmul group through its kernel, or a statement snippet), with the names
// each function takes from the arena.

import type { Graph } from '../../ir/graph.js';
import type { Plan, Unit } from '../../ir/memplan.js';
import { valueName } from '../../ir/memplan.js';
import type { OpKind } from '../../ir/ops.js';
import type { Size } from '../../ir/dims.js';
import { numelSize, size, sizeText, stridesSize } from '../../ir/dims.js';
import { broadcastStridesSize, fmtShape } from '../../ir/shape.js';
import type { Inst, InstOf, Shape, ValueId } from '../../ir/types.js';
import * as E from '../expr.js';
import type { Expr } from '../expr.js';
import { formula } from '../formula.js';
import type { Access } from '../loops.js';
import { nest } from '../loops.js';
import type { ModuleInfo } from '../module.js';
import type { Typed } from '../module.js';
import { commentText, key, member, params, uniformConst, unitComment } from '../module.js';

import type { Backend, Ctx, Snippet } from './snippets.js';
import { keptOuterNestMulti, TS_SNIPPETS } from './snippets.js';
import type { Kernels } from './matmul.js';
import { matmulKernel } from './matmul.js';
import { convLoops } from './conv.js';

// ---------------------------------------------------------------------------------------------
// Emitting units

/** The code of one graph's units, with the names each function must take from `buf`. */
export class Emitter {
  /** Arrays referenced by the code emitted so far (names taken from `buf`), in order of use. */
  readonly used = new Set<string>();
  /** For a shared kernel: the formal parameter name of each array it touches. */
  readonly formal?: Map<string, string>;

  constructor(
    readonly m: ModuleInfo,
    readonly plan: Plan,
    readonly codeName: (base: string) => string,
    readonly kernels: Kernels,
    readonly t: Typed,
    formal = false,
    readonly backend?: Backend,
  ) {
    if (formal) this.formal = new Map();
  }

  /** Arrays read under another name (a matmul product in a backend's scratch area). */
  private readonly renamed = new Map<string, string>();

  name(g: Graph, v: ValueId): string {
    return valueName(g, v);
  }

  ctx(g: Graph): Ctx {
    return {
      g,
      arr: (v) => this.arrOf(g, v),
      read: (v, idx) => this.read(g, v, idx),
    };
  }

  arrOf(g: Graph, v: ValueId): string {
    const name = this.renamed.get(this.name(g, v)) ?? this.name(g, v);
    this.used.add(name);
    this.kernels.referenced.add(name);
    if (!this.formal) return name;
    if (!this.formal.has(name)) this.formal.set(name, `X${this.formal.size}`);
    return this.formal.get(name)!;
  }

  /** How the code shows a value name: its formal in a shared kernel, else itself. */
  shown(name: string): string {
    const n = this.renamed.get(name) ?? name;
    return this.formal?.get(n) ?? n;
  }

  read(g: Graph, v: ValueId, idx: string): Expr {
    const s = this.plan.storage.get(this.name(g, v));
    const c = uniformConst(this.plan, this.name(g, v));
    if (c !== undefined) return E.num(c);
    if (s?.kind === 'dim') return E.atom(s.name); // the bound size, a local of every function that uses it
    return E.atom(`${this.arrOf(g, v)}[${g.type(v).shape.length === 0 ? '0' : idx}]`);
  }

  stored(g: Graph, v: ValueId): boolean {
    return this.plan.storage.get(this.name(g, v))?.kind === 'buffer';
  }

  unit(u: Unit): string[] {
    const comment = unitComment(this.m, u, this.plan);
    const code = this.code(u);
    if (code.length === 0) return [];
    const scoped = code.some((l) => /^(let|const) /.test(l)) && !/^for /.test(code[0]!);
    return ['', ...comment, ...(scoped ? ['{', ...code, '}'] : code), ...this.finiteChecks(u)];
  }

  /** --check-finite: every f32 value the unit writes is checked for NaN and infinities. */
  private finiteChecks(u: Unit): string[] {
    if (!this.m.checkFinite) return [];
    return u.insts.flatMap((inst) => {
      if (!this.stored(u.graph, inst.result) || u.graph.type(inst.result).dtype !== 'f32') return [];
      const where = inst.loc ? `computed at ${inst.loc.file}:${inst.loc.line}` : 'computed by an instruction without a location';
      return [`checkFinite(${JSON.stringify(this.name(u.graph, inst.result))}, ${this.arrOf(u.graph, inst.result)}, ${JSON.stringify(where)});`];
    });
  }

  private code(u: Unit): string[] {
    const first = u.insts[0]!;
    const own = this.backend?.unit(u, {
      arrOf: (g, v) => this.arrOf(g, v),
      use: (name) => this.used.add(name),
      epilogueLoop: (mu, product) => this.epilogueLoop(mu, product),
    });
    if (own) return own;
    if (u.kind === 'matmul' || (u.kind === 'single' && first.op === 'matmul')) return this.matmul(u);
    if (u.kind === 'conv' && first.op === 'conv') return this.conv(u);
    if (u.kind === 'reduce' || (u.kind === 'single' && (first.op === 'sum' || first.op === 'max'))) return this.reduce(u);
    if (u.kind === 'elementwise' || (u.kind === 'single' && 'expr' in TS_SNIPPETS[first.op])) return this.elementwise(u);
    const snip = TS_SNIPPETS[first.op] as Snippet<OpKind>;
    if ('emit' in snip) return snip.emit(this.ctx(u.graph), first as InstOf<OpKind>);
    return [];
  }

  /**
   * The body of elementwise members at one position. `ext(v)` reads a value computed outside
   * the members; `slot(v)` is the index to store member v at (when it is stored).
   */
  members(
    g: Graph,
    unit: readonly Inst[],
    members: readonly Inst[],
    ext: (v: ValueId, user: Inst) => Expr,
    slot: (v: ValueId) => string,
    known: Map<ValueId, Expr>,
    coord: () => Expr = () => {
      throw new Error('internal: one_hot outside an elementwise loop');
    },
  ): string[] {
    const lines: string[] = [];
    const inGroup = new Set(members.map((m) => m.result));
    const usesLeft = new Map<ValueId, number>();
    for (const m of unit) for (const a of m.args) if (inGroup.has(a)) usesLeft.set(a, (usesLeft.get(a) ?? 0) + 1);
    const local = (v: ValueId, e: Expr): Expr => {
      if (e.prec >= E.P.ATOM || E.literal(e) !== undefined) return e;
      const n = `_${this.name(g, v)}`;
      lines.push(`const ${n} = ${e.code};`);
      return E.atom(n);
    };
    for (const m of members) {
      const snip = TS_SNIPPETS[m.op] as { expr: (a: readonly Expr[]) => Expr; atoms?: boolean };
      let args = m.args.map((a) => known.get(a) ?? ext(a, m));
      if (m.op === 'one_hot') args.push(coord()); // the coordinate along the class axis
      if (snip.atoms) args = args.map((e, k) => local(m.args[k]!, e));
      let e = snip.expr(args);
      const uses = usesLeft.get(m.result) ?? 0;
      if (this.stored(g, m.result)) {
        if (uses > 0) e = local(m.result, e);
        lines.push(`${this.arrOf(g, m.result)}[${g.type(m.result).shape.length === 0 ? '0' : slot(m.result)}] = ${e.code};`);
      } else if (uses > 1) e = local(m.result, e);
      known.set(m.result, e);
    }
    return lines;
  }

  /** Accesses of a loop nest, deduplicated; `at(key)` gives the index expression of one. */
  private accessSet() {
    const list: Access[] = [];
    const keys = new Map<string, number>();
    return {
      add: (a: Access): string => {
        const k = `${a.strides.map(sizeText).join(',')}+${sizeText(a.base ?? 0)}`;
        if (!keys.has(k)) {
          keys.set(k, list.length);
          list.push(a);
        }
        return k;
      },
      list,
      index: (idx: string[], k: string) => idx[keys.get(k)!]!,
    };
  }

  /** The stride pattern of operand a read at the positions of an elementwise member. */
  private operandStrides(g: Graph, a: ValueId, user: Inst, shape: Shape): Size[] {
    if (user.op === 'one_hot') return [...stridesSize(g.type(a).shape), size(0)].slice(-shape.length);
    return broadcastStridesSize(g.type(a).shape, shape);
  }

  /** The epilogue of a matmul group (its members after the matmul) as an elementwise loop. */
  private epilogueLoop(u: Unit, product: string): string[] {
    const mm = u.insts[0]!;
    this.renamed.set(this.name(u.graph, mm.result), product);
    try {
      return this.elementwise(u, u.insts.slice(1));
    } finally {
      this.renamed.delete(this.name(u.graph, mm.result));
    }
  }

  private elementwise(u: Unit, members: readonly Inst[] = u.insts): string[] {
    const g = u.graph;
    const shape = g.type(members[0]!.result).shape;
    const acc = this.accessSet();
    const out = acc.add({ strides: stridesSize(shape) });
    const inGroup = new Set(members.map((m) => m.result));
    const keyOf = new Map<string, string>();
    const coord = acc.add({ strides: shape.map((_d, i) => (i === shape.length - 1 ? 1 : 0)) });
    for (const m of members)
      for (const a of m.args)
        if (!inGroup.has(a)) keyOf.set(`${m.id}:${a.index}`, acc.add({ strides: this.operandStrides(g, a, m, shape) }));
    return nest(shape, acc.list, (idx) =>
      this.members(
        g,
        members,
        members,
        (v, user) => this.read(g, v, acc.index(idx, keyOf.get(`${user.id}:${v.index}`)!)),
        () => acc.index(idx, out),
        new Map(),
        () => E.atom(acc.index(idx, coord)),
      ),
    );
  }

  private reduce(u: Unit): string[] {
    const g = u.graph;
    const reductions = u.insts.filter((m) => m.op === 'sum' || m.op === 'max') as InstOf<'sum' | 'max'>[];
    const first = reductions[0]!;
    const shape = g.type(first.args[0]!).shape;
    const axes = first.attrs.axes;
    const full = u.insts.filter((m) => m !== first && !reductions.includes(m as InstOf<'sum'>) && sameShape(g.type(m.result).shape, shape));
    const fullSet = new Set(full);
    const epilogue = u.insts.filter((m) => !reductions.includes(m as InstOf<'sum'>) && !fullSet.has(m));
    const kept = shape.map((_d, i) => i).filter((i) => !axes.includes(i));
    const keptShape = kept.map((d) => shape[d]!);
    const K = sizeText(numelSize(keptShape));
    const inGroup = new Set(u.insts.map((m) => m.result));
    const init = (r: InstOf<'sum' | 'max'>) => (r.op === 'sum' ? '0' : '-Infinity');

    // accesses over the full shape (full members and their operands, reduction operands)
    const acc = this.accessSet();
    const fullOut = acc.add({ strides: stridesSize(shape) });
    const keyOf = new Map<string, string>();
    for (const m of [...full, ...reductions])
      for (const a of m.args) if (!inGroup.has(a)) keyOf.set(`${m.id}:${a.index}`, acc.add({ strides: this.operandStrides(g, a, m, shape) }));
    const keptStrides = (() => {
      const st = stridesSize(keptShape);
      const out = shape.map(() => size(0));
      kept.forEach((d, k) => (out[d] = st[k]!));
      return out;
    })();
    const keptAt = acc.add({ strides: keptStrides });
    const coord = acc.add({ strides: shape.map((_d, i) => (i === shape.length - 1 ? 1 : 0)) });

    // the epilogue runs over the kept positions: operands of a reduced shape (with or without
    // the reduced axes kept as 1s) are read through their strides over the kept axes. An operand
    // broadcasts against the shape of the member that reads it: with the reduced axes kept as
    // 1s (keepDims), it aligns with the full shape; without them, with the kept axes alone.
    const keptView = (v: ValueId, user?: Inst): Size[] => {
      const s = g.type(v).shape;
      const fullRank = (user ? g.type(user.result).shape : s).length === shape.length;
      if (fullRank) {
        const bs = broadcastStridesSize(s, shape);
        return kept.map((d) => bs[d]!);
      }
      return broadcastStridesSize(s, keptShape);
    };
    const epi = this.accessSet();
    const accAt = epi.add({ strides: stridesSize(keptShape) });
    const epiOut = new Map<ValueId, string>();
    const epiKey = new Map<string, string>();
    for (const m of [...reductions, ...epilogue]) epiOut.set(m.result, epi.add({ strides: keptView(m.result) }));
    for (const m of epilogue) for (const a of m.args) if (!inGroup.has(a)) epiKey.set(`${m.id}:${a.index}`, epi.add({ strides: keptView(a, m) }));

    const fullBody = (idx: string[], accum: (r: InstOf<'sum' | 'max'>, v: Expr) => string[]) => {
      const known = new Map<ValueId, Expr>();
      const lines = this.members(
        g,
        u.insts,
        full,
        (v, user) => this.read(g, v, acc.index(idx, keyOf.get(`${user.id}:${v.index}`)!)),
        () => acc.index(idx, fullOut),
        known,
        () => E.atom(acc.index(idx, coord)),
      );
      for (const r of reductions) {
        const a = r.args[0]!;
        const v = known.get(a) ?? this.read(g, a, acc.index(idx, keyOf.get(`${r.id}:${a.index}`)!));
        lines.push(...accum(r, v));
      }
      return lines;
    };
    const epilogueBody = (idx: string[], value: (r: InstOf<'sum' | 'max'>) => Expr) => {
      const known = new Map<ValueId, Expr>();
      const lines: string[] = [];
      for (const r of reductions) {
        known.set(r.result, value(r));
        if (this.stored(g, r.result)) lines.push(`${this.arrOf(g, r.result)}[${epi.index(idx, epiOut.get(r.result)!)}] = ${value(r).code};`);
      }
      lines.push(...this.members(g, u.insts, epilogue, (v, user) => this.read(g, v, epi.index(idx, epiKey.get(`${user.id}:${v.index}`)!)), (v) => epi.index(idx, epiOut.get(v)!), known));
      return lines;
    };
    const accName = (k: number) => `_acc${k}`;
    const leading = kept.length > 0 && axes.every((a, k) => a === k);
    if (leading) {
      // reduced axes outermost: walk the operand in memory order, accumulating per kept position
      reductions.forEach((_r, k) => this.used.add(accName(k)));
      return [
        `for (let i = 0; i < ${K}; i++) {`,
        ...reductions.map((r, k) => `${accName(k)}[i] = ${init(r)};`),
        '}',
        ...nest(shape, acc.list, (idx) =>
          fullBody(idx, (r, v) => {
            const k = reductions.indexOf(r);
            const a = `${accName(k)}[${acc.index(idx, keptAt)}]`;
            return r.op === 'sum' ? [`${a} += ${v.code};`] : v.prec >= E.P.ATOM ? [`if (${v.code} > ${a}) ${a} = ${v.code};`] : [`const _v${k} = ${v.code};`, `if (_v${k} > ${a}) ${a} = _v${k};`];
          }),
        ),
        ...nest(keptShape, epi.list, (idx) => epilogueBody(idx, (r) => E.atom(`${accName(reductions.indexOf(r))}[${epi.index(idx, accAt)}]`))),
      ];
    }
    // kept axes outermost: a scalar accumulator per reduction, named after it (`_sum0`, `_max1`)
    // so that it cannot collide with the arena's `_acc` arrays
    const scalarName = (r: InstOf<'sum' | 'max'>) => `_${r.op}${reductions.indexOf(r)}`;
    return keptOuterNestMulti(shape, axes, acc.list, epi.list, (keptIdx) => reductions.map((r) => `let ${scalarName(r)} = ${init(r)};`), (idx) =>
      fullBody(idx, (r, v) => {
        const a = scalarName(r);
        return r.op === 'sum' ? [`${a} += ${v.code};`] : v.prec >= E.P.ATOM ? [`if (${v.code} > ${a}) ${a} = ${v.code};`] : [`const _v = ${v.code};`, `if (_v > ${a}) ${a} = _v;`];
      }),
      (keptIdx) => epilogueBody(keptIdx, (r) => E.atom(scalarName(r))),
    );
  }

  /**
   * A conv group: the convolution's loops with the group's elementwise members run on each
   * output's sum (the direct form, without padding), or over each output plane y[n, m, ·, ·] as
   * soon as it is accumulated (codegen/ts/conv.ts). An operand constant over the plane (the bias,
   * [1, O, 1, 1]) is read once per plane; one laid out as the output plane is read along with
   * it; any other broadcast is indexed by row and column.
   */
  private conv(u: Unit): string[] {
    const g = u.graph;
    const cv = u.insts[0] as InstOf<'conv'>;
    const members = u.insts.slice(1);
    const shape = g.type(cv.result).shape;
    // an axis of extent 1 (conv1d's H) steps nowhere: its strides count as 0
    const flat1 = (st: readonly Size[]) => st.map((x, d) => (shape[d] === 1 ? size(0) : x));
    const outStrides = flat1(stridesSize(shape));
    const inGroup = new Set(u.insts.map((m) => m.result));
    const ext: ValueId[] = [];
    for (const m of members) for (const a of m.args) if (!inGroup.has(a) && !ext.includes(a)) ext.push(a);
    const strides = new Map(ext.map((v) => [v, flat1(broadcastStridesSize(g.type(v).shape, shape))] as const));
    const zero = (x: Size) => x.coef === 0;
    const same = (a: Size, b: Size) => sizeText(a) === sizeText(b);
    const planeConst = (v: ValueId) => strides.get(v)!.slice(2).every(zero);
    const planeLike = (v: ValueId) => strides.get(v)!.slice(2).every((x, k) => same(x, outStrides[k + 2]!));
    const rowsCols = !ext.every((v) => planeConst(v) || planeLike(v));
    const term = (x: string, st: Size) => (zero(st) ? [] : [st.coef === 1 && st.syms.length === 0 ? x : `${x.includes(' ') ? `(${x})` : x} * ${sizeText(st)}`]);
    const base = (v: ValueId) => [...term('n', strides.get(v)![0]!), ...term('m', strides.get(v)![1]!)].join(' + ') || '0';
    // per plane: the reads of operands constant over it, the offsets of those laid out as it
    const hoisted = new Map<ValueId, string>();
    const plane = (): string[] => {
      const lines: string[] = [];
      ext.forEach((v, k) => {
        const st = strides.get(v)!;
        if (planeConst(v)) {
          const e = this.read(g, v, base(v));
          if (E.literal(e) === undefined && e.code.includes('[')) {
            lines.push(`const _pc${k} = ${e.code};`);
            hoisted.set(v, `_pc${k}`);
          }
        } else if (!rowsCols && !(same(st[0]!, outStrides[0]!) && same(st[1]!, outStrides[1]!))) {
          lines.push(`const _pd${k} = ${base(v)} - _yb;`);
          hoisted.set(v, `_pd${k}`);
        }
      });
      return lines;
    };
    const element = (value: string, o: string, i: string, j: string): string[] => {
      const read = (v: ValueId): Expr => {
        const st = strides.get(v)!;
        const h = hoisted.get(v);
        if (planeConst(v)) return h ? E.atom(h) : this.read(g, v, base(v));
        if (!rowsCols) return this.read(g, v, h ? `${o} + ${h}` : o);
        return this.read(g, v, [...term('n', st[0]!), ...term('m', st[1]!), ...term(i, st[2]!), ...term(j, st[3]!)].join(' + ') || '0');
      };
      return this.members(g, u.insts, members, read, () => o, new Map([[cv.result, E.atom(value)]]));
    };
    return convLoops(this.ctx(g), cv, { plane, element, rowsCols });
  }

  /**
   * A matmul group as a call of a register-tiled kernel of its own, which reads its arrays from
   * `buf` (fastest on V8: the tiny GPT's step takes 18% longer when its 51 matmuls share 13
   * kernels). In a module of many matmuls (a deep MLP), those of identical structure share one
   * kernel that takes its arrays as arguments, which keeps the module small and its build fast.
   */
  private matmul(u: Unit): string[] {
    const shared = matmulKernel(new Emitter(this.m, this.plan, this.codeName, this.kernels, this.t, true), u);
    const key = shared.body.join('\n');
    const last = u.insts[u.insts.length - 1]!;
    if (this.kernels.shares(key)) {
      const params = [...shared.emitter.formal!.values()];
      const args = [...shared.emitter.formal!.keys()];
      const [A, B] = (u.insts[0] as InstOf<'matmul'>).args.map((v) => fmtShape(u.graph.type(v).shape));
      const name = this.kernels.shared(key, (kname) => [
        '',
        `/** ${commentText(shared.doc)}, ${A} @ ${B}: shared by the ${this.kernels.uses(key)} matmuls of this structure */`,
        `function ${kname}(${params.map((p) => `${p}${this.t(': Float32Array')}`).join(', ')})${this.t(': void')} {`,
        ...shared.body,
        '}',
      ]);
      for (const a of args) this.used.add(a);
      return [`${name}(${args.join(', ')});`];
    }
    const own = matmulKernel(new Emitter(this.m, this.plan, this.codeName, this.kernels, this.t), u);
    const kname = this.codeName(`matmul_${this.name(u.graph, last.result)}`);
    this.kernels.code.push(
      '',
      `/** ${commentText(this.formulaOf(u, last.result))} */`,
      `function ${kname}()${this.t(': void')} {`,
      `const { ${[...own.emitter.used].join(', ')} } = buf;`,
      ...own.body,
      '}',
    );
    return [`${kname}();`];
  }

  formulaOf(u: Unit, v: ValueId): string {
    const set = new Set(u.insts.map((i) => i.id));
    return `${this.name(u.graph, v)} = ${formula(u.graph, v, (d) => set.has(d.id) && !this.stored(u.graph, d.result))}`;
  }
}

function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

