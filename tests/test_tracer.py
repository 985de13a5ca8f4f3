"""Recording: Python operators, numpy on traced values and arrays, parameters, and the errors."""

import math

import numpy as np
import pytest

import tapead
from tapead import reference, tracer

from .helpers import assert_close


def check_against_numpy(f, n, X, rtol=1e-13):
    """The recorded tape evaluates to what f computes on plain floats."""
    tape = tapead.record(f, n)
    expected = np.array([np.asarray(f(x), dtype=float) for x in X])
    assert_close(tape(X), expected, rtol=rtol)
    assert_close(reference.evaluate(tape, X).reshape(expected.shape), expected, rtol=rtol)
    return tape


def test_python_operators_and_constants(rng):
    def f(x):
        a, b = x[0], x[1]
        return [a + 2, 2 + a, a - 2, 2 - a, a * 3, 3 * a, a / 4, 4 / a, a**2, a**-1, a**0.5, a**1.5,
                2.0**a, a**b, -a, +a, abs(b), a * 1.0, a / 1.0, 1 / a, a**0, a**1, a - b, a / b]
    check_against_numpy(f, 2, rng.uniform(0.5, 2.0, (50, 2)))


def test_numpy_ufuncs_on_scalars_and_arrays(rng):
    def f(x):
        s = np.sin(x) + np.cos(x) * np.exp(x[::-1]) - np.tanh(x) / np.sqrt(x) + np.log(x) ** 2
        return np.sum(s) + np.tan(x[0]) + np.maximum(x, 1.0).sum() + np.minimum(x[0], x[1]) + np.abs(-x).prod()

    check_against_numpy(f, 3, rng.uniform(0.5, 1.5, (40, 3)))


def test_dot_matmul_and_a_small_mlp(rng):
    W1, b1, w2 = rng.normal(size=(4, 3)), rng.normal(size=4), rng.normal(size=4)

    def f(x):
        h = np.tanh(W1 @ x + b1)
        return np.dot(w2, np.maximum(h, 0.0)) + np.mean(x)

    tape = check_against_numpy(f, 3, rng.normal(size=(40, 3)))
    assert tape.out_shape == ()


def test_multiple_outputs_keep_their_shape(rng):
    tape = tapead.record(lambda x: np.array([[x[0], x[1]], [x[0] * x[1], 7.0]]), 2)
    X = rng.normal(size=(5, 2))
    Y = tape(X)
    assert Y.shape == (5, 2, 2)
    assert_close(Y[:, 1, 1], np.full(5, 7.0))
    assert tape(X[0]).shape == (2, 2)


def test_tapead_functions_and_where(rng):
    def f(x):
        r = tapead.where(x[0] < 1, x[0], tapead.sqrt(x[0]))
        return r + tapead.maximum(x[1], 0.5) + tapead.minimum(x[0], x[1]) + tapead.exp(tapead.sin(x[1]))

    X = rng.uniform(0, 2, (60, 2))
    tape = tapead.record(f, 2)
    expected = np.where(X[:, 0] < 1, X[:, 0], np.sqrt(X[:, 0])) + np.maximum(X[:, 1], 0.5) + \
        np.minimum(X[:, 0], X[:, 1]) + np.exp(np.sin(X[:, 1]))
    assert_close(tape(X), expected, rtol=1e-14)


def test_comparisons_record_conditions():
    tape = tapead.record(lambda x: [x[0] < x[1], x[0] <= x[1], x[0] > x[1], x[0] >= x[1], x[0] == x[1], x[0] != x[1]], 2)
    assert tape(np.array([1.0, 2.0])).tolist() == [1, 1, 0, 0, 0, 1]
    assert tape(np.array([2.0, 2.0])).tolist() == [0, 1, 0, 1, 1, 0]


def test_functions_on_plain_numbers_evaluate_now():
    assert tapead.sin(0.5) == math.sin(0.5)
    assert tapead.maximum(1.0, 2.0) == 2.0
    assert tapead.where(0.0, 1.0, 2.0) == 2.0


def test_constant_output_and_input_output(rng):
    tape = tapead.record(lambda x: [3.0, x[0]], 1)
    X = rng.normal(size=(4, 1))
    assert_close(tape(X), np.column_stack([np.full(4, 3.0), X[:, 0]]))
    _, x_bar = tape.vjp(X, np.array([1.0, 2.0]))
    assert_close(x_bar, np.full((4, 1), 2.0))


