"""Jacobians: forward (tangent) vs reverse (adjoint) sweeps, and what mode="auto" picks.

    python -m bench.jacobian_mode [--points 100000] [--repeats 5] [--no-extra]

``tape.jacobian(X, mode="forward")`` runs one tangent sweep with all n unit directions,
``mode="reverse"`` one adjoint sweep with all m unit output weights; ``mode="auto"`` picks
by ``tapead.api.jacobian_mode(n, m)``. Functions y = tanh(A @ sin(x) + b) * exp(0.1 * sum(x))
with A (m, n), whose Jacobian is written in numpy to check all modes before timing:
the issue's 6 -> 3 and 3 -> 30, plus a few shapes near the crossover.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import tapead
from bench.benchutil import fmt, header, interleaved, table
from tapead.api import jacobian_mode

REQUIRED = [(6, 3), (3, 30)]
EXTRA = [(8, 4), (8, 6), (4, 2), (12, 8)]


def make(n: int, m: int):
    rng = np.random.default_rng(n * 100 + m)
    A = rng.normal(size=(m, n)) / np.sqrt(n)
    b = rng.normal(size=m) * 0.1

    def f(x):
        return np.tanh(A @ np.sin(x) + b) * np.exp(0.1 * np.sum(x))

    def jac(X):  # numpy: (N, m, n)
        t = np.tanh(np.sin(X) @ A.T + b)  # (N, m)
        e = np.exp(0.1 * X.sum(axis=1))[:, None]  # (N, 1)
        dt = (1 - t * t)[:, :, None] * A[None] * np.cos(X)[:, None, :]
        return dt * e[:, :, None] + (t * e)[:, :, None] * 0.1

    return f, jac


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-extra", action="store_true", help="only the issue's 6->3 and 3->30")
    args = parser.parse_args(argv)
    N = args.points
    header(f"Jacobian: forward vs reverse at N = {N:,} (medians of {args.repeats} interleaved repeats)")
    rows, wrong = [], []
    for n, m in REQUIRED + ([] if args.no_extra else EXTRA):
        f, jac = make(n, m)
        tape = tapead.record(f, n)
        X = np.random.default_rng(0).uniform(-2, 2, (N, n))
        J_ref = jac(X)
        for mode in ("forward", "reverse", "auto"):
            np.testing.assert_allclose(tape.jacobian(X, mode=mode), J_ref, rtol=1e-12, atol=1e-13, err_msg=mode)
        t = interleaved({mode: (lambda mode=mode, tape=tape, X=X: tape.jacobian(X, mode=mode))
                         for mode in ("forward", "reverse", "auto")}, repeats=args.repeats)
        pick = jacobian_mode(n, m)
        faster = "forward" if t["forward"] < t["reverse"] else "reverse"
        ratio = t["reverse"] / t["forward"]
        close = abs(np.log(ratio)) < np.log(1.15)  # within the +-15% noise of this machine
        ok = pick == faster or close
        if not ok:
            wrong.append(f"{n}->{m}")
        rows.append([f"{n} -> {m}" + ("" if (n, m) in REQUIRED else " (extra)"), tape.n_ops,
                     fmt(t["forward"] / N * 1e9), fmt(t["reverse"] / N * 1e9), fmt(t["auto"] / N * 1e9),
                     f"{ratio:.2f}", faster, pick,
                     "yes" if pick == faster else ("tie (within 15%)" if close else "NO")])
    print(table(["function n -> m", "ops", "forward ns/pt", "reverse ns/pt", "auto ns/pt", "reverse / forward",
                 "faster", "auto picks", "auto picks the faster"], rows))
    print("\njacobian_mode(n, m): reverse if 2 + 1.5 m < 1 + n, else forward.")
    if wrong:
        print(f"\nauto picked the slower mode (by more than 15%) for: {', '.join(wrong)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
