// The makemore MLP of examples/makemore_composite.ts with batchnorm running statistics, as the
// lecture's `bnmean_running` and torch.nn.BatchNorm1d keep them: `g.batchNorm(..., { momentum })`
// gives the module the buffers `hpreact.running_mean` and `hpreact.running_var`, which every
// training call (valueAndGrad, trainStep, forward with { train: true }) moves towards the batch's
// statistics, and which forward in evaluation normalises with (no calibration pass needed).
// Dropout (`{ dropout: p }`, default 0: off, the lecture's network) zeroes hidden units in training.
import { model } from 'graphc';
import { LECTURE } from './makemore.ts';
import type { AnyBatchConfig } from './makemore.ts';

export function makemoreRunning(cfg: AnyBatchConfig = LECTURE, name = 'makemore_running', opts: { momentum?: number; dropout?: number } = {}) {
  const { batch: n, block, nEmbd, nHidden, vocab } = cfg;
  const { momentum = 0.001, dropout = 0 } = opts;
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
    const hpreact = g.batchNorm(hprebn, bngain, bnbias, { momentum }); // buffers hpreact.running_mean, hpreact.running_var
    const h = g.dropout(hpreact.tanh(), dropout);
    const logits = h.matmul(W2).add(b2);
    const loss = g.crossEntropy(logits, Yb);
    const probs = g.softmax(logits);
    return { loss, probs };
  });
}

export default makemoreRunning();
