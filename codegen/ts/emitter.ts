// The flat TypeScript target's unit emitter: the code of one fused group (an elementwise loop
// nest, a reduction, a matmul group through its kernel, or a statement snippet), with the names
// each function takes from the arena.

import type { Graph } from '../../ir/graph.js';
import type { Plan, Unit } from '../../ir/memplan.js';
import { valueName } from '../../ir/memplan.js';
import type { OpKind } from '../../ir/ops.js';
import type { Size } from '../../ir/dims.js';
import { size, sizeText, stridesSize } from '../../ir/dims.js';
import { fmtShape } from '../../ir/shape.js';
import type { Inst, InstOf, ValueId } from '../../ir/types.js';
import * as E from '../expr.js';
import type { Expr } from '../expr.js';
import { formula } from '../formula.js';
import type { ModuleInfo } from '../module.js';
import type { Typed } from '../module.js';
import { commentText, uniformConst, unitComment } from '../module.js';

import type { Backend, Ctx, OwnOp } from './snippets.js';
import { TS_ROUTINES } from './snippets.js';
import { CompileError } from '../../ir/errors.js';
import { lowerUnitOf } from '../kernel/lower.js';
import type { Lowering } from '../kernel/rules.js';
import { LOWERING } from '../kernel/rules.js';
import type { Names } from './render.js';
import { renderAt, renderKernel } from './render.js';
import type { Access } from '../kernel/form.js';
import { offsetTerms } from '../kernel/form.js';
import type { Kernels } from './matmul.js';
import { matmulKernel } from './matmul.js';
import { convLoops } from './conv.js';
import { loopCode } from './loop.js';

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
    return this.arrName(this.name(g, v));
  }

  /** The code name of a value's array, noted as used. */
  arrName(value: string): string {
    const name = this.renamed.get(value) ?? value;
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
    // a scan that stays a loop (its results are written by the loop)
    if (first.op === 'scan') return loopCode(this, u);
    if (first.op === 'scan_out') return [];
    const own = this.backend?.unit(u, {
      arrOf: (g, v) => this.arrOf(g, v),
      use: (name) => this.used.add(name),
      epilogueLoop: (mu, product) => this.epilogueLoop(mu, product),
    });
    if (own) return own;
    const rule = LOWERING[first.op] as Lowering<OpKind>;
    if (u.kind === 'reduce' || u.kind === 'elementwise' || 'alu' in rule || 'reduce' in rule) return this.kernel(u);
    // transpose, slice, pad, concat: copies through their index maps (and guards)
    if ('layout' in rule) return this.kernel(u);
    if ('none' in rule) return [];
    if ('unsupported' in rule) throw new CompileError(`the flat TypeScript target cannot render ${first.op}: ${rule.unsupported}`, undefined, first.loc);
    if (first.op === 'matmul') return this.matmul(u);
    if (first.op === 'conv' && u.kind === 'conv') return this.conv(u);
    const routine = TS_ROUTINES[first.op as OwnOp] as { emit: (c: Ctx, inst: Inst) => string[] };
    return routine.emit(this.ctx(u.graph), first);
  }

  /** How the renderer names arrays (noted as used) and the locals of a unit's kernel. */
  names(of: { names: ReadonlyMap<number, string>; views: ReadonlyMap<number, string> }): Names {
    return { arr: (n) => this.arrName(n), nodes: of.names, views: of.views };
  }

  /** An elementwise, reduce or layout group: its kernel, rendered (codegen/ts/render.ts). */
  private kernel(u: Unit): string[] {
    const lowered = lowerUnitOf(this.plan, u);
    const launch = lowered.launch;
    if (launch?.kind !== 'kernel') throw new CompileError(`internal: the flat module expected a kernel for ${u.insts[0]!.op}`);
    try {
      return renderKernel(launch, this.names(lowered), (j) => {
        this.used.add(`_acc${j}`);
        return `_acc${j}`;
      });
    } catch (e) {
      if (!(e instanceof CompileError) || e.loc) throw e;
      const first = u.insts[0]!;
      throw new CompileError(`the flat TypeScript target cannot render ${first.op}: ${e.message}`, 'give the value fewer axes (reshape it): the flat module walks at most 8 axes of different strides', first.loc);
    }
  }

  /** The epilogue of a matmul group (its members after the matmul) as a loop, reading the product from `product`. */
  private epilogueLoop(u: Unit, product: string): string[] {
    const lowered = lowerUnitOf(this.plan, u);
    const launch = lowered.launch;
    if (launch?.kind !== 'routine' || !launch.epilogue) throw new CompileError(`internal: the flat module expected a routine with an epilogue for ${u.insts[0]!.op}`);
    this.renamed.set(this.name(u.graph, u.insts[0]!.result), product);
    try {
      return renderKernel(launch.epilogue, this.names(lowered), () => {
        throw new CompileError('internal: an epilogue with a reduction');
      });
    } finally {
      this.renamed.delete(this.name(u.graph, u.insts[0]!.result));
    }
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
    const lowered = lowerUnitOf(this.plan, u);
    const epi = lowered.launch?.kind === 'routine' ? lowered.launch.epilogue : undefined;
    if (!epi) return convLoops(this.ctx(g), cv);
    const product = this.name(g, cv.result);
    const shape = g.type(cv.result).shape;
    // an axis of extent 1 (conv1d's H) steps nowhere: its strides count as 0
    const flat1 = (st: readonly Size[]) => st.map((x, d) => (shape[d] === 1 ? size(0) : x));
    const outStrides = flat1(stridesSize(shape));
    // the epilogue's operands: one per array and index map (the product is the conv's sum)
    const keyOf = (a: Access) => `${a.arg}:${a.strides.map(sizeText).join(',')}+${offsetTerms(a.offset).map(sizeText).join('+')}`;
    const ext = new Map<string, { a: Access; st: Size[]; arr: string }>();
    epi.nodes.forEach((n, i) => {
      if (n.op === 'load' && n.access.arg !== product && !ext.has(keyOf(n.access)))
        ext.set(keyOf(n.access), { a: n.access, st: flat1(n.access.strides), arr: lowered.views.get(i) ?? n.access.arg });
    });
    const zero = (x: Size) => x.coef === 0;
    const same = (a: Size, b: Size) => sizeText(a) === sizeText(b);
    const planeConst = (st: readonly Size[]) => st.slice(2).every(zero);
    const planeLike = (st: readonly Size[]) => st.slice(2).every((x, k) => same(x, outStrides[k + 2]!));
    const rowsCols = ![...ext.values()].every((x) => planeConst(x.st) || planeLike(x.st));
    const term = (x: string, st: Size) => (zero(st) ? [] : [st.coef === 1 && st.syms.length === 0 ? x : `${x.includes(' ') ? `(${x})` : x} * ${sizeText(st)}`]);
    const base = (st: readonly Size[]) => [...term('n', st[0]!), ...term('m', st[1]!)].join(' + ') || '0';
    // per plane: the reads of operands constant over it, the offsets of those laid out as it
    const hoisted = new Map<string, string>();
    const plane = (): string[] => {
      const lines: string[] = [];
      [...ext.entries()].forEach(([key, { st, arr }], k) => {
        if (planeConst(st)) {
          lines.push(`const _pc${k} = ${this.arrName(arr)}[${base(st)}];`);
          hoisted.set(key, `_pc${k}`);
        } else if (!rowsCols && !(same(st[0]!, outStrides[0]!) && same(st[1]!, outStrides[1]!))) {
          lines.push(`const _pd${k} = ${base(st)} - _yb;`);
          hoisted.set(key, `_pd${k}`);
        }
      });
      return lines;
    };
    const element = (value: string, o: string, i: string, j: string): string[] => {
      const index = (a: Access): string => {
        const x = ext.get(keyOf(a));
        if (!x) return o; // a store: the output element
        const h = hoisted.get(keyOf(a));
        if (!rowsCols) return h ? `${o} + ${h}` : o;
        return [...term('n', x.st[0]!), ...term('m', x.st[1]!), ...term(i, x.st[2]!), ...term(j, x.st[3]!)].join(' + ') || '0';
      };
      const loaded = (a: Access) => {
        if (a.arg === product) return E.atom(value);
        const x = ext.get(keyOf(a))!;
        return planeConst(x.st) ? E.atom(hoisted.get(keyOf(a))!) : undefined;
      };
      return renderAt(epi, this.names(lowered), index, loaded);
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
