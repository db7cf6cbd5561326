// WebAssembly SIMD kernels for the per-channel groups of convolutional networks, which the
// [M,N] elementwise and reduction kernels cannot index: over x [N, C, ...spatial] (S = the
// product of the spatial sizes), an operand is full, per channel ([1, C, 1, 1], a bias), per
// image or a scalar. Two forms:
//
//   elementwise  conv1 = relu(t1 + b)            the bias add and activation after a convolution
//   reduce       dt = dy · (conv1 > 0);          the activation's gradient and the bias gradient
//                db = dt.sum((0, 2, 3))          (sums over every axis but the channels)
//
// The kernel walks image n, channel c (a row of S) and four positions at a time, with the
// steps of ./steps.ts; each pointer starts a row at addr + 4·(n·sb + c·si). A sum over
// (0, 2, …) adds the row's vector (its ragged last one masked) into an accumulator vector, and
// the four lanes of that into the result at the row's channel (a row of more than SUM_BLOCK
// vectors adds its accumulator into f64 totals after every SUM_BLOCK vectors, and their lanes
// are combined in f64). A kernel computes a range, the blocks of threads: of images, or with sums of chunks of images, each chunk with its own
// partial sums, which a kernel of their own (`channelSumBody`) adds in chunk order after them.

import type { Graph } from '../../ir/graph.js';
import type { Plan, Unit } from '../../ir/memplan.js';
import { valueName } from '../../ir/memplan.js';
import type { Inst, ValueId } from '../../ir/types.js';
import { Body } from './encode.js';
import type { Operand, Step, StepOp } from './steps.js';
import { StepWriter } from './steps.js';
import { chunksOf, SUM_BLOCK } from './conv.js';

export interface ChannelKernel {
  /** Images, channels, positions per channel. */
  readonly N: number;
  readonly C: number;
  readonly S: number;
  readonly steps: readonly Step[];
  /** Each memory operand's image stride in floats, by its pointer key (`addr,si,sj`). */
  readonly imageStride: ReadonlyMap<string, number>;
  /** Sums over images and positions: the step summed, and where the C sums go. */
  readonly sums: readonly { readonly step: number; readonly out: number }[];
}

const keyOf = (addr: number, si: number, sj: number) => `${addr},${si},${sj}`;

/** Floats of scratch a kernel needs: with sums, each sum's partial sums per chunk of images ([chunks, C]). */
export function channelScratch(k: ChannelKernel): number {
  return k.sums.length * chunksOf(k.N).chunks * k.C;
}

/**
 * How a kernel splits over threads: by images, or with sums by chunks of images (CHUNKS of
 * codegen/wasm/conv.ts), whose partial sums `channelSumBody` adds in chunk order after them.
 */
export function channelSplit(k: ChannelKernel): { extent: number; align: number; work: number } | undefined {
  if (k.N * k.C * k.S === 0) return undefined;
  return { extent: k.sums.length ? chunksOf(k.N).chunks : k.N, align: 1, work: k.N * k.C * k.S * k.steps.length };
}

/**
 * The kernel as a function body; with `ranged`, a function of [start, end) of the images, or
 * with sums of the chunks of images. `part`: the partial sums' scratch (channelScratch floats).
 */
