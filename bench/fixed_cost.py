"""Where the per-point fixed cost goes on small tapes (issue 16), by experiment.

    NUMBA_NUM_THREADS=1 python -m bench.fixed_cost [--points 1000000] [--repeats 7]

The two small problems of bench/peers.py: a degree-20 Horner polynomial (1 input, 40 ops,
value_and_gradient) and the Jacobian of the Lorenz right-hand side (3 -> 3, 8 ops,
value_and_jacobian, both modes). Each experiment changes one thing and times it interleaved
with the baseline, medians of --repeats, one thread, in CPU time of the calling thread
(time.thread_time: the time other processes held the core is left out):

1. per call: the same calls at 1 point and at one tile of points (API checks, one block's
   launch), against the per-point cost at N;
2. loads and stores: tapes of 1-3 ops with the same inputs and outputs;
3. per op: Horner of degree 1 .. 80 and 1 .. 16 Euler steps of the Lorenz system, fitted
   ns/point = a + b * ops;
4. per tile: tiles of 128 .. 2048 points (runtime's tile bounds patched), fitted
   ns/point = c + B / tile; B / ops is the cost per instruction and tile (dispatch, loop setup);
5. dispatch: the full sweeps against sweeps generated for the tape's opcodes only
   (runtime._specialise: the same op functions, an if/elif chain of 2-3 cases instead of 62);
6. outside the sweeps: the API with and without ``out=``, evaluate.primal / tangent / adjoint
   called directly with unit seeds (value_and_jacobian copies their result into J), with and
   without their outputs given (new arrays: the kernel maps and zeroes their pages on first
   touch), and numpy's copy of the derivatives' bytes (the memory floor);
7. the loops of one op: standalone replicas of the mul op's tangent loops (40 muls on 512-point
   rows in cache): the value alone, value and tangent in two loops as generated or in one,
   with the zero-skipping product ``_zero_skip_mul`` or a plain one.

Nothing here edits the kernels; runtime's tile bounds and kernel lookup are patched in this
process only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numba
import numpy as np
from numba import njit
from tapead.kernels.tiles import CHAIN_MULC, _zero_skip_mul

import tapead
from bench.benchutil import fmt, header, interleaved, table
from bench.problems import LZ_DT, _lorenz_points, _lorenz_rhs, horner, lorenz_rhs
from tapead import evaluate, runtime
from tapead.ops import CONST


def horner_of(degree: int):
    coeffs = [(-1.0) ** k / (k + 1) for k in range(degree + 1)]  # HORNER_C's, any degree

    def f(x):
        p = coeffs[0]
        for c in coeffs[1:]:
            p = p * x[0] + c
        return p

    return f


def euler_of(steps: int):
    def f(x):
        s = (x[0], x[1], x[2])
        for _ in range(steps):
            s = tuple(si + LZ_DT * ki for si, ki in zip(s, _lorenz_rhs(*s)))
        return list(s)

    return f


def cases(X1, X3):
    """name -> (tape, call(tape, X), X): the calls under study."""
    h, lz = tapead.record(horner, 1), tapead.record(lorenz_rhs, 3)
    return {
        "horner20 value_and_gradient": (h, lambda t, X: t.value_and_gradient(X), X1),
        "horner20 values": (h, lambda t, X: t(X), X1),
        "lorenz-rhs value_and_jacobian forward": (lz, lambda t, X: t.value_and_jacobian(X, mode="forward"), X3),
        "lorenz-rhs value_and_jacobian reverse": (lz, lambda t, X: t.value_and_jacobian(X, mode="reverse"), X3),
    }


def timed(fns, **options):
    """bench.benchutil.interleaved in the calling thread's CPU time."""
    return interleaved(fns, clock=time.thread_time, **options)


def ns(t: float, N: int) -> str:
    return fmt(t / N * 1e9, 2)


