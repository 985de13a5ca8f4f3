"""Every row of the op table, checked on its own domain: partials and second partials
against central finite differences, primal against numpy's own function."""

import math

import numpy as np
import pytest

from tapead.ops import BY_NAME, CONST, OPS, numpy_function

from .helpers import OP_ROWS, const_for, op_id, sample_domain

SMOOTH = [s for s in OP_ROWS if s.smooth]


def _fns(spec, exprs):
    return [numpy_function(e) for e in exprs]


def _eval(spec, fn, point, c):
    args = list(point) + [None] * (3 - len(point))
    primal = numpy_function(spec.primal)
    z = primal(*args, c, None)
    return fn(*args, c, z)


def _central(spec, fn, point, c, k):
    h = 1e-6 * max(1.0, abs(point[k]))
    up, down = list(point), list(point)
    up[k] += h
    down[k] -= h
    return (_eval(spec, fn, up, c) - _eval(spec, fn, down, c)) / (2 * h)


@pytest.mark.parametrize("spec", OP_ROWS, ids=op_id)
def test_partials_match_finite_differences(spec, rng):
    primal = numpy_function(spec.primal)
    partials = _fns(spec, spec.partials)
    c = const_for(spec, rng)
    for point in sample_domain(spec, 25, rng).astype(np.float64):
        for k in range(spec.arity):
            fd = _central(spec, primal, point, c, k)
            exact = _eval(spec, partials[k], point, c)
            assert exact == pytest.approx(fd, rel=1e-6, abs=1e-6), (spec.name, point, k)


@pytest.mark.parametrize("spec", OP_ROWS, ids=op_id)
def test_second_partials_match_finite_differences_of_partials(spec, rng):
    partials = _fns(spec, spec.partials)
    second = _fns(spec, spec.second)
    pairs = [(j, k) for j in range(spec.arity) for k in range(j, spec.arity)]
    assert len(pairs) == len(second)
    c = const_for(spec, rng)
    for point in sample_domain(spec, 25, rng).astype(np.float64):
        for (j, k), d2 in zip(pairs, second):
            fd = _central(spec, partials[j], point, c, k)
            exact = _eval(spec, d2, point, c)
            assert exact == pytest.approx(fd, rel=1e-5, abs=1e-5), (spec.name, point, j, k)


_erf = np.vectorize(math.erf)
_erfc = np.vectorize(math.erfc)
NUMPY_OF = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "neg": np.negative,
    "square": np.square, "recip": np.reciprocal, "sqrt": np.sqrt, "pow": np.power, "hypot": np.hypot,
    "exp": np.exp, "exp2": np.exp2, "expm1": np.expm1, "log": np.log, "log2": np.log2, "log10": np.log10,
    "log1p": np.log1p, "logaddexp": np.logaddexp, "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
    "softplus": lambda x: np.logaddexp(0.0, x),
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "arcsin": np.arcsin, "arccos": np.arccos,
    "arctan": np.arctan, "arctan2": np.arctan2, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh,
    "arcsinh": np.arcsinh, "arccosh": np.arccosh, "arctanh": np.arctanh, "cbrt": np.cbrt,
    "erf": _erf, "erfc": _erfc, "abs": np.abs, "copysign": np.copysign, "sign": np.sign,
    "floor": np.floor, "ceil": np.ceil, "rint": np.rint,
    "maximum": np.maximum, "minimum": np.minimum, "lt": np.less, "le": np.less_equal,
    "gt": np.greater, "ge": np.greater_equal, "eq": np.equal, "ne": np.not_equal,
    "land": np.logical_and, "lor": np.logical_or, "lnot": np.logical_not,
    "where": lambda x, y, w: np.where(x != 0, y, w),
}

@pytest.mark.parametrize("spec", [s for s in OP_ROWS if not s.uses_const], ids=op_id)
def test_primal_matches_numpy(spec, rng):
    primal = numpy_function(spec.primal)
    points = sample_domain(spec, 50, rng)
    with np.errstate(all="ignore"):
        ours = [primal(*(list(p) + [None] * (3 - len(p))), 0.0, None) for p in points]
        theirs = NUMPY_OF[spec.name](*points.T)
    # a few ulp: numpy's SIMD versions of some functions differ from libm in the last bit
    np.testing.assert_allclose(np.array(ours, dtype=float), theirs, rtol=1e-15, atol=1e-300)


def test_every_public_op_has_a_numpy_twin():
    public = {s.name for s in OP_ROWS if not s.uses_const}
    assert public == set(NUMPY_OF)


def test_nan_propagates_through_maximum_and_minimum():
    for name in ("maximum", "minimum"):
        f = numpy_function(BY_NAME[name].primal)
        assert np.isnan(f(np.nan, 1.0, None, 0.0, None))
        assert np.isnan(f(1.0, np.nan, None, 0.0, None))


def test_kinks_follow_the_documented_convention():
    abs_d = numpy_function(BY_NAME["abs"].partials[0])
    assert abs_d(0.0, None, None, 0.0, 0.0) == 0.0
    for name in ("maximum", "minimum"):
        d0, d1 = (numpy_function(e) for e in BY_NAME[name].partials)
        assert d0(1.0, 1.0, None, 0.0, 1.0) == d1(1.0, 1.0, None, 0.0, 1.0) == 0.5
    assert all(OPS[k].code == k for k in range(len(OPS)))
    assert CONST == BY_NAME["const"].code
