// The tiled matrix product of the WebGPU module, shared by the matmul and the convolutions
// (implicit GEMM: an operand's element is computed from its coordinates, no im2col buffer).
//
// C[t, i, j] = Σ_p A[t, i, p] · B[t, p, j]: a workgroup of 16×16 invocations computes a tile of
// TM×TN results, RM×RN per invocation (register blocking: results strided by 16, so that
// neighbouring invocations read neighbouring floats of the shared tiles; with vec4 loads the
// columns are 4 adjacent ones of every 4·CX, so that one invocation owns each vec4 it stores), K in steps of TK
// through tiles of A and B in workgroup memory. The tile along each axis is chosen per shape at
// build time (tileOf); the register block is unrolled into scalars. An operand whose contiguous axis is unit-stride with every other stride,
// its offset and that axis's extent multiples of 4 is loaded as vec4 (a vec4 view of its arena)
// where the stores own whole vec4s (Gemm.rowsOf4; 4 results per invocation along a row at least);
// any other (odd extents, the convolutions' gathered operands) element by element. Every 256
// terms the running sums join a total (f32 sums over long K stay accurate).

import type { Dim, Size } from '../../ir/dims.js';
import { size } from '../../ir/dims.js';
import type { Bindings } from './wgsl.js';
import { sz } from './wgsl.js';

/**
 * The tile of the result along one axis, chosen per shape at build time: a workgroup is always 16
 * invocations along each axis, each holding `regs` results of a `tile` of 16·regs. A static
 * extent of at most 16 takes a tile of 16 (one result per invocation), at most 32 a tile of 32
 * (two), at least 512 a tile of 128 (eight: a large product's 8×8 register block), any other (and
 * a symbolic one) 64 (four): a small or skinny product neither computes tiles of mostly padding
 * nor compiles a register block it does not use.
 */
export function tileOf(extent: Dim | Size): { tile: number; regs: number } {
  const e = size(extent);
  if (e.syms.length === 0 && e.coef <= 16) return { tile: 16, regs: 1 };
  if (e.syms.length === 0 && e.coef <= 32) return { tile: 32, regs: 2 };
  if (e.syms.length === 0 && e.coef >= 512) return { tile: 128, regs: 8 };
  return { tile: 64, regs: 4 };
}

/** A multiple of 4 whatever the sizes of its symbols. */
export const mult4 = (s: Dim | Size): boolean => size(s).coef % 4 === 0;

/** An operand of the product, as the tiles load it. */
export interface Operand {
  /** The array it reads. */
  readonly arg: string;
  /** Neighbouring invocations load neighbouring p (true) or neighbouring i / j (false): the array's contiguous axis. */
  readonly alongK: boolean;
  /** Loaded as vec4 along that axis (then `at` of a coordinate there that is a multiple of 4 is one too). */
  readonly vec4: boolean;
  /**
   * The element at row-or-column `x` and term `k` (A: x = i; B: x = j): lines that compute what
   * it needs, the index, and a condition beyond the ragged edges (a convolution's padding).
   */
  at(x: string, k: string): { lines?: string[]; index: string; valid?: string };
}

export interface Gemm {
  readonly M: Dim | Size;
  readonly N: Dim | Size;
  readonly K: Dim | Size;
  readonly A: Operand;
  readonly B: Operand;
  /** Lines storing result `val` at (t, gi, gj) (inside the edges). */
  store(val: string): string[];
  /**
   * Every f32 element `store` writes at (t, gi, gj), an epilogue's included, is at c(t, gi) + gj
   * of its array, c a multiple of 4, and N is a multiple of 4: the 4 columns 4q..4q+3 of a row are
   * one vec4 of each array written. Only then may the shader declare its arenas vec4 (see gemmShader).
   */
  readonly rowsOf4?: boolean;
}