def per_call(cs, N, repeats):
    rows = []
    for name, (tape, call, X) in cs.items():
        small = {k: (lambda k=k, tape=tape, call=call, X=X: call(tape, X[:k])) for k in (1, 512)}
        t = timed({"N": lambda tape=tape, call=call, X=X: call(tape, X)}, repeats=repeats)
        t1 = timed(small, repeats=repeats, number=200)
        blocks = -(-N // runtime.BLOCK)
        rows.append([name, fmt(t1[1] * 1e6, 1), fmt(t1[512] * 1e6, 1), ns(t["N"], N),
                     fmt(blocks * t1[1] / N * 1e9, 3)])
    return table(["call", "1 point, µs", "512 points, µs", f"ns/point at N={N:,}",
                  "per-call cost x blocks / N, ns/point"], rows)


ONE = np.ones(1)


def loads_and_stores(cs, N, repeats):
    X1, X3 = cs["horner20 values"][2], cs["lorenz-rhs value_and_jacobian forward"][2]
    one = tapead.record(lambda x: x[0] * 2.0, 1)
    three = tapead.record(lambda x: [x[0] * 2.0, x[1] * 2.0, x[2] * 2.0], 3)
    fns = {
        "horner20 value_and_gradient": lambda: cs["horner20 value_and_gradient"][0].value_and_gradient(X1),
        "1 op (2x), value_and_gradient": lambda: one.value_and_gradient(X1),
        "horner20 values": lambda: cs["horner20 values"][0](X1),
        "1 op (2x), values": lambda: one(X1),
        "lorenz-rhs forward": lambda: cs["lorenz-rhs value_and_jacobian forward"][0].value_and_jacobian(X3, mode="forward"),
        "3 ops (2x each), forward": lambda: three.value_and_jacobian(X3, mode="forward"),
        "lorenz-rhs reverse": lambda: cs["lorenz-rhs value_and_jacobian reverse"][0].value_and_jacobian(X3, mode="reverse"),
        "3 ops (2x each), reverse": lambda: three.value_and_jacobian(X3, mode="reverse"),
        "3 ops (2x each), values": lambda: three(X3),
        "3 ops (2x each), jvp (1 direction)": lambda: three.jvp(X3, np.ones(3)),
        "horner20 jvp (1 direction: the derivative by forward mode)": lambda: cs["horner20 values"][0].jvp(X1, ONE),
    }
    t = timed(fns, repeats=repeats)
    return table(["call", "ns/point"], [[k, ns(v, N)] for k, v in t.items()])


def fit(x, y):
    """(intercept, slope) of the least-squares line."""
    slope, intercept = np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)
    return intercept, slope


def per_op(X1, X3, N, repeats):
    rows = []
    series = {
        "Horner value_and_gradient": ([1, 5, 10, 20, 40, 80], horner_of, 1, lambda t, X: t.value_and_gradient(X)),
        "Horner values": ([1, 5, 10, 20, 40, 80], horner_of, 1, lambda t, X: t(X)),
        "Euler-Lorenz value_and_jacobian forward": ([1, 2, 4, 8, 16], euler_of, 3,
                                                    lambda t, X: t.value_and_jacobian(X, mode="forward")),
        "Euler-Lorenz value_and_jacobian reverse": ([1, 2, 4, 8, 16], euler_of, 3,
                                                    lambda t, X: t.value_and_jacobian(X, mode="reverse")),
    }
    for name, (sizes, make, n, call) in series.items():
        X = X1 if n == 1 else X3
        tapes = {k: tapead.record(make(k), n) for k in sizes}
        t = timed({k: (lambda tape=tape, call=call, X=X: call(tape, X)) for k, tape in tapes.items()},
                        repeats=repeats)
        ops = [tapes[k].n_ops for k in sizes]
        a, b = fit(ops, [t[k] / N * 1e9 for k in sizes])
        points = ", ".join(f"{o} ops {ns(t[k], N)}" for o, k in zip(ops, sizes))
        rows.append([name, points, fmt(a, 2), fmt(b, 3)])
    return table(["series", "ns/point", "fit a (ns/point at 0 ops)", "fit b (ns/point per op)"], rows)


