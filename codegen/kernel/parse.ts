// Reads the text of print.ts back into the kernel form. Comments after a store (its formula)
// are skipped; comment lines inside a block are its notes. Errors name the line.

import type { Dim, Size } from '../../ir/dims.js';
import type { Poly } from '../../ir/layout.js';
import { polyAdd } from '../../ir/layout.js';
import type { Access, ArrayDecl, BufferDecl, EType, Entry, Guard, HostProgram, Kernel, Launch, Move, Node, Routine, RoutineCall, Step, StepSlice, Store, View } from './form.js';
import { offsetOf } from './form.js';

class Lines {
  private at = 0;
  constructor(private readonly lines: readonly string[]) {}
  get done(): boolean {
    return this.at >= this.lines.length;
  }
  peek(): string {
    return this.lines[this.at]!.trim();
  }
  next(): string {
    return this.lines[this.at++]!.trim();
  }
  fail(msg: string): never {
    throw new Error(`kernel form, line ${this.at}: ${msg}`);
  }
}

function num(s: string): number {
  if (s === 'inf') return Infinity;
  if (s === '-inf') return -Infinity;
  if (s === 'nan') return NaN;
  const x = Number(s);
  if (s.trim() === '' || Number.isNaN(x)) throw new Error(`'${s}' is not a number`);
  return x;
}

/** `64*B`, `-2*d0`: coefficient, symbols and (in an index map) the coordinate it scales. */
function term(t: string): { coef: number; syms: string[]; axis?: number } {
  let coef = 1;
  let s = t;
  if (s.startsWith('-')) {
    coef = -1;
    s = s.slice(1);
  }
  const syms: string[] = [];
  let axis: number | undefined;
  for (const f of s.split('*')) {
    if (/^d\d+$/.test(f)) axis = Number(f.slice(1));
    else if (/^[0-9]/.test(f)) coef *= num(f);
    else if (/^[A-Za-z_]\w*$/.test(f)) syms.push(f);
    else throw new Error(`'${t}' is not a size`);
  }
  return { coef, syms: syms.sort(), axis };
}

export function parseSize(t: string): Size {
  const x = term(t.trim());
  if (x.axis !== undefined) throw new Error(`'${t}' is not a size`);
  return { coef: x.coef, syms: x.coef === 0 ? [] : x.syms };
}

function parseDims(t: string): Dim[] {
  const m = /^\[(.*)\]$/.exec(t.trim());
  if (!m) throw new Error(`'${t}' is not a shape`);
  if (m[1]!.trim() === '') return [];
  return m[1]!.split(',').map((d) => (/^\d+$/.test(d.trim()) ? Number(d) : d.trim()));
}

const ZERO: Size = { coef: 0, syms: [] };

function parseAffine(t: string, rank: number): { strides: Size[]; offset: Size | Poly } {
  const strides = new Array<Size>(rank).fill(ZERO);
  let offset: Poly = [];
  if (t.trim() === '0') return { strides, offset: ZERO };
  for (const raw of t.replace(/ - /g, ' + -').split(' + ')) {
    const x = term(raw.trim());
    const s = { coef: x.coef, syms: x.syms };
    if (x.axis === undefined) offset = polyAdd(offset, s);
    else if (x.axis >= rank) throw new Error(`d${x.axis} is not a coordinate of a domain of rank ${rank}`);
    else strides[x.axis] = s;
  }
  return { strides, offset: offsetOf(offset) };
}

function parseAccess(t: string, rank: number): Access {
  const m = /^(\w+)\[([^\]]*)\](?: if (.*))?$/.exec(t.trim());
  if (!m) throw new Error(`'${t}' is not an index map`);
  const guards: Guard[] = (m[3] ?? '')
    .split(', ')
    .filter((g) => g !== '')
    .map((g) => {
      const gm = /^(-?\d+) <= d(\d+) < (.+)$/.exec(g);
      if (!gm) throw new Error(`'${g}' is not a guard`);
      return { axis: Number(gm[2]), lo: Number(gm[1]), hi: parseSize(gm[3]!) };
    });
  return { arg: m[1]!, ...parseAffine(m[2]!, rank), ...(guards.length ? { guards } : {}) };
}

const ETYPES = new Set(['f32', 'i32', 'bool']);
const ref = (s: string) => {
  if (!/^%\d+$/.test(s.trim())) throw new Error(`'${s}' is not a node`);
  return Number(s.trim().slice(1));
};

