"""Per-call cost of ``tape.to_scipy()`` callables at one point, beside hand-written numpy.

    python -m bench.scipy_overhead [--calls 500] [--repeats 7]

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
import sys

import numpy as np

import tapead
from bench.benchutil import fmt, header, interleaved, table
from bench.handwritten import rosenbrock_grad_np, rosenbrock_hessp_np, rosenbrock_np, rosenbrock_value_and_grad_np
from bench.problems import rosenbrock


def timings(funcs, x, p, repeats: int, calls: int) -> dict[str, float]:
    """Median seconds per call of each tapead callable and its numpy counterpart ("np_" + name)."""
    return interleaved({
        "fun": lambda: funcs.fun(x), "np_fun": lambda: rosenbrock_np(x),
        "jac": lambda: funcs.jac(x), "np_jac": lambda: rosenbrock_grad_np(x),
        "fun_and_jac": lambda: funcs.fun_and_jac(x), "np_fun_and_jac": lambda: rosenbrock_value_and_grad_np(x),
        "hessp": lambda: funcs.hessp(x, p), "np_hessp": lambda: rosenbrock_hessp_np(x, p),
    }, repeats=repeats, number=calls, warmup=20)


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
        funcs = tapead.record(rosenbrock, n).to_scipy()
        rng = np.random.default_rng(n)
        x, p = rng.uniform(-2, 2, n), rng.normal(size=n)
        # correctness: numpy vs scipy's own Rosenbrock, tapead vs numpy
        f_ref, g_ref, hp_ref = rosenbrock_np(x), rosenbrock_grad_np(x), rosenbrock_hessp_np(x, p)
        np.testing.assert_allclose(f_ref, rosen(x), rtol=1e-14)
        np.testing.assert_allclose(g_ref, rosen_der(x), rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(hp_ref, rosen_hess_prod(x, p), rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(rosenbrock_value_and_grad_np(x)[1], g_ref, rtol=1e-15)
        np.testing.assert_allclose(funcs.fun(x), f_ref, rtol=1e-14)
        np.testing.assert_allclose(funcs.jac(x), g_ref, rtol=1e-13, atol=1e-12)
        y, g = funcs.fun_and_jac(x)
        np.testing.assert_allclose(y, f_ref, rtol=1e-14)
        np.testing.assert_allclose(g, g_ref, rtol=1e-13, atol=1e-12)
        np.testing.assert_allclose(funcs.hessp(x, p), hp_ref, rtol=1e-13, atol=1e-12)
        t = timings(funcs, x, p, args.repeats, args.calls)
        for name in ("fun", "jac", "fun_and_jac", "hessp"):
            ours, ref = t[name] * 1e6, t["np_" + name] * 1e6
            rows.append([f"rosenbrock n={n}", name, fmt(ours, 1), fmt(ref, 1), f"{ours / ref:.1f}x",
                         fmt(ours - ref, 1)])
    print(table(["function", "callable", "tapead µs/call", "numpy µs/call", "tapead / numpy",
                 "overhead µs"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
