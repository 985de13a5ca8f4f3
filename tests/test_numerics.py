"""Derivatives right to rounding: every smooth row against sympy, extreme arguments against
mpmath, where() that never leaks NaN, and find_nonfinite."""

import math

import mpmath
import numpy as np
import pytest
import sympy as sp

import tapead
from tapead.ops import BY_NAME, numpy_function

from .helpers import OP_ROWS, const_for, one_op_tape, op_id, sample_domain

X, Y, W, C = sp.symbols("x y w c", real=True)
OPERANDS = (X, Y, W)
SMOOTH = [s for s in OP_ROWS if s.smooth]


def _sympy(spec):
    """The row's mathematical definition (its ``sympy`` column), independent of the table's formulas."""
    return sp.sympify(spec.sympy, locals={"x": X, "y": Y, "w": W, "c": C})


def test_every_smooth_row_has_a_sympy_definition():
    missing = [s.name for s in SMOOTH if not s.sympy]
    assert not missing, f"give these rows of tapead/ops.py a sympy= definition (in x, y, w, c): {missing}"
    assert {s.name for s in BY_NAME.values() if s.sympy} == {s.name for s in SMOOTH}
    for spec in SMOOTH:  # in the row's own operands only
        assert _sympy(spec).free_symbols <= {*OPERANDS[:spec.arity], C}, spec.name
        assert all(_sympy(spec).has(s) for s in OPERANDS[:spec.arity]), spec.name
        assert _sympy(spec).has(C) == spec.uses_const, spec.name


def _table(expr, point, c, z):
    args = list(point) + [None] * (3 - len(point))
    return float(numpy_function(expr)(*[None if a is None else np.float64(a) for a in args], np.float64(c), z))


@pytest.mark.parametrize("spec", SMOOTH, ids=op_id)
def test_partials_and_second_partials_match_sympy(spec, rng):
    symbols = OPERANDS[: spec.arity]
    f = _sympy(spec)
    c = const_for(spec, rng)
    first = [sp.diff(f, s) for s in symbols]
    second = [sp.diff(f, symbols[j], symbols[k]) for j, k in spec.pairs]
    for point in sample_domain(spec, 8, rng):
        subs = {s: sp.Float(v, 30) for s, v in zip(symbols, point)} | {C: sp.Float(c, 30)}
        z = _table(spec.primal, point, c, None)
        assert z == pytest.approx(float(f.evalf(30, subs=subs)), rel=1e-14, abs=1e-300)
        for expr, exact in zip(spec.partials + spec.second, first + second):
            want = float(exact.evalf(30, subs=subs))
            assert _table(expr, point, c, np.float64(z)) == pytest.approx(want, rel=1e-12, abs=1e-14), (expr, point)


# (op, arguments, mpmath primal, mpmath first partial of the first operand)
mp = mpmath.mp
EXTREMES = [
    ("log1p", (1e-12,), lambda x: mp.log1p(x), lambda x: 1 / (1 + x)),
    ("expm1", (1e-12,), lambda x: mp.expm1(x), lambda x: mp.exp(x)),
    ("expm1", (-1e-12,), lambda x: mp.expm1(x), lambda x: mp.exp(x)),
    ("sigmoid", (40.0,), lambda x: 1 / (1 + mp.exp(-x)), lambda x: mp.exp(-x) / (1 + mp.exp(-x)) ** 2),
    ("sigmoid", (-40.0,), lambda x: 1 / (1 + mp.exp(-x)), lambda x: mp.exp(-x) / (1 + mp.exp(-x)) ** 2),
    ("softplus", (800.0,), lambda x: mp.log(1 + mp.exp(x)), lambda x: 1 / (1 + mp.exp(-x))),
    ("softplus", (-800.0,), lambda x: mp.log(1 + mp.exp(x)), lambda x: 1 / (1 + mp.exp(-x))),
    ("softplus", (-30.0,), lambda x: mp.log(1 + mp.exp(x)), lambda x: 1 / (1 + mp.exp(-x))),
    ("erf", (6.0,), mp.erf, lambda x: 2 / mp.sqrt(mp.pi) * mp.exp(-x * x)),
    ("erf", (-6.0,), mp.erf, lambda x: 2 / mp.sqrt(mp.pi) * mp.exp(-x * x)),
    ("erfc", (6.0,), mp.erfc, lambda x: -2 / mp.sqrt(mp.pi) * mp.exp(-x * x)),
    ("tanh", (20.0,), mp.tanh, lambda x: 1 - mp.tanh(x) ** 2),
    ("tanh", (-20.0,), mp.tanh, lambda x: 1 - mp.tanh(x) ** 2),
    ("tanh", (0.5,), mp.tanh, lambda x: 1 - mp.tanh(x) ** 2),
    ("arccos", (1 - 2**-40,), mp.acos, lambda x: -1 / mp.sqrt(1 - x * x)),
    ("arccos", (-1 + 2**-40,), mp.acos, lambda x: -1 / mp.sqrt(1 - x * x)),
    ("arcsin", (1 - 2**-40,), mp.asin, lambda x: 1 / mp.sqrt(1 - x * x)),
    ("arctanh", (1 - 2**-30,), mp.atanh, lambda x: 1 / (1 - x * x)),
    ("arcsinh", (1e200,), mp.asinh, lambda x: 1 / mp.sqrt(x * x + 1)),
    ("logaddexp", (-700.0, 700.0), lambda x, y: mp.log(mp.exp(x) + mp.exp(y)),
     lambda x, y: mp.exp(x) / (mp.exp(x) + mp.exp(y))),
]


