"""The generated kernels are what the op table says, and a second process loads them from cache."""

import subprocess
import sys
import textwrap

from tapead import _gen_kernels


def test_regenerating_the_sweeps_gives_the_same_bytes():
    assert _gen_kernels.TARGET.read_text() == _gen_kernels.generate(), (
        "kernels/sweeps.py is stale: run python -m tapead._gen_kernels"
    )


def test_a_second_process_loads_every_kernel_from_cache():
    script = textwrap.dedent(
        """
        import numpy as np, numba, tapead
        from tapead.kernels import sweeps
        tape = tapead.record(lambda x: x[0] * x[1], 2)
        for X in (np.ones((10, 2)), np.ones((5000, 2))):  # one tile (serial worker), many (parallel)
            tape(X); tape.jvp(X, np.ones(2)); tape.gradient(X); tape.hessian(X)
        for name, k in vars(sweeps).items():
            if isinstance(k, numba.core.registry.CPUDispatcher) and k.signatures:
                print(name, sum(k.stats.cache_hits.values()), sum(k.stats.cache_misses.values()))
        """
    )
    for _ in range(2):  # the first run may compile (fresh clone); the second must not
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert len(lines) == 8  # 4 sweeps, each a parallel driver and a serial worker
    for line in lines:
        name, hits, misses = line.split()
        assert int(hits) >= 1 and int(misses) == 0, line
    assert "compiling tapead kernels" not in out.stderr
