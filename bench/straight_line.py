"""Would code generated per tape beat the generic sweeps on small tapes? (issue 16, by experiment)

    NUMBA_NUM_THREADS=1 python -m bench.straight_line [--points 1000000] [--repeats 7]

For each problem the script writes the tape's value_and_gradient as straight-line Python
source, one assignment per instruction and a loop over a tile's points around them, so that a
point's values and adjoints live in local variables (registers) rather than in tile rows, and
compiles it with Numba in this process (no cache). Two versions:

- ``as sweeps``: what the generic sweeps compute, bit for bit (checked): the tape the sweeps
  run (products fused into sums), vmath's functions where the sweeps use them, zero-skipping
  products (``_zero_skip_mul``: 0 * inf = 0) and each adjoint's first contribution added to 0.0;
- ``plain``: the same with ordinary products and no 0.0 + (NaN where a zero adjoint meets an
  infinite partial, e.g. the branch ``where`` did not take: not tapead's semantics).

Both read the tile's inputs and parameters from rows loaded as the sweeps load them and write
values and gradients through tile rows (a loop over points vectorises only over contiguous
rows). Reported: compile seconds, ns per point for tapead's value_and_gradient and the two
generated versions (medians, interleaved, one thread, CPU time of the calling thread).
Nothing here is part of tapead: the experiment behind the design's "no per-tape code".
"""

from __future__ import annotations

import argparse
import math
import time

import numba
import numpy as np
from numba import njit
from tapead.kernels import vmath
from tapead.kernels.generate import FAST, _rowed
from tapead.kernels.tiles import ZERO, _load, _zero_skip_mul

import tapead
from bench.benchutil import fmt, header, interleaved, table
from bench.problems import horner, lorenz_rhs, rosenbrock
from tapead.ops import OPERANDS, OPS, _mentions


def _literal(c: float) -> str:
    return repr(c) if math.isfinite(c) else f"float('{c}')"


def _scalar(spec, expr: str) -> str:
    # vmath's functions where the sweeps run the expression over a row with them
    if not _rowed(spec, expr):
        return expr
    return FAST.sub(lambda m: {"sin": "_sin(", "cos": "_cos("}.get(m.group(1), f"vmath.{m.group(1)}("), expr)


def source(tape, plain: bool) -> str:
    """``vg(X, P, Y, G, tile)``: values Y (N, m) and the gradient of the first output G (N, n)."""
    args = (tape.arg0, tape.arg1, tape.arg2)
    body = [f"v{j} = u[{j}, p]" for j in range(tape.n_in + tape.n_params)]

    def operands(i: int, exprs: list[str]) -> None:
        for k, name in enumerate(OPERANDS):
            if any(_mentions(e, name) for e in exprs):
                body.append(f"{name} = v{args[k][i]}")
        if any(_mentions(e, "z") for e in exprs):
            body.append(f"z = v{i}")
        if any(_mentions(e, "c") for e in exprs):
            body.append(f"c = {_literal(float(tape.const[i]))}")

    for i in range(tape.n_in + tape.n_params, tape.n_slots):
        spec = OPS[int(tape.op[i])]
        operands(i, [spec.primal])
        body.append(f"v{i} = {_scalar(spec, spec.primal)}")
    body += [f"ys[{j}, p] = v{s}" for j, s in enumerate(tape.outputs)]
    seeded: set[int] = set()

    def add(slot: int, term: str) -> None:
        first = "" if plain else "0.0 + "
        body.append(f"b{slot} = b{slot} + {term}" if slot in seeded else f"b{slot} = {first}{term}")
        seeded.add(slot)

    add(int(tape.outputs[0]), "1.0")
    product = "mul" if plain else "_zero_skip_mul"
    for i in range(tape.n_slots - 1, tape.n_in + tape.n_params - 1, -1):
        if i not in seeded:
            continue
        spec = OPS[int(tape.op[i])]
        terms = [(k, kind) for k, kind in enumerate(spec.kinds) if kind != "zero"]
        operands(i, [spec.partials[k] for k, kind in terms if kind in ("const", "point")])
        for k, kind in terms:
            term = {"one": f"b{i}", "minus_one": f"-b{i}"}.get(kind, f"{product}({_scalar(spec, spec.partials[k])}, b{i})")
            add(int(args[k][i]), term)
    body += [f"gs[{j}, p] = {f'b{j}' if j in seeded else '0.0'}" for j in range(tape.n_in)]
    lines = [
        "def vg(X, P, Y, G, tile):",
        f"    u = np.empty(({tape.n_in + tape.n_params}, tile))",
        f"    loaded = np.arange({tape.n_in + tape.n_params})",
        "    buf = np.empty((tile, max(X.shape[1], P.shape[1])))",
        f"    ys = np.empty(({tape.n_out}, tile))",
        f"    gs = np.empty(({tape.n_in}, tile))",
        "    for start in range(0, X.shape[0], tile):",
        "        m = min(tile, X.shape[0] - start)",
        "        _load(X, 1, loaded, ZERO, u, start, m, buf)",
        f"        _load(P, 1, loaded, {tape.n_in}, u, start, m, buf)",
        "        for p in range(m):",
        *("            " + line for line in body),
        f"        for j in range({tape.n_out}):",
        "            for p in range(m):",
        "                Y[start + p, j] = ys[j, p]",
        f"        for j in range({tape.n_in}):",
        "            for p in range(m):",
        "                G[start + p, j] = gs[j, p]",
    ]
    return "\n".join(lines) + "\n"


