"""stop_gradient and custom_derivative: user derivative rules inside a recorded function."""

import numpy as np
import pytest

import tapead
from tapead import reference


def test_stop_gradient_keeps_the_value_and_drops_the_derivative():
    tape = tapead.record(lambda x: x[0] * tapead.stop_gradient(x[0] * x[1]) + x[1], 2)
    X = np.random.default_rng(0).uniform(-2, 2, (20, 2))
    np.testing.assert_array_equal(tape(X), X[:, 0] * (X[:, 0] * X[:, 1]) + X[:, 1])
    # d/dx0 = x0 x1 (the stopped factor, as a constant), d/dx1 = 1
    np.testing.assert_array_equal(tape.gradient(X), np.column_stack([X[:, 0] * X[:, 1], np.ones(20)]))
    np.testing.assert_array_equal(tape.hessian(X), np.zeros((20, 2, 2)))
    np.testing.assert_array_equal(tape.gradient(X), reference.vjp(tape, X, None, np.ones((20, 1, 1)))[1][:, :, 0])
    assert "stop" in str(tape)
    assert tapead.stop_gradient(2.5) == 2.5


def test_custom_derivative_is_used_for_every_order():
    # a deliberately different rule, so that the test sees which derivative is taken:
    # f = x0^2 x1 with "derivative" J = (3 x0 x1, x0^2): Hessian = symmetric part of dJ/dx
    f = tapead.custom_derivative(lambda x: x[0] ** 2 * x[1], lambda x: [3.0 * x[0] * x[1], x[0] ** 2])
    tape = tapead.record(lambda x: f(x), 2)
    X = np.random.default_rng(1).uniform(-2, 2, (30, 2))
    x0, x1 = X.T
    np.testing.assert_array_equal(tape(X), x0**2 * x1)
    np.testing.assert_allclose(tape.gradient(X), np.column_stack([3 * x0 * x1, x0**2]), rtol=1e-15)
    dJ = np.stack([np.stack([3 * x1, 3 * x0], -1), np.stack([2 * x0, 0 * x0], -1)], 1)  # dJ_i/dx_j
    np.testing.assert_allclose(tape.hessian(X), 0.5 * (dJ + dJ.transpose(0, 2, 1)), rtol=1e-14, atol=1e-15)
    V = np.random.default_rng(2).normal(size=(30, 2))
    np.testing.assert_allclose(tape.jvp(X, V)[1], np.einsum("ki,ki->k", tape.gradient(X), V), rtol=1e-14)
    assert f(np.array([2.0, 3.0])) == 12.0  # on numbers: plain f


def test_custom_derivative_of_a_vector_function_matches_the_plain_recording():
    def f(x):
        return tapead.asarray([x[0] * x[1], np.sin(x[0]) + x[2] ** 3])

    def J(x):
        return tapead.asarray([[x[1], x[0], 0.0], [np.cos(x[0]), 0.0, 3.0 * x[2] ** 2]])

    custom = tapead.record(lambda x: tapead.custom_derivative(f, J)(x) * 2.0, 3)
    plain = tapead.record(lambda x: f(x) * 2.0, 3)
    X = np.random.default_rng(3).uniform(-2, 2, (25, 3))
    W = np.random.default_rng(4).normal(size=(25, 2))
    np.testing.assert_array_equal(custom(X), plain(X))
    np.testing.assert_allclose(custom.jacobian(X), plain.jacobian(X), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(custom.hessian(X, W=W), plain.hessian(X, W=W), rtol=1e-14, atol=1e-14)


def test_custom_derivative_gives_a_stable_gradient_where_the_formula_overflows():
    softplus = tapead.custom_derivative(lambda x: np.log1p(np.exp(x[0])), lambda x: [tapead.sigmoid(x[0])])
    naive = tapead.record(lambda x: np.log1p(np.exp(x[0])), 1)
    stable = tapead.record(softplus, 1)
    X = np.array([[-30.0], [0.0], [5.0], [750.0]])
    assert naive.gradient(X)[-1, 0] != 1.0  # exp overflows: the chain rule through it has no 1 left
    np.testing.assert_allclose(stable.gradient(X)[:, 0], 1 / (1 + np.exp(-X[:, 0])), rtol=1e-15)
    np.testing.assert_array_equal(stable(X), naive(X))


def test_custom_derivative_checks_the_jacobian_shape():
    f = tapead.custom_derivative(lambda x: x[0] * x[1], lambda x: [x[1]])
    with pytest.raises(ValueError, match=r"must have shape \(2,\)"):
        tapead.record(lambda x: f(x), 2)
