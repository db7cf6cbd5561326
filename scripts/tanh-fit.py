# The polynomials of tanh's decomposition (codegen/kernel/decompose.ts: TANH_P, EXP_TANH_P),
# minimax in relative error by linear programming (scipy's HiGHS) over dense points, the
# residuals in units of 2^-24 (the LP's tolerances are absolute), printed rounded to f32:
#   tanh(a) = a + a^3 P(a^2), 0 <= a < 0.55, 5 coefficients
#   e^r = 1 + r + r^2 P(r), 0 <= r < 0.6932 (ln2, and r's rounding), 5 coefficients
# Their error in f32 arithmetic, after the rounding: node scripts/decompose-ulps.mjs tanh 0 10.
import mpmath as mp
import numpy as np
from scipy.optimize import linprog

mp.mp.dps = 40


def minimax(xs, f, head, basis):
    """min over c of max |head + basis @ c - f| / f, in units of 2^-24: (error, c)."""
    w = 2**24 / np.abs(f)
    k = basis.shape[1]
    a = np.vstack([np.hstack([basis * w[:, None], -np.ones((len(xs), 1))]), np.hstack([-basis * w[:, None], -np.ones((len(xs), 1))])])
    b = np.concatenate([(f - head) * w, -(f - head) * w])
    cost = np.zeros(k + 1)
    cost[-1] = 1
    r = linprog(cost, A_ub=a, b_ub=b, bounds=[(None, None)] * (k + 1), method='highs', options={'primal_feasibility_tolerance': 1e-10, 'dual_feasibility_tolerance': 1e-10})
    return r.x[-1], r.x[:k]


def points(lo, hi, n=6000):
    """Evenly spaced and Chebyshev-spaced."""
    return np.concatenate([np.linspace(lo, hi, n), (lo + hi) / 2 + (hi - lo) / 2 * np.cos(np.linspace(0, np.pi, n))])


a = points(1e-4, 0.55)
f = np.array([float(mp.tanh(mp.mpf(x))) for x in a])
err, c = minimax(a, f, a, (a**3)[:, None] * np.vander(a * a, 5, increasing=True))
print(f'TANH_P ({err:.3f} ulp before rounding):', [float(np.float32(v)) for v in c])

r = points(0, 0.6932)  # ln2 and a little: r = x − n·ln2 rounds
f = np.array([float(mp.exp(mp.mpf(x))) for x in r])
err, c = minimax(r, f, 1 + r, (r**2)[:, None] * np.vander(r, 5, increasing=True))
print(f'EXP_TANH_P ({err:.3f} ulp before rounding):', [float(np.float32(v)) for v in c])
