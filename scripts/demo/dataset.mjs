// The demo's datasets from a list of names, with nothing that needs Node (the web page imports it
// too): '.' as the start and end token, the 80/10/10 split, and contexts of `block` characters that
// predict the next one, as in makemore.

/** '.' is 0, 'a'..'z' are 1..26. */
export const stoi = (ch) => (ch === '.' ? 0 : ch.charCodeAt(0) - 96);
export const itos = (i) => (i === 0 ? '.' : String.fromCharCode(96 + i));

/** Every (context, next character) pair of the words: X is [n, block] i32, Y is [n] i32. */
export function dataset(words, block = 3) {
  const X = [];
  const Y = [];
  for (const w of words) {
    const ctx = new Array(block).fill(0);
    for (const ch of w + '.') {
      X.push(...ctx);
      Y.push(stoi(ch));
      ctx.shift();
      ctx.push(stoi(ch));
    }
  }
  return { X: Int32Array.from(X), Y: Int32Array.from(Y), n: Y.length, block };
}

/** The 80/10/10 split of the shuffled names into train, dev and test datasets. */
export function splits(names, block = 3) {
  const n1 = Math.floor(0.8 * names.length);
  const n2 = Math.floor(0.9 * names.length);
  return { train: dataset(names.slice(0, n1), block), dev: dataset(names.slice(n1, n2), block), test: dataset(names.slice(n2), block) };
}
