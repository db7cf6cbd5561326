// The inspection verbs on the examples: `graphc ir`, `diff`, `check`, `graph`, and
// `build --check`.

import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { printGraph } from '../ir/print.js';
import type { Progress } from '../src/inspect.js';
import { gradCheck, graphDot, progressLine } from '../src/inspect.js';
import { buildAndImport, expectGolden, modelFile, ROOT, run, tmp } from './helpers.js';

describe('graphc ir', () => {
  it.each([
    ['neuron', []],
    ['neuron', ['--grad']],
    ['neuron', ['--after', 'trace']],
    ['makemore', ['--after', 'fuse-composites']],
    ['makemore', ['--grad', '--after', 'reverse-mode']],
    ['makemore', ['--grad']],
  ])('%s %j', async (name, flags) => {
    const r = await run(['ir', `examples/${name}.ts`, ...flags]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expectGolden(`cli/ir-${name}${flags.join('').replace(/-+/g, '-')}.txt`, r.out);
  });

  it('lists the stages when asked for an unknown one', async () => {
    const r = await run(['ir', 'examples/neuron.ts', '--after', 'nope']);
    expect(r.code).toBe(2);
    expect(r.err).toBe("graphc ir: no stage 'nope' in the forward pipeline; the stages are: trace, scan-bodies, simplify, fold-transposes, flatten-matmuls, fuse-composites, cse, dce, unroll-stateful-scans, dce#2, fuse, loop-bodies\n");
  });
});

describe('graphc diff', () => {
  const ir = readFileSync(path.join(ROOT, 'generated/makemore/makemore.grad.ir'), 'utf8');
  const write = (text: string) => {
    const f = path.join(tmp(), 'x.grad.ir');
    writeFileSync(f, text);
    return f;
  };

  it('finds a model the same as its generated folder (exit 0, no output)', async () => {
    expect(await run(['diff', 'examples/makemore.ts', 'generated/makemore'])).toEqual({ code: 0, out: '', err: '' });
  });

  it('finds the long-form and the composite makemore the same program', async () => {
    expect(await run(['diff', 'examples/makemore.ts', 'examples/makemore_composite.ts'])).toEqual({ code: 0, out: '', err: '' });
  });

  it('ignores renamed temporaries and reordered independent lines', async () => {
    let text = ir.replace(/%t26\b/g, '%t99').replace(/%t14\b/g, '%t1000');
    const lines = text.split('\n');
    const a = lines.findIndex((l) => l.includes('%W2: f32[64,27] = fwd'));
    const b = lines.findIndex((l) => l.includes('%h: f32[32,64] = fwd'));
    [lines[a], lines[b]] = [lines[b]!, lines[a]!];
    text = lines.join('\n');
    expect(text).not.toBe(ir);
    const r = await run(['diff', 'generated/makemore/makemore.grad.ir', write(text)]);
    expect(r).toEqual({ code: 0, out: '', err: '' });
  });

  it('prints only the instruction that changed (exit 1)', async () => {
    const a = `graph backward m {
  %x: f32[4] = fwd {name="x"}
  %t1: f32[] = const {data=[2]}
  %t2: f32[] = const {data=[3]}
  %t3: f32[4] = mul %x, %t1
  %t4: f32[4] = exp %t3
  %t5: f32[4] = add %t4, %t2
  %dx: f32[4] = neg %t5
  return x=%dx
}
`;
    const fa = write(a);
    const fb = write(a.replace('mul %x, %t1', 'mul %x, %t2'));
    const r = await run(['diff', fa, fb]);
    expect(r.code).toBe(1);
    expect(r.out).toBe(`--- ${fa}
+++ ${fb}
@@ graph backward m @@
 %t1: f32[] = const {data=[2]}
 %t2: f32[] = const {data=[3]}
-%t3: f32[4] = mul %x, %t1
+%t3: f32[4] = mul %x, %t2
 %t4: f32[4] = exp %t3
 %t5: f32[4] = add %t4, %t2
`);
  });

  it('names each side in the hunk header, notes renames, and compares structure only with --ignore-names', async () => {
    const a = modelFile(`import { model } from 'graphc';
export default model('mlp', (g) => {
  const x = g.input('x', [4, 3]);
  const W = g.param('W', [3, 5]);
  const hid = x.matmul(W).tanh();
  return hid.square().mean();
});
`);
    const b = modelFile(`import { model } from 'graphc';
export default model('mlp2', (g) => {
  const x = g.input('x', [4, 3]);
  const W = g.param('W', [3, 5]);
  const pre = x.matmul(W);
  const hidden = pre.tanh();
  return hidden.square().mean();
});
`);
    const r = await run(['diff', a, b]);
    expect(r.code).toBe(1);
    const hunks = r.out.split(/^(?=@@ )/m);
    expect(hunks[1]!.split('\n')[0]).toBe('@@ -graph forward mlp +graph forward mlp2 @@');
    expect(hunks[1]).toContain('\n-%hid: f32[4,5] = tanh %t1\n');
    expect(hunks[1]).toContain('\n+%hidden: f32[4,5] = tanh %pre\n');
    expect(hunks[1]).toContain(
      '# renamed (the same structure): %hid → %hidden\n# only names differ: the structure is the same (--ignore-names compares structure only)\n',
    );
    expect(hunks[2]!.split('\n')[0]).toBe('@@ -graph backward mlp +graph backward mlp2 @@');
    expect(hunks[2]).toContain('# renamed (the same structure): %hid → %hidden, %dhid → %dhidden\n');
    expect(await run(['diff', a, b, '--ignore-names'])).toEqual({ code: 0, out: '', err: '' });
  });

  it("lists a folder's forward graph before its backward one", async () => {
    const dir = path.join(tmp(), 'neuron');
    mkdirSync(dir);
    for (const f of ['neuron.ir', 'neuron.grad.ir']) {
      const text = readFileSync(path.join(ROOT, 'generated/neuron', f), 'utf8');
      writeFileSync(path.join(dir, f), text.replace(/^(\s*return .*)$/m, '  %t99: f32[] = const {data=[7]}\n$1'));
    }
    const r = await run(['diff', 'generated/neuron', dir]);
    expect(r.code).toBe(1);
    expect(r.out.split('\n').filter((l) => l.startsWith('@@ graph'))).toEqual(['@@ graph forward neuron @@', '@@ graph backward neuron @@']);
  });

  it("explains a primed name: a temporary of B that matches none of A's", async () => {
    const a = `graph backward m {
  %x: f32[4] = fwd {name="x"}
  %t1: f32[] = const {data=[2]}
  %t2: f32[4] = mul %x, %t1
  %t3: f32[4] = exp %t2
  %dx: f32[4] = neg %t3
  return x=%dx
}
`;
    const fa = write(a);
    const fb = write(a.replace('exp %t2', 'tanh %t2'));
    const r = await run(['diff', fa, fb]);
    expect(r.code).toBe(1);
    expect(r.out).toBe(`--- ${fa}
+++ ${fb}
@@ graph backward m @@
 %t1: f32[] = const {data=[2]}
 %t2: f32[4] = mul %x, %t1
-%t3: f32[4] = exp %t2
-%dx: f32[4] = neg %t3
+%t3': f32[4] = tanh %t2
+%dx: f32[4] = neg %t3'
 return x=%dx
# %tN' is a temporary of the second graph that matches none of the first; primed so as not to be read as the first's %tN
`);
  });

  it('exits 2 on errors', async () => {
    expect(await run(['diff', 'examples/nope.ts', 'generated/makemore'])).toEqual({ code: 2, out: '', err: 'graphc diff: no such file or folder: examples/nope.ts\n' });
    const bad = write('graph backward x {\n  %a: f32[] = frobnicate\n  return\n}\n');
    const r = await run(['diff', bad, 'generated/makemore']);
    expect(r.code).toBe(2);
    expect(r.err).toContain(`${bad}:2:15: error: unknown op 'frobnicate'\n  2 |   %a: f32[] = frobnicate\n    |               ^^^^^^^^^^\n`);
  });
});

describe('graphc build --check', () => {
  it('fails on a hand-edited generated file, listing it with a diff', async () => {
    const dir = path.join(tmp(), 'neuron');
    mkdirSync(dir);
    for (const f of ['neuron.ir', 'neuron.grad.ir', 'neuron.ts', 'neuron.js', 'neuron.wasm.ts', 'neuron.wasm.js', 'package.json']) copyFileSync(path.join(ROOT, 'generated/neuron', f), path.join(dir, f));
    expect((await run(['build', 'examples/neuron.ts', '--out', dir, '--check'])).code).toBe(0);
    const js = path.join(dir, 'neuron.js');
    writeFileSync(js, readFileSync(js, 'utf8').replace('ds3[0] = ', 'ds3[0] = 0.5 * '));
    const r = await run(['build', 'examples/neuron.ts', '--out', dir, '--check']);
    expect(r.code).toBe(1);
    expect(r.err).toBe(`graphc build --check: 1 stale file(s) in ${dir}: neuron.js\n  fix: run graphc build examples/neuron.ts\n`);
    expect(r.out).toContain(`--- ${js} (on disk)\n+++ ${js} (rebuilt)\n`);
    expect(r.out).toMatch(/^-.*ds3\[0\] = 0\.5 \* /m);
    expect(r.out).toMatch(/^\+.*ds3\[0\] = (?!0\.5)/m);
  });
});

describe('graphc check', () => {
  const masked = (s: string) => s.replace(/ +\d\.\d\de[-+]\d+/g, ' <err>');

  it.each(['neuron', 'makemore', 'twolayer', 'classifier'])('passes %s', async (name) => {
    const r = await run(['check', `examples/${name}.ts`, '--seed', '3']);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expectGolden(`cli/check-${name}.txt`, masked(r.out));
    for (const m of r.out.matchAll(/(\d\.\d\de[-+]\d+)\s+PASS/g)) expect(Number(m[1])).toBeLessThanOrEqual(1e-3);
  });

  it('fails (exit 1) where the gradient is not the two-sided derivative (relu at its kink)', async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('kink', (g) => {
  const x = g.param('x', [4], { init: 'zeros' });
  return x.relu().sum();
});
`);
    const r = await run(['check', file]);
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/^x +f32\[4\] +4 +5\.00e-1 +1\.00e\+0  FAIL$/m);
  });

  it('says why every row fails when the loss is not finite at the random inputs, and how to fix it', async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('logvar', (g) => {
  const w = g.param('w', [4]);
  const v = g.input('v', [4]);
  return w.mul(v.log()).sum();
});
`);
    const r = await run(['check', file]);
    expect(r.code).toBe(1);
    expect(r.out).toContain(
      "(the loss is NaN at these params and the random inputs (drawn from a standard normal, which may lie outside the model's domain: a variance below 0, a log of a negative), so no gradient can be checked: pass values the model is defined at with --inputs FILE or --params FILE)\n",
    );
    const ok = modelFile(`import { model } from 'graphc';
export default model('logvar', (g) => {
  const w = g.param('w', [4]);
  const v = g.input('v', [4]);
  return w.mul(v.mul(v).add(1).log()).sum();
});
`);
    const fine = await run(['check', ok]);
    expect(fine.code).toBe(0);
    expect(fine.out).not.toContain('the loss is');
  });

  it('holds what stopGradient stops at its value, as the backward pass does', async () => {
    const file = modelFile(`import { model } from 'graphc';
export default model('half', (g) => {
  const x = g.param('x', [4]);
  const scale = x.stopGradient();
  return x.mul(scale).sum();
});
`);
    const r = await run(['check', file]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain('(the finite differences hold what stopGradient stops at its value: scale (model.ts:4))\n');
    expect(r.out).toMatch(/^x +f32\[4\] +4 +\S+ +\S+  PASS$/m);
  });
});

