"""tapead.dask: lazy evaluation over chunked points, on threads and on a real process cluster."""

import logging

import numpy as np
import pytest

da = pytest.importorskip("dask.array", reason="tapead.dask is the optional extra tapead[dask]")
distributed = pytest.importorskip("distributed", reason="tapead.dask is the optional extra tapead[dask]")

import tapead  # noqa: E402
import tapead.dask as tdask  # noqa: E402
from bench.problems import worked_example  # noqa: E402
from tapead.api import Tape  # noqa: E402


@pytest.fixture(scope="module")
def points():
    return np.random.default_rng(3).uniform(1, 3, (10_000, 2))


def test_every_method_matches_the_direct_call(points):
    tape = tapead.record(worked_example, 2)
    X = da.from_array(points, chunks=(3000, 1))  # the input axis is rechunked to one chunk
    np.testing.assert_array_equal(tdask.values(tape, X).compute(), tape(points))
    np.testing.assert_array_equal(tdask.gradient(tape, X).compute(), tape.gradient(points))
    y, g = tdask.value_and_gradient(tape, X)
    np.testing.assert_array_equal(g.compute(), tape.gradient(points))
    np.testing.assert_array_equal(y.compute(), tape(points))
    np.testing.assert_array_equal(tdask.jvp(tape, X, np.array([1.0, 0.0])).compute(), tape.jvp(points, [1, 0])[1])
    multi = tapead.record(lambda x, p: [x[0] * p[0], np.sin(x[1]) * p[0]], 2, n_params=1)
    P = np.random.default_rng(4).normal(size=(10_000, 1))
    J = tdask.jacobian(multi, X, da.from_array(P, chunks=(5000, 1))).compute()
    np.testing.assert_array_equal(J, multi.jacobian(points, P))
    np.testing.assert_array_equal(tdask.values(multi, X, np.array([2.0])).compute(), multi(points, np.array([2.0])))


def test_the_tape_is_one_task_of_the_graph(points):
    tape = tapead.record(worked_example, 2)
    result = tdask.gradient(tape, da.from_array(points, chunks=(1000, 2)))
    graph = dict(result.__dask_graph__())
    holding = [k for k, v in graph.items() if isinstance(v, Tape) or (
        hasattr(v, "value") and isinstance(getattr(v, "value", None), Tape))]
    assert result.npartitions == 10 and len(holding) == 1


def test_bad_arguments(points):
    tape = tapead.record(worked_example, 2)
    with pytest.raises(ValueError, match=r"dask array of shape \(N, 2\)"):
        tdask.gradient(tape, points)
    with pytest.raises(ValueError, match=r"V must have shape \(2,\)"):
        tdask.jvp(tape, da.from_array(points), np.ones(3))
    with pytest.raises(TypeError, match="pass P"):
        tdask.values(tapead.record(lambda x, p: x[0] * p[0], 2, n_params=1), da.from_array(points))


def test_on_a_local_cluster_of_worker_processes(points, tmp_path):
    tape = tapead.record(worked_example, 2)
    path = tmp_path / "X.npy"
    np.save(path, points)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as client:
        X = da.from_array(np.load(path, mmap_mode="r"), chunks=(2500, 2))
        g = tdask.gradient(tape, X).compute()
        assert len(client.scheduler_info()["workers"]) == 2
    np.testing.assert_array_equal(g, tape.gradient(points))


def test_sums_over_chunked_observations_are_the_direct_sums():
    nll = tapead.record(lambda th, obs: 0.5 * ((obs[0] - th[0]) / th[1]) ** 2 + np.log(th[1]), 2, n_params=1)
    obs = np.random.default_rng(4).normal(1.5, 2.0, (20_000, 1))
    w = np.random.default_rng(5).uniform(0, 1, 20_000)
    theta = np.array([1.0, 1.7])
    chunked = da.from_array(obs, chunks=(3000, 1))
    f, g = tdask.value_and_gradient(nll, theta, chunked, reduce="sum")
    f0, g0 = nll.value_and_gradient(theta, obs, reduce="sum")
    np.testing.assert_allclose(f, f0, rtol=1e-13)
    np.testing.assert_allclose(g, g0, rtol=1e-13)
    np.testing.assert_allclose(tdask.gradient(nll, theta, chunked, reduce="mean", weights=w),
                               nll.gradient(theta, obs, reduce="mean", weights=w), rtol=1e-13)
    np.testing.assert_allclose(tdask.hvp(nll, theta, np.array([1.0, -1.0]), chunked),
                               nll.hvp(theta, obs, np.array([1.0, -1.0]), reduce="sum"), rtol=1e-12)
    assert tdask.values(nll, theta, chunked, reduce="mean") == pytest.approx(nll(theta, obs, reduce="mean"))
    with pytest.raises(ValueError, match="weights must have 20000 rows"):
        tdask.gradient(nll, theta, chunked, reduce="sum", weights=da.ones(10, chunks=5))