def per_tile(cs, N, repeats):
    rows = []
    saved = runtime._TILE_MIN, runtime._TILE_MAX, runtime._SCRATCH_BUDGET
    tiles = [128, 256, 512, 1024, 2048]
    try:
        for name, (tape, call, X) in cs.items():
            fns = {}
            for tile in tiles:
                def run(tile=tile, tape=tape, call=call, X=X):
                    runtime._TILE_MIN = runtime._TILE_MAX = tile
                    runtime._SCRATCH_BUDGET = 64 << 20
                    call(tape, X)
                fns[tile] = run
            t = timed(fns, repeats=repeats)
            c, B = fit([1.0 / k for k in tiles], [t[k] / N * 1e9 for k in tiles])
            rows.append([name, tape.n_ops, ", ".join(f"{k}: {ns(t[k], N)}" for k in tiles), fmt(c, 2),
                         fmt(B, 0), fmt(B / tape.n_ops, 1)])
    finally:
        runtime._TILE_MIN, runtime._TILE_MAX, runtime._SCRATCH_BUDGET = saved
    return table(["call", "ops", "ns/point by tile", "fit c (ns/point, infinite tile)", "fit B (ns per tile)",
                  "B / ops (ns per instruction and tile)"], rows)


def dispatch(cs, N, repeats):
    full = runtime.kernel
    rows = []
    try:
        for name, (tape, call, X) in cs.items():
            codes = frozenset(min(int(c), CHAIN_MULC) for c in np.unique(tape.layouts.primal.op) if c >= CONST)
            module = runtime._specialise(codes)

            def specialised(tape=tape, call=call, X=X, module=module):
                runtime.kernel = lambda sweep, op: getattr(module, sweep)
                call(tape, X)

            def baseline(tape=tape, call=call, X=X):
                runtime.kernel = full
                call(tape, X)

            specialised()  # compiles (seconds) or loads from the cache
            t = timed({"full": baseline, "specialised": specialised}, repeats=repeats)
            rows.append([name, len(codes), ns(t["full"], N), ns(t["specialised"], N),
                         f"{t['specialised'] / t['full']:.2f}"])
    finally:
        runtime.kernel = full
    return table(["call", "opcodes", "full sweeps ns/point", "specialised ns/point", "specialised / full"], rows)


def outside(cs, N, repeats):
    rows = []
    for name, (tape, call, X) in cs.items():
        Xc, _, P, p_step = tape._args(X, (), [], "bench")
        n, m = tape.n_in, tape.n_out
        mode = name.rsplit(" ", 1)[1]
        Y, J = np.empty((N, m)), np.empty((N, m, n) if m > 1 else (N, n))
        if mode == "forward":
            def direct(out, tape=tape, Xc=Xc, P=P, p_step=p_step, n=n):
                return evaluate.tangent(tape, Xc, P, p_step, evaluate.unit(n, slice(0, n)), 0, *out)
        elif mode == "values":
            def direct(out, tape=tape, Xc=Xc, P=P, p_step=p_step):
                return evaluate.primal(tape, Xc, P, p_step, *out[:1])
        else:  # the adjoint sweep: the gradient's (one unit weight) or the Jacobian's (m)
            def direct(out, tape=tape, Xc=Xc, P=P, p_step=p_step, m=m, n=n):
                return evaluate.adjoint(tape, Xc, P, p_step, evaluate.unit(m, slice(0, m)), 0, *out)
        outs = (Y, np.empty((N, m, n) if mode == "forward" else (N, n, m)))
        t = timed({"api": lambda tape=tape, call=call, X=X: call(tape, X),
                   "api, out=": lambda tape=tape, X=X, mode=mode, Y=Y, J=J, m=m: (
                       tape(X, out=Y[:, 0]) if mode == "values" else
                       tape.value_and_gradient(X, out=(Y[:, 0], J)) if m == 1 else
                       tape.value_and_jacobian(X, mode=mode, out=(Y, J))),
                   "sweep": lambda direct=direct: direct(()),
                   "sweep, out=": lambda direct=direct, outs=outs: direct(outs),
                   "copy": lambda J=J, outs=outs: np.copyto(outs[1].reshape(J.shape), J)}, repeats=repeats)
        rows.append([name, *(ns(t[k], N) for k in ("api", "api, out=", "sweep", "sweep, out=", "copy"))])
    return table(["call", "API", "API, out= given", "sweep (evaluate.*)", "sweep, outputs given",
                  "numpy copy of the derivatives' bytes"], rows)


