"""value_and_jacobian and value_gradient_and_hessian: several results from the same sweeps."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tapead
from tapead import reference


def _random_points(tape, seed, n_points=25):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0.3, 2.0, (n_points, tape.n_in))
    return X, rng


@pytest.mark.parametrize("mode", ["forward", "reverse", "auto"])
@given(seed=st.integers(0, 2**32 - 1))
def test_value_and_jacobian_equals_values_and_jacobian(mode, seed):
    tape = tapead.record(lambda x: [np.sin(x[0]) * x[1], np.log(x[1]) / x[2], x[0] ** 2 * np.exp(-x[2])], 3)
    X, _ = _random_points(tape, seed)
    y, J = tape.value_and_jacobian(X, mode=mode)
    np.testing.assert_array_equal(J, tape.jacobian(X, mode=mode))
    np.testing.assert_allclose(y, reference.evaluate(tape, X), rtol=1e-15, atol=0)
    y1, J1 = tape.value_and_jacobian(X[3], mode=mode)
    assert y1.shape == (3,) and J1.shape == (3, 3)
    np.testing.assert_array_equal(J1, J[3])


def test_value_and_jacobian_reduce_out_and_errors():
    tape = tapead.record(lambda x, p: [x[0] * p[0], np.sin(x[1]) + p[0]], 2, n_params=1)
    rng = np.random.default_rng(1)
    X, P, w = rng.normal(size=(40, 2)), rng.normal(size=(40, 1)), rng.uniform(0, 1, 40)
    y, J = tape.value_and_jacobian(X, P)
    ys, Js = tape.value_and_jacobian(X, P, reduce="sum", weights=w)
    np.testing.assert_allclose(ys, np.einsum("k,ki->i", w, y), rtol=1e-13)
    np.testing.assert_allclose(Js, np.einsum("k,kij->ij", w, J), rtol=1e-13)
    y_out, J_out = np.empty((40, 2)), np.empty((40, 2, 2))
    got = tape.value_and_jacobian(X, P, out=(y_out, J_out))
    assert got[0] is not None and np.shares_memory(got[1], J_out)
    np.testing.assert_array_equal(J_out, J)
    np.testing.assert_array_equal(y_out, y)
    with pytest.raises(TypeError, match="pair"):
        tape.value_and_jacobian(X, P, out=J_out)
    with pytest.raises(ValueError, match="shape"):
        tape.value_and_jacobian(X, P, out=(None, np.empty((40, 2, 3))))


@given(seed=st.integers(0, 2**32 - 1))
def test_value_gradient_and_hessian_equals_the_separate_methods(seed):
    tape = tapead.record(lambda x: np.sin(x[0] * x[1]) + x[2] ** 3 / x[0] + np.sum(x) ** 2, 3)
    X, rng = _random_points(tape, seed)
    y, g, H = tape.value_gradient_and_hessian(X)
    np.testing.assert_array_equal(H, tape.hessian(X))
    np.testing.assert_allclose(g, tape.gradient(X), rtol=1e-14)
    np.testing.assert_allclose(y, tape(X), rtol=1e-15)
    y1, g1, H1 = tape.value_gradient_and_hessian(X[0])
    assert np.ndim(y1) == 0 and g1.shape == (3,) and H1.shape == (3, 3)
    w = rng.uniform(0, 1, X.shape[0])
    ys, gs, Hs = tape.value_gradient_and_hessian(X, reduce="mean", weights=w)
    assert isinstance(ys, float)
    np.testing.assert_allclose(ys, w @ y / w.sum(), rtol=1e-13)
    np.testing.assert_allclose(gs, w @ g / w.sum(), rtol=1e-13)
    np.testing.assert_allclose(Hs, np.einsum("k,kij->ij", w, H) / w.sum(), rtol=1e-12)


def test_value_gradient_and_hessian_of_several_outputs_and_out():
    tape = tapead.record(lambda x: [x[0] * x[1] ** 2, np.exp(x[0]) - x[1]], 2)
    rng = np.random.default_rng(2)
    X, W = rng.normal(size=(30, 2)), rng.normal(size=(30, 2))
    outs = np.empty((30, 2)), np.empty((30, 2)), np.empty((30, 2, 2))
    y, g, H = tape.value_gradient_and_hessian(X, W=W, out=outs)
    np.testing.assert_array_equal(outs[2], tape.hessian(X, W=W))
    np.testing.assert_allclose(outs[1], np.einsum("ki,kij->kj", W, tape.jacobian(X)), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(outs[0], tape(X), rtol=1e-15)
    with pytest.raises(ValueError, match="needs weights"):
        tape.value_gradient_and_hessian(X)
    with pytest.raises(ValueError, match="shares memory"):
        tape.value_gradient_and_hessian(X, W=W, out=(X, None, None))
