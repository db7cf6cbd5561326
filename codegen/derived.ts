// `graphc build --hvp` and `--jvp`: the derived functions of a module. Each derived graph
// (ir/derived.ts) is compiled as a module of its own by the target's emitter (with its own
// arena, fusion and memory plan, and the same comments), enclosed in a function scope, and an
// exported wrapper passes the arguments to it: no allocation per call.

import type { ModuleInfo } from './module.js';
import { inputs, key, member, outputs, ownMember, params, typedAs } from './module.js';
import { HVP_OUT, HVP_V, JVP_OUT, JVP_T } from '../ir/derived.js';

export interface Derived {
  readonly hvp?: ModuleInfo;
  readonly jvp?: ModuleInfo;
}

/** A module's code as a function body: no header, no exports; returns its forward and outputs. */
function enclosed(code: string, name: string): string[] {
  const lines = code.split('\n');
  const body = lines.slice(lines.findIndex((l) => !l.startsWith('//')));
  // the wasm module's declaration of the WebAssembly API is the enclosing module's (a declare may not be in a function)
  const declared = body.findIndex((l) => l.startsWith('declare const WebAssembly'));
  if (declared >= 0) body.splice(declared - 1, body.indexOf('};', declared) - declared + 2);
  return [
    `const ${name} = (() => {`,
    ...body.map((l) => l.replace(/^export (?=function|const|interface|type|let)/, '')),
    '  return { forward, outputs: outputsObj };',
    '})();',
  ];
}

/** The derived functions the build asked for, appended to the module `emit` made. */
export function derivedCode(m: ModuleInfo, derived: Derived | undefined, emit: (m: ModuleInfo, typed: boolean) => string, typed: boolean): string {
  if (!derived?.hvp && !derived?.jvp) return '';
  const t = typedAs(typed);
  const out: string[] = [''];
  const argsType = t(': Record<string, Float32Array | Int32Array>');
  if (derived.hvp) {
    const ps = params(m.fwd);
    out.push(
      '// ---------------------------------------------------------------------------------------------',
      '// hvp (graphc build --hvp): the Hessian of the loss times v, reverse over reverse: the gradient',
      '// of ⟨∇L, v⟩, whose instructions are the reverse pass run into the forward graph, differentiated',
      '// by the reverse pass again. Compiled as a model of its own (its arena, fusion and memory plan).',
      ...enclosed(emit(derived.hvp, typed), 'hvpModel'),
      `const hvpArgs${argsType} = Object.create(null); // (no prototype: an input may be named __proto__)`,
      `const hvpResult${t(': { loss: number; hv: Grads }')} = {`,
      '  get loss() { return hvpModel.outputs.loss; },',
      `  hv: { ${ps.map((p) => `get ${key(p.name)}() { return hvpModel.outputs[${JSON.stringify(HVP_OUT(p.name))}]${t(' as Float32Array')}; }`).join(', ')} },`,
      '};',
      '',
      '/**',
      ' * The loss and the Hessian of the loss times v (keyed like the params), as one flat function. The',
      " * options are forward's: evaluation unless options.train (then batch statistics and dropout, the loss",
      ' * valueAndGrad differentiates); the running statistics in options.buffers are read, never updated.',
      ' */',
      `export function hvp(params${t(': Params')}, inputs${t(': Inputs')}, v${t(': Grads')}, options${t('?: Options')})${t(': { loss: number; hv: Grads }')} {`,
      `  checkArgs(params, inputs);`,
      `  if (typeof v !== 'object' || v === null) throw new TypeError('${m.name}: v must be an object keyed like the params');`,
      ...inputs(m.fwd).map((x) => `  hvpArgs[${JSON.stringify(x.name)}] = ${member('inputs', x.name)};`),
      ...ps.map((p) => `  hvpArgs[${JSON.stringify(HVP_V(p.name))}] = ${ownMember('v', p.name)};`),
      `  hvpModel.forward(params${t(' as never')}, hvpArgs${t(' as never')}, options${t(' as never')});`,
      '  return hvpResult;',
      '}',
    );
  }
  if (derived.jvp) {
    const wrt = [...params(m.fwd), ...inputs(m.fwd).filter((x) => x.dtype === 'f32')];
    const outs = outputs(m.fwd);
    const f32Outs = outs.filter((o) => o.dtype === 'f32');
    const arrayOf = (o: (typeof outs)[number]) => (o.shape.length === 0 ? 'number' : o.dtype === 'f32' ? 'Float32Array' : 'Int32Array');
    out.push(
      '',
      '// ---------------------------------------------------------------------------------------------',
      '// jvp (graphc build --jvp): forward mode by the transpose trick: u ↦ Jᵀu is linear in u, so J·t',
      '// is the gradient with respect to u of ⟨Jᵀu, t⟩: the reverse pass run twice, no forward-mode',
      '// rules (u itself drops out). Compiled as a model of its own (its arena, fusion and memory plan).',
      ...enclosed(emit(derived.jvp, typed), 'jvpModel'),
      ...(typed
        ? [
            '/** Tangents: one per param and f32 input, shaped like it. */',
            'export interface Tangents {',
            ...wrt.map((x) => `  ${key(x.name)}: Float32Array; // f32[${x.shape.join(',')}]`),
            '}',
            '/** The tangent of each f32 output: J·t. */',
            'export interface TangentOutputs {',
            ...f32Outs.map((o) => `  ${key(o.name)}: ${arrayOf(o)}; // f32[${o.shape.join(',')}]`),
            '}',
          ]
        : []),
      `const jvpArgs${argsType} = Object.create(null); // (no prototype: an input may be named __proto__)`,
      `const jvpResult${t(': { outputs: Outputs; tangentOutputs: TangentOutputs }')} = {`,
      `  outputs: { ${outs.map((o) => `get ${key(o.name)}() { return jvpModel.outputs[${JSON.stringify(o.name)}]${t(` as ${arrayOf(o)}`)}; }`).join(', ')} },`,
      `  tangentOutputs: { ${f32Outs.map((o) => `get ${key(o.name)}() { return jvpModel.outputs[${JSON.stringify(JVP_OUT(o.name))}]${t(` as ${arrayOf(o)}`)}; }`).join(', ')} },`,
      '};',
      '',
      '/**',
      ' * The outputs and their tangents J·t for tangents of the params and f32 inputs (forward mode). The',
      " * options are forward's (evaluation unless options.train); the running statistics in options.buffers",
      ' * are read, never updated.',
      ' */',
      `export function jvp(params${t(': Params')}, inputs${t(': Inputs')}, tangents${t(': Tangents')}, options${t('?: Options')})${t(': { outputs: Outputs; tangentOutputs: TangentOutputs }')} {`,
      `  checkArgs(params, inputs);`,
      `  if (typeof tangents !== 'object' || tangents === null) throw new TypeError('${m.name}: tangents must be an object keyed like the params and f32 inputs');`,
      ...inputs(m.fwd).map((x) => `  jvpArgs[${JSON.stringify(x.name)}] = ${member('inputs', x.name)};`),
      ...wrt.map((x) => `  jvpArgs[${JSON.stringify(JVP_T(x.name))}] = ${ownMember('tangents', x.name)};`),
      `  jvpModel.forward(params${t(' as never')}, jvpArgs${t(' as never')}, options${t(' as never')});`,
      '  return jvpResult;',
      '}',
    );
  }
  return out.join('\n') + '\n';
}
