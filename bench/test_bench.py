"""pytest-benchmark: tapead's value_and_gradient and the hand-written fused kernel, side by side.

    python -m pytest bench/ --benchmark-group-by=param:name

Each pair shares a group; compare the medians (bench/compare.py prints their ratios).
Results are asserted equal before timing. Not part of the test run (testpaths = tests).
"""

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))

import tapead  # noqa: E402
from problems import PROBLEMS  # noqa: E402

SCALE = float(os.environ.get("TAPEAD_BENCH_SCALE", "0.2"))


@pytest.fixture(scope="module", params=list(PROBLEMS))
def case(request):
    problem = PROBLEMS[request.param]
    X = problem.points(max(1000, int(problem.n_points * SCALE)))
    tape = tapead.record(problem.f, problem.n)
    y, g = np.empty(len(X)), np.empty(X.shape)
    problem.fused(X, y, g)
    y2, g2 = tape.value_and_gradient(X)
    np.testing.assert_allclose(y2, y, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(g2, g, rtol=1e-9, atol=1e-9)
    return problem, tape, X, y, g


def test_tapead_value_and_gradient(benchmark, case):
    problem, tape, X, _, _ = case
    benchmark.group = problem.name
    y, g = benchmark(tape.value_and_gradient, X)
    assert np.isfinite(g).all()


def test_fused_numba_value_and_gradient(benchmark, case):
    problem, _, X, y, g = case
    benchmark.group = problem.name
    benchmark(problem.fused, X, y, g)
    assert np.isfinite(g).all()
