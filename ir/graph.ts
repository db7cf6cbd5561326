// The graph container and the name allocator.

import type { AttrsOf, OpKind } from './ops.js';
import type {
  Group,
  GraphKind,
  Inst,
  InstId,
  InstOf,
  Loc,
  Output,
  TensorType,
  Value,
  ValueId,
} from './types.js';

/**
 * Words that may not be used as value names: JS reserved words, globals and helper names the
 * emitted modules use, and the loop-index letters of the emitters. A user name that hits one
 * gets a trailing underscore.
 */
const RESERVED = new Set(
  (
    'break case catch class const continue debugger default delete do else enum export extends ' +
    'false finally for function if import in instanceof new null return super switch this throw ' +
    'true try typeof var void while with yield let static implements interface package private ' +
    'protected public await arguments eval undefined NaN Infinity Math Float32Array Float64Array ' +
    'Int32Array Array Object Number String Error TypeError RangeError globalThis spec forward ' +
    'valueAndGrad initParams params inputs grads outputs Params Inputs Outputs Grads ' +
    'i j k l m n p q r s t acc aik at best rng checkArgs forwardPass initArray expectArray expectIndices ' +
    'outputsObj result dims boundBy bindDim boundDims laidOut layout arena buf buffers stage backwardPass expectTyped ' +
    'checkFinite steps current prepare GPU gpu mode options kernel create setupWebGPU build built args forwardPlan ' +
    'gradPlan zeros zeroInputs fn src constants thread Sizes Mode Model ' +
    'Buffers Options initBuffers checkOptions callState noOptions nextSeed fillDropoutMask dropoutKey hash32 describeArg'
  ).split(' '),
);

/** Turns any string into an ASCII identifier: `x; process.exit()` -> `x_process_exit`. */
export function sanitizeName(raw: string): string {
  let s = raw.replace(/[^A-Za-z0-9_]+/g, '_').replace(/^_+|_+$/g, '');
  if (s === '') s = 'v';
  if (/^[0-9]/.test(s)) s = 'v' + s;
  if (RESERVED.has(s)) s += '_';
  return s;
}

/**
 * Allocates unique identifiers; `claim('h')` gives `h`, then `h_1`, `h_2`, ... Reserved names
 * (a backward graph reserves every forward name) are avoided by `claim` but may be claimed
 * exactly (a backward graph reads forward values under their own names).
 */
export class Names {
  private readonly used = new Set<string>();
  private readonly reserved: Set<string>;
  private readonly next = new Map<string, number>();

  constructor(reserved: Iterable<string> = []) {
    this.reserved = new Set(reserved);
  }

  has(name: string): boolean {
    return this.used.has(name) || this.reserved.has(name);
  }

  claim(raw: string): string {
    const base = sanitizeName(raw);
    if (!this.has(base)) {
      this.used.add(base);
      return base;
    }
    // `q_` (a reserved word's escape) continues as q_1, not q__1
    const stem = base.endsWith('_') ? base : `${base}_`;
    let k = this.next.get(base) ?? 1;
    while (this.has(`${stem}${k}`)) k++;
    this.next.set(base, k + 1);
    const name = `${stem}${k}`;
    this.used.add(name);
    return name;
  }

  /** Reserves one more name (a forward value made after the backward graph's allocator was). */
  reserve(name: string): void {
    this.reserved.add(name);
  }

  release(name: string): void {
    this.used.delete(name);
  }

  /** An allocator in the same state that claims apart from this one. */
  clone(): Names {
    const n = new Names(this.reserved);
    for (const u of this.used) n.used.add(u);
    for (const [k, v] of this.next) n.next.set(k, v);
    return n;
  }

  /** Claims an exact name that is known to be free (e.g. a forward value read by name). */
  claimExact(name: string): void {
    if (this.used.has(name)) throw new Error(`internal: name ${name} already taken`);
    this.used.add(name);
  }
}