describe('graphc check on the compiled float64 module', () => {
  // batchnorm with running statistics, dropout, a stopGradient and a custom gradient: each state
  // the finite differences must hold as the interpreter holds it
  const mix = `import { model } from 'graphc';
export default model('mix', (g) => {
  const x = g.input('x', [6, 5]);
  const W = g.param('W', [5, 4]);
  const gain = g.param('gain', [1, 4], { init: 'ones' });
  const bias = g.param('bias', [1, 4], { init: 'zeros' });
  const h = g.batchNorm(x.matmul(W), gain, bias, { momentum: 0.1 });
  const d = g.dropout(h.tanh(), 0.25);
  const soft = g.customGrad((a) => a.sigmoid(), ([a], y, dy) => [dy.mul(y).mul(y.neg().add(1))]);
  const held = d.stopGradient();
  return soft(d).mul(held).sum();
});
`;

  it.each([
    ['mix', () => modelFile(mix)],
    ['twolayer', () => path.join(ROOT, 'examples/twolayer.ts')],
    ['makemore_running', () => path.join(ROOT, 'examples/makemore_running.ts')],
  ])('takes the same finite differences as the float64 interpreter (%s)', async (_name, file) => {
    const f = file();
    const compiled = await gradCheck(f, { seed: 3 });
    const interp = await gradCheck(f, { seed: 3, reference: 'interpreter' });
    expect(compiled.table.split('\n')[0]).toMatch(/finite differences of the model compiled in float64$/);
    expect(interp.table.split('\n')[0]).toMatch(/finite differences of the float64 interpreter$/);
    expect(compiled.rows.map((r) => r.param)).toEqual(interp.rows.map((r) => r.param));
    compiled.rows.forEach((c, k) => {
      const i = interp.rows[k]!;
      expect(c.coords).toEqual(i.coords);
      const scale = Math.max(1e-3, ...Array.from(i.fd, Math.abs));
      for (let j = 0; j < c.fd.length; j++) expect(Math.abs(c.fd[j]! - i.fd[j]!) / scale).toBeLessThanOrEqual(1e-6);
      expect(Math.abs(c.maxRel - i.maxRel)).toBeLessThanOrEqual(1e-6);
      expect(c.pass).toBe(i.pass);
    });
    expect(compiled.rows.every((r) => r.pass)).toBe(true);
  });

  it('takes the same finite differences on worker threads as in this thread', async () => {
    const f = modelFile(mix);
    const one = await gradCheck(f, { seed: 5, threads: 1 });
    const seen: string[] = [];
    const two = await gradCheck(f, { seed: 5, threads: 2, progress: (p) => seen.push(`${p.param} ${p.done}/${p.total}`) });
    expect(two.table).toBe(one.table);
    two.rows.forEach((r, k) => expect(Array.from(r.fd)).toEqual(Array.from(one.rows[k]!.fd)));
    // every coordinate reported once, each param counting up to its total
    expect(seen).toHaveLength(two.rows.reduce((n, r) => n + r.checked, 0));
    for (const r of two.rows) expect(seen).toContain(`${r.param} ${r.checked}/${r.checked}`);
  });

  it('differentiates through a custom gradient: a right rule passes, a wrong one fails', async () => {
    const src = (k: number) => `import { model } from 'graphc';
export default model('cg', (g) => {
  const x = g.param('x', [4]);
  const th = g.customGrad((a) => a.tanh(), ([a], y, dy) => [dy.mul(y.square().neg().add(${k}))]);
  return th(x).square().sum();
});
`;
    const right = await run(['check', modelFile(src(1))]);
    expect(right.code).toBe(0);
    expect(right.out).not.toContain('stopGradient');
    expect(right.out).toMatch(/^x +f32\[4\] +4 +\S+ +\S+  PASS$/m);
    const wrong = await run(['check', modelFile(src(2))]);
    expect(wrong.code).toBe(1);
    expect(wrong.out).toMatch(/^x +f32\[4\] +4 +\S+ +\S+  FAIL$/m);
  });

  it('reports progress after each coordinate; the terminal line is throttled and cleared', async () => {
    const seen: Progress[] = [];
    await gradCheck(path.join(ROOT, 'examples/neuron.ts'), { progress: (p) => seen.push(p) });
    expect(seen.map((p) => `${p.param} ${p.index}/${p.params} ${p.done}/${p.total}`)).toEqual(['w0 0/5 1/1', 'x0 1/5 1/1', 'w1 2/5 1/1', 'x1 3/5 1/1', 'w2 4/5 1/1']);
    let text = '';
    let t = 0;
    const line = progressLine((s) => (text += s), 100, () => t);
    line.note('checking m.ts: compiling…');
    for (const [at, done] of [[0, 1], [50, 2], [150, 3], [160, 4]] as const) {
      t = at;
      line.progress({ param: 'W1', index: 2, params: 8, done, total: 4 });
    }
    line.done();
    // 2 is within 100 ms of 1 and not the last; 4 is the last of W1
    expect(text).toBe('\r\x1b[Kchecking m.ts: compiling…' + ['1/4', '3/4', '4/4'].map((n) => `\r\x1b[Kchecking W1 (3/8 params): ${n}`).join('') + '\r\x1b[K');
  });
});