@pytest.mark.parametrize("name,args,primal,partial", EXTREMES, ids=[f"{e[0]}{e[1]}" for e in EXTREMES])
def test_extreme_arguments_against_mpmath(name, args, primal, partial):
    mp.dps = 50
    tape = one_op_tape(BY_NAME[name])
    X = np.array([args])
    y, g = tape.value_and_gradient(X)
    want_y = float(primal(*map(mp.mpf, args)))
    want_g = float(partial(*map(mp.mpf, args)))
    assert y[0] == pytest.approx(want_y, rel=4e-16, abs=1e-300)
    assert g[0, 0] == pytest.approx(want_g, rel=1e-15, abs=1e-300)


@pytest.mark.parametrize("c", [-2.0, 3.0, -3.0])
def test_integer_powers_near_zero_and_negative(c):
    tape = tapead.record(lambda x: x[0] ** c, 1)
    X = np.array([[1e-100], [-1e-5], [-3.0], [2.5]])
    y, g = tape.value_and_gradient(X)
    mp.dps = 50
    for k, x in enumerate(X[:, 0]):
        assert y[k] == pytest.approx(float(mp.mpf(x) ** c), rel=4e-16)
        assert g[k, 0] == pytest.approx(float(c * mp.mpf(x) ** (c - 1)), rel=4e-16)


# ---- where() never leaks NaN from the branch it did not select ----


def _where_sqrt(x):
    return tapead.where(x[0] < 1, x[0], tapead.sqrt(x[0]))


def test_where_gradient_at_zero_is_one_in_every_sweep():
    tape = tapead.record(_where_sqrt, 1)
    X = np.array([[0.0], [4.0]])
    y, g = tape.value_and_gradient(X)
    assert y.tolist() == [0.0, 2.0] and g.ravel().tolist() == [1.0, 0.25]
    assert tape.jvp(X, np.ones(1))[1].tolist() == [1.0, 0.25]
    assert tape.vjp(X, np.ones(2))[1].ravel().tolist() == [1.0, 0.25]


def test_where_with_log_of_negative_and_division_by_zero():
    def f(x):
        safe_log = tapead.where(x[0] > 0, np.log(x[0]), 0.0)
        safe_div = tapead.where(x[1] != 0, 1.0 / x[1], 0.0)
        return safe_log + safe_div

    tape = tapead.record(f, 2)
    y, g = tape.value_and_gradient(np.array([[-1.0, 0.0], [2.0, 4.0]]))
    assert np.isfinite(y).all() and np.isfinite(g).all()
    assert g.tolist() == [[0.0, 0.0], [0.5, -1 / 16]]
    assert tape.jvp(np.array([-1.0, 0.0]), np.eye(2))[1].tolist() == [0.0, 0.0]


# ---- numpy and tapead names for every function ----


