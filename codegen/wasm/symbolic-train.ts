// The optimizer update of the symbolic wasm module (--optimizer with a symbolic dimension): the
// static module's update kernel (codegen/wasm/update.ts), encoded once at build time with the
// kernels of the kernel form (codegen/wasm/symbolic-forms.ts). A param and its gradient have
// static sizes, so their arrays sit in the static part of the memory (ir/layout.ts: at the same
// addresses at every size), and so do the state arrays and the step scalars the kernel reads
// (after the convolutions' scratch): every address of the kernel is a constant. The memory grows
// for larger sizes, which detaches the views of it: the state the caller holds is plain arrays
// (initOptState never hands out the memory's own), copied in before the kernel and back out after
// it; relayout() views the memory's state anew. A gradient that is not an array of the arena (a
// forward value passed through, a constant, one shared with another param: the flat module's copy
// of it, codegen/ts.ts gradientArrays) is copied into an area of its own in the state's part of
// the memory, just before that param's state slots, which the kernel reads.

import type { ModuleInfo, Typed } from '../module.js';
import { commentText, member } from '../module.js';
import { scalarNames } from '../optim.js';
import type { TrainBackend } from '../ts/train.js';
import type { Address } from './layout.js';
import type { Body } from './encode.js';
import { updateBody, updateLayout } from './update.js';

export interface SymTrain {
  /** Bytes of the state and scalar area from `start`. */
  readonly bytes: number;
  readonly backend: TrainBackend;
  /** The update kernel, where a param is covered. */
  readonly fn?: { readonly name: string; readonly body: Body; readonly what: string };
  /** relayout()'s lines that view the memory's state (and gradient copies) anew (after the memory grew). */
  readonly views: readonly string[];
}

/**
 * The state area from `start` (a constant) and the update kernel over the params whose staged
 * copy is an array of the static part of the memory (`address`: their constant addresses), their
 * gradients too or else copied into the area; the others take the flat module's loop. `syms`: the
 * model's symbols.
 */
export function symTrain(m: ModuleInfo, address: Address, start: number, syms: readonly string[], t: Typed): SymTrain {
  const spec = m.optimizer!;
  const { slots, groups, targets, covered, fields, copied, copies, scalarsAt, scalarCount, end, stagedOf, copyBack } = updateLayout(m, address, start, true);
  const scalarsName = (k: number) => `optScalars${groups.length > 1 ? `_${k + 1}` : ''}`;
  const scalarViews = groups.map((x, k) => `new Float32Array(memory.buffer, ${scalarsAt[k]}, ${Math.max(1, scalarCount[k]!)})`);
  const views = targets.length
    ? [
        '  optMemory = optViews(); // the optimizer state\'s arrays in the memory, viewed anew',
        ...(copied.length ? ['  optGrads = gradViews();'] : []),
        ...groups.map((_, k) => `  ${scalarsName(k)} = ${scalarViews[k]};`),
      ]
    : [];
  const backend: TrainBackend = {
    decls: [
      `// The optimizer state in the memory, where the update kernel (forms.update) reads and writes it: a`,
      `// state's arrays are copied in before the kernel and back out after it (the memory grows for larger sizes,`,
      `// which detaches its views: initOptState returns plain arrays, and relayout() views the memory anew).`,
      `function optViews() {`,
      `  return { ${slots.map((s) => `${s}: { ${fields.get(s)!.join(', ')} }`).join(', ')} };`,
      `}`,
      `let optMemory = optViews();`,
      ...(copied.length
        ? [
            `/** The gradients that are not arrays of the arena (the flat module's copies of them), copied here for the update kernel. */`,
            `function gradViews() {`,
            `  return { ${copied.join(', ')} };`,
            `}`,
            `let optGrads = gradViews();`,
          ]
        : []),
      `/** Before the update kernel: a state's array into the memory. */`,
      `function optIn(_k${t(': number')}, mine${t(': Float32Array')}, theirs${t(': Float32Array')})${t(': void')} {`,
      `  mine.set(theirs);`,
      `}`,
      `/** After it: back out. */`,
      `function optOut(_k${t(': number')}, mine${t(': Float32Array')}, theirs${t(': Float32Array')})${t(': void')} {`,
      `  theirs.set(mine);`,
      `}`,
      ...groups.map((x, k) => `let ${scalarsName(k)} = ${scalarViews[k]}; // ${scalarNames(x.spec).join(', ') || 'unused'}${groups.length > 1 ? ` (${commentText(x.params.join(', '))})` : ''}`),
      '',
    ],
    covered,
    resident: 'optMemory',
    handsOut: false,
    staged: stagedOf,
    run: (values, grad) => [
      // a step before any call (applyGradients): the params and gradients staged into the arena's arrays move into the memory
      `if (!inMemory) {`,
      ...syms.map((d) => `  dims.${d} = 1;`),
      '  layout();',
      '}',
      ...values.flatMap((vs, g) => vs.map((s, k) => `${scalarsName(g)}[${k}] = ${s};`)),
      ...copies.map((p) => `${member('optGrads', p)}.set(${grad(p)}); // the gradient of ${commentText(p)}, not an array of the arena: into the memory`),
      'forms.update();',
      ...copyBack,
    ],
  };
  if (targets.length === 0) return { bytes: end - start, backend, views };
  const what = `${spec.name} update of ${targets.length} param${targets.length === 1 ? '' : 's'} (${[...covered].join(', ')}), four elements at a time`;
  return { bytes: end - start, backend, views, fn: { name: 'update', body: updateBody(targets), what } };
}
