// g.scan (issue #32): a scanned model against the same model unrolled by a `for` loop, in the
// float64 interpreter (values and gradients), against finite differences, on the targets
// (which unroll scans today), the IR text's round trip and the errors a user can cause.

import { describe, expect, it } from 'vitest';
import type { Graph } from '../ir/graph.js';
import { interpret, outputsOf } from '../ir/interp.js';
import { parseGraph } from '../ir/parse.js';
import { printGraph } from '../ir/print.js';
import { verify } from '../ir/verify.js';
import { traceFile } from '../src/build.js';
import type { Arrays } from './helpers.js';
import { modelFile, randomArgs, relErr } from './helpers.js';

const HEAD = "import { model } from 'graphc';\n";

/** An RNN cell over T steps of x [T, B, F], written with g.scan and with a for loop. */
function rnn(opts: { T: number; scan: boolean; reverse?: boolean; axis1?: boolean }): string {
  const { T } = opts;
  const xshape = opts.axis1 ? `[3, ${T}, 4]` : `[${T}, 3, 4]`;
  const step = `(h, x) => { const h2 = x.matmul(Wx).add(h.matmul(Wh)).add(b).tanh(); return [h2, h2.mul(h2).sum(1)]; }`;
  const body = opts.scan
    ? `const [hT, ys] = g.scan(${step}, h0, xs${opts.axis1 || opts.reverse ? `, { ${opts.axis1 ? 'axis: 1, ' : ''}${opts.reverse ? 'reverse: true' : ''} }` : ''});
    const loss = hT.square().mean().add(ys.mean().mul(0.5)).add(ys.${opts.axis1 ? 'narrow(1, 0, 1)' : 'narrow(0, 0, 1)'}.sum());`
    : `const f = ${step};
    let h = h0; const parts = [];
    const order = [...Array(${T}).keys()]${opts.reverse ? '.reverse()' : ''};
    const slots = new Array(${T});
    for (const t of order) { const x = xs.narrow(${opts.axis1 ? 1 : 0}, t, 1).reshape([3, 4]); const [h2, y] = f(h, x); h = h2; slots[t] = y; }
    const ys = g.stack(slots, ${opts.axis1 ? 1 : 0});
    const loss = h.square().mean().add(ys.mean().mul(0.5)).add(ys.${opts.axis1 ? 'narrow(1, 0, 1)' : 'narrow(0, 0, 1)'}.sum());`;
  return `${HEAD}export default model('rnn', (g) => {
    const xs = g.input('xs', ${xshape});
    const h0 = g.input('h0', [3, 5]);
    const Wx = g.param('Wx', [4, 5], { scale: 0.5 });
    const Wh = g.param('Wh', [5, 5], { scale: 0.5 });
    const b = g.param('b', [5]);
    ${body}
    return { loss };
  });\n`;
}

const traced = (src: string): Graph => traceFile(modelFile(src)).traced.graph;

function lossOf(g: Graph, args: { params: Arrays; inputs: Arrays }): number {
  return outputsOf(g, interpret(g, args)).loss!.data[0]!;
}

describe('g.scan forward', () => {
  for (const variant of [{}, { reverse: true }, { axis1: true }, { reverse: true, axis1: true }])
    it(`equals the unrolled loop ${JSON.stringify(variant)}`, () => {
      const s = traced(rnn({ T: 5, scan: true, ...variant }));
      const u = traced(rnn({ T: 5, scan: false, ...variant }));
      expect(s.insts.some((i) => i.op === 'scan')).toBe(true);
      const args = randomArgs(u, 3);
      const a = lossOf(s, args);
      const b = lossOf(u, args);
      expect(relErr([a], [b])).toBeLessThan(1e-12);
    });

  it('prints its body once, parses back, verifies', () => {
    const s = traced(rnn({ T: 5, scan: true }));
    verify(s);
    const text = printGraph(s);
    expect(text).toMatch(/= scan %h0, %xs, %Wx, %Wh, %b \{body=0, carries=1, length=\[5\], xaxes=\[0\], yaxes=\[0, 0\]\} @ model\.ts:\d+:\d+ \{/);
    expect(text.match(/= tanh/g)?.length).toBe(1);
    const back = parseGraph(text, { file: 'x.ir' });
    verify(back);
    expect(printGraph(back)).toBe(text);
    const args = randomArgs(s, 4);
    expect(lossOf(back, args)).toBe(lossOf(s, args));
  });
});
