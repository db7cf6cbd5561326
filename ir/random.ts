// The dropout mask generator: counter-based, a pure function of (seed, dropout site, element
// index), so that every target and the float64 interpreter draw the same mask from the same seed
// without carrying any random state. ONE source text: the emitters paste `DROPOUT_SOURCE` into
// the generated modules and the interpreter evaluates the very same text with `new Function`
// (Function.prototype.toString of compiled TypeScript would differ between builds).
//
// hash32 is lowbias32 (Chris Wellons' integer hash: xor-shift, multiply, xor-shift, multiply,
// xor-shift), a bijection of 32-bit integers with good avalanche. The key of a (seed, site) pair
// hashes both halves of the seed and the site; element i is hash32(key ^ hash32(i)), whose top 24
// bits give a float u in [0, 1) with steps of 2^-24; the element is kept when u ≥ p.

/** The generator's source text, pasted verbatim into every generated module that has dropout. */
export const DROPOUT_SOURCE = `/** lowbias32: a 32-bit integer hash (a bijection with good avalanche). */
function hash32(x) {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x | 0; // signed: an unsigned result above 2^31 is boxed (allocated) on its way out of a call V8 did not inline; every use is a bit operation
}
/** The key of one dropout site under one seed (any safe integer; both 32-bit halves count), as a signed 32-bit integer: an unsigned one above 2^31 would be boxed on its way out of the call. */
function dropoutKey(seed, site) {
  const hi = seed >= 0 && seed < 4294967296 ? 0 : seed < 0 && seed >= -4294967296 ? -1 : Math.floor(seed / 4294967296) | 0; // (no division for a seed of 32 bits: unoptimized, it allocates)
  return hash32(hash32(seed | 0) ^ hash32(hi ^ 0x5bd1e995) ^ hash32(Math.imul(site + 1, 0x9e3779b9))) | 0;
}
/** The mask of a site: element i is 0 when its uniform u = (top 24 bits of hash32(key ^ hash32(i))) / 2^24 is below p, else scale = 1 / (1 - p). */
function fillDropoutMask(a, p, scale, seed, site) {
  const key = dropoutKey(seed, site);
  for (let i = 0; i < a.length; i++) a[i] = (hash32(key ^ hash32(i)) >>> 8) / 16777216 < p ? 0 : scale;
}`;

/** The same text with TypeScript annotations, for the typed modules (the JavaScript modules paste DROPOUT_SOURCE). */
export function dropoutSourceTyped(): string {
  return DROPOUT_SOURCE.replace('function hash32(x) {', 'function hash32(x: number): number {')
    .replace('function dropoutKey(seed, site) {', 'function dropoutKey(seed: number, site: number): number {')
    .replace('function fillDropoutMask(a, p, scale, seed, site) {', 'function fillDropoutMask(a: Float32Array, p: number, scale: number, seed: number, site: number): void {');
}

interface Generator {
  hash32(x: number): number;
  dropoutKey(seed: number, site: number): number;
  fillDropoutMask(a: { length: number; [i: number]: number }, p: number, scale: number, seed: number, site: number): void;
}

// the interpreter's copy: the pasted text, evaluated once
const GEN = new Function(`${DROPOUT_SOURCE}\nreturn { hash32, dropoutKey, fillDropoutMask };`)() as Generator;

/** The mask of dropout site `site` under `seed`, in float64: 0 or 1/(1 − p) per element. */
export function dropoutMask(n: number, p: number, seed: number, site: number): Float64Array {
  const a = new Float64Array(n);
  GEN.fillDropoutMask(a, p, 1 / (1 - p), seed, site);
  return a;
}

/** The uniform draws behind a mask (for the generator's statistical tests). */
export function dropoutUniforms(n: number, seed: number, site: number): Float64Array {
  const key = GEN.dropoutKey(seed, site);
  return Float64Array.from({ length: n }, (_x, i) => (GEN.hash32(key ^ GEN.hash32(i)) >>> 8) / 16777216);
}

/** Whether a seed is one the modules accept: a safe integer. */
export function validSeed(seed: unknown): seed is number {
  return typeof seed === 'number' && Number.isSafeInteger(seed);
}
