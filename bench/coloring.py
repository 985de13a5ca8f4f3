"""Colorings at n = 1000: colors against the known optimum, coloring time, sparse vs dense speed.

    python -m bench.coloring [--n 1000] [--dense-points 20] [--sparse-points 200] [--repeats 5]

Hessians (star coloring, ``tapead.sparsity.star_color``, what ``tape.sparse_hessian`` uses) of
the functions of bench/problems.py (those of tests/test_second_order.py): banded with
half-bandwidth w = 1, 2, 3 (w + 1, the size of a clique, is a lower bound for any coloring; the
star-coloring optimum of a band graph, found here by exhaustive search on 16 vertices, is
2 w + 1: a tridiagonal matrix needs exactly 3), Rosenbrock (tridiagonal: 3), arrowhead (2) and
block-diagonal with blocks of b (b). Jacobians (column coloring of the column intersection
graph, ``tapead.sparsity.color_columns``, what ``tape.sparse_jacobian`` uses) of vector
functions with a known optimum: banded rows of 2 w + 1 consecutive columns (2 w + 1),
arrowhead (2), block-diagonal (b). Each coloring's pattern is checked to be the tape's own
(``tape.hessian_sparsity()``, ``tape.jacobian_sparsity()``).

For every Hessian problem, ``tape.sparse_hessian(X)`` against ``tape.hessian(X)``: the dense
Hessian at n = 1000 is 8 MB per point, so it is timed at --dense-points points (20 by
default: 200 would need 1.6 GB per call) and the sparse one at both that many and
--sparse-points; times are per point. The sparse values are checked against the dense
Hessian (and Rosenbrock's against its hand-written Hessian) before timing. Coloring time is
the sparsity pattern plus the coloring, computed afresh (tapes cache them).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import tapead
from bench.benchutil import fmt, header, interleaved, once, table
from bench.handwritten import rosenbrock_hessian_np
from bench.problems import arrowhead, arrowhead_vector, banded, banded_vector, block_diagonal, block_vector, rosenbrock
from tapead import sparsity


def _star_ok(adj, col, v) -> bool:
    """Is the partial coloring col (with v just colored) proper, with no 2-colored path on 4 vertices through v?"""
    if any(col.get(u) == col[v] for u in adj[v]):
        return False
    near = {v}
    for _ in range(3):
        near |= {u for x in near for u in adj[x] if u in col}

    def paths(path):
        if len(path) == 4:
            yield path
            return
        for u in adj[path[-1]]:
            if u in col and u not in path:
                yield from paths(path + [u])

    for start in near:
        for p in paths([start]):
            if v in p and col[p[0]] == col[p[2]] and col[p[1]] == col[p[3]]:
                return False
    return True


def band_star_chromatic_number(w: int, n: int = 16) -> int:
    """The fewest colors of a star coloring of the band graph (|i - j| <= w) on n vertices, by exhaustive
    search. A band graph on more vertices contains this one, so needs at least as many."""
    adj = [{j for j in range(max(0, i - w), min(n, i + w + 1)) if j != i} for i in range(n)]
    for k in range(w + 1, 2 * w + 2):
        col: dict[int, int] = {}

        def search(v, k=k, col=col):
            if v == n:
                return True
            for c in range(min(k, v + 1)):
                col[v] = c
                if _star_ok(adj, col, v) and search(v + 1):
                    return True
                del col[v]
            return False

        if search(0):
            return k
    return 2 * w + 1  # distance-2 coloring always works


def hessian_problems(n):
    band = {w: band_star_chromatic_number(w) for w in (1, 2, 3)}
    return [
        ("banded w=1 (tridiagonal)", lambda x: banded(x, 1), f"{band[1]} (w+1 = 2 is a lower bound)", 2, band[1]),
        ("banded w=2", lambda x: banded(x, 2), f"{band[2]} (w+1 = 3 is a lower bound)", 3, band[2]),
        ("banded w=3", lambda x: banded(x, 3), f"{band[3]} (w+1 = 4 is a lower bound)", 4, band[3]),
        ("rosenbrock (tridiagonal)", rosenbrock, "3", 3, 3),
        ("arrowhead", arrowhead, "2", 2, 2),
        ("block-diagonal b=3", lambda x: block_diagonal(x, 3), "3", 3, 3),
        ("block-diagonal b=5", lambda x: block_diagonal(x, 5), "5", 5, 5),
    ]


def jacobian_problems(n):
    return [
        ("banded rows, w=1", banded_vector(1), 3),
        ("banded rows, w=2", banded_vector(2), 5),
        ("banded rows, w=3", banded_vector(3), 7),
        ("arrowhead", arrowhead_vector, 2),
        ("block-diagonal b=3", block_vector(3), 3),
        ("block-diagonal b=5", block_vector(5), 5),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--dense-points", type=int, default=20)
    parser.add_argument("--sparse-points", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    n, Nd, Ns = args.n, args.dense_points, args.sparse_points
    rng = np.random.default_rng(0)
    header(f"Colorings at n = {n:,}; sparse vs dense Hessian (medians of {args.repeats} interleaved repeats)")

    rows = []
    for name, f, optimum_text, _lower, optimum in hessian_problems(n):
        tape = tapead.record(f, n, source_lines=False)
        t_pattern, pattern = once(lambda tape=tape: sparsity.hessian_pattern(tape))
        t_color, coloring = once(lambda pattern=pattern: sparsity.star_color(pattern, n))
        colors = coloring.n_colors
        assert all(np.array_equal(a, b) for a, b in zip(tape.hessian_sparsity(), (coloring.rows, coloring.cols)))
        Xd, Xs = rng.uniform(-1.5, 1.5, (Nd, n)), rng.uniform(-1.5, 1.5, (Ns, n))
        H = tape.hessian(Xd)
        (r, c), values = tape.sparse_hessian(Xd)
        np.testing.assert_allclose(values, H[:, r, c], rtol=1e-12, atol=1e-12, err_msg=name)
        mask = np.ones((n, n), dtype=bool)
        mask[r, c] = False
        assert not H[:, mask].any(), f"{name}: dense Hessian has nonzeros outside the pattern"
        if f is rosenbrock:
            np.testing.assert_allclose(H, rosenbrock_hessian_np(Xd), rtol=1e-12, atol=1e-9)
        del H
        t = interleaved({"dense": lambda tape=tape, Xd=Xd: tape.hessian(Xd),
                         "sparse_d": lambda tape=tape, Xd=Xd: tape.sparse_hessian(Xd),
                         "sparse_s": lambda tape=tape, Xs=Xs: tape.sparse_hessian(Xs)}, repeats=args.repeats)
        dense_pt, sparse_d_pt, sparse_s_pt = t["dense"] / Nd, t["sparse_d"] / Nd, t["sparse_s"] / Ns
        verdict = "optimal" if colors == optimum else f"+{colors - optimum} over the optimum"
        rows.append([name, tape.n_ops, len(r), colors, optimum_text, verdict,
                     fmt(t_pattern * 1e3), fmt(t_color * 1e3),
                     fmt(dense_pt * 1e3, 2), fmt(sparse_d_pt * 1e3, 3), fmt(sparse_s_pt * 1e3, 3),
                     f"{dense_pt / sparse_d_pt:,.0f}x", f"{dense_pt / sparse_s_pt:,.0f}x"])
        print(f"> {name}: {colors} colors, dense {dense_pt * 1e3:.1f} ms/pt, sparse {sparse_s_pt * 1e3:.3f} ms/pt",
              flush=True)
    print()
    print("## Hessians: star coloring and sparse_hessian vs hessian\n")
    print(table(["function", "ops", "nnz", "colors", "optimum", "verdict", "pattern ms", "coloring ms",
                 f"dense ms/pt (N={Nd})", f"sparse ms/pt (N={Nd})", f"sparse ms/pt (N={Ns})",
                 f"speed-up (N={Nd})", f"speed-up (dense N={Nd} vs sparse N={Ns})"], rows))

    rows = []
    for name, f, optimum in jacobian_problems(n):
        tape = tapead.record(f, n, source_lines=False)
        t_pattern, pattern = once(lambda tape=tape: sparsity.jacobian_pattern(tape))
        t_color, coloring = once(lambda pattern=pattern: sparsity.color_columns(pattern, n))
        colors = coloring.n_colors
        assert all(np.array_equal(a, b) for a, b in zip(tape.jacobian_sparsity(), (coloring.rows, coloring.cols)))
        X = rng.uniform(-1.5, 1.5, (4, n))
        (r, c), values = tape.sparse_jacobian(X)
        J = tape.jacobian(X, mode="forward")
        np.testing.assert_allclose(values, J[:, r, c], rtol=1e-13, atol=1e-13, err_msg=name)
        mask = np.ones((tape.n_out, n), dtype=bool)
        mask[r, c] = False
        assert not J[:, mask].any()
        rows.append([name, tape.n_ops, len(r), colors, optimum,
                     "optimal" if colors == optimum else f"+{colors - optimum}", fmt(t_pattern * 1e3),
                     fmt(t_color * 1e3)])
    print("\n## Jacobians: column coloring (checked against the dense Jacobian)\n")
    print(table(["function", "ops", "nnz", "colors", "optimum", "verdict", "pattern ms", "coloring ms"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
