"""Jacobians: forward (tangent) vs reverse (adjoint) sweeps, and what mode="auto" picks.

    python -m bench.jacobian_mode [--points 100000] [--repeats 5] [--no-extra] [--family NAME ...]

``tape.value_and_jacobian(X, mode="forward")`` runs one tangent sweep with all n unit
directions, ``mode="reverse"`` one adjoint sweep with all m unit output weights (both give the
values as well); ``mode="auto"`` picks by ``tapead.api.jacobian_mode``. Three families of
functions x (n) -> y (m), each with a Jacobian written in numpy that checks both modes before
timing:

* ``few``: s = sum(x), y_i = x_{i mod n} * s + c_i (n + 2m ops: the per-point fixed costs);
* ``dense``: y = tanh(A @ sin(x) + b) * exp(0.1 * sum(x)), A (m, n) (about 2mn ops);
* ``deep``: ``dense`` after K layers of h = h + 0.5 sin(h) (hundreds of ops, any n and m).

Shapes: the issue's 6 -> 3 and 3 -> 30 and 4 -> 2, and 2 -> 4, 1 -> 1, 3 -> 3, 8 -> 2, 2 -> 8,
10 -> 10, 30 -> 5, 5 -> 30, 8 -> 4, 8 -> 6, 12 -> 8. Per shape and family: both times, the
pick, and whether the pick was the faster (a tie: within 10%). With ``NUMBA_NUM_THREADS=1``
the times are the thread's CPU time (time.thread_time: the time other processes held the core
left out), else wall time.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numba
import numpy as np

import tapead
from bench.benchutil import fmt, header, interleaved, table
from tapead.api import jacobian_mode

REQUIRED = [(6, 3), (3, 30), (4, 2)]
EXTRA = [(2, 4), (1, 1), (3, 3), (8, 2), (2, 8), (10, 10), (30, 5), (5, 30), (8, 4), (8, 6), (12, 8)]
TIE = 1.10  # reverse / forward within this factor either way: a tie (noise on this shared machine)


def few(n: int, m: int):
    a = np.arange(m) % n
    c = np.linspace(-1, 1, m)

    def f(x):
        s = np.sum(x)
        return [x[a[i]] * s + c[i] for i in range(m)]

    def jac(X):  # (N, m, n)
        J = np.repeat(X[:, a, None], n, axis=2)
        J[:, np.arange(m), a] += X.sum(axis=1)[:, None]
        return J

    return f, jac


def dense(n: int, m: int, layers: int = 0):
    rng = np.random.default_rng(n * 100 + m)
    A = rng.normal(size=(m, n)) / np.sqrt(n)
    b = rng.normal(size=m) * 0.1

    def f(x):
        for _ in range(layers):
            x = x + 0.5 * np.sin(x)
        return np.tanh(A @ np.sin(x) + b) * np.exp(0.1 * np.sum(x))

    def jac(X):  # numpy: (N, m, n)
        D = np.ones_like(X)  # d h_K / d x, diagonal
        for _ in range(layers):
            D = D * (1 + 0.5 * np.cos(X))
            X = X + 0.5 * np.sin(X)
        t = np.tanh(np.sin(X) @ A.T + b)  # (N, m)
        e = np.exp(0.1 * X.sum(axis=1))[:, None]  # (N, 1)
        dt = (1 - t * t)[:, :, None] * A[None] * np.cos(X)[:, None, :]
        return (dt * e[:, :, None] + (t * e)[:, :, None] * 0.1) * D[:, None, :]

    return f, jac


def deep(n: int, m: int):
    return dense(n, m, layers=max(2, 300 // (3 * n)))


FAMILIES = {"few": few, "dense": dense, "deep": deep}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-extra", action="store_true", help="only the issue's shapes")
    parser.add_argument("--family", nargs="*", default=list(FAMILIES), choices=list(FAMILIES))
    args = parser.parse_args(argv)
    N = args.points
    one_thread = numba.get_num_threads() == 1
    clock = time.thread_time if one_thread else time.perf_counter
    header(f"Jacobian: forward vs reverse at N = {N:,} (medians of {args.repeats} interleaved repeats, "
           f"{'CPU time of one thread' if one_thread else 'wall time'})")
    rows, wrong = [], []
    for family in args.family:
        for n, m in REQUIRED + ([] if args.no_extra else EXTRA):
            f, jac = FAMILIES[family](n, m)
            tape = tapead.record(f, n)
            X = np.random.default_rng(0).uniform(-2, 2, (N, n))
            J_ref, Y_ref = jac(X), tape(X)
            for mode in ("forward", "reverse"):
                Y, J = tape.value_and_jacobian(X, mode=mode)
                np.testing.assert_allclose(J, J_ref, rtol=1e-12, atol=1e-13, err_msg=f"{family} {n}->{m} {mode}")
                np.testing.assert_array_equal(Y, Y_ref, err_msg=f"{family} {n}->{m} {mode} values")
            load = os.getloadavg()[0]
            t = interleaved({mode: (lambda mode=mode, tape=tape, X=X: tape.value_and_jacobian(X, mode=mode))
                             for mode in ("forward", "reverse")}, repeats=args.repeats, clock=clock)
            pick = jacobian_mode(n, m)
            faster = "forward" if t["forward"] < t["reverse"] else "reverse"
            ratio = t["reverse"] / t["forward"]
            close = abs(np.log(ratio)) < np.log(TIE)
            if pick != faster and not close:
                wrong.append(f"{family} {n}->{m}")
            rows.append([family, f"{n} -> {m}", tape.n_ops, fmt(t["forward"] / N * 1e9), fmt(t["reverse"] / N * 1e9),
                         f"{ratio:.2f}", faster, pick,
                         "yes" if pick == faster else ("tie" if close else "NO"), f"{load:.2f}"])
            print(f"> {family} {n}->{m}: {tape.n_ops} ops, reverse / forward {ratio:.2f}, picks {pick}", flush=True)
    print()
    print(table(["family", "n -> m", "ops", "forward ns/pt", "reverse ns/pt", "reverse / forward", "faster",
                 "auto picks", "auto picks the faster", "load"], rows))
    print("\njacobian_mode(n, m): reverse if m < n, else forward. tie: within "
          f"{TIE:.2f}x; load: the 1-minute load average as the shape's timings began.")
    if wrong:
        print(f"\nauto picked the slower mode (by more than {TIE:.2f}x) for: {', '.join(wrong)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
