"""pytest-benchmark: tapead's value_and_gradient and the hand-written fused kernel, side by side.

    python -m pytest bench/test_bench.py

The problems of bench/compare.py (those with a goal), at TAPEAD_BENCH_SCALE (default 0.2) of their
points. Each pair shares a group; compare the medians (``python -m bench.compare`` prints their
ratios). Results are asserted equal before timing. Not part of the test run (testpaths = tests).
"""

import os

import numpy as np
import pytest

from bench.compare import GOALS
from bench.problems import PROBLEMS

SCALE = float(os.environ.get("TAPEAD_BENCH_SCALE", "0.2"))


@pytest.fixture(scope="module", params=list(GOALS))
def case(request):
    problem = PROBLEMS[request.param]
    X, P = problem.points(max(1000, int(problem.n_points * SCALE)))
    tape = problem.record()
    y, g = np.empty(len(X)), np.empty(X.shape)
    problem.fused(X, P, y, g)
    y2, g2 = tape.value_and_gradient(*problem.args(X, P))
    np.testing.assert_allclose(y2, y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(g2, g, rtol=1e-9, atol=1e-9)
    return problem, tape, X, P, y, g


def test_tapead_value_and_gradient(benchmark, case):
    problem, tape, X, P, _, _ = case
    benchmark.group = problem.name
    _, g = benchmark(tape.value_and_gradient, *problem.args(X, P))
    assert np.isfinite(g).all()


def test_fused_numba_value_and_gradient(benchmark, case):
    problem, _, X, P, y, g = case
    benchmark.group = problem.name
    benchmark(problem.fused, X, P, y, g)
    assert np.isfinite(g).all()