export function channelBody(k: ChannelKernel, opts: { ranged?: boolean; part?: number } = {}): Body {
  const f = new Body(opts.ranged ? 2 : 0);
  const { N, C, S } = k;
  if (N * C * S === 0) return f;
  const i32 = () => f.local('i32');
  const [cn, cc, cv, ptr, ch] = Array.from({ length: 5 }, i32);
  const range = opts.ranged ? { start: f.param(0), end: f.param(1) } : undefined;
  const { chunks, per } = chunksOf(N);
  const sums = k.sums.length > 0;
  if (sums && opts.part === undefined) throw new Error('internal: a per-channel kernel with sums and no scratch');
  // each sum's partials: [chunks, C] floats from partOf(a)
  const partOf = (a: number) => opts.part! + 4 * a * chunks * C;
  // the images [n0, n1): of the range, or of chunk ch
  const [n0, n1] = [i32(), i32()];
  const w = new StepWriter(f, k.steps, S);
  // per pointer: its position at the start of the image and of the row
  const bases = w.pointers.map((p) => ({ p, image: i32(), row: i32(), sb: k.imageStride.get(keyOf(p.addr, p.si, p.sj)) ?? 0 }));
  const accs = k.sums.map(() => f.local('v128'));
  const outs = k.sums.map(() => i32());
  const full = Math.floor(S / 4);
  const rest = S % 4;
  const mask = [0, 1, 2, 3].map((l) => (l < rest ? -1 : 0)) as [number, number, number, number];
  const vec = (lanes: number) => {
    w.at(0, 0, lanes);
    k.sums.forEach((s, a) => {
      f.get(accs[a]!).get(w.result(s.step));
      if (lanes < 4) f.i32x4Lanes(mask).v128And();
      f.f32x4('add').set(accs[a]!);
    });
  };
  // a row of more than SUM_BLOCK vectors: each sum's vector added into two f64x2 totals after every SUM_BLOCK vectors
  const blocked = sums && full > SUM_BLOCK;
  const totals = blocked ? accs.map(() => [f.local('v128'), f.local('v128')] as const) : [];
  const block = blocked ? i32() : undefined;
  const vectors = (count: number) =>
    f.repeat(cv, count, () => {
      vec(4);
      for (const b of bases) if (b.p.sj) f.bump(b.p.local, 16);
    });
  const flush = () =>
    accs.forEach((a, n) => {
      const [lo, hi] = totals[n]!;
      f.get(lo).get(a).f64x2PromoteLowF32x4().f64x2Add().set(lo);
      f.get(hi).get(a).get(a).i32x4Shuffle([2, 3, 2, 3]).f64x2PromoteLowF32x4().f64x2Add().set(hi);
      f.f32x4Const(0).set(a);
    });
  /** The images [n0, n1), each sum into its partials at `chunk` (a local). */
  const images = () => {
    // each pointer at image n0
    for (const b of bases) f.get(n0).i32(4 * b.sb).i32Mul().i32(b.p.addr).i32Add().set(b.image);
    f.get(n0).set(cn);
    f.loopUntil(() => f.get(cn).get(n1).i32GeS(), () => image());
  };
  const image = () => {
    for (const b of bases) f.get(b.image).set(b.row);
    k.sums.forEach((_s, a) => f.get(ch).i32(4 * C).i32Mul().i32(partOf(a)).i32Add().set(outs[a]!));
    f.repeat(cc, C, () => {
      for (const b of bases) f.get(b.row).set(b.p.local);
      for (const a of accs) f.f32x4Const(0).set(a);
      for (const t of totals) f.f32x4Const(0).set(t[0]).f32x4Const(0).set(t[1]);
      if (blocked) {
        f.repeat(block!, Math.floor(full / SUM_BLOCK), () => {
          vectors(SUM_BLOCK);
          flush();
        });
        if (full % SUM_BLOCK) vectors(full % SUM_BLOCK);
      } else if (full > 0) vectors(full);
      if (rest) vec(rest);
      if (blocked) flush();
      accs.forEach((a, n) => {
        const out = outs[n]!;
        f.get(out).get(out).f32Load(0);
        if (blocked) {
          const [lo, hi] = totals[n]!;
          f.get(lo).f64x2ExtractLane(0).get(lo).f64x2ExtractLane(1).f64Add();
          f.get(hi).f64x2ExtractLane(0).get(hi).f64x2ExtractLane(1).f64Add().f64Add().f32DemoteF64();
        } else f.get(a).f32x4ExtractLane(0).get(a).f32x4ExtractLane(1).f32Add().get(a).f32x4ExtractLane(2).get(a).f32x4ExtractLane(3).f32Add().f32Add();
        f.f32Add().f32Store(0);
        f.bump(out, 4);
      });
      for (const b of bases) f.bump(b.row, 4 * b.p.si);
    });
    for (const b of bases) f.bump(b.image, 4 * b.sb);
    f.bump(cn, 1);
  };
  if (!sums) {
    if (range) f.get(range.start).set(n0).get(range.end).set(n1);
    else f.assign(n0, 0).assign(n1, N);
    images();
    return f;
  }
  // chunk by chunk: its partials zeroed, then its images [ch·per, min(N, (ch + 1)·per))
  if (range) f.get(range.start).set(ch);
  else f.assign(ch, 0);
  f.loopUntil(() => (range ? f.get(ch).get(range.end) : f.get(ch).i32(chunks)).i32GeS(), () => {
    k.sums.forEach((_s, a) => {
      f.get(ch).i32(4 * C).i32Mul().i32(partOf(a)).i32Add().set(ptr);
      f.repeat(cv, C, () => {
        f.get(ptr).f32x4Const(0).f32x4ExtractLane(0).f32Store(0);
        f.bump(ptr, 4);
      });
    });
    f.get(ch).i32(per).i32Mul().tee(n0).i32(per).i32Add().set(n1);
    f.when(() => f.get(n1).i32(N).i32GtS(), () => f.assign(n1, N));
    images();
    f.bump(ch, 1);
  });
  return f;
}

/** Each sum's result: its partial sums over the chunks, added in chunk order (after the kernel's chunks). */
export function channelSumBody(k: ChannelKernel, part: number): Body {
  const f = new Body();
  const { N, C, S } = k;
  if (N * C * S === 0) return f;
  const { chunks } = chunksOf(N);
  const [cc, src, dst] = [f.local('i32'), f.local('i32'), f.local('i32')];
  k.sums.forEach((s, a) => {
    f.assign(src, part + 4 * a * chunks * C).assign(dst, s.out);
    f.repeat(cc, C, () => {
      f.get(dst).get(src).f32Load(0);
      for (let c = 1; c < chunks; c++) f.get(src).f32Load(4 * c * C).f32Add();
      f.f32Store(0);
      f.bump(src, 4).bump(dst, 4);
    });
  });
  return f;
}

