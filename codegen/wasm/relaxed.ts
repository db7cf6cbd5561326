// Relaxed SIMD in an emitted wasm module: the offsets of its kernels' multiply-adds (codegen/wasm/encode.ts
// `madd`) written into the module, its feature test, and the rewrite of each site into
// f32x4.relaxed_madd where the runtime validates the test (the static module: codegen/wasm.ts; the
// symbolic module's kernels built once: codegen/wasm/symbolic.ts).

import { RELAXED_PROBE } from './encode.js';

/**
 * Where the module's kernels have multiply-adds (the matmuls' and convolutions'): their offsets
 * in `bytes`, the feature test, and the rewrite of each into f32x4.relaxed_madd where the runtime
 * has relaxed SIMD (codegen/wasm/encode.ts `relaxSites`, whose code this is); `simd` says which.
 */
export function relaxedDecl(sites: readonly number[], typed: boolean): string[] {
  if (!sites.length) return [];
  const T = (s: string) => (typed ? s : '');
  const [list, rewrite] = relaxSitesDecl(sites, 'bytes', 'maddAt', typed);
  return [
    '// Relaxed SIMD: the kernels\' multiply-adds (f32x4.mul, local.get acc, f32x4.add) at these offsets of `bytes`',
    '// (base-36 differences), each rewritten as local.get acc, f32x4.relaxed_madd, nop × 3 where the runtime',
    '// validates the probe (a function of one relaxed_madd); `simd` says which kernels run.',
    ...list,
    `const probe = ${relaxedProbe()};`,
    `export const simd${T(": 'relaxed' | 'plain'")} = WebAssembly.validate(probe) ? 'relaxed' : 'plain';`,
    ...rewrite,
  ];
}

/** The feature test of relaxed SIMD, as code: the bytes of a module of one f32x4.relaxed_madd. */
export function relaxedProbe(): string {
  return `Uint8Array.of(${RELAXED_PROBE.map((b) => `0x${b.toString(16).padStart(2, '0')}`).join(', ')})`;
}

/**
 * The offsets of a module's multiply-adds in its bytes (`bytes`, a const of the emitted module), as
 * the const `list` (base-36 differences), and the rewrite of each into f32x4.relaxed_madd where
 * `simd` is 'relaxed' (codegen/wasm/encode.ts `relaxSites`, whose code this is).
 */
export function relaxSitesDecl(sites: readonly number[], bytes: string, list: string, typed: boolean): [string[], string[]] {
  const T = (s: string) => (typed ? s : '');
  const deltas = sites.map((s, k) => (s - (k ? sites[k - 1]! : 0)).toString(36)).join(',');
  const chunks = deltas.match(/.{1,96}(,|$)/g) ?? [''];
  return [
    [`const ${list} = [`, ...chunks.map((c) => `'${c}',`), "].join('');"],
    [
      "if (simd === 'relaxed') {",
      '  let at = 0;',
      `  for (const d of ${list}.split(',')) {`,
      '    at += parseInt(d, 36);',
      '    let end = at + 4; // the last byte of local.get\'s index (an unsigned LEB128)',
      `    while (${bytes}[end]${T('!')} & 0x80) end++;`,
      `    ${bytes}.copyWithin(at, at + 3, end + 1);`,
      `    ${bytes}.set([0xfd, 0x85, 0x02, 0x01, 0x01, 0x01], end - 2);`,
      '  }',
      '}',
    ],
  ];
}
