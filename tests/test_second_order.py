"""Jacobians (forward and reverse), Hessians (forward over reverse), sparsity and colorings."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tapead
from bench.problems import arrowhead, banded, block_diagonal, rosenbrock
from tapead import reference, sparsity
from tapead.api import jacobian_mode

from .helpers import OP_ROWS, assert_close, const_for, copysign_of_nan, one_op_tape, op_id, random_tapes, sample_domain


@given(tape=random_tapes(), seed=st.integers(0, 2**32 - 1))
def test_jacobian_forward_and_reverse_agree_with_reference(tape, seed):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, (40, tape.n_in))
    P = rng.uniform(-2, 2, (40, tape.n_params))
    args = (P,) if tape.n_params else ()
    # each mode against the reference sweep of the same mode: where a NaN partial meets a
    # zero (a NaN value's derivative), forward and reverse may legitimately differ
    _, J_fwd = reference.jvp(tape, X, P, np.broadcast_to(np.eye(tape.n_in), (40, tape.n_in, tape.n_in)))
    _, J_rev = reference.vjp(tape, X, P, np.broadcast_to(np.eye(tape.n_out), (40, tape.n_out, tape.n_out)))
    # and where an output is NaN its derivatives are too, unless a last-bit difference (vmath
    # against numpy) makes a partial exactly zero in one and not the other: zero skipping
    # then gives 0 where the other gives NaN
    Y_ref = reference.evaluate(tape, X, P if tape.n_params else None)
    ok = ~copysign_of_nan(tape, X, P) & ~np.isnan(Y_ref).any(axis=1)
    assert_close(tape.jacobian(X, *args, mode="forward")[ok], J_fwd[ok], rtol=1e-10, atol=1e-12)
    assert_close(tape.jacobian(X, *args, mode="reverse")[ok], J_rev.transpose(0, 2, 1)[ok], rtol=1e-10, atol=1e-12)
    finite = np.isfinite(J_fwd).all(axis=(1, 2)) & np.isfinite(J_rev).all(axis=(1, 2)) & ok
    assert_close(tape.jacobian(X, *args)[finite], J_fwd[finite], rtol=1e-10, atol=1e-12)


@given(tape=random_tapes(max_outputs=2), seed=st.integers(0, 2**32 - 1))
def test_hessian_vector_products_match_reference(tape, seed):
    rng = np.random.default_rng(seed)
    n_points = 30
    X = rng.uniform(-2, 2, (n_points, tape.n_in))
    P = rng.uniform(-2, 2, (n_points, tape.n_params))
    V = rng.normal(size=(n_points, tape.n_in, 2))
    W = rng.normal(size=(n_points, tape.n_out))
    args = (P,) if tape.n_params else ()
    HV = tape.hvp(X, *args, V, W=W)
    skip = copysign_of_nan(tape, X, P)
    for k in range(n_points):
        for d in range(2):
            p = P[k] if tape.n_params else ()
            _, hv = reference.hessian_vector(tape, X[k], p, W[k], V[k, :, d])
            # ill-conditioned points (arccosh(cosh(x)) near 0) amplify a last-bit difference
            # (vmath or libm against numpy): allow what moving x by one ulp changes
            _, moved = reference.hessian_vector(tape, np.nextafter(X[k], np.inf), p, W[k], V[k, :, d])
            with np.errstate(invalid="ignore"):
                slack = np.nan_to_num(4.0 * np.abs(moved - hv), nan=0.0, posinf=0.0)
            if not skip[k]:
                assert_close(HV[k, :, d], hv, rtol=1e-10, atol=1e-12 + slack.max(initial=0.0))


@pytest.mark.parametrize("spec", [s for s in OP_ROWS if s.smooth], ids=op_id)
def test_every_smooth_op_hessian_matches_finite_differences_of_gradient(spec, rng):
    tape = one_op_tape(spec, const_for(spec, rng))
    X = sample_domain(spec, 20, rng)
    H = tape.hessian(X)
    assert_close(H, H.transpose(0, 2, 1))  # symmetric
    for j in range(spec.arity):
        h = 1e-6 * np.maximum(1.0, np.abs(X[:, j]))
        up, down = X.copy(), X.copy()
        up[:, j] += h
        down[:, j] -= h
        fd = (tape.gradient(up) - tape.gradient(down)) / (2 * h[:, None])
        np.testing.assert_allclose(H[:, :, j], fd, rtol=1e-5, atol=1e-5)


def test_rosenbrock_hessian_is_exact_and_symmetric(rng):
    n = 12
    tape = tapead.record(rosenbrock, n)
    X = rng.normal(size=(50, n))
    H = tape.hessian(X)
    expected = np.zeros((50, n, n))
    for i in range(n - 1):
        expected[:, i, i] += 1200 * X[:, i] ** 2 - 400 * X[:, i + 1] + 2
        expected[:, i + 1, i + 1] += 200
        expected[:, i, i + 1] += -400 * X[:, i]
        expected[:, i + 1, i] += -400 * X[:, i]
    assert_close(H, expected, rtol=1e-13, atol=1e-10)
    V = rng.normal(size=(50, n))
    assert_close(tape.hvp(X, V), np.einsum("kij,kj->ki", expected, V), rtol=1e-12, atol=1e-9)
    assert tape.hessian(X[0]).shape == (n, n) and tape.hvp(X[0], V[0]).shape == (n,)


def test_lagrangian_hessian_of_several_outputs(rng):
    outs = [lambda x: x[0] ** 2 * x[1], lambda x: np.sin(x[0] * x[1]), lambda x: np.exp(x[1])]
    tape = tapead.record(lambda x: [f(x) for f in outs], 2)
    X = rng.normal(size=(20, 2))
    W = rng.normal(size=(20, 3))
    expected = sum(W[:, [k]][:, :, None] * tapead.record(f, 2).hessian(X) for k, f in enumerate(outs))
    assert_close(tape.hessian(X, W=W), expected, rtol=1e-12, atol=1e-12)
    assert_close(tape.hessian(X, W=np.array([1.0, 0, 0])), tapead.record(outs[0], 2).hessian(X))
    with pytest.raises(ValueError, match="needs weights W"):
        tape.hessian(X)


def test_parameters_work_with_every_second_order_method(rng):
    tape = tapead.record(lambda x, p: p[0] * x[0] ** 3 + p[1] * x[0] * x[1], 2, n_params=2)
    X, P = rng.normal(size=(10, 2)), rng.normal(size=(10, 2))
    H = tape.hessian(X, P)
    assert_close(H[:, 0, 0], 6 * P[:, 0] * X[:, 0])
    assert_close(H[:, 0, 1], P[:, 1])
    assert_close(tape.jacobian(X, P)[:, 1], P[:, 1] * X[:, 0])
    assert_close(tape.sparse_hessian(X, P)[1], H[:, [0, 0, 1], [0, 1, 0]])
    assert_close(tape.hvp(X, P, np.array([0.0, 1.0])), H[:, :, 1])


def test_where_stays_nan_safe_in_second_order():
    tape = tapead.record(lambda x: tapead.where(x[0] < 1, x[0] ** 2, np.sqrt(x[0])), 1)
    H = tape.hessian(np.array([[0.0], [4.0]]))
    assert H.ravel().tolist() == [2.0, -0.25 / 8]


def test_jacobian_shapes_and_modes(rng):
    tape = tapead.record(lambda x: np.array([[x[0], x[1] * x[2]], [x[0] ** 2, 1.0]]), 3)
    X = rng.normal(size=(7, 3))
    assert tape.jacobian(X).shape == (7, 2, 2, 3)
    assert tape.jacobian(X[0]).shape == (2, 2, 3)
    with pytest.raises(ValueError, match="mode must be"):
        tape.jacobian(X, mode="sideways")
    assert [jacobian_mode(n, m) for n, m in [(6, 3), (4, 2), (3, 3), (1, 1), (3, 30)]] == ["reverse"] * 2 + ["forward"] * 3
    wide = tapead.record(lambda x: [np.sum(x**2)] * 1, 40)
    assert_close(wide.jacobian(X.repeat(14, 1)[:, :40], mode="forward"),
                 wide.jacobian(X.repeat(14, 1)[:, :40], mode="reverse"))  # > 32 directions: chunks


# ---- sparsity ----


def _dense_pattern(rows, cols, shape):
    M = np.zeros(shape, dtype=bool)
    M[rows, cols] = True
    return M


def test_patterns_of_known_structures():
    n = 8
    (r, c) = tapead.record(rosenbrock, n).hessian_sparsity()
    band = np.abs(np.subtract.outer(np.arange(n), np.arange(n))) <= 1
    assert np.array_equal(_dense_pattern(r, c, (n, n)), band)
    (r, c) = tapead.record(arrowhead, n).hessian_sparsity()
    arrow = np.eye(n, dtype=bool)
    arrow[0, :] = arrow[:, 0] = True
    assert np.array_equal(_dense_pattern(r, c, (n, n)), arrow)
    tape = tapead.record(lambda x: [x[0] * x[1], np.sin(x[2]), x[3] > 0], 4)
    r, c = tape.jacobian_sparsity()
    assert list(zip(r.tolist(), c.tolist())) == [(0, 0), (0, 1), (1, 2)]


@pytest.mark.parametrize("f,n,optimum", [(arrowhead, 30, 2), (block_diagonal, 30, 3), (rosenbrock, 30, 3)],
                         ids=["arrowhead", "block3", "tridiagonal"])
def test_star_coloring_reaches_the_optimum_and_recovers_the_dense_hessian(f, n, optimum, rng):
    tape = tapead.record(f, n)
    assert tape.stats()["colors"]["hessian"]["colors"] == optimum
    X = rng.normal(size=(6, n))
    (r, c), values = tape.sparse_hessian(X)
    H = tape.hessian(X)
    assert_close(values, H[:, r, c], rtol=1e-13, atol=1e-13)
    off_pattern = ~_dense_pattern(r, c, (n, n))
    assert np.all(H[:, off_pattern] == 0)
    M = sparsity.to_scipy((r, c), values[0], (n, n))
    assert_close(M.toarray(), H[0])


def test_banded_coloring_and_sparse_jacobian(rng):
    n = 20
    tape = tapead.record(banded, n)
    colors = tape.stats()["colors"]["hessian"]["colors"]
    assert colors <= 2 * 2 + 1  # never worse than distance-2 (2 * half_width + 1)
    X = rng.normal(size=(5, n))
    (r, c), values = tape.sparse_hessian(X)
    assert_close(values, tape.hessian(X)[:, r, c], rtol=1e-12, atol=1e-12)
    vec = tapead.record(lambda x: x[1:] * x[:-1] + np.sin(x[1:]), n)
    (r, c), values = vec.sparse_jacobian(X)
    assert vec.stats()["colors"]["jacobian"]["colors"] == 2
    assert_close(values, vec.jacobian(X)[:, r, c])


def test_scipy_minimize_with_trust_ncg():
    from scipy.optimize import minimize

    funcs = tapead.record(rosenbrock, 10).to_scipy()
    result = minimize(funcs.fun_and_jac, np.zeros(10), jac=True, hessp=funcs.hessp, method="trust-ncg")
    assert result.success
    np.testing.assert_allclose(result.x, np.ones(10), atol=1e-6)
    result = minimize(funcs.fun, np.zeros(10), jac=funcs.jac, hess=funcs.hess, method="trust-constr")
    np.testing.assert_allclose(result.x, np.ones(10), atol=1e-4)