describe('graphc graph', () => {
  it('draws the neuron with the values and gradients of the DeepRob slide', async () => {
    const r = await run(['graph', 'examples/neuron.ts', '--values', '-o', path.join(tmp(), 'neuron.dot')]);
    expect(r.code).toBe(0);
    const svgFile = path.join(tmp(), 'neuron.svg');
    expect((await run(['graph', 'examples/neuron.ts', '--values', '-o', svgFile])).code).toBe(0);
    const svg = readFileSync(svgFile, 'utf8');
    const labels = [...svg.matchAll(/>([^<]*\d\.\d\d)</g)].map((m) => m[1]!.replace('&#45;', '-'));
    // forward 0.73 out of the sigmoid, gradient 0.20 into it; the inputs' gradients of the slide
    for (const n of ['0.73', '1.00', '0.20', '-0.20', '0.39', '-0.39', '-0.59']) expect(labels).toContain(n);
  });

  it('writes DOT (golden) and PNG', async () => {
    for (const [name, flags] of [['neuron', ['--values']], ['makemore', []]] as const) {
      const dot = path.join(tmp(), `${name}.dot`);
      expect((await run(['graph', `examples/${name}.ts`, ...flags, '-o', dot])).code).toBe(0);
      expectGolden(`cli/graph-${name}.dot`, readFileSync(dot, 'utf8'));
    }
    const png = path.join(tmp(), 'neuron.png');
    expect((await run(['graph', 'examples/neuron.ts', '--values', '-o', png])).code).toBe(0);
    expect([...readFileSync(png).subarray(0, 4)]).toEqual([0x89, 0x50, 0x4e, 0x47]);
  });
});

