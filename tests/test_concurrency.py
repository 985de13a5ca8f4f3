"""One tape used from many threads at once, and evaluation into out= arrays in bounded memory."""

import tracemalloc
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import tapead
from tapead import runtime


@pytest.fixture(scope="module")
def tape():
    return tapead.record(lambda x: np.sum(np.tanh(x[:-1] * x[1:])) + np.exp(x[0] * 0.1), 4)


def test_many_threads_get_what_serial_calls_get(tape, rng):
    inputs = [rng.normal(size=(20_000 + 1000 * k, 4)) for k in range(8)]
    methods = [
        lambda X: tape(X),
        lambda X: tape.value_and_gradient(X)[1],
        lambda X: tape.jvp(X, np.eye(4))[1],
        lambda X: tape.hvp(X, np.ones(4)),
    ]
    jobs = [(m, X) for m in methods for X in inputs]
    serial = [m(X) for m, X in jobs]
    for _ in range(3):
        with ThreadPoolExecutor(max_workers=8) as pool:
            concurrent = list(pool.map(lambda job: job[0](job[1]), jobs))
        for a, b in zip(serial, concurrent):
            np.testing.assert_array_equal(a, b)


def test_out_arrays_including_memmaps(tape, tmp_path, rng):
    X = rng.normal(size=(300_000, 4))
    y_ref, g_ref = tape.value_and_gradient(X)
    y = np.lib.format.open_memmap(tmp_path / "y.npy", mode="w+", dtype=np.float64, shape=(len(X),))
    g = np.lib.format.open_memmap(tmp_path / "g.npy", mode="w+", dtype=np.float64, shape=(len(X), 4))
    result = tape.value_and_gradient(X, out=(y, g))
    assert np.shares_memory(result[1], g)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(np.load(tmp_path / "g.npy"), g_ref)
    out = np.empty(len(X))
    assert tape(X, out=out) is not None and np.array_equal(out, y_ref)
    with pytest.raises(ValueError, match="C-contiguous float64"):
        tape(X, out=np.empty(len(X), dtype=np.float32))
    with pytest.raises(ValueError, match="C-contiguous float64"):
        tape(X, out=np.empty(len(X) - 1))


def test_blocks_bound_extra_memory_and_report_progress(tape, tmp_path):
    n_points = 6 * runtime.BLOCK + 123
    X = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float32, shape=(n_points, 4))
    X[:] = np.random.default_rng(1).normal(size=(n_points, 4)).astype(np.float32)
    g = np.lib.format.open_memmap(tmp_path / "g.npy", mode="w+", dtype=np.float64, shape=(n_points, 4))
    seen = []
    tape.gradient(X[:10])  # warm up
    tracemalloc.start()
    tape.gradient(X, out=g, progress=lambda done, total: seen.append((done, total)))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # converting X whole would take n_points * 4 * 8 = 50 MB; a block takes 8 MB, plus the
    # values (N x 8 B) that gradient computes on the way
    assert peak < n_points * 8 + 2 * runtime.BLOCK * 4 * 8 < n_points * 4 * 8, peak
    assert seen[-1] == (n_points, n_points) and len(seen) == 7
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    np.testing.assert_allclose(g[-5:], tape.gradient(np.asarray(X[-5:], dtype=np.float64)))
