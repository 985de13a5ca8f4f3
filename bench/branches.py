"""Overhead of branch guards: a tape recorded with ``branches="guard"`` beside a plain tape of its branch.

    python -m bench.branches [--points 100000] [--repeats 7]

Extended Rosenbrock n = 50 (about 300 instructions) behind an ``if``, in three cases:

* ``early``: ``rosenbrock(x) if x[0] >= 0 else rosenbrock(-x)``; every point has x[0] >= 0, so
  all take the first path and the guard tape is one comparison;
* ``late``: ``sqrt(r) if r > 1 else r`` with r = rosenbrock(x); every point has r > 1, but the
  guard needs r itself: the guard tape is the whole function's forward sweep;
* ``split``: the early function with half of the points on each branch, beside the two plain
  tapes on their own halves: the cost of sorting the points into paths and gathering them.

Each guarded tape is checked against the plain tapes first (values and gradients). Prints the
median milliseconds of ``value_and_gradient`` and ``tape(X)`` (interleaved, --repeats) and the
overhead in percent; the goal is under 10% for gradients when all points take one branch.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import tapead
from bench.benchutil import fmt, header, interleaved, table
from bench.problems import rosenbrock

N_IN = 50


def early(x):
    if x[0] >= 0:
        return rosenbrock(x)
    return rosenbrock(-x)


def late(x):
    r = rosenbrock(x)
    if r > 1.0:
        return np.sqrt(r)
    return r


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    header(f"branch guards: ms per call at {args.points:,} points (medians of {args.repeats} interleaved timings)")
    rng = np.random.default_rng(0)
    X = rng.uniform(0.0, 2.0, (args.points, N_IN))  # x[0] >= 0, and rosenbrock(x) > 1 for all of them
    X_split = X.copy()
    X_split[1::2] *= -1.0  # every other point takes the else branch of early()
    plain_x = tapead.record(rosenbrock, N_IN)
    plain_minus = tapead.record(lambda x: rosenbrock(-x), N_IN)
    plain_sqrt = tapead.record(lambda x: np.sqrt(rosenbrock(x)), N_IN)
    cases = {
        "early": (tapead.record(early, N_IN, branches="guard", at=np.ones(N_IN)), X, [(plain_x, slice(None))]),
        "late": (tapead.record(late, N_IN, branches="guard", at=np.ones(N_IN) * 2), X, [(plain_sqrt, slice(None))]),
        "split": (tapead.record(early, N_IN, branches="guard", at=np.ones(N_IN)), X_split,
                  [(plain_x, slice(0, None, 2)), (plain_minus, slice(1, None, 2))]),
    }
    rows = []
    for name, (guarded, points, plains) in cases.items():
        halves = [(tape, np.ascontiguousarray(points[part])) for tape, part in plains]
        y, g = guarded.value_and_gradient(points)
        for (tape, part), (_, Xp) in zip(plains, halves):
            y_ref, g_ref = tape.value_and_gradient(Xp)
            np.testing.assert_allclose(y[part], y_ref, rtol=1e-14)
            np.testing.assert_allclose(g[part], g_ref, rtol=1e-13, atol=1e-12)
        checks = guarded.paths[0].checks
        times = interleaved({
            "guarded_grad": lambda t=guarded, X=points: t.value_and_gradient(X),
            "plain_grad": lambda h=halves: [tape.value_and_gradient(Xp) for tape, Xp in h],
            "guarded_values": lambda t=guarded, X=points: t(X),
            "plain_values": lambda h=halves: [tape(Xp) for tape, Xp in h],
        }, repeats=args.repeats)
        ms = {k: v * 1e3 for k, v in times.items()}
        rows.append([name, plains[0][0].n_ops, checks.n_ops, len(guarded.paths),
                     fmt(ms["plain_grad"]), fmt(ms["guarded_grad"]),
                     fmt(100 * (ms["guarded_grad"] / ms["plain_grad"] - 1)),
                     fmt(ms["plain_values"]), fmt(ms["guarded_values"]),
                     fmt(100 * (ms["guarded_values"] / ms["plain_values"] - 1))])
    print(table(["case", "ops (plain)", "guard tape ops", "paths", "plain grad ms", "guarded grad ms",
                 "grad overhead %", "plain values ms", "guarded values ms", "values overhead %"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
