"""numpy code that records: reductions over any axes, np.where, in-place operators, scipy.special,
small linear algebra, composed tapes; and the refusals, each naming the construct, the line and
what to write instead. Oracles: numpy and scipy on floats, central differences."""

import math
import random
import re
import warnings

import numpy as np
import pytest

import tapead
from tapead import reference
from tapead.tracer import FrozenRandomWarning, inline

from .helpers import assert_close

sc = pytest.importorskip("scipy.special")


def central_differences(f, X, h=1e-6):
    """The Jacobian (N, m, n) of f on floats by central differences, step h * max(1, |x_i|)."""
    J = []
    for x in X:
        cols = []
        for i in range(len(x)):
            step = h * max(1.0, abs(x[i]))
            e = np.zeros(len(x))
            e[i] = step
            up, down = np.array(f(x + e), dtype=float).ravel(), np.array(f(x - e), dtype=float).ravel()
            cols.append((up - down) / (2 * step))
        J.append(np.stack(cols, axis=-1))
    return np.array(J)


def check(f, n, X, rtol=1e-12, d_tol=1e-6):
    """The tape's values are f's on floats (kernels and the reference interpreter); its Jacobian
    is f's by central differences."""
    tape = tapead.record(f, n)
    expected = np.array([np.asarray(f(x), dtype=float) for x in X])
    assert_close(tape(X), expected, rtol=rtol)
    assert_close(reference.evaluate(tape, X).reshape(expected.shape), expected, rtol=rtol)
    J = tape.jacobian(X).reshape(len(X), -1, n)
    assert_close(J, central_differences(f, X), rtol=d_tol, atol=d_tol)
    return tape


# ---- reductions (issue 12, item 1: np.sum of a 2-D array reduced axis 0 only) ----


def test_sum_of_an_outer_product_reduces_every_element():
    tape = tapead.record(lambda x: np.sum(np.outer(x, x)) ** 2, 2)
    y, g = tape.value_and_gradient(np.array([1.0, 2.0]))
    assert tape.out_shape == ()
    assert y == 81.0
    assert g.tolist() == [108.0, 108.0]


AXES = [None, 0, 1, -1, (0, 2), (-1, 0), (0, 1, 2), ()]


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("reduce", [np.sum, np.prod, np.max, np.min, np.mean], ids=lambda r: r.__name__)
def test_reductions_over_any_axes_of_a_3d_array(reduce, axis, keepdims, rng):
    def f(x):
        return reduce(x.reshape(2, 3, 2), axis=axis, keepdims=keepdims)

    check(f, 12, rng.uniform(0.5, 1.5, (3, 12)))


REDUCTIONS = {
    "A.sum()": lambda A: A.sum(),
    "A.max()": lambda A: A.max(),
    "A.mean(axis=1)": lambda A: A.mean(axis=1),
    "A.prod(0)": lambda A: A.prod(0),
    "np.amax": lambda A: np.amax(A),
    "np.amin(axis=0)": lambda A: np.amin(A, axis=0),
    "np.ptp": lambda A: np.ptp(A),
    "np.average": lambda A: np.average(A, axis=0, weights=[1.0, 2.0, 3.0]),
    "np.var": lambda A: np.var(A),
    "np.std(axis=1)": lambda A: np.std(A, axis=1),
    "np.nansum": lambda A: np.nansum(A),
    "np.nanprod(axis=1)": lambda A: np.nanprod(A, axis=1),
    "np.nanmax": lambda A: np.nanmax(A),
    "np.nanmin(axis=0)": lambda A: np.nanmin(A, axis=0),
    "np.nanmean(axis=1)": lambda A: np.nanmean(A, axis=1),
    "np.add.reduce(axis=None)": lambda A: np.add.reduce(A, axis=None),
    "np.maximum.reduce(axis=(0, 1))": lambda A: np.maximum.reduce(A, axis=(0, 1)),
    "np.multiply.reduce(initial=2)": lambda A: np.multiply.reduce(A, axis=1, initial=2.0),
    "np.sum(where=mask)": lambda A: np.sum(A, axis=0, where=np.array([[True, False]] * 3)),
    "np.max(where=mask, initial=0)": lambda A: np.max(A, where=np.array([True, False]), initial=0.0),
    "np.cumsum(axis=1)": lambda A: np.cumsum(A, axis=1),
    "np.cumprod": lambda A: np.cumprod(A),
}


