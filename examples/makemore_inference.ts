// The makemore MLP of examples/makemore.ts at inference time, as the lecture evaluates and samples
// it: batchnorm normalises with statistics calibrated once on the whole training set (`bnmean`,
// `bnvar`, inputs here) instead of each batch's own. The params have the training model's names
// and shapes, so trained params pass straight in. `npm run demo` evaluates the dev and test
// splits with it and samples names from it.
import { model } from 'graphc';
import { LECTURE } from './makemore.ts';
import type { AnyBatchConfig } from './makemore.ts';

/** With a symbolic batch ('B'), one build serves every batch size. */
export function makemoreInference(cfg: AnyBatchConfig = LECTURE, name = 'makemore_inference') {
  const { batch: n, block, nEmbd, nHidden, vocab } = cfg;
  return model(name, (g) => {
    const C = g.param('C', [vocab, nEmbd]);
    const W1 = g.param('W1', [nEmbd * block, nHidden], { scale: 5 / 3 / Math.sqrt(nEmbd * block) });
    const b1 = g.param('b1', [nHidden], { scale: 0.1 });
    const W2 = g.param('W2', [nHidden, vocab], { scale: 0.1 });
    const b2 = g.param('b2', [vocab], { scale: 0.1 });
    const bngain = g.param('bngain', [1, nHidden], { init: 'ones' });
    const bnbias = g.param('bnbias', [1, nHidden], { init: 'zeros' });
    // the training set's batch statistics of hprebn (mean, and variance with Bessel's correction)
    const bnmean = g.input('bnmean', [1, nHidden]);
    const bnvar = g.input('bnvar', [1, nHidden]);
    const Xb = g.input('Xb', [n, block], 'i32');
    const Yb = g.input('Yb', [n], 'i32');

    const emb = g.gather(C, Xb);
    const embcat = emb.reshape([n, -1]);
    const hprebn = embcat.matmul(W1).add(b1);
    const hpreact = bngain.mul(hprebn.sub(bnmean)).mul(bnvar.add(1e-5).pow(-0.5)).add(bnbias);
    const h = hpreact.tanh();
    const logits = h.matmul(W2).add(b2);
    const loss = g.crossEntropy(logits, Yb);
    const probs = g.softmax(logits);
    return { loss, probs };
  });
}

export default makemoreInference();
