"""Benchmark problems: each a tapead-traceable function, its points, and a hand-written
fused Numba kernel of value and gradient (the practical speed limit, DESIGN.md section 6)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

import handwritten


@dataclass
class Problem:
    name: str
    f: Callable
    n: int
    n_points: int
    points: Callable[[int], np.ndarray]
    fused: Callable  # fused(X, y, g): value and gradient in place


def seed_f(x):
    return np.log(x[0]) + x[0] * x[1] - np.sin(x[1])


def rosenbrock_f(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


MLP_RNG = np.random.default_rng(42)
W1 = MLP_RNG.normal(size=(32, 8)) / np.sqrt(8)
B1 = MLP_RNG.normal(size=32) * 0.1
W2 = MLP_RNG.normal(size=(32, 32)) / np.sqrt(32)
B2 = MLP_RNG.normal(size=32) * 0.1
W3 = MLP_RNG.normal(size=32) / np.sqrt(32)
B3 = 0.05


def mlp_f(x):
    h1 = np.tanh(W1 @ x + B1)
    h2 = np.tanh(W2 @ h1 + B2)
    return W3 @ h2 + B3


def _uniform(lo, hi, n):
    return lambda N: np.random.default_rng(0).uniform(lo, hi, (N, n))


PROBLEMS = {
    "seed": Problem("seed", seed_f, 2, 1_000_000, _uniform(1, 3, 2), handwritten.seed_value_and_grad),
    "rosenbrock100": Problem("rosenbrock100", rosenbrock_f, 100, 100_000, _uniform(-2, 2, 100),
                             handwritten.rosenbrock_value_and_grad),
    "mlp8-32-32-1": Problem("mlp8-32-32-1", mlp_f, 8, 100_000, _uniform(-1, 1, 8),
                            lambda X, y, g: handwritten.mlp_value_and_grad(X, W1, B1, W2, B2, W3, B3, y, g)),
}
