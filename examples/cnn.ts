// A LeNet-style convolutional network on 28×28 digits (the MNIST digits of npm run demo:mnist):
// two stages of 5×5 convolution + ReLU + 2×2 max-pooling, then two linear layers, trained with
// cross-entropy. PyTorch's layout: images [N, 1, 28, 28], conv weights [out, in, kH, kW].
import { model } from 'graphc';
import type { Dim } from 'graphc';

/** Kaiming (He) normal initialisation for a ReLU layer of `fanIn` inputs. */
const he = (fanIn: number) => ({ scale: Math.sqrt(2 / fanIn) });

export function cnn(batch: Dim = 64, name = 'cnn') {
  return model(name, (g) => {
    const W1 = g.param('W1', [6, 1, 5, 5], he(25));
    const b1 = g.param('b1', [6], { init: 'zeros' });
    const W2 = g.param('W2', [16, 6, 5, 5], he(150));
    const b2 = g.param('b2', [16], { init: 'zeros' });
    const W3 = g.param('W3', [256, 120], he(256));
    const b3 = g.param('b3', [120], { init: 'zeros' });
    const W4 = g.param('W4', [120, 10], { scale: Math.sqrt(1 / 120) });
    const b4 = g.param('b4', [10], { init: 'zeros' });
    const x = g.input('x', [batch, 1, 28, 28]);
    const labels = g.input('labels', [batch], 'i32');

    const conv1 = g.conv2d(x, W1, { bias: b1 }).relu(); // [N, 6, 24, 24]
    const h1 = g.maxPool2d(conv1, 2); // [N, 6, 12, 12]
    const conv2 = g.conv2d(h1, W2, { bias: b2 }).relu(); // [N, 16, 8, 8]
    const h2 = g.maxPool2d(conv2, 2); // [N, 16, 4, 4]
    const flat = h2.reshape([batch, 256]);
    const h3 = flat.matmul(W3).add(b3).relu();
    const logits = h3.matmul(W4).add(b4);
    const loss = g.crossEntropy(logits, labels);
    return { loss, logits };
  });
}

export default cnn();
