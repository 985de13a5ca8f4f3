"""Hand-written references for the functions of bench/problems.py: fused Numba kernels of value
and gradient (the speed limit the benchmarks divide by) and closed-form numpy derivatives (what
the scripts check tapead against, and what bench/scipy_overhead.py times at one point).

These are benchmark references, not part of the tapead package (whose every @njit lives in
kernels/). The kernels use tapead's numerical flags (no fastmath, IEEE error model) but run
parallel over points with ``prange`` on Numba's threading layer, where tapead's sweeps run one
share of the tiles per thread on a pool of Python threads (tapead/runtime.py).
"""

import math

import numpy as np
from numba import njit, prange

FLAGS = {"cache": True, "parallel": True, "error_model": "numpy"}


@njit(**FLAGS)
def worked_example_value_and_grad(X, y, g):
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


# ---- the other problems of bench/problems.py (bench/peers.py) ----


@njit(**FLAGS)
def black_scholes_value_and_grad(X, K, T, r, y, g):
    """Call price of (S, sigma) with constant K, T, r; gradient (delta, vega)."""
    sqrt_t = math.sqrt(T)
    disc = K * math.exp(-r * T)
    for k in prange(X.shape[0]):
        S, sigma = X[k, 0], X[k, 1]
        sst = sigma * sqrt_t
        d1 = (math.log(S / K) + (r + 0.5 * sigma * sigma) * T) / sst
        d2 = d1 - sst
        n1 = 0.5 * (1.0 + math.erf(d1 / math.sqrt(2.0)))
        n2 = 0.5 * (1.0 + math.erf(d2 / math.sqrt(2.0)))
        y[k] = S * n1 - disc * n2
        g[k, 0] = n1
        g[k, 1] = S * math.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi) * sqrt_t


@njit(**FLAGS)
def logistic_nll_value_and_grad(X, P, y, g):
    """softplus(w . a) - label * (w . a) with w = X[k], a = P[k, :d], label = P[k, d]."""
    d = X.shape[1]
    for k in prange(X.shape[0]):
        z = 0.0
        for i in range(d):
            z += X[k, i] * P[k, i]
        label = P[k, d]
        sp = max(z, 0.0) + math.log1p(math.exp(-abs(z)))
        y[k] = sp - label * z
        e = math.exp(-abs(z))
        sig = 1.0 / (1.0 + e) if z >= 0.0 else e / (1.0 + e)
        s = sig - label
        for i in range(d):
            g[k, i] = s * P[k, i]


@njit(**FLAGS)
def lorenz_value_and_grad(X, steps, dt, sigma, rho, beta, y, g):
    """Final x of RK4 on the Lorenz system from X[k]; gradient by forward mode with the
    3 x 3 state Jacobian carried through every stage (hand-written, fused)."""
    for k in prange(X.shape[0]):
        s = np.empty(3)
        T = np.eye(3)  # d state / d initial state
        s[0], s[1], s[2] = X[k, 0], X[k, 1], X[k, 2]
        st = np.empty(3)
        Tt = np.empty((3, 3))
        ks = np.empty((4, 3))
        kt = np.empty((4, 3, 3))
        for _ in range(steps):
            for stage in range(4):
                if stage == 0:
                    st[:] = s
                    Tt[:, :] = T
                else:
                    h = dt if stage == 3 else 0.5 * dt
                    for i in range(3):
                        st[i] = s[i] + h * ks[stage - 1, i]
                        for j in range(3):
                            Tt[i, j] = T[i, j] + h * kt[stage - 1, i, j]
                a, b, c = st[0], st[1], st[2]
                ks[stage, 0] = sigma * (b - a)
                ks[stage, 1] = a * (rho - c) - b
                ks[stage, 2] = a * b - beta * c
                for j in range(3):
                    ta, tb, tc = Tt[0, j], Tt[1, j], Tt[2, j]
                    kt[stage, 0, j] = sigma * (tb - ta)
                    kt[stage, 1, j] = (rho - c) * ta - a * tc - tb
                    kt[stage, 2, j] = b * ta + a * tb - beta * tc
            for i in range(3):
                s[i] += dt / 6.0 * (ks[0, i] + 2.0 * ks[1, i] + 2.0 * ks[2, i] + ks[3, i])
                for j in range(3):
                    T[i, j] += dt / 6.0 * (kt[0, i, j] + 2.0 * kt[1, i, j] + 2.0 * kt[2, i, j] + kt[3, i, j])
        y[k] = s[0]
        for j in range(3):
            g[k, j] = T[0, j]


