"""Sums over points: reduce="sum"/"mean", weights, one x broadcast over parameter rows."""

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tapead

from .helpers import random_tapes


def _logistic_growth(th, obs):
    # one observation (t, y) of y = K / (1 + exp(-r (t - t0))) with Gaussian noise of log-sd s
    K, r, t0, s = th[0], th[1], th[2], th[3]
    mean = K / (1.0 + np.exp(-r * (obs[0] - t0)))
    return 0.5 * ((obs[1] - mean) / np.exp(s)) ** 2 + s


@pytest.fixture(scope="module")
def growth():
    rng = np.random.default_rng(5)
    t = rng.uniform(0, 10, 5000)
    y = 10.0 / (1.0 + np.exp(-0.8 * (t - 5.0))) + rng.normal(0, 0.5, t.size)
    return tapead.record(_logistic_growth, 4, n_params=2), np.column_stack([t, y])


def test_one_x_over_parameter_rows_is_x_at_every_row(growth):
    tape, obs = growth
    theta = np.array([9.0, 0.7, 4.5, -0.5])
    y, g = tape.value_and_gradient(theta, obs)
    y_rep, g_rep = tape.value_and_gradient(np.tile(theta, (len(obs), 1)), obs)
    np.testing.assert_array_equal(y, y_rep)
    np.testing.assert_array_equal(g, g_rep)
    assert y.shape == (len(obs),) and g.shape == (len(obs), 4)


