// DeepRob lecture 6 / project 1: a two-layer ReLU network f(x) = W2·max(0, W1·x + b1) + b2,
// trained with the multiclass SVM (hinge) loss plus L2 regularisation of both weight matrices.
import { model } from 'graphc';

const N = 16; // examples in a batch
const D = 20; // input features
const H = 32; // hidden units
const C = 10; // classes
const reg = 1e-3; // regularisation strength

export default model('twolayer', (g) => {
  const W1 = g.param('W1', [D, H], { scale: 0.1 });
  const b1 = g.param('b1', [H], { init: 'zeros' });
  const W2 = g.param('W2', [H, C], { scale: 0.1 });
  const b2 = g.param('b2', [C], { init: 'zeros' });
  const X = g.input('X', [N, D]);
  const y = g.input('y', [N], 'i32');

  const hidden = X.matmul(W1).add(b1).relu();
  const scores = hidden.matmul(W2).add(b2);
  const data_loss = g.hingeLoss(scores, y);
  const reg_loss = W1.square().sum().add(W2.square().sum()).mul(reg);
  const loss = data_loss.add(reg_loss);
  return { loss, scores };
});
