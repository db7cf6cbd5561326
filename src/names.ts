// Reads a model file with ts-morph and finds, for every call, the variable it is assigned to:
// `const hprebn = embcat.matmul(W1).add(b1)` names the value made by the `add` call `hprebn`.
// Calls are anchored at the property name of a method call (`add` above) or the start of a plain
// call's callee, which is the position V8 reports for a call frame, except for a method named by
// a keyword (`g.const(...)`), where V8 reports the '(' after the name: that position is mapped
// to the anchor too, so that every call is located (and named) at its method name.

// (ts-morph is loaded on first use, by require: src/tsmorph.ts)

import type { CallExpression, Node, Project, SourceFile } from 'ts-morph';
import { tsMorph } from './tsmorph.js';

let project: Project | undefined;

function parse(file: string, text: string): SourceFile {
  const { Project } = tsMorph();
  project ??= new Project({ useInMemoryFileSystem: true, compilerOptions: { allowJs: true } });
  return project.createSourceFile(file, text, { overwrite: true });
}

/**
 * The expression a call's value flows into, skipping parentheses, type assertions and the
 * branches of a conditional (`b ? x.matmul(W).add(b) : x.matmul(W)` flows where the `?:` does).
 */
function consumer(call: Node): Node | undefined {
  const { Node } = tsMorph();
  let n: Node = call;
  let p = n.getParent();
  while (
    p &&
    (Node.isParenthesizedExpression(p) ||
      Node.isAsExpression(p) ||
      Node.isNonNullExpression(p) ||
      Node.isSatisfiesExpression(p) ||
      Node.isTypeAssertion(p) ||
      (Node.isConditionalExpression(p) && p.getCondition() !== n))
  ) {
    n = p;
    p = n.getParent();
  }
  return p;
}

/** Whether a call's value is what its function returns (`return ...`, or an arrow's body). */
function isReturned(call: CallExpression): boolean {
  const { Node } = tsMorph();
  const p = consumer(call);
  return !!p && (Node.isReturnStatement(p) || Node.isArrowFunction(p)); // an arrow's child expression is its body
}