function parseNode(line: string, rank: number, index: number): Node {
  const m = /^%(\d+): (\w+) = (\S+)(?: (.*))?$/.exec(line);
  if (!m) throw new Error(`'${line}' is not a node`);
  if (Number(m[1]) !== index) throw new Error(`node %${m[1]} is out of order (expected %${index})`);
  const dtype = m[2] as EType;
  if (!ETYPES.has(dtype)) throw new Error(`'${dtype}' is not a type`);
  const [op, rest = ''] = [m[3]!, m[4]];
  if (op === 'const') return { op, dtype, value: num(rest) };
  if (op === 'load') return { op, dtype, access: parseAccess(rest, rank) };
  if (op === 'coord') return { op, dtype: 'i32', axis: Number(rest.replace(/^d/, '')) };
  if (op === 'dim') return { op, dtype: 'f32', name: rest };
  if (op.startsWith('reduce.')) {
    const rm = /^(%\d+) acc (f32|f64)$/.exec(rest);
    const red = op.slice(7);
    if (!rm || (red !== 'sum' && red !== 'max')) throw new Error(`'${line}' is not a reduction`);
    return { op: 'reduce', dtype, red, acc: rm[2] as 'f32' | 'f64', args: [ref(rm[1]!)] };
  }
  const args = rest.split(', ').map(ref);
  if (op === 'where.rare') return { op: 'where', dtype, args: args as [number, number, number], rare: true };
  return { op, dtype, args } as unknown as Node;
}

function parseKernel(L: Lines): Kernel {
  const head = /^kernel (\w+) (\[[^\]]*\])(?: reduce \(([\d, ]*)\))?$/.exec(L.next());
  if (!head) L.fail('expected `kernel NAME [DOMAIN]`');
  const domain = parseDims(head[2]!);
  const axes = head[3] ? head[3].split(', ').map(Number) : [];
  const notes: string[] = [];
  const nodes: Node[] = [];
  const stores: Store[] = [];
  for (;;) {
    if (L.done) L.fail(`kernel ${head[1]} has no end`);
    const line = L.next();
    if (line === 'end') break;
    try {
      if (line.startsWith('# ')) notes.push(line.slice(2));
      else if (line.startsWith('store ')) {
        const sm = /^store (.*) = (%\d+)(?: {2}# .*)?$/.exec(line);
        if (!sm) throw new Error(`'${line}' is not a store`);
        stores.push({ node: ref(sm[2]!), access: parseAccess(sm[1]!, domain.length) });
      } else nodes.push(parseNode(line, domain.length, nodes.length));
    } catch (e) {
      L.fail((e as Error).message);
    }
  }
  return { kind: 'kernel', name: head[1]!, domain, axes, nodes, stores, notes };
}

function parseView(t: string): View {
  const m = /^(\w+): (\[[^\]]*\]) strides \[([^\]]*)\] \+ (\S+)$/.exec(t);
  if (!m) throw new Error(`'${t}' is not a view`);
  const strides = m[3]!.trim() === '' ? [] : m[3]!.split(', ').map(parseSize);
  return { arg: m[1]!, shape: parseDims(m[2]!), strides, offset: parseSize(m[4]!) };
}

function parseRoutine(L: Lines): Routine {
  const head = /^routine (\w+) (\w+) (\{.*\})$/.exec(L.next());
  if (!head) L.fail('expected `routine NAME OP {ATTRS}`');
  const notes: string[] = [];
  const inputs: View[] = [];
  let output: View | undefined;
  let epilogue: Kernel | undefined;
  for (;;) {
    if (L.done) L.fail(`routine ${head[1]} has no end`);
    const line = L.peek();
    if (line.startsWith('kernel ')) {
      epilogue = parseKernel(L);
      continue;
    }
    L.next();
    if (line === 'end') break;
    try {
      if (line.startsWith('# ')) notes.push(line.slice(2));
      else if (line.startsWith('in ')) inputs.push(parseView(line.slice(3)));
      else if (line.startsWith('out ')) output = parseView(line.slice(4));
      else throw new Error(`'${line}' is not part of a routine`);
    } catch (e) {
      L.fail((e as Error).message);
    }
  }
  if (!output) L.fail(`routine ${head[1]} has no out`);
  const call = { op: head[2], attrs: JSON.parse(head[3]!) } as RoutineCall;
  // the printed routine names its op, which gives its result's type (argmax, argmin: i32 indices)
  const dtype = call.op === 'argmax' || call.op === 'argmin' ? 'i32' : 'f32';
  return { kind: 'routine', name: head[1]!, ...call, inputs, output, dtype, ...(epilogue ? { epilogue } : {}), notes };
}

/** One kernel or routine (the text of printLaunch). */
export function parseLaunch(text: string): Launch {
  const L = new Lines(text.split('\n').filter((l) => l.trim() !== ''));
  return L.peek().startsWith('kernel ') ? parseKernel(L) : parseRoutine(L);
}

type Pending = { list: (Step | undefined)[]; step: number; name: string };

