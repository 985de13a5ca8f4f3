"""Forward primal with the compacted value layout vs the SSA layout: same kernel, same run.

    python -m bench.compaction [--repeats 5] [--scale 1.0]

``tape(X)`` runs the forward sweep on the layout of ``tapead.passes.compact_slots`` (value rows
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
from tapead import passes, runtime

CASES = [("rosenbrock100", 100_000), ("rk4-lorenz200", 20_000), ("mlp8-32-32-1", 100_000)]


def _frozen(a) -> np.ndarray:
    """A read-only copy, as tapead passes its layouts (a writable array would compile another signature)."""
    a = np.array(a)
    a.setflags(write=False)
    return a


def layouts(tape) -> dict[str, tuple]:
    """(arg0, arg1, arg2, res, n_values) of each layout: instruction i reads rows arg*[i], writes row res[i]."""
    compact = passes.compact_slots(tape)
    ssa = (tape.arg0, tape.arg1, tape.arg2, np.arange(tape.n_slots, dtype=compact[3].dtype), tape.n_slots)
    return {name: tuple(_frozen(a) if isinstance(a, np.ndarray) else a for a in layout)
            for name, layout in (("compacted", compact), ("ssa", ssa))}


def primal(tape, op, layout, X) -> np.ndarray:
    """Values of ``tape`` at X (N, n) on ``layout``: tape(X)'s forward sweep and blocks, without its checks."""
    n_points = X.shape[0]
    Y = np.empty((n_points, tape.n_out))
    run = runtime.kernel("forward_primal", op)
    tile = runtime.tile_size(layout[-1])
    P = np.zeros((1, 0))
    for start in range(0, n_points, runtime.BLOCK):
        stop = min(n_points, start + runtime.BLOCK)
        args = [op, *layout, tape.const, tape.n_in, tape.n_params, tape.outputs, X[start:stop], P, 0,
                Y[start:stop]]
        runtime.launch(run, args, min(tile, stop - start), stop - start)
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
        op = _frozen(passes.chain_ops(tape))
        layout = layouts(tape)
        Y = primal(tape, op, layout["compacted"], X)
        assert np.array_equal(Y, primal(tape, op, layout["ssa"], X))
        assert np.array_equal(Y[:, 0], tape(X))
        times = {key: [] for key in layout}
        for _ in range(args.repeats):
            for key, rows in layout.items():
                start = time.perf_counter()
                primal(tape, op, rows, X)
                times[key].append(time.perf_counter() - start)
        ratio = np.median(np.array(times["ssa"]) / np.array(times["compacted"]))
        compact_ns, ssa_ns = (np.median(times[key]) / n_points * 1e9 for key in ("compacted", "ssa"))
        print(f"{name}: {tape.n_ops} ops, {layout['compacted'][-1]} value rows compacted vs {tape.n_slots} SSA; "
              f"primal {compact_ns:.1f} vs {ssa_ns:.1f} ns/pt at N = {n_points:,} "
              f"(compacted {ratio:.2f}x faster)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