@pytest.mark.parametrize("name", REDUCTIONS)
def test_every_reduction_of_a_2d_array(name, rng):
    reduce = REDUCTIONS[name]
    check(lambda x: reduce(x.reshape(3, 2)), 6, rng.uniform(0.5, 1.5, (4, 6)))


def test_nan_reductions_skip_nans():
    tape = tapead.record(lambda x: [np.nansum(x), np.nanmax(x), np.nanmean(x), np.nanmin(x[1:2])], 3)
    assert_close(tape(np.array([1.0, np.nan, 3.0])), [4.0, 3.0, 2.0, np.nan])


def test_empty_reductions_as_numpy(rng):
    check(lambda x: np.sum(x[:0]) + np.prod(x[:0]) + np.max(x[:0], initial=-1.0) + x[0], 2, rng.normal(size=(3, 2)))
    with pytest.raises(ValueError, match="identity"):
        tapead.record(lambda x: np.max(x[:0]), 2)


# ---- random draws while recording (issue 12, item 12) ----


def test_random_draws_while_recording_warn_at_the_record_call():
    with pytest.warns(FrozenRandomWarning, match="constants of the tape") as caught:
        tapead.record(lambda x: x[0] + np.random.normal(), 1)
    assert caught[0].filename == __file__
    with pytest.warns(FrozenRandomWarning, match="parameters"):
        tapead.record(lambda x: x[0] * random.random(), 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        noise = np.random.normal(size=3)  # drawn outside f: no warning
        tapead.record(lambda x: x[0] + noise[0], 1)


# ---- numpy constructs (issue 17) ----


def test_np_where_tril_and_triu(rng):
    check(lambda x: np.where(x > 0, x, 0.5 * x) + np.where(x[0] > x[1], x[1], 2.0), 3, rng.normal(size=(6, 3)))
    check(lambda x: np.tril(np.outer(x, x)).sum(axis=0) + np.triu(np.outer(x, x[::-1]), 1).sum(), 3,
          rng.normal(size=(4, 3)))


def test_in_place_operators(rng):
    def f(x):
        v = x * 1.0
        v /= x[2]
        v += [1.0, 2.0, 3.0]
        v *= 2
        v -= x
        v **= 2
        w = np.zeros(3, dtype=object)  # a plain object array: its operators run numpy's object loops
        w[0] = x[0]
        w += x
        w /= 2.0
        return v + w

    check(f, 3, rng.uniform(0.5, 1.5, (5, 3)))


def test_traced_scalar_with_lists_and_tuples(rng):
    tape = tapead.record(lambda x: x[0] * [1.0, 2.0] + [3.0, 4.0] - x[1] + x[0] / (1.0, 2.0), 2)
    X = rng.uniform(0.5, 1.5, (5, 2))
    expected = (X[:, :1] * [1.0, 2.0] + [3.0, 4.0] - X[:, 1:] + X[:, :1] / [1.0, 2.0])
    assert_close(tape(X), expected)
    check(lambda x: tapead.sin([x[0], 1.0]), 2, X)


def test_ufuncs_on_arrays_mixing_numbers_and_traced_values(rng):
    check(lambda x: np.sqrt(np.concatenate([x, [2.0]])) + np.exp(np.stack([x[0], 1.0, x[1]])), 2,
          rng.uniform(0.5, 1.5, (4, 2)))
    check(lambda x: np.max(np.exp(tapead.asarray([x[0], 1.0, x[1]]))), 2, rng.uniform(0.5, 1.5, (4, 2)))


def test_trunc_and_fix():
    def f(x):
        return [np.trunc(x[0]), np.fix(x[1]), *np.trunc(x * 2.5), *np.fix(x / 3.0)]

    tape = tapead.record(f, 2)
    for x in ([1.7, -1.7], [-0.5, 0.5], [-2.0, 3.0]):
        x = np.array(x)
        assert_close(tape(x), np.asarray(f(x), dtype=float))
        assert np.array_equal(np.signbit(tape(x)), np.signbit(np.asarray(f(x), dtype=float)))  # trunc(-0.5) is -0.0
        assert not tape.jacobian(x).any()


def test_isnan_isinf_isfinite_record_conditions():
    tape = tapead.record(lambda x: [np.isnan(x[0]), np.isinf(x[0]), np.isfinite(x[0])], 1)
    for v in (1.0, np.inf, -np.inf, np.nan):
        assert tape(np.array([v])).tolist() == [np.isnan(v), np.isinf(v), np.isfinite(v)]


# ---- scipy.special, dispatched by __array_ufunc__ ----

SPECIAL = {  # name: (function of x, sampling interval)
    "ndtr": (lambda x: sc.ndtr(x), (-30.0, 8.0)),
    "log_ndtr": (lambda x: sc.log_ndtr(x), (-40.0, 10.0)),
    "expit": (lambda x: sc.expit(x), (-30.0, 30.0)),
    "log_expit": (lambda x: sc.log_expit(x), (-30.0, 30.0)),
    "logit": (lambda x: sc.logit(x), (0.01, 0.99)),
    "erf": (lambda x: sc.erf(x), (-4.0, 4.0)),
    "erfc": (lambda x: sc.erfc(x), (-4.0, 20.0)),
    "xlogy": (lambda x: sc.xlogy(x[0], x[1:]), (0.1, 3.0)),
    "xlog1py": (lambda x: sc.xlog1py(x[0], x[1:]), (-0.5, 3.0)),
}


@pytest.mark.parametrize("name", SPECIAL)
def test_scipy_special_functions(name, rng):
    f, (lo, hi) = SPECIAL[name]
    X = rng.uniform(lo, hi, (40, 3))
    X[0], X[1] = lo, hi  # the ends of the interval
    check(f, 3, X, rtol=1e-12, d_tol=1e-5)


def test_log_ndtr_in_its_three_pieces_and_the_tails():
    tape = tapead.record(lambda x: sc.log_ndtr(x[0]), 1)
    x = np.array([-1e3, -60.0, -20.5, -19.5, -1.0, 0.0, 1.0, 8.0, 30.0])[:, None]
    assert_close(tape(x), sc.log_ndtr(x[:, 0]), rtol=1e-13)
    phi_over_cdf = np.exp(-0.5 * x[:, 0] ** 2 - 0.5 * np.log(2 * np.pi) - sc.log_ndtr(x[:, 0]))
    assert_close(tape.gradient(x)[:, 0], phi_over_cdf, rtol=1e-9)  # phi_over_cdf loses digits at -1e3


def test_xlogy_at_zero_keeps_the_derivative_in_x():
    tape = tapead.record(lambda x: sc.xlogy(x[0], x[1]), 2)
    X = np.array([[0.0, 2.0], [0.0, 0.0], [0.0, -1.0], [0.0, np.nan], [1.0, 0.0], [0.0, np.inf]])
    assert_close(tape(X), sc.xlogy(X[:, 0], X[:, 1]))
    assert_close(tape.gradient(X[0]), [np.log(2.0), 0.0])


def test_scipy_functions_without_an_op_name_themselves():
    for fn, name in ((sc.gammaln, "gammaln"), (sc.digamma, "psi")):
        with pytest.raises(TypeError, match=rf"scipy\.special\.{name}\) cannot be traced .*op table"):
            tapead.record(lambda x, fn=fn: fn(x[0]), 1)


def test_scipy_stats_norm_points_to_ndtr_and_the_formulas():
    stats = pytest.importorskip("scipy.stats")
    with pytest.raises(TypeError, match=r"scipy.stats distribution .*ndtr\(\(x - loc\) / s\)"):
        tapead.record(lambda x: stats.norm.cdf(x[0], 1.0, 2.0), 1)
    # the suggested formulas, checked against scipy.stats
    stats_norm = stats.norm
    X = np.random.default_rng(3).normal(size=(20, 3)) + [0, 0, 2.0]

    def f(x):
        loc, s = x[1], x[2]
        z = (x[0] - loc) / s
        return [sc.ndtr(z), sc.log_ndtr(z), np.exp(-0.5 * z**2) / (s * np.sqrt(2 * np.pi)),
                -0.5 * z**2 - np.log(s) - 0.5 * np.log(2 * np.pi)]

    tape = check(f, 3, X)
    expected = [stats_norm.cdf(X[:, 0], X[:, 1], X[:, 2]), stats_norm.logcdf(X[:, 0], X[:, 1], X[:, 2]),
                stats_norm.pdf(X[:, 0], X[:, 1], X[:, 2]), stats_norm.logpdf(X[:, 0], X[:, 1], X[:, 2])]
    assert_close(tape(X), np.array(expected).T, rtol=1e-12)


# ---- small dense linear algebra ----

LINALG = {
    "det": (lambda A, b: np.linalg.det(A), False),
    "slogdet": (lambda A, b: np.linalg.slogdet(A)[1], False),
    "inv": (lambda A, b: np.linalg.inv(A), False),
    "solve": (lambda A, b: np.linalg.solve(A, b), False),
    "solve_matrix": (lambda A, b: np.linalg.solve(A, np.outer(b, [1.0, -2.0])), False),
    "cholesky": (lambda A, b: np.linalg.cholesky(A @ A.T + np.eye(len(b))), False),
    "cholesky_upper": (lambda A, b: np.linalg.cholesky(A @ A.T + np.eye(len(b)), upper=True), False),
}


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("name", LINALG)
def test_linalg_against_numpy(name, n, rng):
    fn, _ = LINALG[name]
    if name == "cholesky_upper" and np.lib.NumpyVersion(np.__version__) < "2.0.0":
        pytest.skip("cholesky(upper=) is numpy 2")

    def f(x):
        return fn(x[: n * n].reshape(n, n), x[n * n :])

    check(f, n * n + n, rng.normal(size=(4, n * n + n)), rtol=1e-9, d_tol=1e-5)


def test_inverse_pivots_per_point():
    """One tape, points needing different row orders (a zero leading entry included): the same
    answers as numpy's LAPACK, derivatives d inv(A) = -inv(A) dA inv(A)."""
    tape = tapead.record(lambda x: np.linalg.inv(x.reshape(3, 3)), 9)
    points = [np.eye(3)[[1, 0, 2]], np.eye(3)[[2, 0, 1]] + 0.1, np.arange(9.0).reshape(3, 3) ** 2 - 7, np.eye(3)]
    X = np.array([A.ravel() for A in points])
    assert_close(tape(X), np.linalg.inv(np.array(points)), rtol=1e-12)
    J = tape.jacobian(X)
    for k, A in enumerate(points):
        inv_a = np.linalg.inv(A)
        expected = -np.einsum("ij,kl->ikjl", inv_a, inv_a.T).reshape(3, 3, 9)  # d inv / d A_jl = -inv[:, j] inv[l, :]
        assert_close(J[k], expected, rtol=1e-12, atol=1e-12)


def test_second_derivatives_through_pivoting_and_cholesky():
    """Hessians of scalars of solve and cholesky equal central differences of the gradient, at
    points that pivot differently."""
    def f(x):
        A = x.reshape(3, 3)
        return np.linalg.solve(A, [1.0, 2.0, 3.0]).sum() + np.linalg.cholesky(A @ A.T + np.eye(3))[2, 1]

    tape = tapead.record(f, 9)
    X = np.array([(np.eye(3)[[1, 0, 2]] + 0.2 * np.arange(9).reshape(3, 3) / 9).ravel(),
                  (np.eye(3)[[2, 0, 1]] - 0.3).ravel()])
    H = tape.hessian(X)
    assert_close(H, central_differences(tape.gradient, X), rtol=1e-6, atol=1e-6)


def test_det_is_exact_at_singular_matrices():
    tape = tapead.record(lambda x: np.linalg.det(x.reshape(3, 3)), 9)
    A = np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, 1.0]])  # rank 2
    y, g = tape.value_and_gradient(A.ravel())
    adjugate = np.array([[np.linalg.det(np.delete(np.delete(A, i, 0), j, 1)) * (-1) ** (i + j)
                          for j in range(3)] for i in range(3)])
    assert y == 0.0
    assert_close(g, adjugate.ravel())  # the cofactor matrix, exact


