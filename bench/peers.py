"""tapead against its peers: value and gradient per point, on a suite of functions.

    python bench/peers.py [--repeats 5] [--scale 1.0] [--peers fused,jax,torch,casadi] [PROBLEM ...]

For each problem, value_and_gradient at every point by:

* tapead: ``tape.value_and_gradient(X[, P])`` (kernels cached, tape recorded once);
* fused: a hand-written fused Numba kernel (bench/handwritten.py), the practical limit;
* JAX: ``jit(vmap(value_and_grad(f)))``, float64, warm (trace and compile timed apart);
* torch: ``torch.func.vmap(torch.func.grad_and_value(f))`` on CPU, float64;
* CasADi: an SX ``Function`` of (f, gradient(f, x)), ``.map(N, "thread", threads)``, called on
  the (n, N) points (conversion to and from DM included, as a user would call it).

Every peer's values and gradients are checked against tapead's (and tapead's against the fused
kernel) before timing. Timings are interleaved, medians of --repeats. Peers that are not
installed are skipped with a message. A peer whose one call would take too long, or would
not fit in memory (reverse mode over all points at once stores every intermediate: 14k ops x
100k points = 11 GB on Lorenz), runs on fewer points; the table says how many.

Also prints the time to the first gradient of the Lorenz tape: tapead's record + first
evaluation (kernels loaded from the disk cache) vs JAX's trace + compile + first call.

Problems: seed (2 inputs), Black-Scholes call price (S, sigma; K, T, r constant) at 1,000,000
points; extended Rosenbrock n = 100, tanh MLP 8-32-32-1, logistic-regression NLL (32 weights,
33 parameters: features and label), RK4 Lorenz 200 steps (final x from the 3 initial states)
and Helmholtz energy n = 30 at 100,000 points.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

try:  # torch first: imported after numba's OpenMP threading layer has started, its CPU ops ran 30x slower here
    import torch  # noqa: F401
except Exception:
    pass

import numba  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import handwritten  # noqa: E402
import tapead  # noqa: E402
from benchutil import fmt, header, interleaved, optional, table  # noqa: E402
from problems import B1, B2, B3, W1, W2, W3  # noqa: E402

THREADS = numba.get_num_threads()

# ---- the functions, written once over a math namespace m (numpy+tapead, jax.numpy, torch, casadi) ----

BS_K, BS_T, BS_R = 100.0, 1.0, 0.05
LZ_STEPS, LZ_DT, LZ_SIGMA, LZ_RHO, LZ_BETA = 200, 0.01, 10.0, 28.0, 8.0 / 3.0
LR_D = 32
HZ_N = 30
HZ_RT = 1.0
HZ_B = 0.02 * (1.0 + np.abs(np.sin(np.arange(1, HZ_N + 1))))
HZ_A = 0.1 * (1.0 + np.abs(np.cos(np.subtract.outer(np.arange(HZ_N), np.arange(HZ_N)))))  # symmetric


def seed(x, m):
    return m.log(x[0]) + x[0] * x[1] - m.sin(x[1])


def black_scholes(x, m):
    S, sigma = x[0], x[1]
    sqrt_t = math.sqrt(BS_T)
    d1 = (m.log(S / BS_K) + (BS_R + 0.5 * sigma * sigma) * BS_T) / (sigma * sqrt_t)
    d2 = d1 - sigma * sqrt_t
    cdf1 = 0.5 * (1.0 + m.erf(d1 / math.sqrt(2.0)))
    cdf2 = 0.5 * (1.0 + m.erf(d2 / math.sqrt(2.0)))
    return S * cdf1 - BS_K * math.exp(-BS_R * BS_T) * cdf2


def rosenbrock(x, m):
    return m.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


def mlp(x, m):
    h1 = m.tanh(m.W1 @ x + m.B1)
    h2 = m.tanh(m.W2 @ h1 + m.B2)
    return m.dot(m.W3, h2) + B3


def logistic_nll(w, p, m):
    z = m.dot(w, p[:LR_D])
    return m.softplus(z) - p[LR_D] * z


def lorenz(x, m=None):
    """RK4, 200 steps: only + - * so every framework runs the same code."""
    def rhs(a, b, c):
        return LZ_SIGMA * (b - a), a * (LZ_RHO - c) - b, a * b - LZ_BETA * c

    s = (x[0], x[1], x[2])
    h = 0.5 * LZ_DT
    for _ in range(LZ_STEPS):
        k1 = rhs(*s)
        k2 = rhs(*(si + h * ki for si, ki in zip(s, k1)))
        k3 = rhs(*(si + h * ki for si, ki in zip(s, k2)))
        k4 = rhs(*(si + LZ_DT * ki for si, ki in zip(s, k3)))
        s = tuple(si + LZ_DT / 6.0 * (a + 2.0 * b + 2.0 * c + d) for si, a, b, c, d in zip(s, k1, k2, k3, k4))
    return s[0]


def lorenz_jax_loop(x, m=None):
    """The same RK4 for JAX as a lax.fori_loop: XLA does not compile the unrolled form (vmapped,
    4 unrolled steps already ran past 5 minutes of compilation here; 3 steps took 0.4 s)."""
    import jax

    def rhs(a, b, c):
        return LZ_SIGMA * (b - a), a * (LZ_RHO - c) - b, a * b - LZ_BETA * c

    h = 0.5 * LZ_DT

    def step(_, s):
        k1 = rhs(*s)
        k2 = rhs(*(si + h * ki for si, ki in zip(s, k1)))
        k3 = rhs(*(si + h * ki for si, ki in zip(s, k2)))
        k4 = rhs(*(si + LZ_DT * ki for si, ki in zip(s, k3)))
        return tuple(si + LZ_DT / 6.0 * (a + 2.0 * b + 2.0 * c + d) for si, a, b, c, d in zip(s, k1, k2, k3, k4))

    return jax.lax.fori_loop(0, LZ_STEPS, step, (x[0], x[1], x[2]))[0]


def helmholtz(x, m):
    B = m.dot(m.b, x)
    Q = m.dot(x, m.A @ x)
    r2 = math.sqrt(2.0)
    he = m.sum(x * m.log(x / (1.0 - B)))
    return HZ_RT * he - Q / (math.sqrt(8.0) * B) * m.log((1.0 + (1.0 + r2) * B) / (1.0 + (1.0 - r2) * B))


# ---- namespaces ----

def numpy_ns():
    return SimpleNamespace(log=np.log, sin=np.sin, erf=tapead.erf, sum=np.sum, tanh=np.tanh, dot=np.dot,
                           softplus=tapead.softplus, W1=W1, B1=B1, W2=W2, B2=B2, W3=W3, b=HZ_B, A=HZ_A)


def jax_ns(jnp, jax):
    return SimpleNamespace(log=jnp.log, sin=jnp.sin, erf=jax.scipy.special.erf, sum=jnp.sum, tanh=jnp.tanh,
                           dot=jnp.dot, softplus=lambda z: jnp.logaddexp(z, 0.0), W1=jnp.asarray(W1),
                           B1=jnp.asarray(B1), W2=jnp.asarray(W2), B2=jnp.asarray(B2), W3=jnp.asarray(W3),
                           b=jnp.asarray(HZ_B), A=jnp.asarray(HZ_A))


def torch_ns(torch):
    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    return SimpleNamespace(log=torch.log, sin=torch.sin, erf=torch.erf, sum=torch.sum, tanh=torch.tanh,
                           dot=torch.dot, softplus=lambda z: torch.logaddexp(z, torch.zeros_like(z)), W1=t(W1),
                           B1=t(B1), W2=t(W2), B2=t(B2), W3=t(W3), b=t(HZ_B), A=t(HZ_A))


def casadi_ns(ca):
    return SimpleNamespace(log=ca.log, sin=ca.sin, erf=ca.erf, sum=ca.sum1, tanh=ca.tanh, dot=ca.dot,
                           softplus=lambda z: ca.fmax(z, 0.0) + ca.log1p(ca.exp(-ca.fabs(z))),
                           W1=ca.DM(W1), B1=ca.DM(B1), W2=ca.DM(W2), B2=ca.DM(B2), W3=ca.DM(W3),
                           b=ca.DM(HZ_B), A=ca.DM(HZ_A))


# ---- problems ----

@dataclass
class Problem:
    name: str
    f: object  # f(x, m) or f(x, p, m)
    n: int
    n_params: int
    n_points: int
    points: object  # points(N, rng) -> (X, P or None)
    fused: object | None  # fused(X, P, y, g)
    peer_points: dict = field(default_factory=dict)  # peer -> N (fewer points)
    jax_f: object | None = None  # JAX's own form of f, where it needs one


def _seed_points(N, rng):
    return rng.uniform(1, 3, (N, 2)), None


def _bs_points(N, rng):
    return np.column_stack([rng.uniform(80, 120, N), rng.uniform(0.1, 0.5, N)]), None


def _lr_points(N, rng):
    w = rng.normal(0, 0.3, (N, LR_D))
    feats = rng.normal(0, 1, (N, LR_D))
    label = (rng.random(N) < 0.5).astype(float)
    return w, np.column_stack([feats, label])


def _lorenz_points(N, rng):
    return np.column_stack([rng.uniform(-10, 10, N), rng.uniform(-10, 10, N), rng.uniform(10, 40, N)]), None


def _hz_points(N, rng):
    return rng.uniform(0.1, 0.5, (N, HZ_N)), None


PROBLEMS = {p.name: p for p in [
    Problem("seed", seed, 2, 0, 1_000_000, _seed_points,
            lambda X, P, y, g: handwritten.seed_value_and_grad(X, y, g)),
    Problem("black-scholes", black_scholes, 2, 0, 1_000_000, _bs_points,
            lambda X, P, y, g: handwritten.black_scholes_value_and_grad(X, BS_K, BS_T, BS_R, y, g)),
    Problem("rosenbrock100", rosenbrock, 100, 0, 100_000, lambda N, rng: (rng.uniform(-2, 2, (N, 100)), None),
            lambda X, P, y, g: handwritten.rosenbrock_value_and_grad(X, y, g)),
    Problem("mlp8-32-32-1", mlp, 8, 0, 100_000, lambda N, rng: (rng.uniform(-1, 1, (N, 8)), None),
            lambda X, P, y, g: handwritten.mlp_value_and_grad(X, W1, B1, W2, B2, W3, B3, y, g)),
    Problem("logistic-nll-d32", logistic_nll, LR_D, LR_D + 1, 100_000, _lr_points,
            lambda X, P, y, g: handwritten.logistic_nll_value_and_grad(X, P, y, g)),
    Problem("rk4-lorenz200", lorenz, 3, 0, 100_000, _lorenz_points,
            lambda X, P, y, g: handwritten.lorenz_value_and_grad(X, LZ_STEPS, LZ_DT, LZ_SIGMA, LZ_RHO, LZ_BETA,
                                                                 y, g),
            peer_points={"jax": 10_000, "torch": 10_000}, jax_f=lorenz_jax_loop),
    Problem("helmholtz30", helmholtz, HZ_N, 0, 100_000, _hz_points,
            lambda X, P, y, g: handwritten.helmholtz_value_and_grad(X, HZ_B, HZ_A, HZ_RT, y, g)),
]}

# ---- peers: each returns (call, result-to-numpy) for given points, or raises to skip ----


def tapead_runner(problem, X, P):
    m = numpy_ns()
    if problem.n_params:
        tape = tapead.record(lambda x, p: problem.f(x, p, m), problem.n, n_params=problem.n_params)
        return tape, (lambda: tape.value_and_gradient(X, P)), (lambda r: r)
    tape = tapead.record(lambda x: problem.f(x, m), problem.n)
    return tape, (lambda: tape.value_and_gradient(X)), (lambda r: r)


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
    import jax.scipy.special  # noqa: F401

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


def _casadi_points(problem, X, P, budget_s: float) -> int:
    """Points for CasADi: all of them, or as many as fit in about budget_s per call."""
    n0 = min(len(X), 2000)
    call, _ = casadi_runner(problem, X[:n0], None if P is None else P[:n0])
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
    global LZ_STEPS
    X, _ = _lorenz_points(n_points, np.random.default_rng(3))
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
        lowered = jax.jit(jax.vmap(jax.value_and_grad(lambda x: lorenz_jax_loop(x)))).lower(Xj)
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
        saved, probes = LZ_STEPS, []
        try:
            for steps in (1, 2, 3):
                LZ_STEPS = steps
                t0 = time.perf_counter()
                jax.jit(jax.vmap(jax.value_and_grad(lambda x: lorenz(x)))).lower(Xj).compile()
                probes.append(f"{steps} step{'s' if steps > 1 else ''}: {time.perf_counter() - t0:.2f} s")
        finally:
            LZ_STEPS = saved
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
    wanted = args.peers.split(",")
    mods = {name: (optional(mod) if name in wanted else None)
            for name, mod in [("jax", "jax"), ("torch", "torch"), ("casadi", "casadi")]}
    if mods["jax"] is not None:
        mods["jax"].config.update("jax_enable_x64", True)
    ttfg = None
    if not args.no_ttfg:  # first, so that tapead loads its reverse kernel from the disk cache here
        ttfg = time_to_first_gradient(mods["jax"], max(1000, int(10_000 * args.scale)))
    header(f"value_and_gradient per point: tapead vs peers (medians of {args.repeats} interleaved repeats)")
    versions = [f"numba {numba.__version__}"] + [f"{k} {mods[k].__version__}" for k in mods if mods[k] is not None]
    print("versions: " + ", ".join(versions) + f"; {THREADS} threads for every peer\n", flush=True)

    rows, compile_rows = [], []
    for name in args.problems:
        problem = PROBLEMS[name]
        N = max(1000, int(problem.n_points * args.scale))
        X, P = problem.points(N, np.random.default_rng(0))
        tape, ours, _ = tapead_runner(problem, X, P)
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
                n_peer = _casadi_points(problem, X, P, args.casadi_budget)
            else:
                n_peer = N if peer not in problem.peer_points else \
                    min(N, max(1000, int(problem.peer_points[peer] * args.scale)))
            Xp, Pp = X[:n_peer], (None if P is None else np.ascontiguousarray(P[:n_peer]))
            Xp = np.ascontiguousarray(Xp)
            try:
                if peer == "jax":
                    info = {}
                    call, conv = jax_runner(problem, Xp, Pp, info)
                    compile_rows.append([name, f"{info['trace_s']:.2f}", f"{info['compile_s']:.2f}"])
                elif peer == "torch":
                    call, conv = torch_runner(problem, Xp, Pp)
                else:
                    call, conv = casadi_runner(problem, Xp, Pp)
                check(f"{name} {peer}", conv(call()), ref, 1e-8)
            except AssertionError:
                raise
            except Exception as error:  # a peer that cannot run this problem
                print(f"> {peer} failed on {name}: {type(error).__name__}: {error}", flush=True)
                continue
            calls[peer], points[peer] = call, n_peer
        t = interleaved(calls, repeats=args.repeats)
        ns = {k: t[k] / points[k] * 1e9 for k in t}
        row = [name, f"{tape.n_ops:,}", f"{N:,}", fmt(ns["tapead"])]
        for peer in ("fused", "jax", "torch", "casadi"):
            if peer not in ns:
                row.append("–")
                continue
            cell = f"{fmt(ns[peer])} ({ns[peer] / ns['tapead']:.2f}x)"
            if points[peer] != N:
                cell += f" [N={points[peer]:,}]"
            row.append(cell)
        rows.append(row)
        print(f"> {name}: " + ", ".join(f"{k} {fmt(v)} ns/pt" for k, v in ns.items()), flush=True)
    print()
    print(table(["problem", "ops", "N", "tapead ns/pt", "fused Numba ns/pt (/tapead)", "JAX warm ns/pt (/tapead)",
                 "torch.func ns/pt (/tapead)", "CasADi SX map ns/pt (/tapead)"], rows))
    print("\nRatios are peer / tapead: above 1.00 the peer is slower. [N=...]: the peer ran on fewer points "
          "(memory or time); per-point costs at smaller N include more per-call overhead.")
    if compile_rows:
        print("\n## JAX trace and compile time (s), per problem\n")
        print(table(["problem", "trace (lower)", "compile"], compile_rows))
    if ttfg:
        print("\n## Time to first gradient, RK4 Lorenz 200 steps\n")
        print(table(["", "tape", "record / trace s", "first evaluation / compile s", "total s"], ttfg))
    return 0


if __name__ == "__main__":
    sys.exit(main())