/** The steps of an entry or a loop, up to `end` (its launches pending until every launch is read). */
function parseSteps(L: Lines, end: string, pending: Pending[], what: string, moves?: { init: Move[]; xs: StepSlice[]; ys: StepSlice[]; carries: Move[]; out: Move[] }): (Step | undefined)[] {
  const list: (Step | undefined)[] = [];
  for (let s = L.next().trim(); s !== end; s = L.next().trim()) {
    const loop = /^loop (\w+) (\S+)( reverse)?$/.exec(s);
    const mv = /^(in|carry|out) (\w+) = (\w+)$/.exec(s);
    const sl = /^(slice (\w+) = (\w+)|stack (\w+)) axis (\d+) of \[(.*)\]( = (\w+))?$/.exec(s);
    if (loop) {
      const moves = { init: [] as Move[], xs: [] as StepSlice[], ys: [] as StepSlice[], carries: [] as Move[], out: [] as Move[] };
      const steps = parseSteps(L, 'endloop', pending, `loop ${loop[1]}`, moves);
      list.push({ kind: 'loop', scan: loop[1]!, length: parseSize(loop[2]!), reverse: loop[3] !== undefined, steps: steps as Step[], moves });
    } else if (mv && moves) {
      (mv[1] === 'in' ? moves.init : mv[1] === 'carry' ? moves.carries : moves.out).push({ to: mv[2]!, from: mv[3]! });
    } else if (sl && moves) {
      const shape = sl[6] === '' ? [] : sl[6]!.split(',').map((d) => (/^\d+$/.test(d) ? Number(d) : d));
      if (sl[2] !== undefined) moves.xs.push({ step: sl[2], stacked: sl[3]!, shape, axis: Number(sl[5]) });
      else moves.ys.push({ stacked: sl[4]!, step: sl[8]!, shape, axis: Number(sl[5]) });
    } else {
      const m = /^launch (\w+)$/.exec(s);
      if (m) {
        pending.push({ list, step: list.length, name: m[1]! });
        list.push(undefined); // resolved once every launch is read
      } else list.push(parseStep(s));
    }
    if (L.done) throw new Error(`${what} has no ${end}`);
  }
  return list;
}

function parseStep(line: string): Step {
  let m = /^stage (\w+) = (param|input|state) (".*")$/.exec(line);
  if (m) return { kind: 'stage', array: m[1]!, source: m[2] as 'param' | 'input' | 'state', key: JSON.parse(m[3]!) as string };
  m = /^read (".*") = (\w+)$/.exec(line);
  if (m) return { kind: 'read', output: JSON.parse(m[1]!) as string, array: m[2]! };
  throw new Error(`'${line}' is not a step`);
}

/** A whole host program (the text of printProgram). */
export function parseProgram(text: string): HostProgram {
  const L: Lines = new Lines(text.split('\n').filter((l) => l.trim() !== ''));
  const head = /^program (\S+)$/.exec(L.next());
  if (!head) L.fail('expected `program NAME`');
  const name = head[1]!;
  const buffers: BufferDecl[] = [];
  const arrays: ArrayDecl[] = [];
  const entries: { name: Entry['name']; steps: (Step | undefined)[]; pending: Pending[] }[] = [];
  const launches = new Map<string, Launch>();
  while (!L.done) {
    const line = L.peek();
    try {
      if (line.startsWith('kernel ') || line.startsWith('routine ')) {
        const l = line.startsWith('kernel ') ? parseKernel(L) : parseRoutine(L);
        launches.set(l.name, l);
        continue;
      }
      L.next();
      let m = /^buffer (\d+): (f32|i32)\[(\S+)\]$/.exec(line);
      if (m) {
        buffers.push({ id: Number(m[1]), dtype: m[2] as 'f32' | 'i32', size: parseSize(m[3]!) });
        continue;
      }
      m = /^array (\w+): (f32|i32)\[(\S+)\] (buffer (\d+)|const \[(.*)\]|scratch)$/.exec(line);
      if (m) {
        const place = m[5] !== undefined ? { kind: 'buffer' as const, id: Number(m[5]) } : m[6] !== undefined ? { kind: 'const' as const, data: m[6] === '' ? [] : m[6].split(', ').map(num) } : { kind: 'scratch' as const };
        arrays.push({ name: m[1]!, dtype: m[2] as 'f32' | 'i32', numel: parseSize(m[3]!), place });
        continue;
      }
      m = /^entry (forward|valueAndGrad)$/.exec(line);
      if (!m) throw new Error(`'${line}' is not part of a program`);
      const pending: Pending[] = [];
      const steps = parseSteps(L, 'end', pending, `entry ${m[1]}`);
      entries.push({ name: m[1] as Entry['name'], steps, pending });
    } catch (err) {
      L.fail((err as Error).message);
    }
  }
  const resolved: Entry[] = entries.map((e) => {
    for (const p of e.pending) {
      const launch = launches.get(p.name);
      if (!launch) throw new Error(`kernel form: entry ${e.name} launches ${p.name}, which the program does not define`);
      p.list[p.step] = { kind: 'launch', launch };
    }
    return { name: e.name, steps: e.steps as Step[] };
  });
  return { name, buffers, arrays, entries: resolved };
}