describe('graphc graph and check: sizes, numbers, the optimised graph', () => {
  const mlp = `import { model } from 'graphc';
export default model('smlp', (g) => {
  const x = g.input('x', ['B', 3]);
  const W = g.param('W', [3, 4], { scale: 0.001 });
  const h = x.matmul(W).tanh();
  const p = g.softmax(h);
  return p.mul(1 / 9).sum();
});
`;

  it('states the size a symbolic dimension got, takes --dim, summarises large tensors, prints small numbers with significant digits', async () => {
    const file = modelFile(mlp);
    const dot = path.join(tmp(), 'm.dot');
    const r = await run(['graph', file, '--values', '-o', dot]);
    expect(r).toEqual({ code: 0, out: `wrote ${dot}\n`, err: 'graphc graph: symbolic dimensions bound to B = 3 (--dim B=N to choose)\n' });
    let text = readFileSync(dot, 'utf8');
    expect(text).toContain('  label="symbolic dimensions bound to B = 3 (--dim B=N to choose)";\n');
    expect(text).toMatch(/label=<<font color="darkgreen">min -?\d\.\d\d mean -?\d\.\d\d max -?\d\.\d\d<\/font>/);
    // 1/9 as a constant, and W's gradient of about 1e-3 with two significant digits
    expect(text).toContain('[label="0.111111", shape=plaintext]');
    const r32 = await run(['graph', file, '--values', '--dim', 'B=32', '--max-values', '12', '-o', dot]);
    expect(r32.err).toBe('graphc graph: symbolic dimensions bound to B = 32\n');
    text = readFileSync(dot, 'utf8');
    // W's 12 values (scale 0.001) with two significant digits
    const w = /v1 -> v\d+ \[label=<<font color="darkgreen">\[([^\]]*)\]<\/font><br\/><font color="red">\[([^\]]*)\]/.exec(text);
    expect(w).not.toBeNull();
    expect(w![1]!.split(', ')).toHaveLength(12);
    for (const x of w![1]!.split(', ')) expect(x).toMatch(/^-?(\d\.\dde-\d|0\.\d\d+|0)$/);
    expect(await run(['graph', file, '--dim', 'T=4'])).toEqual({ code: 2, out: '', err: 'graphc: --dim T: the model has no symbolic dimension T (its dimensions: B)\n' });
    expect((await run(['graph', file, '--dim', 'B=x'])).err).toBe('graphc graph: --dim needs NAME=SIZE with a positive size, e.g. --dim B=32, got B=x\n');
  });

  it('check says what it bound a symbolic dimension to, and takes --dim', async () => {
    const file = modelFile(mlp);
    const r = await run(['check', file, '--dim', 'B=5']);
    expect(r.code).toBe(0);
    expect(r.out.split('\n')[2]).toBe('(symbolic dimensions bound to B = 5)');
    expect((await run(['check', file])).out.split('\n')[2]).toBe('(symbolic dimensions bound to B = 3 (--dim B=N to choose))');
  });

  it('draws the optimised graph with fused groups as boxes', async () => {
    const dot = path.join(tmp(), 'm.dot');
    expect((await run(['graph', 'examples/makemore.ts', '--optimized', '-o', dot])).code).toBe(0);
    const text = readFileSync(dot, 'utf8');
    expect(text).toMatch(/subgraph cluster_g\d+ \{\n {4}label="fused \w+ group g\d+";/);
    expect(text).toContain('\\nsoftmax"');
    expect(text).not.toContain('\\nexp"');
  });
});