@njit(**FLAGS)
def helmholtz_value_and_grad(X, b, A, RT, y, g):
    """Helmholtz energy RT sum x log(x / (1 - b.x)) - x'Ax / (sqrt(8) b.x) log((1 + (1+sqrt2) b.x)
    / (1 + (1-sqrt2) b.x)) (A symmetric) and its gradient."""
    n = X.shape[1]
    r2 = math.sqrt(2.0)
    s8 = math.sqrt(8.0)
    for k in prange(X.shape[0]):
        B = 0.0
        S = 0.0
        for i in range(n):
            B += b[i] * X[k, i]
            S += X[k, i]
        Ax = np.empty(n)
        Q = 0.0
        for i in range(n):
            t = 0.0
            for j in range(n):
                t += A[i, j] * X[k, j]
            Ax[i] = t
            Q += X[k, i] * t
        lo = math.log(1.0 - B)
        up, dn = 1.0 + (1.0 + r2) * B, 1.0 + (1.0 - r2) * B
        L = math.log(up / dn)
        dL = (1.0 + r2) / up - (1.0 - r2) / dn
        he = 0.0
        for i in range(n):
            he += X[k, i] * (math.log(X[k, i]) - lo)
        y[k] = RT * he - Q * L / (s8 * B)
        for i in range(n):
            g1 = RT * (math.log(X[k, i]) - lo + 1.0 + S * b[i] / (1.0 - B))
            g2 = (2.0 * Ax[i] * L + Q * dL * b[i]) / (s8 * B) - Q * L * b[i] / (s8 * B * B)
            g[k, i] = g1 - g2


# ---- closed-form numpy derivatives ----


def worked_example_grad_np(X):
    """Gradient of problems.worked_example at the points X (N, 2)."""
    return np.column_stack([1.0 / X[:, 0] + X[:, 1], X[:, 0] - np.cos(X[:, 1])])


def rosenbrock_np(x):
    """problems.rosenbrock at one point x (n,)."""
    a = x[1:] - x[:-1] ** 2
    b = 1.0 - x[:-1]
    return float(np.sum(100.0 * a * a + b * b))


def rosenbrock_grad_np(x):
    a = x[1:] - x[:-1] ** 2
    g = np.zeros_like(x)
    g[:-1] = -400.0 * a * x[:-1] - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * a
    return g


def rosenbrock_value_and_grad_np(x):
    a = x[1:] - x[:-1] ** 2
    b = 1.0 - x[:-1]
    g = np.zeros_like(x)
    g[:-1] = -400.0 * a * x[:-1] - 2.0 * b
    g[1:] += 200.0 * a
    return float(np.sum(100.0 * a * a + b * b)), g


def rosenbrock_hessp_np(x, p):
    """Hessian of problems.rosenbrock at x times the vector p."""
    hp = np.zeros_like(x)
    hp[:-1] = (1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0) * p[:-1] - 400.0 * x[:-1] * p[1:]
    hp[1:] += 200.0 * p[1:] - 400.0 * x[:-1] * p[:-1]
    return hp


def rosenbrock_hessian_np(X):
    """Dense Hessians of problems.rosenbrock at the points X (N, n): (N, n, n)."""
    N, n = X.shape
    H = np.zeros((N, n, n))
    i = np.arange(n - 1)
    H[:, i, i] += 1200.0 * X[:, :-1] ** 2 - 400.0 * X[:, 1:] + 2.0
    H[:, i + 1, i + 1] += 200.0
    H[:, i, i + 1] = H[:, i + 1, i] = -400.0 * X[:, :-1]
    return H
