// Data C182, lecture 8: the network Linear -> ReLU -> Linear -> SoftMax -> CrossEntropyLoss, whose
// backward pass the lecture builds from per-layer recipes (linear_backwards, relu_backward,
// softmax_loss).
import { model } from 'graphc';

const n = 64; // batch size
const d = 32; // input dimension
const h = 64; // hidden units
const nc = 10; // classes

export default model('classifier', (g) => {
  // Linear(1): Weight.shape = [d, h], bias.shape = [h]; Linear(2): [h, nc] and [nc]
  const W1 = g.param('W1', [d, h], { scale: Math.sqrt(2 / d) });
  const b1 = g.param('b1', [h], { init: 'zeros' });
  const W2 = g.param('W2', [h, nc], { scale: Math.sqrt(1 / h) });
  const b2 = g.param('b2', [nc], { init: 'zeros' });
  const x = g.input('x', [n, d]);
  const target_classes = g.input('target_classes', [n], 'i32');

  const affine1 = x.matmul(W1).add(b1);
  const relu1 = affine1.relu();
  const logits = relu1.matmul(W2).add(b2);
  const loss = g.crossEntropy(logits, target_classes);
  return { loss, logits };
});
