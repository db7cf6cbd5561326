// The makemore MLP of the lecture notes (Karpathy, "Building makemore Part 4: becoming a backprop
// ninja"), written out long-form exactly as there: embedding, linear, batchnorm spelled out with
// Bessel's correction, tanh, linear, logit-max subtraction, softmax by exp/sum/pow(-1), log, pick,
// mean. graphc derives the backward pass that the lecture writes by hand.
import { model, type Dim, type ModelOutputs } from 'graphc';

export interface MakemoreConfig {
  /** Batch size (the lecture's n). */
  readonly batch: number;
  /** Context length: how many characters predict the next one. */
  readonly block: number;
  /** Dimensionality of the character embedding vectors. */
  readonly nEmbd: number;
  /** Number of neurons in the hidden layer. */
  readonly nHidden: number;
  /** Number of characters: 26 letters and '.'. */
  readonly vocab: number;
}

export const LECTURE: MakemoreConfig = { batch: 32, block: 3, nEmbd: 10, nHidden: 64, vocab: 27 };

/** `bnStats`: also output the batch statistics (calibrating batchnorm on a whole split, as in the lecture). */
export function makemore(cfg: MakemoreConfig = LECTURE, name = 'makemore', bnStats = false) {
  const { batch: n, block, nEmbd, nHidden, vocab } = cfg;
  return model(name, (g) => {
    const C = g.param('C', [vocab, nEmbd]);
    // Layer 1: Kaiming init for tanh, gain 5/3
    const W1 = g.param('W1', [nEmbd * block, nHidden], { scale: 5 / 3 / Math.sqrt(nEmbd * block) });
    const b1 = g.param('b1', [nHidden], { scale: 0.1 }); // useless because of BN, kept as in the lecture
    // Layer 2
    const W2 = g.param('W2', [nHidden, vocab], { scale: 0.1 });
    const b2 = g.param('b2', [vocab], { scale: 0.1 });
    // BatchNorm parameters
    const bngain = g.param('bngain', [1, nHidden], { init: 'ones' });
    const bnbias = g.param('bnbias', [1, nHidden], { init: 'zeros' });

    const Xb = g.input('Xb', [n, block], 'i32');
    const Yb = g.input('Yb', [n], 'i32');

    // forward pass, "chunkated" into smaller steps that are possible to backward one at a time
    const emb = g.gather(C, Xb); // embed the characters into vectors
    const embcat = emb.reshape([n, -1]); // concatenate the vectors
    // Linear layer 1
    const hprebn = embcat.matmul(W1).add(b1); // hidden layer pre-activation
    // BatchNorm layer
    const bnmeani = hprebn.sum(0, true).mul(1 / n);
    const bndiff = hprebn.sub(bnmeani);
    const bndiff2 = bndiff.pow(2);
    const bnvar = bndiff2.sum(0, true).mul(1 / (n - 1)); // note: Bessel's correction (dividing by n-1, not n)
    const bnvar_inv = bnvar.add(1e-5).pow(-0.5);
    const bnraw = bndiff.mul(bnvar_inv);
    const hpreact = bngain.mul(bnraw).add(bnbias);
    // Non-linearity
    const h = hpreact.tanh(); // hidden layer
    // Linear layer 2
    const logits = h.matmul(W2).add(b2); // output layer
    // cross entropy loss (same as F.cross_entropy(logits, Yb))
    const logit_maxes = logits.max(1, true).stopGradient();
    const norm_logits = logits.sub(logit_maxes); // subtract max for numerical stability
    const counts = norm_logits.exp();
    const counts_sum = counts.sum(1, true);
    const counts_sum_inv = counts_sum.pow(-1);
    const probs = counts.mul(counts_sum_inv);
    const logprobs = probs.log();
    const loss = g.pick(logprobs, Yb).mean().neg();
    const outputs: ModelOutputs = bnStats ? { loss, probs, bnmeani, bnvar } : { loss, probs };
    return outputs;
  });
}

export default makemore();

/** A config whose batch may be a symbolic dimension ('B'), for the networks written with graphc's ops
 * that take it (g.batchNorm, g.crossEntropy, mean); the long form above divides by its number. */
export type AnyBatchConfig = Omit<MakemoreConfig, 'batch'> & { readonly batch: Dim };
