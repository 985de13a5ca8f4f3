"""Recording speed: ops per second of ``tapead.record`` with and without source lines.

    python -m bench.record_cost [--repeats 5]

``tapead.record(f, n, source_lines=True)`` (the default) remembers which line of ``f``
recorded each instruction (for ``find_nonfinite``); ``source_lines=False`` does not. Both
are timed, interleaved, on extended Rosenbrock n = 1000 and on the tanh MLP 8-32-32-1 of
bench/problems.py, and apart: the trace alone and the optimisation pass alone.
Goal: recording at >= 200k ops/s (instructions recorded, before optimisation). The tapes are checked against the
hand-written kernels (and each other) before timing.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import tapead
from bench.benchutil import fmt, header, interleaved, table
from bench.problems import PROBLEMS, mlp, rosenbrock
from tapead.tracer import trace

try:
    from tapead import passes  # the optimisation pass, where this version has one
except ImportError:
    passes = None

GOAL = 200_000  # ops/s


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    cases = [("rosenbrock n=1000", rosenbrock, 1000, PROBLEMS["rosenbrock100"].fused),
             ("mlp 8-32-32-1", mlp, 8, PROBLEMS["mlp8-32-32-1"].fused)]
    header(f"Recording speed, source_lines=True vs False (medians of {args.repeats} interleaved repeats)")
    rows = []
    for name, f, n, fused in cases:
        with_lines = tapead.record(f, n, source_lines=True)
        without = tapead.record(f, n, source_lines=False)
        assert np.array_equal(with_lines.op, without.op) and np.array_equal(with_lines.const, without.const)
        assert without.source_index is None and with_lines.source_index is not None
        X = np.random.default_rng(1).uniform(-1, 1, (64, n))
        y_ref, g_ref = np.empty(64), np.empty((64, n))
        fused(X, None, y_ref, g_ref)
        for tape in (with_lines, without):
            y, g = tape.value_and_gradient(X)
            np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(g, g_ref, rtol=1e-9, atol=1e-9)
        data = trace(f, n, 0, False)
        recorded = len(data.op) - n  # instructions the function performed, before any optimisation
        fns = {"lines": lambda f=f, n=n: tapead.record(f, n, source_lines=True),
               "nolines": lambda f=f, n=n: tapead.record(f, n, source_lines=False),
               "trace": lambda f=f, n=n: trace(f, n, 0, False)}
        if passes is not None:
            fns["optimize"] = lambda data=data: passes.optimize(data)
        t = interleaved(fns, repeats=args.repeats)
        r_lines, r_no = recorded / t["lines"], recorded / t["nolines"]
        rows.append([name, f"{recorded:,}", f"{with_lines.n_ops:,}", fmt(t["lines"] * 1e3, 1),
                     fmt(t["nolines"] * 1e3, 1), fmt(t["trace"] * 1e3, 1),
                     fmt(t["optimize"] * 1e3, 1) if "optimize" in t else "–",
                     f"{r_lines / 1e3:,.0f}k", f"{r_no / 1e3:,.0f}k",
                     f"{(t['lines'] - t['nolines']) / recorded * 1e9:.0f}",
                     f"{t['lines'] / t['nolines']:.2f}x",
                     "met" if r_lines >= GOAL else f"MISSED ({r_lines / GOAL:.2f} of goal)",
                     "met" if r_no >= GOAL else f"MISSED ({r_no / GOAL:.2f} of goal)"])
    print(table(["function", "ops recorded", "ops after optimize", "record ms, lines", "record ms, no lines",
                 "of which trace ms (no lines)", "of which optimize ms", "ops/s, lines", "ops/s, no lines",
                 "ns/op for lines", "lines / no lines", ">= 200k ops/s (lines)", ">= 200k ops/s (no lines)"],
                rows))
    print("\nops/s = instructions recorded (before optimisation) / seconds of tapead.record (trace, optimize, "
          "validate). The trace and optimize columns time those steps alone, in the same interleaved run.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