/**
 * The user's backward of one g.customGrad call, traced once with the model: its instructions
 * (not part of the graph), the placeholder value that stood for dy, and what it returned for each
 * x. `args` are the custom_grad operands as they were traced (the forward's result, the xs, the
 * other values the backward reads), `y` the value the backward received as y.
 */
export interface CustomRule {
  readonly insts: readonly Inst[];
  readonly values: ReadonlyMap<ValueId, Value>;
  readonly seed: ValueId;
  readonly y: ValueId;
  readonly args: readonly ValueId[];
  readonly dxs: readonly (ValueId | undefined)[];
  readonly loc: Loc | undefined;
}

export class Graph {
  /** Values by id (dense). Values of deleted instructions stay here but are not printed. */
  readonly values: Value[] = [];
  /** Instructions by id (dense). */
  private readonly instById: Inst[] = [];
  /** Program order. */
  insts: Inst[] = [];
  outputs: Output[] = [];
  /** Fused groups (filled by the fusion pass; empty means one group per instruction). */
  groups: Group[] = [];
  readonly names: Names;
  /** The rules of the graph's custom_grad instructions, by their `rule` attribute. */
  readonly rules: CustomRule[] = [];
  /**
   * The regions of the graph's scan instructions, by their `body` attribute (ir/scan.ts): each a
   * graph of its own whose `input`s are the step's operands and whose outputs are its results.
   */
  readonly bodies: Graph[] = [];
  /**
   * The g.grad calls of a traced graph: y, xs and the gradients the reverse pass emitted for them
   * (for an exporter that hands them to another engine's autodiff: export --torch). Stale once
   * passes have rewritten the graph.
   */
  readonly gradCalls: { readonly y: ValueId; readonly xs: readonly ValueId[]; readonly dxs: readonly ValueId[]; readonly loc: Loc | undefined }[] = [];

  constructor(
    readonly name: string,
    readonly kind: GraphKind,
    names?: Names,
  ) {
    this.names = names ?? new Names();
  }

  value(id: ValueId): Value {
    const v = this.values[id.index];
    if (!v || v.id !== id) throw new Error(`internal: no value #${id.index} in graph ${this.name}`);
    return v;
  }

  type(id: ValueId): TensorType {
    return this.value(id).type;
  }

  def(id: ValueId): Inst {
    return this.inst(this.value(id).def);
  }

  inst(id: InstId): Inst {
    const i = this.instById[id];
    if (!i) throw new Error(`internal: no instruction #${id} in graph ${this.name}`);
    return i;
  }

  /**
   * Names the temporaries `t1`, `t2`, ... in program order, so that temporary names do not
   * depend on the order in which passes created them. Runs after tracing and after every pass.
   */
  numberTemps(): void {
    if (this.frozen) {
      for (const inst of this.insts) {
        const v = this.value(inst.result);
        if (v.temp && !v.name) v.name = this.names.claim('t');
      }
      return;
    }
    for (const inst of this.insts) {
      const v = this.value(inst.result);
      if (v.temp && v.name) this.names.release(v.name);
    }
    let k = 0;
    for (const inst of this.insts) {
      const v = this.value(inst.result);
      if (!v.temp) continue;
      let n: string;
      do n = `t${++k}`;
      while (this.names.has(n));
      this.names.claimExact(n);
      v.name = n;
    }
  }

  /**
   * Appends an instruction. `name` is a raw name to claim (sanitized, made unique); `exactName`
   * must already be a free identifier. With neither, the value gets a temporary name.
   */
  append<K extends OpKind>(
    op: K,
    args: readonly ValueId[],
    attrs: AttrsOf[K],
    type: TensorType,
    loc: Loc | undefined,
    name?: { raw: string } | { exact: string },
  ): ValueId {
    const id = { index: this.values.length } as ValueId;
    const instId = this.instById.length as InstId;
    let vname = '';
    if (!name) {
      // a temporary: named by numberTemps()
    } else if ('exact' in name) {
      this.names.claimExact(name.exact);
      vname = name.exact;
    } else vname = this.names.claim(name.raw);
    this.values.push({ id, name: vname, type, def: instId, temp: !name });
    const inst = { id: instId, op, args: [...args], attrs, result: id, loc } as InstOf<K>;
    this.instById.push(inst as unknown as Inst);
    this.insts.push(inst as unknown as Inst);
    return id;
  }

