"""Forward primal with the compacted value layout vs the SSA layout: same kernel, same run.

    python -m bench.compaction [--repeats 5] [--scale 1.0]

``tape(X)`` runs the forward sweep on the layout of ``tapead.layout.compact_slots`` (value rows
reused once dead); the SSA layout (built here) gives every slot its own row. Both run through
the very sweep ``tape(X)`` launches (``tapead.runtime.kernel``/``launch``, block by block, the
tape's dot-product chains marked by ``tapead.passes.chain_ops``), checked equal first. Prints
rows of scratch per point and ns per point of each layout (medians of --repeats interleaved runs).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from bench.problems import PROBLEMS
from tapead import runtime
from tapead.layout import Layout, Rows

CASES = [("rosenbrock100", 100_000), ("rk4-lorenz200", 20_000), ("mlp8-32-32-1", 100_000)]


def layouts(tape) -> dict[str, Layout]:
    """The primal sweep's layout as tapead runs it (value rows reused) and one row per slot (SSA)."""
    compacted = tape.layouts.primal
    index = np.arange(tape.n_slots, dtype=compacted.values.res.dtype)
    ssa = Rows(*(np.array(a) for a in (tape.arg0, tape.arg1, tape.arg2, index)), tape.n_slots)
    for a in (ssa.arg0, ssa.arg1, ssa.arg2, ssa.res):
        a.setflags(write=False)  # as tapead passes its layouts (a writable array compiles another signature)
    return {"compacted": compacted, "ssa": Layout(compacted.op, ssa)}


def primal(tape, layout: Layout, X) -> np.ndarray:
    """Values of ``tape`` at X (N, n) on ``layout``: tape(X)'s forward sweep, without its checks."""
    Y = np.empty((X.shape[0], tape.n_out))
    runtime.sweep("forward_primal", tape, layout, runtime.tile_size(layout.rows), X, np.zeros((1, 0)), 0,
                  outputs=(Y,))
    return Y


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of each case's point count")
    args = parser.parse_args(argv)
    for name, n_points in CASES:
        problem = PROBLEMS[name]
        n_points = max(1000, int(n_points * args.scale))
        tape = problem.record()
        X, _ = problem.points(n_points)
        layout = layouts(tape)
        Y = primal(tape, layout["compacted"], X)
        assert np.array_equal(Y, primal(tape, layout["ssa"], X))
        assert np.array_equal(Y[:, 0], tape(X))
        times = {key: [] for key in layout}
        for _ in range(args.repeats):
            for key, rows in layout.items():
                start = time.perf_counter()
                primal(tape, rows, X)
                times[key].append(time.perf_counter() - start)
        ratio = np.median(np.array(times["ssa"]) / np.array(times["compacted"]))
        compact_ns, ssa_ns = (np.median(times[key]) / n_points * 1e9 for key in ("compacted", "ssa"))
        print(f"{name}: {tape.n_ops} ops, {layout['compacted'].rows} value rows compacted vs {tape.n_slots} SSA; "
              f"primal {compact_ns:.1f} vs {ssa_ns:.1f} ns/pt at N = {n_points:,} "
              f"(compacted {ratio:.2f}x faster)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