def test_stacked_det_and_inv(rng):
    check(lambda x: np.linalg.det(x.reshape(2, 3, 3)), 18, rng.normal(size=(3, 18)), rtol=1e-10)
    check(lambda x: np.linalg.inv(x.reshape(2, 2, 2)), 8, rng.normal(size=(3, 8)), rtol=1e-10, d_tol=1e-4)


NORMS = {
    "2": lambda x: np.linalg.norm(x),
    "1": lambda x: np.linalg.norm(x, 1),
    "inf": lambda x: np.linalg.norm(x, np.inf),
    "-inf": lambda x: np.linalg.norm(x, -np.inf),
    "0": lambda x: np.linalg.norm(x, 0),
    "3": lambda x: np.linalg.norm(x, 3),
    "0.5": lambda x: np.linalg.norm(x, 0.5),
    "fro": lambda x: np.linalg.norm(x.reshape(2, 3)),
    "fro axis": lambda x: np.linalg.norm(x.reshape(2, 3), "fro", axis=(1, 0), keepdims=True),
    "matrix 1": lambda x: np.linalg.norm(x.reshape(2, 3), 1),
    "matrix -1": lambda x: np.linalg.norm(x.reshape(2, 3), -1),
    "matrix inf": lambda x: np.linalg.norm(x.reshape(2, 3), np.inf),
    "matrix -inf keepdims": lambda x: np.linalg.norm(x.reshape(2, 3), -np.inf, keepdims=True),
    "rows": lambda x: np.linalg.norm(x.reshape(2, 3), axis=1),
    "columns 1": lambda x: np.linalg.norm(x.reshape(2, 3), 1, axis=0, keepdims=True),
}