describe('graphc graph --values of a model with buffers', () => {
  const file = () =>
    modelFile(`import { model } from 'graphc';
export default model('bn', (g) => {
  const x = g.input('x', [4, 3]);
  const gain = g.param('gain', [1, 3], { init: 'ones' });
  const bias = g.param('bias', [1, 3], { init: 'zeros' });
  const h = g.batchNorm(x, gain, bias, { momentum: 0.1 });
  return h.square().mean();
});
`);
  const edgesFrom = (dot: string, label: string) => {
    const v = new RegExp(`^\\s*(v\\d+) \\[label="${label}\\\\nbuffer"`, 'm').exec(dot)![1];
    return [...dot.matchAll(new RegExp(`^\\s*${v} -> \\w+ \\[label=<<font color="darkgreen">([^<]*)<`, 'gm'))].map((m) => m[1]);
  };

  it('evaluates with the buffers initBuffers() gives (running means 0, variances 1)', async () => {
    const { dot } = await graphDot(file(), { values: true });
    expect(edgesFrom(dot, 'h_running_mean').length).toBeGreaterThan(0);
    for (const l of edgesFrom(dot, 'h_running_mean')) expect(l).toBe('[0, 0, 0]');
    for (const l of edgesFrom(dot, 'h_running_var')) expect(l).toBe('[1.00, 1.00, 1.00]');
    const r = await run(['graph', 'examples/makemore_running.ts', '--values', '-o', path.join(tmp(), 'm.dot')]);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
  });

  it('takes the buffers from --params when the file has them', async () => {
    const params = { file: 'p.json', values: { 'h.running_mean': { data: [5, 6, 7] } } };
    const { dot } = await graphDot(file(), { values: true, params });
    for (const l of edgesFrom(dot, 'h_running_mean')) expect(l).toBe('[5.00, 6.00, 7.00]');
    for (const l of edgesFrom(dot, 'h_running_var')) expect(l).toBe('[1.00, 1.00, 1.00]');
  });
});