def test_sum_and_mean_of_a_likelihood_and_its_derivatives(growth):
    tape, obs = growth
    theta = np.array([9.0, 0.7, 4.5, -0.5])
    y, g = tape.value_and_gradient(theta, obs)
    f, grad = tape.value_and_gradient(theta, obs, reduce="sum")
    assert isinstance(f, float) and grad.shape == (4,)
    np.testing.assert_allclose(f, y.sum(), rtol=1e-13)
    np.testing.assert_allclose(grad, g.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(tape.gradient(theta, obs, reduce="mean"), g.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(tape(theta, obs, reduce="mean"), y.mean(), rtol=1e-13)
    v = np.array([1.0, -2.0, 0.5, 0.25])
    np.testing.assert_allclose(tape.hvp(theta, obs, v, reduce="sum"), tape.hvp(theta, obs, v).sum(axis=0),
                               rtol=1e-11)
    np.testing.assert_allclose(tape.hessian(theta, obs, reduce="sum"), tape.hessian(theta, obs).sum(axis=0),
                               rtol=1e-11)
    # the Hessian of the sum against finite differences of its gradient
    h = 1e-6
    fd = np.array([(tape.gradient(theta + h * e, obs, reduce="sum") - tape.gradient(theta - h * e, obs, reduce="sum"))
                   / (2 * h) for e in np.eye(4)])
    np.testing.assert_allclose(tape.hessian(theta, obs, reduce="sum"), fd, rtol=1e-5, atol=1e-3)


def test_weights_weigh_every_reduction(growth):
    tape, obs = growth
    theta = np.array([9.0, 0.7, 4.5, -0.5])
    w = np.random.default_rng(1).uniform(0, 2, len(obs))
    y, g = tape.value_and_gradient(theta, obs)
    f, grad = tape.value_and_gradient(theta, obs, reduce="sum", weights=w)
    np.testing.assert_allclose(f, w @ y, rtol=1e-12)
    np.testing.assert_allclose(grad, w @ g, rtol=1e-12)
    np.testing.assert_allclose(tape.gradient(theta, obs, reduce="mean", weights=w), w @ g / w.sum(), rtol=1e-12)
    v = np.array([1.0, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(tape.hvp(theta, obs, v, reduce="sum", weights=w), w @ tape.hvp(theta, obs, v),
                               rtol=1e-11)
    np.testing.assert_allclose(tape.jacobian(theta, obs, reduce="sum", weights=w),
                               np.einsum("k,kn->n", w, tape.jacobian(theta, obs)), rtol=1e-12)


def test_reductions_are_the_same_bits_whatever_the_thread_count(growth):
    tape, obs = growth
    obs = np.tile(obs, (60, 1))  # 300,000 points: two blocks, many tiles per thread
    theta = np.array([9.0, 0.7, 4.5, -0.5])
    before = numba.get_num_threads()
    results = []
    try:
        for threads in (1, before):
            numba.set_num_threads(threads)
            results.append((tape.value_and_gradient(theta, obs, reduce="sum"),
                            tape.hvp(theta, obs, np.ones(4), reduce="sum")))
    finally:
        numba.set_num_threads(before)
    (f1, g1), h1 = results[0]
    (f2, g2), h2 = results[-1]
    assert f1 == f2
    np.testing.assert_array_equal(g1, g2)
    np.testing.assert_array_equal(h1, h2)


@settings(max_examples=25)
@given(random_tapes(max_outputs=1, n_params=1), st.integers(1, 700), st.booleans())
def test_reduced_results_equal_sums_of_per_point_results(tape, n_points, weighted):
    rng = np.random.default_rng(n_points)
    X = rng.uniform(0.5, 2.0, (n_points, tape.n_in))
    P = rng.uniform(0.5, 2.0, (n_points, 1))
    w = rng.uniform(0, 1, n_points) if weighted else None
    scale = np.ones(n_points) if w is None else w
    y, g = tape.value_and_gradient(X, P)
    keep = np.isfinite(y) & np.isfinite(g).all(axis=1)
    X, P, scale, w = X[keep], P[keep], scale[keep], None if w is None else w[keep]
    if not len(X):
        return
    y, g = y[keep], g[keep]
    f, grad = tape.value_and_gradient(X, P, reduce="sum", weights=w)
    tol = 1e-12 * (np.abs(scale) @ np.abs(g) + 1e-300)
    np.testing.assert_allclose(f, scale @ y, rtol=1e-12, atol=1e-12 * (np.abs(scale) @ np.abs(y)))
    assert np.all(np.abs(grad - scale @ g) <= tol * 10)
    V = rng.normal(size=tape.n_in)
    hv = tape.hvp(X, P, V)
    if np.isfinite(hv).all():
        # with weights the sweep seeds w_k instead of 1, so terms that cancel exactly per point
        # (to 0) may leave a rounding residue: an absolute floor at the values' own scale (O(1))
        np.testing.assert_allclose(tape.hvp(X, P, V, reduce="sum", weights=w), scale @ hv, rtol=1e-10,
                                   atol=1e-10 * (np.abs(scale) @ np.abs(hv)).max() + 1e-12)


def test_bad_reduction_arguments_are_named(growth):
    tape, obs = growth
    theta = np.ones(4)
    with pytest.raises(ValueError, match="reduce must be"):
        tape.gradient(theta, obs, reduce="max")
    with pytest.raises(ValueError, match=r"weights must have shape \(5000,\)"):
        tape.gradient(theta, obs, reduce="sum", weights=np.ones(4999))
    with pytest.raises(ValueError, match="pass reduce="):
        tape.gradient(theta, obs, weights=np.ones(5000))
    with pytest.raises(ValueError, match="out="):
        tape(theta, obs, reduce="sum", out=np.empty(5000))


def test_scipy_fits_a_likelihood_over_the_data(growth):
    from scipy.optimize import minimize

    tape, obs = growth
    funcs = tape.to_scipy(obs, reduce="sum")
    start = np.array([8.0, 0.5, 4.0, 0.0])
    fit = minimize(funcs.fun_and_jac, start, jac=True, method="L-BFGS-B")
    refined = minimize(funcs.fun, fit.x, jac=funcs.jac, hessp=funcs.hessp, method="trust-ncg")
    assert refined.success
    K, r, t0, s = refined.x
    assert abs(K - 10) < 0.2 and abs(r - 0.8) < 0.05 and abs(t0 - 5) < 0.1 and abs(np.exp(s) - 0.5) < 0.03
    np.testing.assert_allclose(funcs.jac(refined.x), 0, atol=1e-4)


def test_one_x_with_one_parameter_row_is_one_point():
    tape = tapead.record(lambda x, p: x[0] * p[0] + x[1], 2, n_params=1)
    g = tape.gradient(np.array([1.0, 2.0]), np.array([[3.0]]))
    assert g.shape == (2,) and g.tolist() == [3.0, 1.0]
    funcs = tape.to_scipy(np.array([[3.0]]))
    assert funcs.jac(np.array([1.0, 2.0])).shape == (2,)