@pytest.mark.parametrize("name", NORMS)
def test_norms(name, rng):
    check(NORMS[name], 6, rng.normal(size=(4, 6)), rtol=1e-12)


def test_norm_of_zero_has_a_zero_gradient():
    tape = tapead.record(lambda x: np.linalg.norm(x), 3)
    assert tape.gradient(np.zeros(3)).tolist() == [0.0, 0.0, 0.0]


# ---- refusals: each names the construct, the user's line and the alternative ----


def _zeros_then_write(x):
    a = np.zeros(3)
    a[0] = x[0]  # the line the error names: REFUSALS' offset 2
    return a


REFUSALS = [  # (f, offset of the offending line from f's first line, words the message must hold)
    (lambda x: x[0] if x[0] > 0 else -x[0], 0, ["if/else", "tapead.where"]),
    (lambda x: max(x), 0, ["max()", r"np.max\(a\)"]),
    (lambda x: math.sin(x[0]), 0, ["math.sin", r"tapead.sin\(x\) or np.sin\(x\)"]),
    (_zeros_then_write, 2, ["float array", "dtype=object"]),
    (lambda x: [1.0, 2.0][x[0]], 0, ["index", "tapead.where"]),
    (lambda x: np.sort(x), 0, ["np.sort", "np.max"]),
    (lambda x: np.floor_divide(x[0], 2.0), 0, ["np.floor_divide", r"np.floor\(a / b\)"]),
    (lambda x: round(x[0], 2), 0, [r"round\(x, ndigits\)", "tapead.rint"]),
    (lambda x: np.where(x > 0), 0, [r"np.where\(cond\) with one argument", r"np.where\(cond, a, b\)"]),
    (lambda x: np.max(np.array([x[0], x[1]])), 0, ["plain object array", "tapead.asarray"]),
    (lambda x: np.sqrt(np.array([x[0], 2.0])), 0, ["np.sqrt of a plain object array", r"tapead.sqrt\(a\)"]),
    (lambda x: np.linalg.det(np.array([[x[0], 1.0], [2.0, x[1]]])), 0, ["np.linalg", "tapead.asarray"]),
    (lambda x: np.linalg.det(np.outer(x, x)), 0, ["9x9", "n <= 8"]),
    (lambda x: np.linalg.norm(np.outer(x[:2], x[:2]), 2), 0, ["ord=2", "'fro'"]),
    (lambda x: np.linalg.eigvalsh(np.outer(x[:2], x[:2])), 0, ["np.linalg.eigvalsh", "det, inv, solve"]),
    (lambda x: sc.gammaln(x[0]), 0, ["scipy.special.gammaln", "op table"]),
]


