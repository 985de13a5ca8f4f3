"""Per-call cost of ``tape.to_scipy()`` callables at one point, beside hand-written numpy.

    python bench/scipy_overhead.py [--calls 500] [--repeats 7]

scipy.optimize calls fun/jac/hessp once per iteration on a single point, so per-call
overhead (argument checks, kernel dispatch) matters more than throughput. For extended
Rosenbrock n = 10 and n = 100: ``fun``, ``jac``, ``fun_and_jac`` and ``hessp`` of
``tape.to_scipy()`` beside a hand-written numpy fun / grad / fun-and-grad / Hessian-vector
product (checked against scipy.optimize.rosen, rosen_der, rosen_hess_prod and against
tapead before timing). Microseconds per call: medians over --repeats interleaved
timings of --calls calls each.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import tapead  # noqa: E402
from benchutil import fmt, header, interleaved, table  # noqa: E402
from problems import rosenbrock_f  # noqa: E402


def np_fun(x):
    a = x[1:] - x[:-1] ** 2
    b = 1.0 - x[:-1]
    return float(np.sum(100.0 * a * a + b * b))


def np_grad(x):
    a = x[1:] - x[:-1] ** 2
    g = np.zeros_like(x)
    g[:-1] = -400.0 * a * x[:-1] - 2.0 * (1.0 - x[:-1])
    g[1:] += 200.0 * a
    return g


def np_fun_and_grad(x):
    a = x[1:] - x[:-1] ** 2
    b = 1.0 - x[:-1]
    g = np.zeros_like(x)
    g[:-1] = -400.0 * a * x[:-1] - 2.0 * b
    g[1:] += 200.0 * a
    return float(np.sum(100.0 * a * a + b * b)), g


def np_hessp(x, p):
    hp = np.zeros_like(x)
    hp[:-1] = (1200.0 * x[:-1] ** 2 - 400.0 * x[1:] + 2.0) * p[:-1] - 400.0 * x[:-1] * p[1:]
    hp[1:] += 200.0 * p[1:] - 400.0 * x[:-1] * p[:-1]
    return hp


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    from scipy.optimize import rosen, rosen_der, rosen_hess_prod

    header(f"scipy callables: microseconds per call at one point (medians of {args.repeats} interleaved "
           f"timings of {args.calls} calls)")
    rows = []
    for n in (10, 100):
        funcs = tapead.record(rosenbrock_f, n).to_scipy()
        rng = np.random.default_rng(n)
        x, p = rng.uniform(-2, 2, n), rng.normal(size=n)
        # correctness: numpy vs scipy's own Rosenbrock, tapead vs numpy
        np.testing.assert_allclose(np_fun(x), rosen(x), rtol=1e-14)
        np.testing.assert_allclose(np_grad(x), rosen_der(x), rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(np_hessp(x, p), rosen_hess_prod(x, p), rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(funcs.fun(x), np_fun(x), rtol=1e-14)
        np.testing.assert_allclose(funcs.jac(x), np_grad(x), rtol=1e-13, atol=1e-12)
        y, g = funcs.fun_and_jac(x)
        np.testing.assert_allclose(y, np_fun(x), rtol=1e-14)
        np.testing.assert_allclose(g, np_grad(x), rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(funcs.hessp(x, p), np_hessp(x, p), rtol=1e-13, atol=1e-12)
        t = interleaved({
            "fun": lambda: funcs.fun(x), "np_fun": lambda: np_fun(x),
            "jac": lambda: funcs.jac(x), "np_jac": lambda: np_grad(x),
            "fun_and_jac": lambda: funcs.fun_and_jac(x), "np_fun_and_jac": lambda: np_fun_and_grad(x),
            "hessp": lambda: funcs.hessp(x, p), "np_hessp": lambda: np_hessp(x, p),
        }, repeats=args.repeats, number=args.calls, warmup=20)
        for name in ("fun", "jac", "fun_and_jac", "hessp"):
            ours, ref = t[name] * 1e6, t["np_" + name] * 1e6
            rows.append([f"rosenbrock n={n}", name, fmt(ours, 1), fmt(ref, 1), f"{ours / ref:.1f}x",
                         fmt(ours - ref, 1)])
    print(table(["function", "callable", "tapead µs/call", "numpy µs/call", "tapead / numpy",
                 "overhead µs"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