def test_parameters_change_per_point_without_rerecording(rng):
    def nll(x, p):  # Gaussian negative log-likelihood of observation p[0]
        mu, log_sigma = x[0], x[1]
        return 0.5 * ((p[0] - mu) / np.exp(log_sigma)) ** 2 + log_sigma

    tape = tapead.record(nll, 2, n_params=1)
    X = rng.normal(size=(100, 2))
    P = rng.normal(size=(100, 1))
    y, g = tape.value_and_gradient(X, P)
    sigma = np.exp(X[:, 1])
    r = (P[:, 0] - X[:, 0]) / sigma
    assert_close(y, 0.5 * r**2 + X[:, 1])
    assert_close(g, np.column_stack([-r / sigma, 1 - r**2]))
    y1, g1 = tape.value_and_gradient(X, np.array([0.3]))
    assert_close(g1[:, 0], -(0.3 - X[:, 0]) / sigma**2)
    assert tape.value_and_gradient(X[0], P[0])[1].shape == (2,)


def test_source_lines_name_the_users_line_also_through_a_library_generator(monkeypatch):
    # the line finder remembers the library frames it passed; a generator's frame is resumed
    # from another line each time, so it must not be remembered
    library = {}
    exec(compile("def squares(xs):\n    for v in xs:\n        yield v * v\n", "/library/lib.py", "exec"), library)
    monkeypatch.setattr(tracer, "_INTERNAL_DIRS", tracer._INTERNAL_DIRS + ("/library/",))

    def f(x):
        squares = library["squares"](x)
        a = next(squares)
        b = next(squares)
        return np.sin(x).sum() + a * b

    tape = tapead.record(f, 2, optimize=False)
    first, file = f.__code__.co_firstlineno, f.__code__.co_filename
    lines = [tape.source[k] for k in tape.source_index[tape.n_in:]]
    assert lines == [f"{file}:{first + k}" for k in (2, 3, 4, 4, 4, 4, 4)]


# ---- errors ----


def test_if_on_traced_value_names_where():
    def f(x):
        return x[0] if x[0] > 0 else -x[0]

    with pytest.raises(TypeError, match="tapead.where"):
        tapead.record(f, 1)


def test_math_functions_name_tapead_sin():
    with pytest.raises(TypeError, match=r"tapead\.sin.*np\.sin"):
        tapead.record(lambda x: math.sin(x[0]), 1)


def test_np_where_records_a_select_and_one_argument_np_where_names_the_select(rng):
    check_against_numpy(lambda x: np.where(x > 0, x, 0.0).sum(), 2, rng.normal(size=(20, 2)))
    with pytest.raises(TypeError, match=r"np.where\(cond\) with one argument.*tapead.where"):
        tapead.record(lambda x: np.where(x > 0)[0], 2)


def test_untraceable_ufunc_and_bad_return():
    with pytest.raises(TypeError, match="arccosh|cannot be traced"):
        tapead.record(lambda x: np.floor_divide(x[0], 2.0), 1)
    with pytest.raises(TypeError, match="return traced values or numbers"):
        tapead.record(lambda x: "y", 1)
    with pytest.raises(ValueError, match="no outputs"):
        tapead.record(lambda x: [], 1)


def test_mixing_recordings_is_an_error():
    saved = []
    tapead.record(lambda x: saved.append(x[0]) or x[0], 1)
    with pytest.raises(ValueError, match="another recording"):
        tapead.record(lambda x: saved[0], 1)
    with pytest.raises(ValueError, match="two different recordings"):
        tapead.record(lambda x: saved[0] * x[0], 1)


def test_bad_n():
    with pytest.raises(TypeError, match="non-negative int"):
        tapead.record(lambda x: x[0], 1.5)
    with pytest.raises(ValueError, match="at least 1"):
        tapead.record(lambda x: 1.0, 0)


def test_scalar_times_array_and_ufuncs_mixing_scalars_and_arrays(rng):
    def f(x):
        return np.sum(x[0] * x[1:] ** 2) + np.sum(np.maximum(x[0], x[1:])) + np.sum(2.0 ** x[1:] * x[0])

    check_against_numpy(f, 4, rng.uniform(0.5, 1.5, (20, 4)))


def test_a_tape_called_inside_record_is_inlined():
    inner = tapead.record(lambda x: [np.sin(x[0]) * x[1], x[0] ** 2], 2)
    outer = tapead.record(lambda x: np.sum(inner(x[:2]) * x[2]), 3)
    direct = tapead.record(lambda x: (np.sin(x[0]) * x[1] + x[0] ** 2) * x[2], 3)
    X = np.random.default_rng(7).normal(size=(20, 3))
    np.testing.assert_allclose(outer(X), direct(X), rtol=1e-13)
    np.testing.assert_allclose(outer.gradient(X), direct.gradient(X), rtol=1e-13, atol=1e-15)
    # second derivatives through the inlined instructions
    grad = tapead.record(lambda x: np.sum(inner(x) ** 2), 2)
    np.testing.assert_allclose(grad.hessian(X[:, :2]), tapead.record(
        lambda x: (np.sin(x[0]) * x[1]) ** 2 + x[0] ** 4, 2).hessian(X[:, :2]), rtol=1e-12, atol=1e-12)