/** What deciding a group needs from the wasm module. */
export interface ChannelContext {
  readonly plan: Plan;
  readonly address: (g: Graph, v: ValueId) => number | undefined;
  readonly simdOp: (inst: Inst, storage: (v: ValueId) => ReturnType<Plan['storage']['get']>) => { op: StepOp; args: ValueId[] } | undefined;
  readonly isElementwise: (inst: Inst) => boolean;
}

/**
 * The kernel of a unit of elementwise ops over [N, C, ...] (rank ≥ 3, static), optionally with
 * sums of its values over every axis but 1 (results stored), or undefined when an operand or an
 * op does not fit.
 */
export function channelKernel(ctx: ChannelContext, u: Unit): ChannelKernel | undefined {
  const g = u.graph;
  const members = u.insts.filter(ctx.isElementwise);
  const sums = u.insts.filter((i) => !ctx.isElementwise(i));
  if (members.length === 0) return undefined;
  const shape = g.type(members[0]!.result).shape;
  if (shape.length < 3 || !shape.every((d) => typeof d === 'number')) return undefined;
  const dims = shape as number[];
  const [N, C] = dims as [number, number];
  const S = dims.slice(2).reduce((a, b) => a * b, 1);
  const sameShape = (v: ValueId) => {
    const s = g.type(v).shape;
    return s.length === dims.length && s.every((d, i) => d === dims[i]);
  };
  if (!members.every((i) => sameShape(i.result))) return undefined;
  for (const s of sums) {
    const axes = s.op === 'sum' ? (s.attrs as { axes: readonly number[] }).axes : undefined;
    if (!axes || axes.length !== dims.length - 1 || axes.some((a, k) => a !== (k === 0 ? 0 : k + 1)) || !sameShape(s.args[0]!)) return undefined;
    if (ctx.address(g, s.result) === undefined || g.type(s.result).dtype !== 'f32') return undefined;
  }
  const storage = (v: ValueId) => ctx.plan.storage.get(valueName(g, v));
  const stepOf = new Map<ValueId, number>();
  const imageStride = new Map<string, number>();
  const operand = (v: ValueId): Operand | undefined => {
    const step = stepOf.get(v);
    if (step !== undefined) return { kind: 'step', step };
    const s = storage(v);
    if (s?.kind === 'literal') return { kind: 'const', value: s.value };
    const addr = ctx.address(g, v);
    const t = g.type(v);
    if (addr === undefined || t.dtype !== 'f32' || !t.shape.every((d) => typeof d === 'number') || t.shape.length > dims.length) return undefined;
    // the operand's dims aligned to the right, its strides 0 where broadcast
    const own = [...Array(dims.length - t.shape.length).fill(1), ...(t.shape as number[])];
    if (own.some((d, i) => d !== 1 && d !== dims[i])) return undefined;
    const strides: number[] = [];
    let inner = 1;
    for (let i = dims.length - 1; i >= 0; i--) {
      strides[i] = own[i] === 1 ? 0 : inner;
      inner *= own[i]!;
    }
    const spatial = own.slice(2);
    const sj = spatial.every((d) => d === 1) ? 0 : spatial.every((d, i) => d === dims[i + 2]) ? 1 : undefined;
    if (sj === undefined) return undefined;
    const si = strides[1]!;
    imageStride.set(keyOf(addr, si, sj), strides[0]!);
    return { kind: 'mem', addr, si, sj };
  };
  const steps: Step[] = [];
  for (const inst of members) {
    if (g.type(inst.result).dtype !== 'f32') return undefined;
    const op = ctx.simdOp(inst, storage);
    if (!op) return undefined;
    const args = op.args.map(operand);
    if (args.some((a) => a === undefined)) return undefined;
    const stored = storage(inst.result)?.kind === 'buffer';
    const store = stored ? ctx.address(g, inst.result) : undefined;
    if (stored && store === undefined) return undefined;
    if (store !== undefined) imageStride.set(keyOf(store, S, 1), C * S);
    stepOf.set(inst.result, steps.length);
    steps.push({ op: op.op, args: args as Operand[], store });
  }
  const sumSteps: { step: number; out: number }[] = [];
  for (const s of sums) {
    const x = operand(s.args[0]!);
    if (!x) return undefined;
    let step = x.kind === 'step' ? x.step : undefined;
    if (step === undefined) {
      step = steps.length;
      steps.push({ op: 'copy', args: [x] });
    }
    sumSteps.push({ step, out: ctx.address(g, s.result)! });
  }
  return { N, C, S, steps, imageStride, sums: sumSteps };
}
