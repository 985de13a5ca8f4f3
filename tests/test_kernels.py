"""The compiled sweeps against the reference interpreter, op by op and on random tapes."""

import numba
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapead import reference

from .helpers import OP_ROWS, assert_close, const_for, copysign_of_nan, one_op_tape, op_id, random_tapes, sample_domain

N = 700  # not a multiple of any tile size: the last tile is partial


@pytest.mark.parametrize("spec", OP_ROWS, ids=op_id)
def test_every_op_in_every_sweep_matches_reference(spec, rng):
    tape = one_op_tape(spec, const_for(spec, rng))
    X = sample_domain(spec, N, rng)
    V = rng.normal(size=(N, spec.arity, 3))
    W = rng.normal(size=(N, 1, 2))
    Y_ref, Yd_ref = reference.jvp(tape, X, None, V)
    _, Xb_ref = reference.vjp(tape, X, None, W)
    assert_close(tape(X), Y_ref[:, 0])
    y, y_dot = tape.jvp(X, V)
    assert_close(y, Y_ref[:, 0])
    assert_close(y_dot, Yd_ref[:, 0, :])
    y, X_bar = tape.vjp(X, W.reshape(N, *tape.out_shape, 2))  # two directions in one sweep
    assert_close(y.reshape(Y_ref.shape), Y_ref)
    assert_close(X_bar, Xb_ref)


@given(tape=random_tapes(), seed=st.integers(0, 2**32 - 1), n_points=st.integers(0, 600))
def test_random_tapes_match_reference(tape, seed, n_points):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, (n_points, tape.n_in))
    P = rng.uniform(-2, 2, (n_points, tape.n_params))
    V = rng.normal(size=(n_points, tape.n_in, 2))
    W = rng.normal(size=(n_points, tape.n_out))
    args = (P,) if tape.n_params else ()
    Y_ref, Yd_ref = reference.jvp(tape, X, P, V)
    _, Xb_ref = reference.vjp(tape, X, P, W[:, :, None])
    y = tape(X, *args)
    y_jvp, y_dot = tape.jvp(X, *args, V)
    y_vjp, x_bar = tape.vjp(X, *args, W)
    ok = ~copysign_of_nan(tape, X, P)
    for got, want in [(y, Y_ref), (y_jvp, Y_ref), (y_dot, Yd_ref), (y_vjp, Y_ref), (x_bar, Xb_ref[:, :, 0])]:
        assert_close(got[ok], want[ok], rtol=1e-10, atol=1e-12)



@given(tape=random_tapes(n_params=0), seed=st.integers(0, 2**32 - 1))
def test_dot_product_identity(tape, seed):
    """<y_bar, J x_dot> = <J^T y_bar, x_dot>: forward and reverse agree (Griewank & Walther 3.3)
    to rounding. Partials that cancel (arctan2(v, v): 1/(2v) - 1/(2v)) leave a rounding error
    that the sums' own sizes do not show; it is bounded by |y_bar| |x_dot| (partials of order
    one) or by what the same sums give in the reference interpreter (v near 0)."""
    rng = np.random.default_rng(seed)
    n_points = 50
    X = rng.uniform(-2, 2, (n_points, tape.n_in))
    x_dot = rng.normal(size=(n_points, tape.n_in))
    y_bar = rng.normal(size=(n_points, tape.n_out))
    _, y_dot = tape.jvp(X, x_dot)
    _, x_bar = tape.vjp(X, y_bar)
    _, y_dot_ref = reference.jvp(tape, X, None, x_dot[:, :, None])
    _, x_bar_ref = reference.vjp(tape, X, None, y_bar[:, :, None])
    with np.errstate(all="ignore"):
        left = np.einsum("km,km->k", y_bar, y_dot)
        right = np.einsum("kn,kn->k", x_bar, x_dot)
        scale = np.abs(y_bar * y_dot).sum(1) + np.abs(x_bar * x_dot).sum(1) + 1e-300
        scale += np.abs(y_bar).sum(1) * np.abs(x_dot).sum(1)
        gap_ref = np.abs(np.einsum("km,km->k", y_bar, y_dot_ref[:, :, 0]) - np.einsum("kn,kn->k", x_bar_ref[:, :, 0], x_dot))
        tolerance = 1e-12 * scale + 4.0 * gap_ref
    finite = np.isfinite(left) & np.isfinite(right) & np.isfinite(tolerance)
    assert np.all(np.abs(left - right)[finite] <= tolerance[finite])


