"""Every benchmark function, written once, and the value-and-gradient problems of the suite.

The suite's functions are written over a math namespace ``m``: by default ``NUMPY`` (numpy,
with tapead's erf and softplus), which ``tapead.record`` traces; bench/peers.py runs the very
same code under JAX, torch and CasADi through ``jax_ns``, ``torch_ns`` and ``casadi_ns``.
Each ``Problem`` pairs a function with its points and a hand-written fused Numba kernel of
value and gradient (bench/handwritten.py: the practical speed limit).

The last section holds the functions of bench/coloring.py, whose derivatives have a known
sparsity structure (tests/test_second_order.py tests them). The tests import the worked example,
Rosenbrock and these from here: each function has this one definition.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

import tapead
from bench import handwritten

# ---- constants of the functions ----

MLP_RNG = np.random.default_rng(42)
W1 = MLP_RNG.normal(size=(32, 8)) / np.sqrt(8)
B1 = MLP_RNG.normal(size=32) * 0.1
W2 = MLP_RNG.normal(size=(32, 32)) / np.sqrt(32)
B2 = MLP_RNG.normal(size=32) * 0.1
W3 = MLP_RNG.normal(size=32) / np.sqrt(32)
B3 = 0.05

BS_K, BS_T, BS_R = 100.0, 1.0, 0.05  # Black-Scholes strike, maturity, rate
LZ_STEPS, LZ_DT, LZ_SIGMA, LZ_RHO, LZ_BETA = 200, 0.01, 10.0, 28.0, 8.0 / 3.0  # RK4 Lorenz
LR_D = 32  # logistic regression: weights (inputs); features + label are the 33 parameters
HZ_N = 30  # Helmholtz energy
HZ_RT = 1.0
HZ_B = 0.02 * (1.0 + np.abs(np.sin(np.arange(1, HZ_N + 1))))
HZ_A = 0.1 * (1.0 + np.abs(np.cos(np.subtract.outer(np.arange(HZ_N), np.arange(HZ_N)))))  # symmetric


# ---- math namespaces: the same function code under tapead (numpy), JAX, torch and CasADi ----


def numpy_ns() -> SimpleNamespace:
    return SimpleNamespace(log=np.log, sin=np.sin, erf=tapead.erf, sum=np.sum, tanh=np.tanh, dot=np.dot,
                           softplus=tapead.softplus, W1=W1, B1=B1, W2=W2, B2=B2, W3=W3, b=HZ_B, A=HZ_A)


def jax_ns(jnp, jax) -> SimpleNamespace:
    return SimpleNamespace(log=jnp.log, sin=jnp.sin, erf=jax.scipy.special.erf, sum=jnp.sum, tanh=jnp.tanh,
                           dot=jnp.dot, softplus=lambda z: jnp.logaddexp(z, 0.0), W1=jnp.asarray(W1),
                           B1=jnp.asarray(B1), W2=jnp.asarray(W2), B2=jnp.asarray(B2), W3=jnp.asarray(W3),
                           b=jnp.asarray(HZ_B), A=jnp.asarray(HZ_A))


def torch_ns(torch) -> SimpleNamespace:
    def t(a):
        return torch.tensor(a, dtype=torch.float64)

    return SimpleNamespace(log=torch.log, sin=torch.sin, erf=torch.erf, sum=torch.sum, tanh=torch.tanh,
                           dot=torch.dot, softplus=lambda z: torch.logaddexp(z, torch.zeros_like(z)), W1=t(W1),
                           B1=t(B1), W2=t(W2), B2=t(B2), W3=t(W3), b=t(HZ_B), A=t(HZ_A))


def casadi_ns(ca) -> SimpleNamespace:
    return SimpleNamespace(log=ca.log, sin=ca.sin, erf=ca.erf, sum=ca.sum1, tanh=ca.tanh, dot=ca.dot,
                           softplus=lambda z: ca.fmax(z, 0.0) + ca.log1p(ca.exp(-ca.fabs(z))),
                           W1=ca.DM(W1), B1=ca.DM(B1), W2=ca.DM(W2), B2=ca.DM(B2), W3=ca.DM(W3),
                           b=ca.DM(HZ_B), A=ca.DM(HZ_A))


NUMPY = numpy_ns()


# ---- the suite's functions: f(x, m) or f(x, p, m); with the default m, what tapead records ----


def worked_example(x, m=NUMPY):
    """The worked example of docs/design.md: log(x1) + x1 x2 - sin(x2)."""
    return m.log(x[0]) + x[0] * x[1] - m.sin(x[1])


def black_scholes(x, m=NUMPY):
    """Call price of (S, sigma) with strike BS_K, maturity BS_T and rate BS_R (uses erf)."""
    S, sigma = x[0], x[1]
    sqrt_t = math.sqrt(BS_T)
    d1 = (m.log(S / BS_K) + (BS_R + 0.5 * sigma * sigma) * BS_T) / (sigma * sqrt_t)
    d2 = d1 - sigma * sqrt_t
    cdf1 = 0.5 * (1.0 + m.erf(d1 / math.sqrt(2.0)))
    cdf2 = 0.5 * (1.0 + m.erf(d2 / math.sqrt(2.0)))
    return S * cdf1 - BS_K * math.exp(-BS_R * BS_T) * cdf2


def rosenbrock(x, m=NUMPY):
    """Extended Rosenbrock, any n: sum 100 (x[i+1] - x[i]^2)^2 + (1 - x[i])^2."""
    return m.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def mlp(x, m=NUMPY):
    """tanh MLP 8-32-32-1 with the fixed weights W1, B1, W2, B2, W3, B3."""
    h1 = m.tanh(m.W1 @ x + m.B1)
    h2 = m.tanh(m.W2 @ h1 + m.B2)
    return m.dot(m.W3, h2) + B3


def logistic_nll(w, p, m=NUMPY):
    """softplus(w . a) - label (w . a): weights w (inputs), features a = p[:LR_D], label p[LR_D]."""
    z = m.dot(w, p[:LR_D])
    return m.softplus(z) - p[LR_D] * z


def _lorenz_rhs(a, b, c):
    return LZ_SIGMA * (b - a), a * (LZ_RHO - c) - b, a * b - LZ_BETA * c


def _rk4_step(s):
    h = 0.5 * LZ_DT
    k1 = _lorenz_rhs(*s)
    k2 = _lorenz_rhs(*(si + h * ki for si, ki in zip(s, k1)))
    k3 = _lorenz_rhs(*(si + h * ki for si, ki in zip(s, k2)))
    k4 = _lorenz_rhs(*(si + LZ_DT * ki for si, ki in zip(s, k3)))
    return tuple(si + LZ_DT / 6.0 * (a + 2.0 * b + 2.0 * c + d) for si, a, b, c, d in zip(s, k1, k2, k3, k4))


def lorenz(x, m=None, steps=LZ_STEPS):
    """Final x of RK4 on the Lorenz system from the initial state x, ``steps`` steps of LZ_DT: only
    + - *, so every framework runs the same code (unrolled: the form tapead records)."""
    s = (x[0], x[1], x[2])
    for _ in range(steps):
        s = _rk4_step(s)
    return s[0]


def lorenz_fori(x, m=None, steps=LZ_STEPS):
    """The same RK4 for JAX as a lax.fori_loop: XLA does not compile the unrolled form (vmapped,
    4 unrolled steps already ran past 5 minutes of compilation here; 3 steps took 0.4 s)."""
    import jax

    return jax.lax.fori_loop(0, steps, lambda _, s: _rk4_step(s), (x[0], x[1], x[2]))[0]


def helmholtz(x, m=NUMPY):
    """Helmholtz energy RT sum x log(x / (1 - b.x)) - x'Ax / (sqrt(8) b.x) log((1 + (1+sqrt2) b.x)
    / (1 + (1-sqrt2) b.x)), n = HZ_N."""
    B = m.dot(m.b, x)
    Q = m.dot(x, m.A @ x)
    r2 = math.sqrt(2.0)
    he = m.sum(x * m.log(x / (1.0 - B)))
    return HZ_RT * he - Q / (math.sqrt(8.0) * B) * m.log((1.0 + (1.0 + r2) * B) / (1.0 + (1.0 - r2) * B))


# ---- the problems ----


@dataclass(frozen=True)
class Problem:
    """A function of ``n`` inputs (and ``n_params`` per-point parameters), ``n_points`` points by
    default, drawn by ``sample(N, rng) -> (X, P or None)``, and ``fused(X, P, y, g)``: a
    hand-written fused value-and-gradient kernel writing y (N,) and g (N, n) in place."""

    name: str
    f: Callable  # f(x, m=NUMPY) or f(x, p, m=NUMPY)
    n: int
    n_points: int
    sample: Callable
    fused: Callable
    n_params: int = 0
    peer_points: dict = field(default_factory=dict)  # peer -> fewer points (memory or time)
    jax_f: Callable | None = None  # JAX's own form of f, where it needs one

    def points(self, n_points: int | None = None, rng=None) -> tuple[np.ndarray, np.ndarray | None]:
        """(X, P or None): ``n_points`` points (default: the problem's), from ``rng`` (default: ``default_rng(0)``)."""
        rng = np.random.default_rng(0) if rng is None else rng
        return self.sample(self.n_points if n_points is None else n_points, rng)

    def args(self, X, P) -> tuple:
        """The arguments of a tape's methods: (X,) or (X, P)."""
        return (X,) if self.n_params == 0 else (X, P)

    def record(self, **options) -> tapead.Tape:
        return tapead.record(self.f, self.n, n_params=self.n_params, **options)


def _uniform(lo, hi, n):
    return lambda N, rng: (rng.uniform(lo, hi, (N, n)), None)


def _bs_points(N, rng):
    return np.column_stack([rng.uniform(80, 120, N), rng.uniform(0.1, 0.5, N)]), None


def _lr_points(N, rng):
    w = rng.normal(0, 0.3, (N, LR_D))
    feats = rng.normal(0, 1, (N, LR_D))
    label = (rng.random(N) < 0.5).astype(float)
    return w, np.column_stack([feats, label])


def _lorenz_points(N, rng):
    return np.column_stack([rng.uniform(-10, 10, N), rng.uniform(-10, 10, N), rng.uniform(10, 40, N)]), None


PROBLEMS = {p.name: p for p in [
    Problem("worked-example", worked_example, 2, 1_000_000, _uniform(1, 3, 2),
            lambda X, P, y, g: handwritten.worked_example_value_and_grad(X, y, g)),
    Problem("black-scholes", black_scholes, 2, 1_000_000, _bs_points,
            lambda X, P, y, g: handwritten.black_scholes_value_and_grad(X, BS_K, BS_T, BS_R, y, g)),
    Problem("rosenbrock100", rosenbrock, 100, 100_000, _uniform(-2, 2, 100),
            lambda X, P, y, g: handwritten.rosenbrock_value_and_grad(X, y, g)),
    Problem("mlp8-32-32-1", mlp, 8, 100_000, _uniform(-1, 1, 8),
            lambda X, P, y, g: handwritten.mlp_value_and_grad(X, W1, B1, W2, B2, W3, B3, y, g)),
    Problem("logistic-nll-d32", logistic_nll, LR_D, 100_000, _lr_points,
            lambda X, P, y, g: handwritten.logistic_nll_value_and_grad(X, P, y, g), n_params=LR_D + 1),
    Problem("rk4-lorenz200", lorenz, 3, 100_000, _lorenz_points,
            lambda X, P, y, g: handwritten.lorenz_value_and_grad(X, LZ_STEPS, LZ_DT, LZ_SIGMA, LZ_RHO, LZ_BETA,
                                                                 y, g),
            peer_points={"jax": 10_000, "torch": 10_000}, jax_f=lorenz_fori),
    Problem("helmholtz30", helmholtz, HZ_N, 100_000, _uniform(0.1, 0.5, HZ_N),
            lambda X, P, y, g: handwritten.helmholtz_value_and_grad(X, HZ_B, HZ_A, HZ_RT, y, g)),
]}
RENAMED = {"seed": "worked-example"}  # earlier problem names: refused, naming the new one


def unknown_problems(names: list[str]) -> str | None:
    """The error for those of ``names`` that are not problems (a renamed one's new name), or None."""
    unknown = [name for name in names if name not in PROBLEMS]
    if not unknown:
        return None
    renamed = [f"{name!r} is now {RENAMED[name]!r}" for name in unknown if name in RENAMED]
    return (f"unknown problem {', '.join(unknown)}" + (f" ({'; '.join(renamed)})" if renamed else "")
            + f"; choose from {', '.join(PROBLEMS)}")


# ---- issue 16's small tapes: a short polynomial, and a Jacobian of a few ops (no fused kernel) ----

HORNER_C = [(-1.0) ** k / (k + 1) for k in range(21)]  # degree 20


def horner(x, m=None):
    """sum_k HORNER_C[k] x^(20 - k) by Horner's rule: 20 (mul, addc) steps on one input."""
    p = HORNER_C[0]
    for c in HORNER_C[1:]:
        p = p * x[0] + c
    return p


def lorenz_rhs(x, m=None):
    """The Lorenz right-hand side (3 -> 3, 8 ops): a list of three outputs, whose Jacobian the
    suite times (peers stack the list into one array)."""
    return list(_lorenz_rhs(x[0], x[1], x[2]))


PROBLEMS.update({p.name: p for p in [
    Problem("horner20", horner, 1, 1_000_000, _uniform(-1, 1, 1), None),
    Problem("lorenz-rhs", lorenz_rhs, 3, 1_000_000, _lorenz_points, None),
]})


# ---- functions with a known derivative structure (bench/coloring.py; tests/test_second_order.py imports them) ----


def arrowhead(x):
    """Hessian: first row, first column and diagonal (star coloring optimum 2)."""
    return np.sum(x[0] * x[1:] ** 2) + np.sum(x**4)


def block_diagonal(x, b=3):
    """Hessian: diagonal blocks of b (optimum b)."""
    return sum(np.prod(x[k : k + b]) for k in range(0, len(x), b))


def banded(x, half_width=2):
    """Hessian: a band of half-bandwidth w = half_width (star coloring optimum 2 w + 1)."""
    return sum(x[i] * x[min(i + half_width, len(x) - 1)] * np.sin(x[i + 1]) for i in range(len(x) - 1))


def banded_vector(w):
    """x -> y with y_i reading x_{i-w} .. x_{i+w}: Jacobian rows of 2 w + 1 consecutive columns."""
    def f(x):
        n = len(x)
        return [np.sin(x[i]) * np.sum(x[max(0, i - w) : min(n, i + w + 1)]) for i in range(n)]

    return f


def arrowhead_vector(x):
    """Jacobian: first column and diagonal (column coloring optimum 2)."""
    return [x[0]] + [x[0] * x[i] for i in range(1, len(x))]


def block_vector(b):
    """Jacobian: diagonal blocks of b (optimum b)."""
    def f(x):
        return [np.prod(x[(i // b) * b : (i // b) * b + b]) for i in range(len(x))]

    return f
