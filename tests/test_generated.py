"""Generated code is what its source says: the kernels (the op table; a second process loads them
from cache) and the names tapead/__init__.py shows static tools (tapead.tracer.FUNCTIONS)."""

import os
import subprocess
import sys
import textwrap

from tapead.kernels import generate

import tapead
from tapead import exports
from tapead.tracer import FUNCTIONS


def test_regenerating_the_sweeps_gives_the_same_bytes():
    assert generate.TARGET.read_text() == generate.generate(), (
        "kernels/sweeps.py is stale: run python -m tapead.kernels.generate"
    )


def test_a_second_process_loads_every_kernel_from_cache():
    script = textwrap.dedent(
        """
        import numpy as np, numba, tapead
        from tapead import runtime
        from tapead.kernels import sweeps
        runtime.specialise = False
        tape = tapead.record(lambda x: x[0] * x[1], 2)
        for X in (np.ones((10, 2)), np.ones((5000, 2))):  # one tile (one thread), many (several)
            tape(X); tape.jvp(X, np.ones(2)); tape.gradient(X); tape.hessian(X)
        for name in runtime.SWEEPS:
            k = getattr(sweeps, name)
            print(name, len(k.signatures), sum(k.stats.cache_hits.values()), sum(k.stats.cache_misses.values()))
        """
    )
    for _ in range(2):  # the first run may compile (fresh clone); the second must not
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert len(lines) == 4
    for line in lines:
        name, signatures, hits, misses = line.split()
        # one compiled signature per sweep, whether one thread or several run it
        assert int(signatures) == 1 and int(hits) >= 1 and int(misses) == 0, line
    assert "compiling tapead kernels" not in out.stderr


def test_the_package_names_every_function_statically():
    assert exports.current() == exports.block(), "tapead/__init__.py is stale: run python -m tapead.exports"
    assert sorted(tapead.__all__) == sorted(exports.IMPORTED + list(FUNCTIONS))
    assert all(getattr(tapead, name) is FUNCTIONS[name] for name in FUNCTIONS)
    assert all(hasattr(tapead, name) for name in exports.IMPORTED)


def test_sweeps_specialised_to_a_tapes_ops_agree_with_the_reference(tmp_path):
    """A fresh install runs sweeps generated for each tape's op codes until the full ones are
    compiled: a tape of inputs only (no op function to import), plain ops, and a dot-product
    chain, each against the reference interpreter, in a process with an empty cache."""
    script = textwrap.dedent(
        """
        import numpy as np, tapead
        from tapead import reference, runtime
        assert runtime.specialise and not runtime.kernels_cached()
        X = np.random.default_rng(0).uniform(0.5, 2.0, (3000, 2))
        for f in (lambda x: x[0], lambda x: x[0] * x[1] + np.sin(x[1]),
                  lambda x: 2.0 * x[0] + 3.0 * x[1] - 0.5 * x[0] * x[0]):
            tape = tapead.record(f, 2)
            y, g = tape.value_and_gradient(X)
            G = reference.vjp(tape, X, None, np.ones((3000, 1, 1)))[1][:, :, 0]
            print(float(np.max(np.abs(tape(X) - reference.evaluate(tape, X)[:, 0]))),
                  float(np.max(np.abs(y - tape(X)))), float(np.max(np.abs(g - G))))
        """
    )
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [[float(e) for e in line.split()] for line in out.stdout.splitlines()]
    assert len(rows) == 3 and all(e <= 1e-15 for row in rows for e in row), rows
    assert "compiling sweeps for this tape's ops" in out.stderr
