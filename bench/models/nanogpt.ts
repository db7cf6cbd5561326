// nanoGPT's model (karpathy/nanoGPT, model.py) at the size its README trains on a CPU:
// batch 12, block 64, 4 layers, 4 heads, 128 channels, the 65 characters of Shakespeare, dropout 0,
// bias False (no biases in the linear layers and layer norms, nanoGPT's default), the token
// embedding tied to the head (logits = x · wteᵀ). As in model.py: one linear layer c_attn makes
// q, k and v side by side, split by narrowing its last axis; the MLP is c_fc, GELU (its tanh form,
// torch's `approximate='tanh'`), c_proj. About 0.80 M params. The bench's realistic section
// (bench/realistic.mjs) times one training step of it against PyTorch (bench/realistic_torch.py).
import { model } from 'graphc';
import type { Tensor } from 'graphc';

export const NANOGPT_CPU = { batch: 12, block: 64, nLayer: 4, nHead: 4, nEmbd: 128, vocab: 65 };

export function nanogpt(cfg = NANOGPT_CPU, name = 'nanogpt') {
  const { batch: n, block: t, nLayer, nHead: nh, nEmbd: c, vocab } = cfg;
  const hs = c / nh;
  return model(name, (g) => {
    // nanoGPT's init: normal(0, 0.02), the residual projections (c_proj) 0.02 / √(2 · nLayer)
    const linear = (pname: string, fanIn: number, fanOut: number, std = 0.02) => {
      const W = g.param(`${pname}_W`, [fanIn, fanOut], { scale: std });
      return (x: Tensor): Tensor => x.matmul(W);
    };
    const layerNorm = (pname: string) => {
      const gain = g.param(`${pname}_g`, [c], { init: 'ones' });
      return (x: Tensor): Tensor => g.layerNorm(x, gain, 0);
    };
    /** GELU, tanh form: 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))). */
    const gelu = (x: Tensor): Tensor => x.mul(0.5).mul(x.pow(3).mul(0.044715).add(x).mul(Math.sqrt(2 / Math.PI)).tanh().add(1));
    /** [n, t, c] → [n, nh, t, hs]. */
    const heads = (x: Tensor): Tensor => x.reshape([n, t, nh, hs]).transpose([0, 2, 1, 3]);
    const mask = g.const(Array.from({ length: t }, (_, i) => Array.from({ length: t }, (_, j) => (j <= i ? 0 : -1e9))));
    const projStd = 0.02 / Math.sqrt(2 * nLayer);

    const wte = g.param('wte', [vocab, c], { scale: 0.02 });
    const wpe = g.param('wpe', [t, c], { scale: 0.02 });
    const X = g.input('X', [n, t], 'i32');
    const Y = g.input('Y', [n, t], 'i32');

    let x = g.gather(wte, X).add(wpe); // [n, t, c]
    for (let l = 0; l < nLayer; l++) {
      const ln1 = layerNorm(`h${l}_ln1`);
      const cAttn = linear(`h${l}_attn`, c, 3 * c);
      const attnProj = linear(`h${l}_attnproj`, c, c, projStd);
      const ln2 = layerNorm(`h${l}_ln2`);
      const cFc = linear(`h${l}_fc`, c, 4 * c);
      const mlpProj = linear(`h${l}_mlpproj`, 4 * c, c, projStd);

      const qkv = cAttn(ln1(x)); // [n, t, 3c]
      const q = heads(qkv.narrow(2, 0, c));
      const k = heads(qkv.narrow(2, c, c));
      const v = heads(qkv.narrow(2, 2 * c, c));
      const scores = q.matmul(k.transpose()).mul(hs ** -0.5).add(mask); // [n, nh, t, t]
      const att = g.softmax(scores, -1);
      const y = att.matmul(v).transpose([0, 2, 1, 3]).reshape([n, t, c]);
      x = x.add(attnProj(y));
      x = x.add(mlpProj(gelu(cFc(ln2(x)))));
    }
    const lnf = layerNorm('lnf')(x);
    const logits = lnf.matmul(wte.transpose()); // weight tying: the head is wteᵀ
    return { loss: g.crossEntropy(logits, Y), logits };
  });
}

export default nanogpt();