  /**
   * Makes every current name permanent: temporaries keep their numbers from now on. Done to
   * the forward graph before the reverse pass, whose `fwd` reads refer to forward values by name.
   */
  freezeNames(): void {
    this.frozen = true;
  }

  /** Names are permanent (see freezeNames): new temporaries are numbered after the others. */
  private frozen = false;

  /**
   * Takes `name` for something that is not a value (a symbolic dimension, which the emitted code
   * names as it is): a value that holds it moves to a fresh name.
   */
  reserveName(name: string): void {
    const holder = this.byName(name);
    if (holder) {
      holder.name = this.names.claim(name);
      this.names.release(name);
    }
    if (!this.names.has(name)) this.names.claimExact(name);
  }

  /** Gives a value a real name (claimed, made unique); it is no longer a temporary. */
  rename(id: ValueId, raw: string): void {
    const v = this.value(id);
    if (v.name) this.names.release(v.name);
    v.name = this.names.claim(raw);
    v.temp = false;
  }

  /** Replaces every use of `from` (operands and outputs) with `to`. */
  replaceUses(from: ValueId, to: ValueId): void {
    this.insts = this.insts.map((inst) => {
      if (!inst.args.includes(from)) return inst;
      const next = { ...inst, args: inst.args.map((a) => (a === from ? to : a)) } as Inst;
      this.instById[inst.id] = next;
      return next;
    });
    this.outputs = this.outputs.map((o) => (o.value === from ? { ...o, value: to } : o));
  }

  /** Replaces an instruction by another with the same id and result. */
  replaceInst(old: Inst, next: Inst): void {
    this.instById[old.id] = next;
    this.insts = this.insts.map((i) => (i.id === old.id ? next : i));
  }

  /** Removes instructions (their values stay allocated but unreferenced). */
  remove(dead: ReadonlySet<InstId>): void {
    if (dead.size === 0) return;
    for (const inst of this.insts) if (dead.has(inst.id)) this.names.release(this.value(inst.result).name);
    this.insts = this.insts.filter((i) => !dead.has(i.id));
    this.groups = this.groups
      .map((gr) => ({ ...gr, insts: gr.insts.filter((i) => !dead.has(i)) }))
      .filter((gr) => gr.insts.length > 0);
  }

  /** Uses of each value, in program order. */
  uses(): Map<ValueId, Inst[]> {
    const m = new Map<ValueId, Inst[]>();
    for (const inst of this.insts)
      for (const a of inst.args) {
        let l = m.get(a);
        if (!l) m.set(a, (l = []));
        l.push(inst);
      }
    return m;
  }

  /**
   * A copy that passes may change without changing this graph (the derived graphs of --hvp and
   * --jvp start from the traced graph, which the model's own passes then change). Instructions,
   * value ids, types and custom rules are never mutated: they are shared; values, names and the
   * lists are copied.
   */
  clone(): Graph {
    const g = new Graph(this.name, this.kind, this.names.clone());
    for (const v of this.values) g.values.push({ ...v });
    for (const i of this.instById) g.instById.push(i);
    g.insts = [...this.insts];
    g.outputs = [...this.outputs];
    g.groups = [...this.groups];
    for (const r of this.rules) g.rules.push(r);
    // passes run over the regions too: each copy has its own
    for (const body of this.bodies) g.bodies.push(body.clone());
    g.frozen = this.frozen;
    return g;
  }

  byName(name: string): Value | undefined {
    for (const inst of this.insts) {
      const v = this.value(inst.result);
      if (v.name === name) return v;
    }
    return undefined;
  }
}