/** The WGSL of the product: workgroup declarations, the entry point and its body; dispatch ⌈N/TN⌉ × ⌈M/TM⌉ × batch workgroups (`t` = wid.z). */
export function gemmShader(g: Gemm, b: Bindings): { head: string[]; body: string[]; TM: number; TN: number } {
  const { tile: TM, regs: RM0 } = tileOf(g.M);
  const { tile: TN, regs: RN0 } = tileOf(g.N);
  // 16 terms a step (8 where two 128-wide tiles would pass 16 KiB of workgroup memory)
  const TK = TM + TN > 192 ? 8 : 16;
  const M = sz(g.M);
  const N = sz(g.N);
  const K = sz(g.K);
  // A vec4 view makes the whole arena vec4 in this shader, and the WGSL spec lets a write to a
  // component of a vector access all of it (gpuweb #2112, #2152): each vec4 of the arena must be
  // written by one invocation alone. So vec4 loads only where each invocation owns the groups of 4
  // adjacent columns it stores (rowsOf4): the 256 invocations as CX along a row (tx) by CY (ty),
  // each with 4 adjacent columns of every 4·CX (a tile of 16 or 32 columns: 4 or 8 invocations
  // along it, 64 or 32 rows of them, where the tile has that many rows); else element loads.
  const CX = Math.min(16, TN / 4);
  const CY = 256 / CX;
  const own4 = (g.A.vec4 || g.B.vec4) && g.rowsOf4 === true && mult4(g.N) && TM % CY === 0;
  b.vec4 = own4;
  // results RM × RN an invocation: rows ty + CY·i, columns 4·tx + j % 4 + 4·CX·(j / 4) (own4), else
  // rows ty + 16·i, columns tx + 16·j
  const [RM, RN, RS] = own4 ? [TM / CY, TN / CX, CY] : [RM0, RN0, 16];
  const colOf = (j: string) => (own4 ? `4 * tx + ${j} % 4 + ${4 * CX} * (${j} / 4)` : `tx + 16 * ${j}`);
  const load = (into: string, op: Operand, row0: string, ext: string, T: number) => {
    const arr = b.arr(op.arg);
    const vec = own4 && op.vec4;
    const w = vec ? 4 : 1;
    // e: the element (or vec4) of the tile this invocation loads; kk, xx its coordinates
    const [kk, xx] = op.alongK ? [`(e % ${TK / w}) * ${w}`, `e / ${TK / w}`] : [`e / ${T / w}`, `(e % ${T / w}) * ${w}`];
    const { lines = [], index, valid } = op.at('gx', 'gk');
    const inside = `gx < ${ext} && gk < ${K}${valid ? ` && ${valid}` : ''}`;
    const put = (c: number, v: string) => (op.alongK ? `${into}[(kk + ${c}) * ${T} + xx] = ${v};` : `${into}[kk * ${T} + xx + ${c}] = ${v};`);
    return [
      `for (var e = tid; e < ${(T * TK) / w}; e += 256) {`,
      `  let kk = ${kk}; let xx = ${xx};`,
      `  let gx = ${row0} + xx; let gk = k0 + kk;`,
      ...(vec
        ? [
            `  var v = vec4<f32>(0.0);`,
            `  if (${inside}) { v = ${arr}[(${index}) / 4]; }`,
            ...[0, 1, 2, 3].map((c) => `  ${put(c, `v[${c}]`)}`),
          ]
        : [...lines.map((l) => `  ${l}`), `  var v = 0.0;`, `  if (${inside}) { v = ${b.at(op.arg, index)}; }`, `  ${put(0, 'v')}`]),
      '}',
    ];
  };
  const R = RM * RN;
  const head = [
    `var<workgroup> As: array<f32, ${TM * TK}>;`,
    `var<workgroup> Bs: array<f32, ${TN * TK}>;`,
    '@compute @workgroup_size(16, 16)',
    'fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {',
  ];
  const joinEvery = 256 / TK;
  // the register block, unrolled: scalars c<i>_<j> (running sums) and s<i>_<j> (their total), so
  // that no compiler keeps them in an array in memory
  const ij = Array.from({ length: R }, (_x, q) => [Math.floor(q / RN), q % RN] as const);
  const c = (i: number, j: number) => `c${i}_${j}`;
  const body = [
    'let t = i32(wid.z);',
    `let row0 = i32(wid.y) * ${TM};`,
    `let col0 = i32(wid.x) * ${TN};`,
    'let tid = i32(lid.y) * 16 + i32(lid.x);',
    own4 && CX < 16 ? `let tx = tid % ${CX};` : 'let tx = i32(lid.x);',
    own4 && CX < 16 ? `let ty = tid / ${CX};` : 'let ty = i32(lid.y);',
    ...ij.map(([i, j]) => `var ${c(i, j)} = 0.0; var s${i}_${j} = 0.0;`),
    `for (var k0 = 0; k0 < ${K}; k0 += ${TK}) {`,
    ...load('As', g.A, 'row0', M, TM).map((l) => `  ${l}`),
    ...load('Bs', g.B, 'col0', N, TN).map((l) => `  ${l}`),
    '  workgroupBarrier();',
    `  for (var kk = 0; kk < ${TK}; kk++) {`,
    ...Array.from({ length: RM }, (_x, i) => `    let a${i} = As[kk * ${TM} + ty + ${RS * i}];`),
    ...Array.from({ length: RN }, (_x, j) => `    let b${j} = Bs[kk * ${TN} + ${own4 ? `4 * tx + ${(j % 4) + 4 * CX * Math.floor(j / 4)}` : `tx + ${16 * j}`}];`),
    ...Array.from({ length: RM }, (_x, i) => `    ${Array.from({ length: RN }, (_y, j) => `${c(i, j)} += a${i} * b${j};`).join(' ')}`),
    '  }',
    '  workgroupBarrier();',
    // every 256 terms the running block joins the total (f32 sums over long K stay accurate)
    `  if ((k0 / ${TK}) % ${joinEvery} == ${joinEvery - 1}) {`,
    ...Array.from({ length: RM }, (_x, i) => `    ${Array.from({ length: RN }, (_y, j) => `s${i}_${j} += ${c(i, j)}; ${c(i, j)} = 0.0;`).join(' ')}`),
    '  }',
    '}',
    `var res: array<f32, ${R}>;`,
    ...Array.from({ length: RM }, (_x, i) => `${Array.from({ length: RN }, (_y, j) => `res[${i * RN + j}] = s${i}_${j} + ${c(i, j)};`).join(' ')}`),
    `for (var i = 0; i < ${RM}; i++) {`,
    `  let gi = row0 + ty + ${RS} * i;`,
    `  for (var j = 0; j < ${RN}; j++) {`,
    `    let gj = col0 + ${colOf('j')};`,
    `    if (gi < ${M} && gj < ${N}) {`,
    `      let val = res[i * ${RN} + j];`,
    ...g.store('val').map((l) => `      ${l}`),
    '    }',
    '  }',
    '}',
  ];
  return { head, body, TM, TN };
}
