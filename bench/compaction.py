"""Forward primal with the compacted value layout vs the SSA layout: same kernel, same run.

    python bench/compaction.py

Prints rows of scratch per point and ns per point of each layout (medians of 5 interleaved runs).
"""

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

import tapead  # noqa: E402
import tapead.api as api  # noqa: E402
from problems import PROBLEMS  # noqa: E402


def lorenz(x, steps=200, dt=0.01):
    def f(u):
        return np.array([10.0 * (u[1] - u[0]), u[0] * (28.0 - u[2]) - u[1], u[0] * u[1] - 8.0 / 3.0 * u[2]],
                        dtype=object)

    s = x
    for _ in range(steps):
        k1 = f(s)
        k2 = f(s + 0.5 * dt * k1)
        k3 = f(s + 0.5 * dt * k2)
        k4 = f(s + dt * k3)
        s = s + dt / 6.0 * (k1 + 2 * k2 + 2 * k3 + k4)
    return s[0]


CASES = [
    ("rosenbrock100", PROBLEMS["rosenbrock100"].f, 100, 100_000, (-1, 1)),
    ("lorenz-rk4-200", lorenz, 3, 20_000, (1, 2)),
    ("mlp8-32-32-1", PROBLEMS["mlp8-32-32-1"].f, 8, 100_000, (-1, 1)),
]


def main() -> None:
    for name, f, n, n_points, (lo, hi) in CASES:
        tape = tapead.record(f, n)
        X = np.random.default_rng(0).uniform(lo, hi, (n_points, n))

        def run(layout):
            Y = np.empty((n_points, 1))
            tape._launch(api._sweeps().forward_primal, layout, api.tile_size(layout[-1]), X, np.zeros((1, 0)), 0,
                         outputs=(Y,))
            return Y

        assert np.array_equal(run(tape._compact), run(tape._ssa))
        compact, ssa = [], []
        for _ in range(5):
            for layout, times in ((tape._compact, compact), (tape._ssa, ssa)):
                start = time.perf_counter()
                run(layout)
                times.append(time.perf_counter() - start)
        ratio = np.median(np.array(ssa) / np.array(compact))
        print(f"{name}: {tape.n_ops} ops, {tape._compact[-1]} value rows compacted vs {tape.n_slots} SSA; "
              f"primal {np.median(compact) / n_points * 1e9:.1f} vs {np.median(ssa) / n_points * 1e9:.1f} ns/pt "
              f"(compacted {ratio:.2f}x faster)")


if __name__ == "__main__":
    main()