def test_every_function_through_tapead_and_numpy(rng):
    X = rng.uniform(0.2, 0.9, (20, 2))

    def via_numpy(x):
        a, b = x[0], x[1]
        return [np.arctan2(a, b), np.hypot(a, b), np.logaddexp(a, b), np.expm1(a), np.cbrt(-a),
                np.clip(a, 0.3, 0.6), np.sign(a - 0.5), np.copysign(a, b - 0.5), np.exp2(a), np.log2(a),
                np.log10(a), np.log1p(a), np.arcsin(a), np.arccos(a), np.arctan(a), np.sinh(a), np.cosh(a),
                np.arcsinh(a), np.arccosh(1 + a), np.arctanh(a), np.floor(3 * a), np.ceil(3 * a), np.rint(3 * a),
                np.sum(x), np.prod(x), np.mean(x), np.dot(x, x), x @ x, np.logical_and(a > 0.5, b > 0.5),
                np.logical_or(a > 0.5, b > 0.5), np.logical_not(a > 0.5), (a > 0.5) & (b > 0.5),
                (a > 0.5) | (b > 0.5), ~(a > 0.5), round(3 * a), math.floor(3 * a), math.ceil(3 * a)]

    def via_tapead(x):
        a, b = x[0], x[1]
        t = tapead
        return [t.atan2(a, b), t.hypot(a, b), t.logaddexp(a, b), t.expm1(a), t.cbrt(-a), t.clip(a, 0.3, 0.6),
                t.sign(a - 0.5), t.copysign(a, b - 0.5), t.exp2(a), t.log2(a), t.log10(a), t.log1p(a), t.asin(a),
                t.acos(a), t.atan(a), t.sinh(a), t.cosh(a), t.asinh(a), t.acosh(1 + a), t.atanh(a),
                t.floor(3 * a), t.ceil(3 * a), t.rint(3 * a), a + b, a * b, (a + b) / 2, a * a + b * b,
                a * a + b * b, t.logical_and(a > 0.5, b > 0.5), t.logical_or(a > 0.5, b > 0.5),
                t.logical_not(a > 0.5), t.land(a > 0.5, b > 0.5), t.lor(a > 0.5, b > 0.5), t.lnot(a > 0.5),
                t.round(3 * a), t.floor(3 * a), t.ceil(3 * a)]

    expected = np.array([np.array(via_numpy(x), dtype=float) for x in X])
    for f in (via_numpy, via_tapead):
        np.testing.assert_allclose(tapead.record(f, 2)(X), expected, rtol=1e-14)


def test_sigmoid_softplus_logsumexp(rng):
    xs = rng.normal(size=(30, 4)) * 30
    tape = tapead.record(lambda x: [tapead.sigmoid(x[0]), tapead.softplus(x[1]), tapead.logsumexp(x)], 4)
    m = xs.max(1)
    lse = m + np.log(np.exp(xs - m[:, None]).sum(1))
    np.testing.assert_allclose(tape(xs), np.column_stack([1 / (1 + np.exp(-xs[:, 0])),
                                                          np.logaddexp(0, xs[:, 1]), lse]), rtol=1e-14)
    _, g = tape.vjp(xs, np.array([0.0, 0.0, 1.0]))  # d logsumexp = softmax
    np.testing.assert_allclose(g, np.exp(xs - lse[:, None]), rtol=1e-13, atol=1e-300)


def test_softplus_slope_at_zero_is_one_half():
    tape = tapead.record(lambda x: tapead.maximum(x[0], 0.0) + np.log1p(np.exp(-abs(x[0]))), 1)
    assert tape.gradient(np.array([0.0]))[0] == 0.5


@pytest.mark.parametrize("spec", OP_ROWS, ids=op_id)
def test_every_op_prints_one_line(spec, rng):
    text = str(one_op_tape(spec, const_for(spec, rng)))
    body = [line for line in text.splitlines() if line.startswith("  v1 = ")]
    assert len(body) == 1 and "{" not in body[0].replace("v_{", "")


# ---- find_nonfinite ----


def test_find_nonfinite_names_point_instruction_operands_and_line():
    def f(x):
        a = x[0] * 2.0
        b = np.log(x[1] - 1.0)  # the line to be named
        return a + np.sqrt(a) * b

    tape = tapead.record(f, 2)
    X = np.array([[1.0, 3.0], [1.0, 0.5], [0.0, 3.0], [2.0, 2.0]])
    reports = tape.find_nonfinite(X)
    assert [r.point for r in reports] == [1, 2]
    log_nan, sqrt_inf = reports
    assert log_nan.stage == "value" and log_nan.op == "log" and log_nan.operands == (-0.5,)
    assert "b = np.log(x[1] - 1.0)  # the line to be named" in log_nan.source
    assert sqrt_inf.stage == "derivative" and sqrt_inf.op == "sqrt" and sqrt_inf.operands == (0.0,)
    assert "return a + np.sqrt(a) * b" in sqrt_inf.source
    assert "point 1" in str(log_nan) and "log" in str(log_nan)
    assert tape.find_nonfinite(X[[0, 3]]) == []


def test_find_nonfinite_without_source_lines_and_nonfinite_input():
    tape = tapead.record(lambda x: x[0] * 3.0, 1, source_lines=False)
    (report,) = tape.find_nonfinite(np.array([[np.inf], [1.0]]))
    assert report.point == 0 and report.slot == 0 and report.source == ""
