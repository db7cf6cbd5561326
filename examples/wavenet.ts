// The hierarchical makemore of the lecture notes' sequel (Karpathy, "Building makemore Part 5:
// building a WaveNet"): 8 characters of context, embedded, then fused two at a time over three
// layers (FlattenConsecutive(2), Linear without bias, BatchNorm1d, Tanh), so that the tensors
// between layers are [batch, positions, channels] and the first two batchnorms average over the
// batch and the positions, as the lecture's BatchNorm1d does for 3-D input.
import { model } from 'graphc';
import type { AnyBatchConfig } from './makemore.ts';

export const WAVENET: AnyBatchConfig = { batch: 32, block: 8, nEmbd: 24, nHidden: 128, vocab: 27 };

/** `block` must be 8: three layers each halve the positions. */
export function wavenet(cfg: AnyBatchConfig = WAVENET, name = 'wavenet') {
  const { batch: n, block, nEmbd, nHidden, vocab } = cfg;
  if (block !== 8) throw new Error(`wavenet: block must be 8 (three layers of pairs), got ${block}`);
  return model(name, (g) => {
    const C = g.param('C', [vocab, nEmbd]);
    // Linear layers without bias (batchnorm follows), initialised as in the lecture: randn / √fan_in
    const W1 = g.param('W1', [2 * nEmbd, nHidden], { scale: 1 / Math.sqrt(2 * nEmbd) });
    const W2 = g.param('W2', [2 * nHidden, nHidden], { scale: 1 / Math.sqrt(2 * nHidden) });
    const W3 = g.param('W3', [2 * nHidden, nHidden], { scale: 1 / Math.sqrt(2 * nHidden) });
    const gain1 = g.param('gain1', [nHidden], { init: 'ones' });
    const bias1 = g.param('bias1', [nHidden], { init: 'zeros' });
    const gain2 = g.param('gain2', [nHidden], { init: 'ones' });
    const bias2 = g.param('bias2', [nHidden], { init: 'zeros' });
    const gain3 = g.param('gain3', [nHidden], { init: 'ones' });
    const bias3 = g.param('bias3', [nHidden], { init: 'zeros' });
    // the last layer less confident at initialisation (its weights scaled by 0.1)
    const W4 = g.param('W4', [nHidden, vocab], { scale: 0.1 / Math.sqrt(nHidden) });
    const b4 = g.param('b4', [vocab], { init: 'zeros' });

    const Xb = g.input('Xb', [n, block], 'i32');
    const Yb = g.input('Yb', [n], 'i32');

    const emb = g.gather(C, Xb); // [n, 8, 24]
    // FlattenConsecutive(2): consecutive pairs of positions side by side, [n, t, c] → [n, t/2, 2c]
    const x1 = emb.reshape([n, block / 2, 2 * nEmbd]); // [n, 4, 48]
    const hpre1 = x1.matmul(W1); // [n, 4, 128]
    const hbn1 = g.batchNorm(hpre1, gain1, bias1); // statistics over n·4 rows
    const h1 = hbn1.tanh();
    const x2 = h1.reshape([n, block / 4, 2 * nHidden]); // [n, 2, 256]
    const hpre2 = x2.matmul(W2); // [n, 2, 128]
    const hbn2 = g.batchNorm(hpre2, gain2, bias2); // statistics over n·2 rows
    const h2 = hbn2.tanh();
    const x3 = h2.reshape([n, 2 * nHidden]); // [n, 256]: the last pair, squeezed as in the lecture
    const hpre3 = x3.matmul(W3); // [n, 128]
    const hbn3 = g.batchNorm(hpre3, gain3, bias3);
    const h3 = hbn3.tanh();
    const logits = h3.matmul(W4).add(b4); // [n, 27]
    const loss = g.crossEntropy(logits, Yb);
    return { loss, logits };
  });
}

export default wavenet();
