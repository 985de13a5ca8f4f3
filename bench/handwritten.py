"""Hand-written fused Numba kernels of value and gradient: the reference the benchmarks divide by.

These are benchmark references, not part of the tapead package (whose every @njit lives
in kernels/). Same flags as tapead's sweeps: no fastmath, IEEE error model, parallel over points.
"""

import math

import numpy as np
from numba import njit, prange

FLAGS = dict(cache=True, parallel=True, error_model="numpy")


@njit(**FLAGS)
def seed_value_and_grad(X, y, g):
    for k in prange(X.shape[0]):
        x1, x2 = X[k, 0], X[k, 1]
        y[k] = math.log(x1) + x1 * x2 - math.sin(x2)
        g[k, 0] = 1.0 / x1 + x2
        g[k, 1] = x1 - math.cos(x2)


@njit(**FLAGS)
def rosenbrock_value_and_grad(X, y, g):
    n = X.shape[1]
    for k in prange(X.shape[0]):
        s = 0.0
        for i in range(n):
            g[k, i] = 0.0
        for i in range(n - 1):
            a = X[k, i + 1] - X[k, i] * X[k, i]
            b = 1.0 - X[k, i]
            s += 100.0 * a * a + b * b
            g[k, i] += -400.0 * a * X[k, i] - 2.0 * b
            g[k, i + 1] += 200.0 * a
        y[k] = s


@njit(**FLAGS)
def mlp_value_and_grad(X, W1, b1, W2, b2, w3, b3, y, g):
    h, n = W1.shape
    n_points = X.shape[0]
    chunk = 256
    for c in prange((n_points + chunk - 1) // chunk):
        # scratch once per chunk of points, not per point
        h1 = np.empty(h)
        h2 = np.empty(h)
        a1 = np.empty(h)
        a2 = np.empty(h)
        for k in range(c * chunk, min(n_points, (c + 1) * chunk)):
            for i in range(h):
                s = b1[i]
                for j in range(n):
                    s += W1[i, j] * X[k, j]
                h1[i] = math.tanh(s)
            out = b3
            for i in range(h):
                s = b2[i]
                for j in range(h):
                    s += W2[i, j] * h1[j]
                h2[i] = math.tanh(s)
                out += w3[i] * h2[i]
            y[k] = out
            for i in range(h):  # reverse
                a2[i] = w3[i] * (1.0 - h2[i] * h2[i])
                a1[i] = 0.0
            for i in range(h):
                for j in range(h):
                    a1[j] += W2[i, j] * a2[i]
            for j in range(h):
                a1[j] *= 1.0 - h1[j] * h1[j]
            for j in range(n):
                s = 0.0
                for i in range(h):
                    s += W1[i, j] * a1[i]
                g[k, j] = s
