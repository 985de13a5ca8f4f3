"""Fitting a model to data: the value and gradient of a sum over observations, and its
Hessian-vector product, tapead (reduce="sum") beside JAX's jit(value_and_grad) and jit(hvp).

    python -m bench.data_fit [--repeats 7] [--scale 1.0]

Problems: a 4-parameter logistic-growth likelihood over 200,000 observations and a 32-weight
logistic-regression NLL over 1,000,000 rows. tapead records one observation's term (the
parameters are the observation); JAX writes the sum over all rows with numpy-style arrays.
Results are checked to agree before anything is timed; timings are interleaved (tapead, JAX,
tapead, ...) and the table gives medians and the median of the per-repeat ratios
(tapead / JAX; below 1 tapead is faster). Goals: value+gradient <= 0.5x JAX, HVP <= 1.0x.

"floor" is the time of one pass over the observations (every entry read once and summed, on
Numba's threads or by numpy's vectorised sum on one, whichever is faster): a call that reads
the data cannot be much faster, so a goal near it is out of reach.

Peak memory of tapead's reduced calls (tracemalloc: numpy's allocations, which is where
anything of size N would be) is measured at N and at 4 N: it must not grow with N.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import tracemalloc

import numba
import numpy as np

import tapead

try:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
except ImportError:  # an optional peer (pip install -e ".[bench]")
    jax = None

GOALS = {"value+gradient": 0.5, "hvp": 1.0}


def growth_term(th, obs):
    K, r, t0, s = th[0], th[1], th[2], th[3]
    mean = K / (1.0 + np.exp(-r * (obs[0] - t0)))
    return 0.5 * ((obs[1] - mean) / np.exp(s)) ** 2 + s


def growth_data(n: int):
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 10, n)
    y = 10.0 / (1.0 + np.exp(-0.8 * (t - 5.0))) + rng.normal(0, 0.5, n)
    return np.column_stack([t, y]), np.array([9.0, 0.7, 4.5, -0.5])


def growth_jax(obs):
    t, y = jnp.asarray(obs[:, 0]), jnp.asarray(obs[:, 1])

    def total(th):
        mean = th[0] / (1.0 + jnp.exp(-th[1] * (t - th[2])))
        return jnp.sum(0.5 * ((y - mean) / jnp.exp(th[3])) ** 2 + th[3])

    return total


D = 32


def logreg_term(w, obs):
    s = obs[:D] @ w  # obs: 32 features, then the 0/1 label
    return np.logaddexp(0.0, s) - obs[D] * s


def logreg_data(n: int):
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(n, D)) / np.sqrt(D)
    w_true = rng.normal(size=D)
    labels = (rng.uniform(size=n) < 1 / (1 + np.exp(-Z @ w_true))).astype(float)
    return np.column_stack([Z, labels]), w_true * 0.5


def logreg_jax(obs):
    Z, labels = jnp.asarray(obs[:, :D]), jnp.asarray(obs[:, D])

    def total(w):
        s = Z @ w
        return jnp.sum(jnp.logaddexp(0.0, s) - labels * s)

    return total


PROBLEMS = {
    "logistic-growth": (growth_term, 4, 2, growth_data, growth_jax, 200_000),
    "logistic-regression": (logreg_term, D, D + 1, logreg_data, logreg_jax, 1_000_000),
}


@numba.njit(parallel=True, cache=True, fastmath={"reassoc"})
def read_once(flat, chunks):
    """The sum of every entry of ``flat`` (the observations' buffer), ``chunks`` blocks on
    Numba's threads (one per thread): one read of the data. Reassociation lets LLVM sum with
    vector registers, so memory, not the adder's latency, bounds it."""
    n = flat.shape[0]
    total = 0.0
    for c in numba.prange(chunks):
        s = 0.0
        for i in range(c * n // chunks, (c + 1) * n // chunks):
            s += flat[i]
        total += s
    return total


def peak_mib(call) -> float:
    tracemalloc.start()
    call()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def measure(name: str, repeats: int, scale: float) -> list[dict]:
    term, n, k, data, jax_total, n_rows = PROBLEMS[name]
    n_rows = max(1000, int(n_rows * scale))
    obs, theta = data(n_rows)
    tape = tapead.record(term, n, n_params=k)
    v = np.linspace(-1, 1, n)
    ours_vg = lambda: tape.value_and_gradient(theta, obs, reduce="sum")  # noqa: E731
    ours_hvp = lambda: tape.hvp(theta, obs, v, reduce="sum")  # noqa: E731
    f, g = ours_vg()
    hv = ours_hvp()
    rows = []
    obs4 = np.tile(obs, (4, 1))  # made before measuring: only what the call allocates counts
    peaks = (peak_mib(ours_vg), peak_mib(lambda: tape.value_and_gradient(theta, obs4, reduce="sum")))
    if jax is None:
        print(f"{name}: JAX is not installed (pip install -e '.[bench]'): tapead only", file=sys.stderr)
        return [dict(name=name, call="value+gradient", ours=None, peer=None, ratio=None, peaks=peaks)]
    total = jax_total(obs)
    jvg = jax.jit(jax.value_and_grad(total))
    jhvp = jax.jit(lambda th, u: jax.jvp(jax.grad(total), (th,), (u,))[1])
    f_j, g_j = jvg(jnp.asarray(theta))
    np.testing.assert_allclose(f, float(f_j), rtol=1e-10)
    np.testing.assert_allclose(g, np.asarray(g_j), rtol=1e-8, atol=1e-8 * np.abs(g).max())
    np.testing.assert_allclose(hv, np.asarray(jhvp(jnp.asarray(theta), jnp.asarray(v))), rtol=1e-8,
                               atol=1e-8 * np.abs(hv).max())
    th_j, v_j = jnp.asarray(theta), jnp.asarray(v)
    flat = obs.reshape(-1)
    floor = lambda: read_once(flat, numba.get_num_threads())  # noqa: E731
    floor()
    for call, ours, peer in (("value+gradient", ours_vg, lambda: jax.block_until_ready(jvg(th_j))),
                             ("hvp", ours_hvp, lambda: jax.block_until_ready(jhvp(th_j, v_j)))):
        a, b, c, d = [], [], [], []
        for _ in range(repeats):
            for fn, times in ((ours, a), (peer, b), (floor, c), (obs.sum, d)):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        rows.append(dict(name=name, call=call, ours=np.median(a), peer=np.median(b), floor=min(np.median(c), np.median(d)),
                         ratio=float(np.median(np.array(a) / np.array(b))), peaks=peaks, n_rows=n_rows))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of each problem's rows")
    parser.add_argument("problems", nargs="*", default=list(PROBLEMS))
    args = parser.parse_args(argv)
    print(f"# Sums over observations: tapead reduce='sum' vs JAX jit ({platform.machine()}, "
          f"{numba.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}, "
          f"JAX {getattr(jax, '__version__', 'absent')}, {time.strftime('%Y-%m-%d %H:%M')})\n")
    print("| problem | rows | call | tapead ms | JAX ms | ratio (median) | goal | floor ms | goal's time / floor "
          "| tapead peak MiB at N, 4N |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in args.problems:
        for r in measure(name, args.repeats, args.scale):
            peaks = f"{r['peaks'][0]:.1f}, {r['peaks'][1]:.1f}"
            if r["ours"] is None:
                print(f"| {name} | | {r['call']} | | | | | | | {peaks} |")
                continue
            goal = GOALS[r["call"]]
            verdict = f"<= {goal}x {'met' if r['ratio'] <= goal else 'MISSED'}"
            print(f"| {name} | {r['n_rows']:,} | {r['call']} | {r['ours'] * 1e3:.2f} | {r['peer'] * 1e3:.2f} "
                  f"| {r['ratio']:.2f}x | {verdict} | {r['floor'] * 1e3:.2f} | {goal * r['peer'] / r['floor']:.2f} "
                  f"| {peaks} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
