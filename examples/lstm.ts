// A character-level LSTM (Hochreiter & Schmidhuber; the char-RNN of Karpathy's "The Unreasonable
// Effectiveness of Recurrent Neural Networks"), its time loop written with g.scan: the step is
// traced once, whatever the sequence length, and its gradient is a reverse scan (docs/dsl.md).
// `unrolled: true` writes the same model with a `for` loop, which the tests hold it against.
import { model, type Tensor } from 'graphc';

export interface LstmConfig {
  /** Sequences per batch. */
  readonly batch: number;
  /** Characters per sequence: the number of steps. */
  readonly steps: number;
  /** Dimensionality of the character embedding vectors. */
  readonly nEmbd: number;
  /** Size of the hidden state and of the cell. */
  readonly nHidden: number;
  /** Number of characters: 26 letters and '.'. */
  readonly vocab: number;
}

// 8 steps: until scans are emitted as loops (issue #32), an unrolled scan stacks its ys with a
// concat that reads one array per step, and the GPU.js module's WebGPU mode binds every array a
// kernel reads as a storage buffer (SwiftShader's adapter allows 10; beyond, pipeline creation fails)
export const CHAR_LSTM: LstmConfig = { batch: 16, steps: 8, nEmbd: 16, nHidden: 128, vocab: 27 };

export function lstm(cfg: LstmConfig = CHAR_LSTM, name = 'lstm', unrolled = false) {
  const { batch: n, steps, nEmbd, nHidden: H, vocab } = cfg;
  return model(name, (g) => {
    const C = g.param('C', [vocab, nEmbd]);
    // the four gates side by side: input, forget, cell candidate, output
    const Wx = g.param('Wx', [nEmbd, 4 * H], { scale: 1 / Math.sqrt(nEmbd) });
    const Wh = g.param('Wh', [H, 4 * H], { scale: 1 / Math.sqrt(H) });
    const b = g.param('b', [4 * H], { init: 'zeros' });
    const Wy = g.param('Wy', [H, vocab], { scale: 1 / Math.sqrt(H) });
    const by = g.param('by', [vocab], { init: 'zeros' });

    const X = g.input('X', [n, steps], 'i32'); // characters, batch-first
    const Y = g.input('Y', [n, steps], 'i32'); // the next character of each

    const emb = g.gather(C, X); // [n, steps, nEmbd]
    // one step: the new hidden state and cell from the old ones and this step's characters
    const cell = ([h, c]: readonly Tensor[], x: Tensor): [Tensor[], Tensor] => {
      const gates = x.matmul(Wx).add(h.matmul(Wh)).add(b);
      const i = gates.narrow(1, 0, H).sigmoid();
      const f = gates.narrow(1, H, H).sigmoid();
      const u = gates.narrow(1, 2 * H, H).tanh();
      const o = gates.narrow(1, 3 * H, H).sigmoid();
      const c2 = f.mul(c).add(i.mul(u));
      const h2 = o.mul(c2.tanh());
      return [[h2, c2], h2];
    };
    const h0 = g.const(0).reshape([1, 1]).expand([n, H]);
    let hs: Tensor; // [n, steps, H]
    if (unrolled) {
      let carry = [h0, h0];
      const out: Tensor[] = [];
      for (let t = 0; t < steps; t++) {
        const [next, h] = cell(carry, emb.narrow(1, t, 1).reshape([n, nEmbd]));
        carry = next;
        out.push(h);
      }
      hs = g.stack(out, 1);
    } else hs = g.scan(cell, [h0, h0], emb, { axis: 1 })[1];
    const logits = hs.reshape([n * steps, H]).matmul(Wy).add(by);
    const loss = g.crossEntropy(logits, Y.reshape([n * steps]));
    return { loss };
  });
}

export default lstm();
