// Lists the functions (declarations, methods, arrows, function expressions) longer than a limit,
// longest first: `node scripts/fn-sizes.mjs [limit = 150] [dir = codegen]` (issue #29: no function
// over 150 lines in codegen/). A function's lines include those of the functions inside it.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

const [limit = '150', root = 'codegen'] = process.argv.slice(2);
const files = (dir) => readdirSync(dir).flatMap((f) => {
  const p = path.join(dir, f);
  return statSync(p).isDirectory() ? files(p) : p.endsWith('.ts') && !p.endsWith('.d.ts') ? [p] : [];
});
const rows = [];
for (const file of files(root)) {
  const src = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const visit = (n) => {
    if (ts.isFunctionDeclaration(n) || ts.isMethodDeclaration(n) || ts.isArrowFunction(n) || ts.isFunctionExpression(n) || ts.isConstructorDeclaration(n)) {
      const from = src.getLineAndCharacterOfPosition(n.getStart()).line;
      const lines = src.getLineAndCharacterOfPosition(n.getEnd()).line - from + 1;
      const name = n.name?.getText() ?? (ts.isVariableDeclaration(n.parent) ? n.parent.name.getText() : '(anonymous)');
      if (lines > Number(limit)) rows.push([lines, `${file}:${from + 1}`, name]);
    }
    ts.forEachChild(n, visit);
  };
  visit(src);
}
rows.sort((a, b) => b[0] - a[0]);
for (const r of rows) console.log(r.join('\t'));