@pytest.mark.parametrize("f, offset, words", REFUSALS, ids=range(len(REFUSALS)))
def test_refusals_name_the_construct_the_line_and_the_alternative(f, offset, words):
    with pytest.raises((TypeError, ValueError)) as caught:
        tapead.record(f, 9)
    message = str(caught.value)
    assert f"at {__file__}:{f.__code__.co_firstlineno + offset}" in message
    for word in words:
        assert re.search(word, message), (word, message)


# ---- composable tapes: inline ----


def test_inline_equals_recording_the_composition(rng):
    def g(x):
        return np.array([np.sin(x[0]) * x[1], np.exp(x[2]) / x[1]])

    def composed(x):
        return np.sum(g(2.0 * x[::-1] + 1.0) ** 2) + x[0]

    inner = tapead.record(g, 3)
    via_inline = tapead.record(lambda x: np.sum(inline(inner, 2.0 * x[::-1] + 1.0) ** 2) + x[0], 3)
    direct = tapead.record(composed, 3)
    X = rng.uniform(0.5, 1.5, (20, 3))
    assert_close(via_inline(X), direct(X), rtol=1e-14)
    assert_close(via_inline.gradient(X), direct.gradient(X), rtol=1e-14)
    assert_close(via_inline.hessian(X), direct.hessian(X), rtol=1e-13)


