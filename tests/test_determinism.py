"""A point's results are the same bits however it is evaluated: alone, among ordinary points,
next to NaN, inf and huge points, on one thread or two, in any block (a NaN is a NaN: its sign
bit is not specified)."""

import math

import numba
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import tapead
from tapead.runtime import BLOCK

from .helpers import random_tapes

NASTY = np.array([np.nan, np.inf, -np.inf, 1e300, -1e300, 2.0**40, -(2.0**19) - 0.5, 0.0, -0.0, 5e-324])


def _all_results(tape, X):
    y = tape(X)
    _, jv = tape.jvp(X, np.ones(tape.n_in))
    _, vj = tape.vjp(X, np.ones(tape.out_shape))
    hv = tape.hvp(X, np.ones(tape.n_in), W=np.ones(tape.out_shape))
    return [y, jv, vj, hv]


def _same_bits(a, b):
    """Equal bit for bit, zeros' signs included; a NaN equals a NaN (IEEE 754 leaves a NaN's sign
    to the implementation, and LLVM's vector and scalar loops may differ there)."""
    nan = np.isnan(a)
    return np.array_equal(nan, np.isnan(b)) and np.array_equal(a[~nan].view(np.int64), b[~nan].view(np.int64))


@settings(max_examples=30)
@given(random_tapes(max_inputs=2, n_params=0), st.integers(0, 2**32 - 1))
def test_a_points_results_do_not_depend_on_its_neighbours_or_the_thread_count(tape, seed):
    rng = np.random.default_rng(seed)
    point = rng.uniform(-3, 3, tape.n_in)
    alone = _all_results(tape, point[None])
    neighbours = rng.uniform(-3, 3, (700, tape.n_in))  # several tiles
    nasty = rng.choice(NASTY, (700, tape.n_in))
    before = numba.get_num_threads()
    try:
        for threads in (1, before):
            numba.set_num_threads(threads)
            for others in (neighbours, nasty):
                for where in (0, 333, 699):  # first, middle, last of a tile or of the batch
                    X = others.copy()
                    X[where] = point
                    for got, want in zip(_all_results(tape, X), alone):
                        assert _same_bits(got[where], want[0]), (threads, where)
    finally:
        numba.set_num_threads(before)


def test_sin_and_cos_of_huge_arguments_leave_their_neighbours_alone():
    tape = tapead.record(lambda x: np.sin(x[0]) * np.cos(x[0]), 1)
    x = np.array([[0.3]])
    for huge in (1e6, np.inf, np.nan, 2.0**60):
        X = np.array([[0.3], [huge]] * 300)
        assert tape(X)[0] == tape(x)[0]
        assert tape.gradient(X)[0, 0] == tape.gradient(x)[0, 0]
        assert tape.hessian(X)[0, 0, 0] == tape.hessian(x)[0, 0, 0]
    assert tape(np.array([[1e6], [0.3]]))[0] == math.sin(1e6) * math.cos(1e6)  # libm, which reduces exactly


def test_across_blocks():
    tape = tapead.record(lambda x: np.exp(np.sin(x[0]) * x[1]) / (1 + x[1] ** 2), 2)
    X = np.random.default_rng(3).normal(size=(BLOCK + 1000, 2))
    g = tape.gradient(X)
    for k in (0, BLOCK - 1, BLOCK, BLOCK + 999):
        assert _same_bits(g[k], tape.gradient(X[k]))