describe('graphc graph of a large model', () => {
  it('draws a box per loop iteration holding the helper call it makes (an 8-step RNN)', async () => {
    const { dot } = await graphDot(path.join(ROOT, 'test/fixtures/graph/rnn.ts'));
    expect(dot).toContain('rankdir=TB;');
    expect(dot).toContain('size="40,1000";');
    const labels = [...dot.matchAll(/^\s*label="((?:loop|cell)[^"]*)";$/gm)].map((m) => m[1]);
    expect(labels).toEqual(Array.from({ length: 8 }, (_x, t) => [`loop rnn.ts:26, iteration ${t}`, 'cell(…) rnn.ts:27']).flat());
    // each step's cell holds its own gate: the sigmoid of step t is inside the box of step t
    const step3 = dot.slice(dot.indexOf('label="loop rnn.ts:26, iteration 3"'), dot.indexOf('label="loop rnn.ts:26, iteration 4"'));
    expect(step3).toMatch(/label="z_3\\nσ"/);
    // params declared outside any helper or loop are outside the boxes
    expect(dot.slice(0, dot.indexOf('subgraph cluster_s'))).toMatch(/label="Wx\\nparam f32\[5,5\]"/);
  });

  it('puts each call of a helper in a box of its own, also through xs.map(f)', async () => {
    const file = modelFile(`import { model } from 'graphc';
import type { Tensor } from 'graphc';
export default model('mapped', (g) => {
  const W = g.param('W', [3, 3]);
  const layer = (t: Tensor): Tensor => t.matmul(W).tanh();
  const xs = [g.input('a', [2, 3]), g.input('b', [2, 3])];
  const hs = xs.map((x) => layer(x).exp());
  return hs[0]!.add(hs[1]!).sum();
});
`);
    const { dot } = await graphDot(file);
    const labels = [...dot.matchAll(/^\s*label="([^"]*)";$/gm)].map((m) => m[1]);
    // the callback's box holds its exp and the box of the layer call it makes
    expect(labels).toEqual(['function(…) model.ts:7', 'layer(…) model.ts:7', 'function(…) model.ts:7 #2', 'layer(…) model.ts:7']);
  });
});

