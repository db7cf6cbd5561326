// Reads a model file with ts-morph and finds, for every call, the variable it is assigned to:
// `const hprebn = embcat.matmul(W1).add(b1)` names the value made by the `add` call `hprebn`.
// Calls are keyed by the position V8 reports for them: the property name of a method call
// (`add` above) or the start of a plain call's callee.

import { Node, Project, SyntaxKind } from 'ts-morph';
import type { CallExpression, SourceFile } from 'ts-morph';

let project: Project | undefined;

function parse(file: string, text: string): SourceFile {
  project ??= new Project({ useInMemoryFileSystem: true, compilerOptions: { allowJs: true } });
  return project.createSourceFile(file, text, { overwrite: true });
}

/** The expression a call's value flows into, skipping parentheses and type assertions. */
function consumer(call: Node): Node | undefined {
  let n: Node = call;
  let p = n.getParent();
  while (
    p &&
    (Node.isParenthesizedExpression(p) || Node.isAsExpression(p) || Node.isNonNullExpression(p) || Node.isSatisfiesExpression(p) || Node.isTypeAssertion(p))
  ) {
    n = p;
    p = n.getParent();
  }
  return p;
}

function bindingOf(call: CallExpression): string | undefined {
  const p = consumer(call);
  if (!p) return undefined;
  if (Node.isVariableDeclaration(p)) {
    const n = p.getNameNode();
    return Node.isIdentifier(n) ? n.getText() : undefined;
  }
  if (Node.isBinaryExpression(p) && p.getOperatorToken().getKind() === SyntaxKind.EqualsToken) {
    const left = p.getLeft();
    if (Node.isIdentifier(left)) return left.getText();
    if (Node.isPropertyAccessExpression(left)) return left.getName();
  }
  if (Node.isPropertyAssignment(p)) {
    const n = p.getNameNode();
    if (Node.isIdentifier(n) || Node.isStringLiteral(n)) return Node.isIdentifier(n) ? n.getText() : n.getLiteralText();
  }
  return undefined;
}

/** The 1-based (line, col) V8 reports for a call frame of this call. */
function anchorOf(sf: SourceFile, call: CallExpression): string | undefined {
  const callee = call.getExpression();
  let pos: number;
  if (Node.isPropertyAccessExpression(callee)) pos = callee.getNameNode().getStart();
  else if (Node.isIdentifier(callee)) pos = callee.getStart();
  else return undefined;
  const lc = sf.getLineAndColumnAtPos(pos);
  return `${lc.line}:${lc.column}`;
}

/** Map from "line:col" of each call to the variable it is assigned to. */
export function bindingNames(file: string, text: string): Map<string, string> {
  const sf = parse(file, text);
  const out = new Map<string, string>();
  sf.forEachDescendant((node) => {
    if (!Node.isCallExpression(node)) return;
    const name = bindingOf(node);
    const at = name && anchorOf(sf, node);
    if (name && at) out.set(at, name);
  });
  return out;
}

/** Where the default export starts (for errors about it); line 1 when there is none. */
export function defaultExportAt(file: string, text: string): { line: number; col: number } {
  const sf = parse(file, text);
  const at = sf.getExportAssignment((e) => !e.isExportEquals());
  if (!at) return { line: 1, col: 1 };
  const lc = sf.getLineAndColumnAtPos(at.getStart());
  return { line: lc.line, col: lc.column };
}
