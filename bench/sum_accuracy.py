"""How many digits a reduced sum keeps: reduce="sum" against the correctly rounded sum.

    python -m bench.sum_accuracy [--rows 10000000]

tapead sums each tile's points in the sweep (four interleaved partial sums), then tiles and
blocks in a fixed pairwise tree. This compares that sum, for the value and the gradient of
the logistic-growth likelihood over ``--rows`` observations, with ``math.fsum`` of the
per-point terms (computed by the same kernels without reduce=), and with numpy's own sum of
those terms and a plain left-to-right loop, as references for what summation order costs.
The error is given relative to the sum of the terms' magnitudes (the condition-free measure:
sum |term| is what rounding errors scale with) and in units of eps = 2**-52.
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from bench.data_fit import growth_data, growth_term
from tapead import record


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    args = parser.parse_args(argv)
    obs, theta = growth_data(args.rows)
    tape = record(growth_term, 4, n_params=2)
    y, g = tape.value_and_gradient(theta, obs, reduce="sum")
    Y, G = tape.value_and_gradient(theta, obs)  # the terms
    eps = np.finfo(float).eps
    print(f"logistic growth, {args.rows:,} observations: error / (eps * sum |term|)")
    print("| result | tapead reduce='sum' | numpy np.sum of terms | sequential loop |")
    print("|---|---|---|---|")
    for name, got, terms in [("value", [y], Y[:, None]), *[(f"gradient[{j}]", [g[j]], G[:, j:j + 1])
                                                            for j in range(4)]]:
        col = terms[:, 0]
        exact, scale = math.fsum(col), math.fsum(np.abs(col))
        sequential = float(np.cumsum(col)[-1])  # numpy's cumsum adds left to right
        errors = [abs(v - exact) / (eps * scale) for v in (got[0], float(np.sum(col)), sequential)]
        print(f"| {name} | " + " | ".join(f"{e:.2f}" for e in errors) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
