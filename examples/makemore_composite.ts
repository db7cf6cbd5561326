// The makemore MLP of examples/makemore.ts written with graphc's composite ops: g.batchNorm and
// g.crossEntropy instead of the lecture's step-by-step forward pass.
import { model } from 'graphc';
import { LECTURE } from './makemore.ts';
import type { AnyBatchConfig } from './makemore.ts';

export function makemoreComposite(cfg: AnyBatchConfig = LECTURE, name = 'makemore_composite') {
  const { batch: n, block, nEmbd, nHidden, vocab } = cfg;
  return model(name, (g) => {
    const C = g.param('C', [vocab, nEmbd]);
    const W1 = g.param('W1', [nEmbd * block, nHidden], { scale: 5 / 3 / Math.sqrt(nEmbd * block) });
    const b1 = g.param('b1', [nHidden], { scale: 0.1 });
    const W2 = g.param('W2', [nHidden, vocab], { scale: 0.1 });
    const b2 = g.param('b2', [vocab], { scale: 0.1 });
    const bngain = g.param('bngain', [1, nHidden], { init: 'ones' });
    const bnbias = g.param('bnbias', [1, nHidden], { init: 'zeros' });
    const Xb = g.input('Xb', [n, block], 'i32');
    const Yb = g.input('Yb', [n], 'i32');

    const emb = g.gather(C, Xb);
    const embcat = emb.reshape([n, -1]);
    const hprebn = embcat.matmul(W1).add(b1);
    const hpreact = g.batchNorm(hprebn, bngain, bnbias);
    const h = hpreact.tanh();
    const logits = h.matmul(W2).add(b2);
    const loss = g.crossEntropy(logits, Yb);
    const probs = g.softmax(logits);
    return { loss, probs };
  });
}

export default makemoreComposite();
