// A tiny GPT, as in Karpathy's "Let's build GPT: from scratch, in code, spelled out": token and
// position embeddings, then pre-norm transformer blocks (layer norm, causal multi-head
// self-attention, layer norm, a ReLU MLP, each added back to the residual stream), a final layer
// norm and a linear head. The loss is the mean cross-entropy of every position's next character.
// Written with helper functions, as such models are: a value a helper returns is named after the
// variable its caller assigns it to (`const query = heads(wq(ln1))` names the heads `query`).
import { model } from 'graphc';
import type { Dim, Tensor } from 'graphc';

export interface GptConfig {
  /** A number, or a name ('B') for one build that serves every batch size. */
  batch: Dim;
  block: number;
  nEmbd: number;
  nHead: number;
  nLayer: number;
  vocab: number;
}

export const GPT: GptConfig = { batch: 16, block: 8, nEmbd: 32, nHead: 4, nLayer: 2, vocab: 27 };

export function gpt(cfg: GptConfig = GPT, name = 'gpt') {
  const { batch: n, block: t, nEmbd: c, nHead: nh, nLayer, vocab } = cfg;
  if (c % nh !== 0) throw new Error(`gpt: nEmbd (${c}) must be a multiple of nHead (${nh})`);
  const hs = c / nh; // head size
  return model(name, (g) => {
    /** y = x @ W (+ b), W initialised as randn / √fan_in. */
    const linear = (pname: string, fanIn: number, fanOut: number, bias = true) => {
      const W = g.param(`${pname}_W`, [fanIn, fanOut], { scale: 1 / Math.sqrt(fanIn) });
      const b = bias ? g.param(`${pname}_b`, [fanOut], { init: 'zeros' }) : undefined;
      return (x: Tensor): Tensor => (b ? x.matmul(W).add(b) : x.matmul(W));
    };
    /** Normalises each position's channels to mean 0 and variance 1, then scales and shifts. */
    const layerNorm = (pname: string) => {
      const gain = g.param(`${pname}_g`, [c], { init: 'ones' });
      const bias = g.param(`${pname}_b`, [c], { init: 'zeros' });
      return (x: Tensor): Tensor => {
        const mu = x.mean(-1, true);
        const xc = x.sub(mu);
        const variance = xc.square().mean(-1, true);
        return xc.mul(variance.add(1e-5).pow(-0.5)).mul(gain).add(bias);
      };
    };
    /** [n, t, c] → [n, nh, t, hs]: the channels split into heads, each head a batch of its own. */
    const heads = (x: Tensor): Tensor => x.reshape([n, t, nh, hs]).transpose([0, 2, 1, 3]);
    // the causal mask: position i attends to positions j ≤ i (−1e9 before the softmax elsewhere)
    const mask = g.const(Array.from({ length: t }, (_, i) => Array.from({ length: t }, (_, j) => (j <= i ? 0 : -1e9))));

    const wte = g.param('wte', [vocab, c]);
    const wpe = g.param('wpe', [t, c]);
    const X = g.input('X', [n, t], 'i32');
    const Y = g.input('Y', [n, t], 'i32'); // X shifted left by one: the next characters

    let x = g.gather(wte, X).add(wpe); // [n, t, c]
    for (let l = 0; l < nLayer; l++) {
      const norm1 = layerNorm(`ln1_${l}`);
      const wq = linear(`q${l}`, c, c, false);
      const wk = linear(`k${l}`, c, c, false);
      const wv = linear(`v${l}`, c, c, false);
      const proj = linear(`proj${l}`, c, c);
      const norm2 = layerNorm(`ln2_${l}`);
      const fc = linear(`fc${l}`, c, 4 * c);
      const fcOut = linear(`fcout${l}`, 4 * c, c);

      const ln1 = norm1(x);
      const query = heads(wq(ln1)); // [n, nh, t, hs]
      const key = heads(wk(ln1));
      const value = heads(wv(ln1));
      const scores = query.matmul(key.transpose()).mul(hs ** -0.5).add(mask); // [n, nh, t, t]
      const att = g.softmax(scores, -1);
      const attOut = att.matmul(value).transpose([0, 2, 1, 3]).reshape([n, t, c]); // heads side by side
      x = x.add(proj(attOut));
      const ln2 = norm2(x);
      const hidden = fc(ln2).relu(); // [n, t, 4c]
      x = x.add(fcOut(hidden));
    }
    const lnf = layerNorm('lnf')(x);
    const logits = linear('head', c, vocab)(lnf); // [n, t, vocab]
    const loss = g.crossEntropy(logits, Y);
    return { loss, logits };
  });
}

export default gpt();
