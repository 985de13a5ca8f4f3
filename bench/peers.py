"""tapead against its peers: value and gradient per point, on a suite of functions.

    python -m bench.peers [--repeats 5] [--scale 1.0] [--peers fused,jax,torch,casadi] [--no-ttfg] [PROBLEM ...]

For each problem, value_and_gradient at every point (value_and_jacobian for a problem of
several outputs) by:

* tapead: ``tape.value_and_gradient(X[, P])`` (kernels cached, tape recorded once);
* fused: a hand-written fused Numba kernel (bench/handwritten.py), the practical limit;
* JAX: ``jit(vmap(value_and_grad(f)))``, float64, warm (trace and compile timed apart);
* torch: ``torch.func.vmap(torch.func.grad_and_value(f))`` on CPU, float64;
* CasADi: an SX ``Function`` of (f, gradient(f, x)), ``.map(N, "thread", threads)``, called on
  the (n, N) points (conversion to and from DM included, as a user would call it).

Jacobian problems: tapead's ``tape.value_and_jacobian(X)`` (mode "auto"); JAX
``jit(vmap(jacfwd(f)))`` and ``jacrev``; torch.func ``vmap(jacfwd(f))`` and ``jacrev``; CasADi
an SX ``Function`` of (f, jacobian(f, x)) mapped as above. Each peer's faster mode is reported
(the other is timed in the same rounds). Each row ends with tapead / the best peer (the issue's
goal: at most 0.5) and the load average when the row was timed.

Every peer's values and gradients (or Jacobians) are checked against tapead's (and tapead's against the fused
kernel) before timing. Timings are interleaved, medians of --repeats. Peers that are not
installed are skipped with a message. A peer whose one call would take too long, or would
not fit in memory (reverse mode over all points at once stores every intermediate: 14k ops x
100k points = 11 GB on Lorenz), runs on fewer points; the table says how many.

Also prints the time to the first gradient of the Lorenz tape: tapead's record + first
evaluation (kernels loaded from the disk cache) vs JAX's trace + compile + first call.

Problems (bench/problems.py, each function written once over a math namespace, so that every
peer runs the same code): the worked example (2 inputs), Black-Scholes call price (S, sigma;
K, T, r constant) at 1,000,000 points; extended Rosenbrock n = 100, tanh MLP 8-32-32-1, logistic-regression NLL
(32 weights, 33 parameters: features and label), RK4 Lorenz 200 steps (final x from the 3
initial states) and Helmholtz energy n = 30 at 100,000 points; a degree-20 Horner polynomial
(1 input, 40 ops) and the Jacobian of the Lorenz right-hand side (3 -> 3, 8 ops) at 1,000,000.

With ``NUMBA_NUM_THREADS=1`` every peer runs on one thread (XLA too, through XLA_FLAGS).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

try:  # torch first: imported after numba's OpenMP threading layer has started, its CPU ops ran 30x slower here
    import torch  # noqa: F401
except Exception:  # noqa: BLE001, S110 (not installed or broken: optional() reports it below)
    pass

import numba

import tapead
from bench.benchutil import fmt, header, interleaved, optional, table
from bench.problems import PROBLEMS, casadi_ns, jax_ns, lorenz, lorenz_fori, torch_ns, unknown_problems

THREADS = numba.get_num_threads()
if THREADS == 1:  # XLA's CPU client: one thread as well (read when jax is first imported)
    os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")

# ---- peers: each returns (call, result-to-numpy) for given points, or raises to skip ----


def tapead_runner(problem, X, P):
    """(tape, call, conversion): value_and_gradient, or value_and_jacobian for several outputs."""
    tape = problem.record()
    args = problem.args(X, P)
    method = tape.value_and_jacobian if tape.n_out > 1 else tape.value_and_gradient
    return tape, (lambda: method(*args)), (lambda r: r)


def fused_runner(problem, X, P):
    y, g = np.empty(len(X)), np.empty(X.shape)

    def call():
        problem.fused(X, P, y, g)
        return y, g

    return call, lambda r: r


_JAX_COMPILED: dict = {}  # (problem, shape) -> (compiled, trace_s, compile_s): Lorenz compiles once


def jax_runner(problem, X, P, info):
    import jax
    import jax.numpy as jnp
    import jax.scipy.special

    m = jax_ns(jnp, jax)
    f = problem.jax_f or problem.f
    cached = _JAX_COMPILED.get((problem.name, X.shape))
    if cached is not None:
        compiled, info["trace_s"], info["compile_s"] = cached
        Xj = jnp.asarray(X)
        return (lambda: jax.block_until_ready(compiled(Xj))), (lambda r: (np.asarray(r[0]), np.asarray(r[1])))
    if problem.n_params:
        vg = jax.vmap(jax.value_and_grad(lambda x, p: f(x, p, m)), in_axes=(0, 0))
        args = (jnp.asarray(X), jnp.asarray(P))
    else:
        vg = jax.vmap(jax.value_and_grad(lambda x: f(x, m)))
        args = (jnp.asarray(X),)
    t0 = time.perf_counter()
    lowered = jax.jit(vg).lower(*args)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    t2 = time.perf_counter()
    info["trace_s"], info["compile_s"] = t1 - t0, t2 - t1

    def call():
        return jax.block_until_ready(compiled(*args))

    return call, lambda r: (np.asarray(r[0]), np.asarray(r[1]))


def torch_runner(problem, X, P):
    import torch
    from torch.func import grad_and_value, vmap

    torch.set_num_threads(THREADS)
    m = torch_ns(torch)
    if problem.n_params:
        fn = vmap(grad_and_value(lambda x, p: problem.f(x, p, m)))
        args = (torch.from_numpy(X), torch.from_numpy(P))
    else:
        fn = vmap(grad_and_value(lambda x: problem.f(x, m)))
        args = (torch.from_numpy(X),)

    def call():
        return fn(*args)

    return call, lambda r: (r[1].numpy(), r[0].numpy())


def casadi_runner(problem, X, P):
    import casadi as ca

    m = casadi_ns(ca)
    x = ca.SX.sym("x", problem.n)
    if problem.n_params:
        p = ca.SX.sym("p", problem.n_params)
        f = problem.f(x, p, m)
        F = ca.Function("F", [x, p], [f, ca.gradient(f, x)])
        args = (X.T, P.T)
    else:
        f = problem.f(x, m)
        F = ca.Function("F", [x], [f, ca.gradient(f, x)])
        args = (X.T,)
    Fm = F.map(len(X), "thread", THREADS)

    def call():
        y, g = Fm(*args)
        return np.asarray(y).ravel(), np.asarray(g).T

    return call, lambda r: r


# ---- Jacobian peers (problems of several outputs, no parameters): (call, result -> (Y, J)) ----


def jax_jacobian_runner(problem, X, mode):
    """jit(vmap(jacfwd or jacrev)) of f with its values as the aux output (one call gives both)."""
    import jax
    import jax.numpy as jnp

    m = jax_ns(jnp, jax)

    def f(x):
        y = jnp.stack(problem.f(x, m))
        return y, y

    Xj = jnp.asarray(X)
    compiled = jax.jit(jax.vmap((jax.jacfwd if mode == "fwd" else jax.jacrev)(f, has_aux=True))).lower(Xj).compile()
    return (lambda: jax.block_until_ready(compiled(Xj))), (lambda r: (np.asarray(r[1]), np.asarray(r[0])))


def torch_jacobian_runner(problem, X, mode):
    import torch
    from torch.func import jacfwd, jacrev, vmap

    torch.set_num_threads(THREADS)
    m = torch_ns(torch)

    def f(x):
        y = torch.stack(problem.f(x, m))
        return y, y

    fn = vmap((jacfwd if mode == "fwd" else jacrev)(f, has_aux=True))
    Xt = torch.from_numpy(X)
    return (lambda: fn(Xt)), (lambda r: (r[1].numpy(), r[0].numpy()))


def casadi_jacobian_runner(problem, X, P=None):
    """An SX Function of (f, jacobian(f, x)), mapped; the mapped Jacobians come side by side."""
    import casadi as ca

    x = ca.SX.sym("x", problem.n)
    f = ca.vertcat(*problem.f(x, casadi_ns(ca)))
    k, N = f.shape[0], len(X)
    Fm = ca.Function("F", [x], [f, ca.jacobian(f, x)]).map(N, "thread", THREADS)

    def call():
        y, J = Fm(X.T)
        return np.asarray(y).T, np.asarray(J).reshape(k, N, problem.n).transpose(1, 0, 2)

    return call, lambda r: r


def peer_calls(peer, problem, X, P, jacobian, info) -> dict:
    """{label: (call, conversion)} of one peer: one entry for a gradient, one per mode for a
    Jacobian (labelled "peer jacfwd", "peer jacrev")."""
    if not jacobian:
        if peer == "jax":
            return {peer: jax_runner(problem, X, P, info)}
        return {peer: (torch_runner if peer == "torch" else casadi_runner)(problem, X, P)}
    if peer == "casadi":
        return {peer: casadi_jacobian_runner(problem, X)}
    runner = jax_jacobian_runner if peer == "jax" else torch_jacobian_runner
    return {f"{peer} jac{mode}": runner(problem, X, mode) for mode in ("fwd", "rev")}


def _casadi_points(problem, X, P, budget_s: float, jacobian: bool = False) -> int:
    """Points for CasADi: all of them, or as many as fit in about budget_s per call."""
    n0 = min(len(X), 2000)
    runner = casadi_jacobian_runner if jacobian else casadi_runner
    call, _ = runner(problem, X[:n0], None if P is None else P[:n0])
    call()
    t0 = time.perf_counter()
    call()
    per_point = (time.perf_counter() - t0) / n0
    return int(min(len(X), max(1000, budget_s / per_point) // 1000 * 1000))


def check(name, got, ref, rtol):
    y, g = got
    np.testing.assert_allclose(y, ref[0][: len(y)], rtol=rtol, atol=rtol, err_msg=f"{name}: values")
    scale = np.max(np.abs(ref[1][: len(g)]))
    np.testing.assert_allclose(g, ref[1][: len(g)], rtol=rtol, atol=rtol * scale, err_msg=f"{name}: gradients")


def time_to_first_gradient(jax_mod, n_points: int) -> list[list[object]]:
    """Lorenz: tapead record + first evaluation vs JAX trace + compile + first call (same points)."""
    X, _ = PROBLEMS["rk4-lorenz200"].points(n_points, np.random.default_rng(3))
    t0 = time.perf_counter()
    tape = tapead.record(lambda x: lorenz(x), 3)
    t1 = time.perf_counter()
    y, g = tape.value_and_gradient(X)
    t2 = time.perf_counter()
    rows = [["tapead: record + first value_and_gradient (kernels from the disk cache)", f"{tape.n_ops:,} ops",
             f"{t1 - t0:.2f}", f"{t2 - t1:.2f}", f"{t2 - t0:.2f}"]]
    if jax_mod is not None:
        import jax
        import jax.numpy as jnp

        jnp.zeros(1).block_until_ready()  # backend start-up, not counted
        Xj = jnp.asarray(X)
        t0 = time.perf_counter()
        lowered = jax.jit(jax.vmap(jax.value_and_grad(lambda x: lorenz_fori(x)))).lower(Xj)
        t1 = time.perf_counter()
        compiled = lowered.compile()
        t2 = time.perf_counter()
        yj, gj = jax.block_until_ready(compiled(Xj))
        t3 = time.perf_counter()
        check("jax lorenz", (np.asarray(yj), np.asarray(gj)), (y, g), 1e-8)
        _JAX_COMPILED[("rk4-lorenz200", X.shape)] = (compiled, t1 - t0, t2 - t1)
        rows.append(["JAX (lax.fori_loop form): trace + compile + first call", "", f"{t1 - t0:.2f} (trace)",
                     f"{t2 - t1:.2f} (compile) + {t3 - t2:.3f} (call)", f"{t3 - t0:.2f}"])
        # the unrolled Python loop (the very function tapead records): compile time by number of steps
        probes = []
        for steps in (1, 2, 3):
            t0 = time.perf_counter()
            jax.jit(jax.vmap(jax.value_and_grad(lambda x, steps=steps: lorenz(x, steps=steps)))).lower(Xj).compile()
            probes.append(f"{steps} step{'s' if steps > 1 else ''}: {time.perf_counter() - t0:.2f} s")
        rows.append(["JAX, unrolled Python loop (tapead's form): trace + compile", "",
                     "; ".join(probes) + "; 4 steps: over 300 s (by hand, XLA 'Very slow compile' alarm)",
                     "200 steps: not attempted", "–"])
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of each problem's point count")
    parser.add_argument("--peers", default="fused,jax,torch,casadi")
    parser.add_argument("--casadi-budget", type=float, default=1.0, help="seconds per CasADi call (sets its N)")
    parser.add_argument("--no-ttfg", action="store_true", help="skip the Lorenz time-to-first-gradient")
    parser.add_argument("problems", nargs="*", default=list(PROBLEMS))
    args = parser.parse_args(argv)
    if error := unknown_problems(args.problems):
        parser.error(error)
    wanted = args.peers.split(",")
    mods = {name: (optional(mod) if name in wanted else None)
            for name, mod in [("jax", "jax"), ("torch", "torch"), ("casadi", "casadi")]}
    if mods["jax"] is not None:
        mods["jax"].config.update("jax_enable_x64", True)
    ttfg = None
    if not args.no_ttfg:  # first, so that tapead loads its reverse kernel from the disk cache here
        ttfg = time_to_first_gradient(mods["jax"], max(1000, int(10_000 * args.scale)))
    header(f"value and gradient (or Jacobian) per point: tapead vs peers (medians of {args.repeats} interleaved repeats)")
    versions = [f"numba {numba.__version__}"] + [f"{k} {mods[k].__version__}" for k in mods if mods[k] is not None]
    print("versions: " + ", ".join(versions) + f"; {THREADS} threads for every peer\n", flush=True)

    rows, compile_rows = [], []
    for name in args.problems:
        problem = PROBLEMS[name]
        N = max(1000, int(problem.n_points * args.scale))
        X, P = problem.points(N, np.random.default_rng(0))
        tape, ours, _ = tapead_runner(problem, X, P)
        jacobian = tape.n_out > 1
        ref = ours()
        calls, points = {"tapead": ours}, {"tapead": N}
        if "fused" in wanted and problem.fused is not None:
            call, conv = fused_runner(problem, X, P)
            check(f"{name} fused", conv(call()), ref, 1e-9)
            calls["fused"], points["fused"] = call, N
        for peer in ("jax", "torch", "casadi"):
            if mods[peer] is None:
                continue
            if peer == "casadi":
                n_peer = _casadi_points(problem, X, P, args.casadi_budget, jacobian)
            else:
                n_peer = N if peer not in problem.peer_points else \
                    min(N, max(1000, int(problem.peer_points[peer] * args.scale)))
            Xp, Pp = X[:n_peer], (None if P is None else np.ascontiguousarray(P[:n_peer]))
            Xp = np.ascontiguousarray(Xp)
            try:
                info = {}
                runners = peer_calls(peer, problem, Xp, Pp, jacobian, info)
                if info:
                    compile_rows.append([name, f"{info['trace_s']:.2f}", f"{info['compile_s']:.2f}"])
                for label, (call, conv) in runners.items():
                    check(f"{name} {label}", conv(call()), ref, 1e-8)
            except AssertionError:
                raise
            except Exception as error:  # noqa: BLE001 (a peer that cannot run this problem)
                print(f"> {peer} failed on {name}: {type(error).__name__}: {error}", flush=True)
                continue
            for label, (call, _) in runners.items():
                calls[label], points[label] = call, n_peer
        load = os.getloadavg()[0]
        t = interleaved(calls, repeats=args.repeats)
        ns = {k: t[k] / points[k] * 1e9 for k in t}
        row = [name + (f" ({problem.n} -> {tape.n_out} Jacobian)" if jacobian else ""), f"{tape.n_ops:,}", f"{N:,}",
               fmt(ns["tapead"])]
        best = []
        for peer in ("fused", "jax", "torch", "casadi"):
            labels = [k for k in ns if k == peer or k.startswith(peer + " ")]
            if not labels:
                row.append("–")
                continue
            label = min(labels, key=ns.get)
            cell = f"{fmt(ns[label])} ({ns[label] / ns['tapead']:.2f}x)" + label[len(peer):]
            if points[label] != N:
                cell += f" [N={points[label]:,}]"
            row.append(cell)
            if peer != "fused":
                best.append((ns[label], label))
        row.append(f"{ns['tapead'] / min(best)[0]:.2f} ({min(best)[1]})" if best else "–")
        row.append(f"{load:.2f}")
        rows.append(row)
        print(f"> {name}: " + ", ".join(f"{k} {fmt(v)} ns/pt" for k, v in ns.items()), flush=True)
    print()
    print(table(["problem", "ops", "N", "tapead ns/pt", "fused Numba ns/pt (/tapead)", "JAX warm ns/pt (/tapead)",
                 "torch.func ns/pt (/tapead)", "CasADi SX map ns/pt (/tapead)", "tapead / best peer", "load"], rows))
    print("\nRatios are peer / tapead: above 1.00 the peer is slower. [N=...]: the peer ran on fewer points "
          "(memory or time); per-point costs at smaller N include more per-call overhead. jacfwd / jacrev: "
          "the peer's faster Jacobian mode. tapead / best peer: over JAX, torch and CasADi (the issue's goal: "
          "at most 0.5). load: the 1-minute load average as the row's timings began.")
    if compile_rows:
        print("\n## JAX trace and compile time (s), per problem\n")
        print(table(["problem", "trace (lower)", "compile"], compile_rows))
    if ttfg:
        print("\n## Time to first gradient, RK4 Lorenz 200 steps\n")
        print(table(["", "tape", "record / trace s", "first evaluation / compile s", "total s"], ttfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