def test_inline_with_parameters_numbers_and_output_shapes(rng):
    inner = tapead.record(lambda x, p: np.outer(x, p) + 1.0, 2, n_params=2)
    assert inner.out_shape == (2, 2)

    def f(x, p):
        M = inline(inner, x[:2], p)  # traced parameters of the outer recording
        N = inline(inner, [x[2], 3.0], [0.5, p[0]])  # numbers become constants
        return M.sum(axis=1) * N[0]

    tape = tapead.record(f, 3, n_params=2)
    X, P = rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    expected = [(np.outer(x[:2], p) + 1.0).sum(axis=1) * (np.outer([x[2], 3.0], [0.5, p[0]]) + 1.0)[0]
                for x, p in zip(X, P)]
    assert_close(tape(X, P), np.array(expected))
    scalar = tapead.record(lambda x: x[0] * x[1], 2)
    outer = tapead.record(lambda x: inline(scalar, x) + 1.0, 2)
    assert outer.out_shape == () and outer(np.array([2.0, 3.0])) == 7.0


def test_inline_errors():
    inner = tapead.record(lambda x: x[0] * x[1], 2)
    with pytest.raises(ValueError, match="takes 2 values in x, got 3"):
        tapead.record(lambda x: inline(inner, x), 3)
    with pytest.raises(ValueError, match=r"tape\(X\)"):
        inline(inner, [1.0, 2.0])