@given(tape=random_tapes(), seed=st.integers(0, 2**32 - 1))
def test_threads_give_identical_results(tape, seed):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, (3000, tape.n_in))
    P = rng.uniform(-2, 2, (tape.n_params,))
    args = (P,) if tape.n_params else ()
    W = np.ones(tape.n_out)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = tape.vjp(X, *args, W)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = tape.vjp(X, *args, W)
    finally:
        numba.set_num_threads(before)
    for a, b in zip(one, many):
        np.testing.assert_array_equal(a, b)


def test_nan_at_one_point_does_not_touch_others(rng):
    from tapead.ops import BY_NAME

    tape = one_op_tape(BY_NAME["log"])
    X = rng.uniform(1, 2, (1000, 1))
    clean = tape.value_and_gradient(X)
    X[137, 0] = -1.0  # log(-1) = NaN, d/dx = -1
    X[500, 0] = np.nan
    dirty = tape.value_and_gradient(X)
    others = np.ones(1000, bool)
    others[[137, 500]] = False
    for a, b in zip(clean, dirty):
        np.testing.assert_array_equal(a[others], b[others])
    assert np.isnan(dirty[0][137]) and np.isnan(dirty[0][500])


def test_chain_feeding_only_dead_code_has_zero_adjoint(rng):
    """Regression (found by hypothesis): adjoint rows are zeroed lazily, so a value read only
    by dead instructions must still get a zeroed adjoint."""
    import tapead

    def f(x):
        np.sin(x[0] * 3.0) + x[1]  # recorded, never used: dead code
        return x[0] * 2.0

    tape = tapead.record(f, 2)
    for _ in range(3):
        X = rng.normal(size=(5000, 2))
        g = tape.gradient(X)
        np.testing.assert_array_equal(g, np.tile([2.0, 0.0], (5000, 1)))


@pytest.mark.parametrize("n_in, n_params", [(19, 11), (8, 8), (16, 0), (7, 9)])
def test_many_inputs_and_parameters_in_and_out_eight_columns_at_a_time(n_in, n_params, rng):
    """Inputs and parameters go into tile rows, and gradients out, eight columns per pass:
    every column in its place, unread inputs (zero gradient) inside a block of eight too."""
    import tapead

    a = rng.normal(size=n_in)
    b = rng.normal(size=n_params)
    skip = {1, 9} if n_in > 9 else set()  # nothing reads x_1 or x_9: a zero column

    def f(x, p=()):
        s = sum(a[k] * x[k] ** 2 for k in range(n_in) if k not in skip)
        return s + sum(b[k] * p[k] * x[k % n_in] for k in range(n_params))

    tape = tapead.record(f, n_in, n_params=n_params) if n_params else tapead.record(f, n_in)
    X = rng.normal(size=(N, n_in))
    args = (rng.normal(size=(N, n_params)),) if n_params else ()
    y, g = tape.value_and_gradient(X, *args)
    want = np.where([k in skip for k in range(n_in)], 0.0, 2.0 * a) * X
    for k in range(n_params):
        want[:, k % n_in] += b[k] * args[0][:, k]
    assert_close(g, want)
    assert_close(y, reference.evaluate(tape, X, *args)[:, 0])
    W = rng.normal(size=(N, 1, 2))  # two adjoint directions: the gradient leaves by the other path
    P = args[0] if args else None
    vjp_args = (P,) if P is not None else ()
    assert_close(tape.vjp(X, *vjp_args, W.reshape(N, *tape.out_shape, 2))[1], reference.vjp(tape, X, P, W)[1])