# ---- 7. the derivative loops of one op, as standalone replicas of kernels/sweeps.py's mul ----


@njit(inline="always", nogil=True, error_model="numpy")
def _plain(a, b):
    return a * b


def _mul_tangent_sweep(product, one_loop: bool):
    """A tape of mul instructions v[row] = v[a0] * v[a1] with one tangent direction, over
    tile rows: as the generated _mul_tangent (partials into dd, then a loop over the
    directions) or in one loop (what the adjoint's r == 1 case does)."""

    @njit(nogil=True, error_model="numpy")
    def sweep(v, v_dot, dd, a0s, a1s, rows, reps):
        m = v.shape[1]
        for _ in range(reps):
            for i in range(a0s.shape[0]):
                a0, a1, row = a0s[i], a1s[i], rows[i]
                if one_loop:
                    for p in range(m):
                        x, y = v[a0, p], v[a1, p]
                        v[row, p] = x * y
                        v_dot[row, 0, p] = product(y, v_dot[a0, 0, p]) + product(x, v_dot[a1, 0, p])
                    continue
                d0, d1 = dd[0], dd[1]
                for p in range(m):
                    x, y = v[a0, p], v[a1, p]
                    v[row, p] = x * y
                    d0[p] = y
                    d1[p] = x
                for p in range(m):
                    v_dot[row, 0, p] = product(d0[p], v_dot[a0, 0, p]) + product(d1[p], v_dot[a1, 0, p])

    return sweep


def derivative_loops(repeats, ops=40, tile=512, reps=2000):
    v = np.random.default_rng(0).uniform(0.9, 1.1, (ops + 2, tile))
    v_dot, dd = np.ones((ops + 2, 1, tile)), np.empty((3, tile))
    a0s, a1s, rows = np.arange(1, ops + 1), np.zeros(ops, np.int64), np.arange(2, ops + 2)
    fns = {"value only": lambda: _values_only(v, a0s, a1s, rows, reps)}
    for loops, one_loop in (("two loops (as generated)", False), ("one loop", True)):
        for name, product in (("_zero_skip_mul", _zero_skip_mul), ("plain product", _plain)):
            sweep = _mul_tangent_sweep(product, one_loop)
            fns[f"value and tangent, {loops}, {name}"] = \
                lambda sweep=sweep: sweep(v, v_dot, dd, a0s, a1s, rows, reps)
    t = timed(fns, repeats=repeats)
    return table(["loop", "ns per point and op"], [[k, fmt(x / (reps * ops * tile) * 1e9, 3)] for k, x in t.items()])


@njit(nogil=True, error_model="numpy")
def _values_only(v, a0s, a1s, rows, reps):
    m = v.shape[1]
    for _ in range(reps):
        for i in range(a0s.shape[0]):
            a0, a1, row = a0s[i], a1s[i], rows[i]
            for p in range(m):
                v[row, p] = v[a0, p] * v[a1, p]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    N = args.points
    if numba.get_num_threads() != 1:
        print("> run with NUMBA_NUM_THREADS=1: the experiments are about one thread's costs", flush=True)
    header(f"Per-point fixed cost on small tapes at N = {N:,} (medians of {args.repeats} interleaved repeats)")
    rng = np.random.default_rng(0)
    X1 = rng.uniform(-1, 1, (N, 1))
    X3 = _lorenz_points(N, rng)[0]
    cs = cases(X1, X3)
    for _, (tape, call, X) in cs.items():
        call(tape, X)  # loads the kernels
    for title, experiment in [("1. per call", lambda: per_call(cs, N, args.repeats)),
                              ("2. loads and stores", lambda: loads_and_stores(cs, N, args.repeats)),
                              ("3. per op", lambda: per_op(X1, X3, N, args.repeats)),
                              ("4. per tile", lambda: per_tile(cs, N, args.repeats)),
                              ("5. dispatch", lambda: dispatch(cs, N, args.repeats)),
                              ("6. outside the sweeps", lambda: outside(cs, N, args.repeats)),
                              ("7. the derivative loops of one op (in cache)", lambda: derivative_loops(args.repeats))]:
        load = os.getloadavg()[0]
        print(f"## {title} (load {load:.2f})\n\n{experiment()}\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