@njit(inline="always", error_model="numpy")
def mul(a, b):
    return a * b


@njit(inline="always", error_model="numpy")
def _sin(x):
    return vmath.sin(x) if math.fabs(x) < vmath.LARGE else np.sin(x)


@njit(inline="always", error_model="numpy")
def _cos(x):
    return vmath.cos(x) if math.fabs(x) < vmath.LARGE else np.cos(x)


def compiled(tape, plain: bool):
    """(the generated function compiled, seconds to compile it at its first call's types)."""
    names = {"np": np, "math": math, "vmath": vmath, "ZERO": ZERO, "_load": _load, "_zero_skip_mul": _zero_skip_mul,
             "mul": mul, "_sin": _sin, "_cos": _cos}
    exec(source(tape, plain), names)  # our own generated text, from a tape we recorded: nothing untrusted
    vg = njit(error_model="numpy")(names["vg"])
    X, P = np.zeros((1, tape.n_in)), np.zeros((1, max(tape.n_params, 1)))[:, :tape.n_params]
    t0 = time.perf_counter()
    vg(X, np.ascontiguousarray(P), np.empty((1, tape.n_out)), np.empty((1, tape.n_in)), 512)
    return vg, time.perf_counter() - t0


def lorenz_x(x):
    f = lorenz_rhs(x)
    return f[0] * f[1] + f[2]  # one output: a gradient


PROBLEMS = {  # name: (f, n inputs, points scale)
    "horner20": (horner, 1, 1.0),
    "lorenz-rhs (f0 f1 + f2)": (lorenz_x, 3, 1.0),
    "black-scholes-like (exp, log, sqrt, sin)": (
        lambda x: np.exp(-x[0]) * np.log1p(x[1] * x[1]) + np.sqrt(1.0 + x[2] * x[2]) * np.sin(x[0] * x[1]), 3, 1.0),
    "rosenbrock n=10": (lambda x: rosenbrock(x), 10, 0.5),
    "rosenbrock n=30": (lambda x: rosenbrock(x), 30, 0.2),
}


def measure(name: str, f, n: int, N: int, repeats: int, rng) -> list:
    tape = tapead.record(f, n)
    run = tape.layouts.tape
    X = rng.uniform(0.5, 1.5, (N, n))
    P = np.zeros((N, 0))
    exact, t_exact = compiled(run, plain=False)
    plain, t_plain = compiled(run, plain=True)
    Y, G = np.empty((N, 1)), np.empty((N, n))
    exact(X, P, Y, G, 512)
    y0, g0 = tape.value_and_gradient(X)
    if not (np.array_equal(Y[:, 0], y0) and np.array_equal(G, g0)):
        raise AssertionError(f"{name}: the generated code differs from the sweeps")
    y, g = np.empty(N), np.empty((N, n))  # every version writes into arrays made once
    times = interleaved({
        "tapead": lambda: tape.value_and_gradient(X, out=(y, g)),
        "as sweeps": lambda: exact(X, P, Y, G, 512),
        "plain": lambda: plain(X, P, Y, G, 512),
    }, repeats=repeats, clock=time.thread_time)
    ns = {k: v / N * 1e9 for k, v in times.items()}
    return [name, run.n_ops, fmt(t_exact), fmt(t_plain), fmt(ns["tapead"]), fmt(ns["as sweeps"]), fmt(ns["plain"]),
            fmt(ns["as sweeps"] / ns["tapead"], 2), fmt(ns["plain"] / ns["tapead"], 2)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    numba.set_num_threads(1)  # CPU time of the calling thread is then all of tapead's work
    header("straight-line code per tape against the generic sweeps (value_and_gradient)")
    rng = np.random.default_rng(0)
    rows = []
    for name, (f, n, scale) in PROBLEMS.items():
        rows.append(measure(name, f, n, int(args.points * scale), args.repeats, rng))
        print(rows[-1], flush=True)
    print(table(["problem", "ops as run", "compile as sweeps (s)", "compile plain (s)", "tapead ns/pt",
                 "as sweeps ns/pt", "plain ns/pt", "as sweeps / tapead", "plain / tapead"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
