// DeepRob lecture 6: the sigmoid neuron f(w, x) = σ(w0·x0 + w1·x1 + w2), every input a param so
// that its gradient can be read off as on the slide. initParams() starts from the slide's values
// (w0=2, x0=-1, w1=-3, x1=-2, w2=-3): `ones` times the scale.
import { model } from 'graphc';

export default model('neuron', (g) => {
  const w0 = g.param('w0', [], { init: 'ones', scale: 2 });
  const x0 = g.param('x0', [], { init: 'ones', scale: -1 });
  const w1 = g.param('w1', [], { init: 'ones', scale: -3 });
  const x1 = g.param('x1', [], { init: 'ones', scale: -2 });
  const w2 = g.param('w2', [], { init: 'ones', scale: -3 });

  const s0 = w0.mul(x0);
  const s1 = w1.mul(x1);
  const s2 = s0.add(s1);
  const s3 = s2.add(w2);
  const L = s3.sigmoid();
  return { loss: L };
});
