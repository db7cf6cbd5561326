// A physics-informed network: u(x) solves u'' = −u on [0, π] with u(0) = 0 and u'(0) = 1, whose
// solution is sin x. The loss holds the network's own derivatives with respect to its input,
// taken inside the model with g.grad (the second one a gradient of a gradient); graphc's reverse
// pass then differentiates them once more for the params' gradients.
//
// x holds the collocation points, one per row; x[0] must be 0 (the initial conditions are read
// at the first row). `npm run demo:pinn` trains it (scripts/pinn.mjs).
import { model } from 'graphc';

const N = 64; // collocation points
const H = 24; // hidden units

export default model('pinn', (g) => {
  const x = g.input('x', [N, 1]);
  const W1 = g.param('W1', [1, H], { init: 'uniform', scale: 1 });
  const b1 = g.param('b1', [H], { init: 'uniform', scale: 1 });
  const W2 = g.param('W2', [H, H], { init: 'uniform', scale: Math.sqrt(3 / H) });
  const b2 = g.param('b2', [H], { init: 'zeros' });
  const W3 = g.param('W3', [H, 1], { init: 'uniform', scale: Math.sqrt(3 / H) });
  const h1 = x.matmul(W1).add(b1).tanh();
  const h2 = h1.matmul(W2).add(b2).tanh();
  const u = h2.matmul(W3);

  // each row of u depends on its own x only, so the gradient of Σu is du/dx at every point
  const [ux] = g.grad(u.sum(), [x]);
  const [uxx] = g.grad(ux.sum(), [x]);

  const residual = uxx.add(u).square().mean(); // u'' + u = 0
  const u0 = u.narrow(0, 0, 1).square().sum(); // u(0) = 0
  const ux0 = ux.narrow(0, 0, 1).sub(1).square().sum(); // u'(0) = 1
  const loss = residual.add(u0).add(ux0);
  return { loss, u, ux, uxx };
});