describe('the emitted gradient code', () => {
  it('names the forms users read (golden): fan-out contributions, constant gradients, reshapes, accumulators', async () => {
    const { c } = await buildAndImport(path.join(ROOT, 'test/fixtures/naming/forms.ts'));
    const ts = c.files.find((f) => f.name === 'forms.ts')!.content as string;
    const gpu = c.files.find((f) => f.name === 'forms.gpu.ts')!.content as string;
    expectGolden('naming/forms.grad.ir', c.files.find((f) => f.name === 'forms.grad.ir')!.content as string);
    expectGolden('naming/forms.ts', ts);
    expectGolden('naming/forms.gpu.ts', gpu);
    // h has three uses: its gradient is the sum of one contribution per use, named after it, and
    // the running sum is the gradient so far (dh += ...), in both modules
    for (const code of [ts, gpu]) {
      expect(code).toContain('// dh_acc = dh_3 + dh_2   fan-out: dh += the gradient through each use');
      expect(code).toMatch(/\/\/ dh = dh_acc \+ (dh_1|dy @ Wy\.T)   fan-out: dh \+= the gradient through each use/);
      expect(code).not.toMatch(/%t\d+: f32\[8,3\] = add %dh/);
    }
    // the mean's constant gradient is a literal in the loop that uses it, not an array of copies
    expect(ts).toContain('dy[i] = 0.0625 * (y[i] * 2);'); // the loops over [8, 2] merged into one of 16
    expect(ts).not.toContain('Float32Array.from([0.0625');
    // the ones of z.sum() and v.sum(), read by products, are the literal 1 in both modules
    expect(ts).toContain('// dz: f32[8,3], every element 1 (the code reads the literal)');
    expect(ts).toMatch(/const _a0 = 1,\s+_a1 = 1/);
    for (const code of [ts, gpu]) expect(code).not.toMatch(/Float32Array\.from\(\[1, 1/);
    expect(gpu).toContain('_acc0 += 1 * Wv[_rest0 * 2 + _r1];');
    // a reshape of a temporary is its source under the source's name in the GPU.js pipelines;
    // a named one (a gradient) says it is a view
    expect(gpu).toContain('// t4: a view of t3 as f32[4,6] (the same array)');
    expect(gpu).toContain('const v = kernel_v(t3, Wv);');
    expect(gpu).toContain('const dt3 = dt4; // a view of dt4 as f32[8,3] (the same array)');
    expect(gpu).not.toMatch(/const t\d+ = t\d+;/);
    expect(ts).toContain('t4: buffers[9], // a view of t3');
    // a loop-local accumulator never shadows the arena's _acc arrays
    expect(ts).not.toMatch(/let _acc\d/);
  });

  it('says which chain rule each gradient statement applies, and where', () => {
    const ts = readFileSync(path.join(ROOT, 'generated/makemore/makemore.ts'), 'utf8');
    for (const line of [
      "// dhpreact = dh * (1 - h²)   tanh'  (makemore.ts:54)",
      "// dlogits = (probs - onehot(Yb, 27)) * 0.03125   xent'  (makemore.ts:65)",
      "// dh = dlogits @ W2.T   matmul'  (makemore.ts:56)",
      "// dC = scatter_add(Xb, demb)   gather'  (makemore.ts:41)",
    ])
      expect(ts).toContain(line);
  });
});

describe('value names', () => {
  it('names what a helper returns after the variable its caller assigns it to, through nested helpers and called closures', async () => {
    const file = modelFile(`import { model } from 'graphc';
import type { Tensor } from 'graphc';
export default model('helpers', (g) => {
  const x = g.param('x', [4, 3]);
  const W = g.param('W', [3, 3]);
  const dense = (t: Tensor): Tensor => t.matmul(W).tanh();
  function twice(t: Tensor): Tensor {
    return dense(dense(t));
  }
  const scaled = (k: number) => (t: Tensor) => (k > 1 ? t.mul(k) : t.mul(0.5));
  const layers = [dense];
  const h = twice(x);
  const hs = scaled(2)(h);
  const viaIndex = layers[0]!(hs);
  const mapped = [hs].map((t) => dense(t.neg()));
  class Layer {
    constructor(private readonly input: Tensor) {}
    get out(): Tensor {
      return this.input.exp();
    }
  }
  const both = g.concat([new Layer(hs).out, viaIndex], 0);
  return mapped[0]!.add(viaIndex).sum().add(both.sum());
});
`);
    const { c } = await buildAndImport(file);
    const text = printGraph(c.fwd, { locs: false });
    // twice(x) returns dense(dense(x)): the outer tanh is h, the inner one a temporary
    expect(text.match(/%\w+(?=: f32\[4,3\] = tanh )/g)).toEqual([expect.stringMatching(/^%t\d+$/), '%h', '%viaIndex', expect.stringMatching(/^%t\d+$/)]);
    expect(text).toMatch(/%hs: f32\[4,3\] = mul %h, %t\d+\n/);
    // neither a callback that Array.prototype.map calls nor a getter is followed back to the
    // variable of the expression around it (`mapped`, `both`)
    const names = c.fwd.insts.map((i) => c.fwd.value(i.result).name);
    expect(names.filter((n) => !/^t\d+$/.test(n)).sort()).toEqual(['W', 'both', 'h', 'hs', 'viaIndex', 'x']);
    expect(text).toMatch(/%both: f32\[8,3\] = concat %t\d+, %viaIndex \{axis=0\}/);
  });
});