function bindingOf(call: CallExpression): string | undefined {
  const { Node, SyntaxKind } = tsMorph();
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

/**
 * A call's anchor: the 1-based (line, col) of its method name (or callee), its variable, and
 * whether its function returns its value (then the variable its caller assigns the result to
 * names it).
 */
export interface CallSite {
  readonly line: number;
  readonly col: number;
  readonly name?: string;
  readonly returned?: boolean;
  /** Anchored at its '(' (the callee is neither a name nor a method). */
  readonly atParen?: boolean;
}

/**
 * The position of a call's method name or plain callee; for any other callee (`makeLayer(4)(x)`,
 * `layers[i](x)`), of the '(' of its arguments, which is where V8 reports such a call.
 */
function anchorPos(call: CallExpression): number | undefined {
  const { Node, SyntaxKind } = tsMorph();
  const callee = call.getExpression();
  if (Node.isPropertyAccessExpression(callee)) return callee.getNameNode().getStart();
  if (Node.isIdentifier(callee)) return callee.getStart();
  return call.getFirstChildByKind(SyntaxKind.OpenParenToken)?.getStart();
}

/** The calls of a file: where each is anchored, and which variable it is assigned to. */
export class FileCalls {
  /** By every "line:col" V8 may report for a frame of the call: its anchor, and its '('. */
  private readonly byPos = new Map<string, CallSite>();
  /** Each call's extent (offsets from its callee to its ')') and its '(', in source order. */
  private readonly spans: { start: number; end: number; paren: number; site: CallSite }[] = [];
  private readonly sf: SourceFile;

  constructor(file: string, text: string) {
    const { Node, SyntaxKind } = tsMorph();
    const sf = (this.sf = parse(file, text));
    // TypeScript's own line map (ts-morph's getLineAndColumnAtPos scans the text on each call)
    const lineCol = (pos: number) => {
      const lc = sf.compilerNode.getLineAndCharacterOfPosition(pos);
      return { key: `${lc.line + 1}:${lc.character + 1}`, line: lc.line + 1, col: lc.character + 1 };
    };
    const aliases: [string, CallSite][] = [];
    sf.forEachDescendant((node) => {
      if (!Node.isCallExpression(node)) return;
      const pos = anchorPos(node);
      if (pos === undefined) return;
      const at = lineCol(pos);
      const name = bindingOf(node);
      const paren = node.getFirstChildByKind(SyntaxKind.OpenParenToken);
      const site: CallSite = { line: at.line, col: at.col, name, returned: !name && isReturned(node), atParen: pos === paren?.getStart() };
      this.byPos.set(at.key, site);
      this.spans.push({ start: node.getExpression().getStart(), end: node.getEnd(), paren: paren?.getStart() ?? node.getEnd(), site });
      if (paren) aliases.push([lineCol(paren.getStart()).key, site]);
    });
    // an anchor always wins over a '(' at the same place
    for (const [k, site] of aliases) if (!this.byPos.has(k)) this.byPos.set(k, site);
  }

  /** The call a frame at this 1-based position belongs to, if the position is one of its own. */
  at(line: number, col: number): CallSite | undefined {
    return this.byPos.get(`${line}:${col}`);
  }

  /**
   * The innermost call whose text contains this 1-based position; with `inArguments`, the
   * innermost whose argument list contains it (its '(' comes before the position).
   */
  enclosing(line: number, col: number, inArguments = false): CallSite | undefined {
    const lines = this.sf.compilerNode.getLineStarts();
    if (line < 1 || line > lines.length) return undefined;
    const pos = lines[line - 1]! + col - 1;
    let best: { start: number; end: number; site: CallSite } | undefined;
    for (const s of this.spans)
      if (s.start <= pos && pos < s.end && (!inArguments || s.paren < pos) && (!best || s.end - s.start < best.end - best.start)) best = s;
    return best?.site;
  }
}

/**
 * Whether `export default <e>` may make the default export an alias of a declaration: `e` names
 * one (`f`, `ns.f`), in parentheses or with a type assertion or not; a call never does.
 */
function mayBeAlias(e: Node): boolean {
  const { Node } = tsMorph();
  while (Node.isParenthesizedExpression(e) || Node.isAsExpression(e) || Node.isSatisfiesExpression(e) || Node.isNonNullExpression(e) || Node.isTypeAssertion(e)) e = e.getExpression();
  return Node.isIdentifier(e) || Node.isPropertyAccessExpression(e);
}

/**
 * Where the default export starts (for errors about it): `export default <expression>`,
 * `export default function ...` / `export default class ...`, or `export { m as default }`;
 * line 1 when there is none.
 */
export function defaultExportAt(file: string, text: string): { line: number; col: number } {
  const { Node } = tsMorph();
  const sf = parse(file, text);
  // A declaration without `default` is the default export only as what an alias names (`export
  // default f;`, `export { f as default }`), which ts-morph's isDefaultExport asks the type checker
  // (a program of the file and the standard library: 0.5 s of a build). Without such an alias
  // (`export default model(...)`) the `default` keyword decides it, as isDefaultExport does first.
  // (a .js model's CommonJS `exports.default = f` / `module.exports = f` may alias one too)
  const commonJs = (st: Node) => {
    const e = Node.isExpressionStatement(st) ? st.getExpression() : undefined;
    return e !== undefined && Node.isBinaryExpression(e) && /^(module\.)?exports(\.default)?$/.test(e.getLeft().getText().replace(/\s/g, ''));
  };
  const aliased = sf.getStatements().some((st) => (Node.isExportAssignment(st) && !st.isExportEquals() && mayBeAlias(st.getExpression())) || (Node.isExportDeclaration(st) && st.getNamedExports().some((e) => e.compilerNode.name.text === 'default')) || commonJs(st));
  let at: Node | undefined;
  for (const st of sf.getStatements()) {
    if (Node.isExportAssignment(st) && !st.isExportEquals()) at = st;
    else if ((Node.isFunctionDeclaration(st) || Node.isClassDeclaration(st)) && (st.hasDefaultKeyword() || (aliased && st.isDefaultExport()))) at = st;
    else if (Node.isExportDeclaration(st)) at = st.getNamedExports().find((e) => (e.getAliasNode() ?? e.getNameNode()).getText() === 'default') ?? at;
    if (at) break;
  }
  if (!at) return { line: 1, col: 1 };
  const lc = sf.getLineAndColumnAtPos(at.getStart());
  return { line: lc.line, col: lc.column };
}

/**
 * The first `model(...)` call of a file that has no default export, with the name it is
 * exported under (`export const m = model(...)`, or `const m = model(...)` and `export { m }`)
 * or the variable it is assigned to, for the error that says how to make it the default.
 */
export function modelCallAt(file: string, text: string): { line: number; col: number; exportedAs?: string; variable?: string } | undefined {
  const { Node, SyntaxKind } = tsMorph();
  const sf = parse(file, text);
  // the local name of graphc's `model` (import { model as m } from 'graphc' too)
  let local = 'model';
  for (const imp of sf.getImportDeclarations())
    if (imp.getModuleSpecifierValue() === 'graphc') for (const n of imp.getNamedImports()) if (n.getName() === 'model') local = n.getAliasNode()?.getText() ?? 'model';
  const call = sf.getDescendantsOfKind(SyntaxKind.CallExpression).find((c) => c.getExpression().getText() === local);
  if (!call) return undefined;
  const lc = sf.getLineAndColumnAtPos(call.getStart());
  const decl = consumer(call);
  if (!decl || !Node.isVariableDeclaration(decl)) return { line: lc.line, col: lc.column };
  const variable = decl.getName();
  const statement = decl.getVariableStatement();
  let exportedAs = statement?.isExported() ? variable : undefined;
  for (const st of sf.getStatements())
    if (Node.isExportDeclaration(st) && !st.getModuleSpecifier())
      for (const e of st.getNamedExports()) if (e.getNameNode().getText() === variable) exportedAs ??= (e.getAliasNode() ?? e.getNameNode()).getText();
  return { line: lc.line, col: lc.column, exportedAs, variable };
}
