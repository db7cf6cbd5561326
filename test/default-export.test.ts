// Where a file's default export is (src/names.ts defaultExportAt, the place of errors about the
// whole model): a declaration without `default` is found as ts-morph's type checker finds it
// (isDefaultExport), which the build only asks where an alias may name it. The expected places
// are ts-morph's answers (isDefaultExport on every function and class).

import { describe, expect, it } from 'vitest';
import { defaultExportAt } from '../src/names.js';

const CASES: [string, string, number, number][] = [
  ['model(...), declarations before it', "import { model } from 'graphc';\nfunction helper(x: number) { return x; }\nclass K {}\nexport default model('m', (g) => g.const(1));\n", 4, 1],
  ['export default f', 'function f() {}\nexport default f;\n', 1, 1],
  ['export { C as default }', 'class C {}\nexport { C as default };\n', 1, 1],
  ['export { A, B as default }', 'class A {}\nclass B {}\nexport { A, B as default };\n', 2, 1],
  ['export default function', 'const a = 1;\nexport default function () {}\n', 2, 1],
  ['overloads, export default f', 'function f(a: number): void;\nfunction f(a: any) {}\nexport default f;\n', 1, 1],
  ['import g = f, export default g', 'function f() {}\nimport g = f;\nexport default g;\n', 3, 1],
  ['export default (f)', 'function f() {}\nexport default (f);\n', 2, 1],
  ['export default f as any', 'function f() {}\nexport default f as any;\n', 2, 1],
  ['export default f!', 'function f() {}\nexport default f!;\n', 2, 1],
  ['export default of a const', 'const m = 1;\nfunction f() {}\nexport default m;\n', 3, 1],
  ['an import re-exported', "import x from './y';\nfunction f() {}\nexport default x;\n", 3, 1],
  ['a namespace member', 'namespace N { export function f() {} }\nfunction f() {}\nexport default N.f;\n', 3, 1],
  ['re-export of another default', "function f() {}\nexport { default } from './other';\n", 2, 10],
  ['none', 'function f() {}\nconst x = 2;\n', 1, 1],
];

describe('defaultExportAt', () => {
  for (const [what, text, line, col] of CASES)
    it(what, () => {
      expect(defaultExportAt(`/tmp/graphc-default-export-${what.replace(/\W+/g, '-')}.ts`, text)).toEqual({ line, col });
    });
  // a .js model's CommonJS default export aliases a declaration as `export default g` does
  it('exports.default = g in a .js file', () => {
    expect(defaultExportAt('/tmp/graphc-default-export-cjs.js', 'function f() {}\nfunction g() {}\nexports.default = g;\n')).toEqual({ line: 2, col: 1 });
  });
});
