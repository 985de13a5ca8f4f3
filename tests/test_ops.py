"""Every row of the op table, checked on its own domain: partials and second partials
against central finite differences, primal against numpy's own function."""

import numpy as np
import pytest

from tapead.ops import BY_NAME, CONST, OPS, numpy_function

from .helpers import OP_ROWS, const_for, op_id, sample_domain

SMOOTH = [s for s in OP_ROWS if s.smooth]


def _fns(spec, exprs):
    return [numpy_function(e) for e in exprs]


def _eval(spec, fn, point, c):
    args = list(point) + [None] * (3 - len(point))
    primal = spec.primal_function
    z = primal(*args, c, None)
    return fn(*args, c, z)


def _central(spec, fn, point, c, k):
    h = 1e-6 * max(1.0, abs(point[k]))
    up, down = list(point), list(point)
    up[k] += h
    down[k] -= h
    return (_eval(spec, fn, up, c) - _eval(spec, fn, down, c)) / (2 * h)


@pytest.mark.parametrize("spec", [s for s in OP_ROWS if not s.stops_derivative], ids=op_id)
def test_partials_match_finite_differences(spec, rng):
    primal = spec.primal_function
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
    assert len(spec.pairs) == len(second)
    c = const_for(spec, rng)
    for point in sample_domain(spec, 25, rng).astype(np.float64):
        for (j, k), d2 in zip(spec.pairs, second):
            fd = _central(spec, partials[j], point, c, k)
            exact = _eval(spec, d2, point, c)
            assert exact == pytest.approx(fd, rel=1e-5, abs=1e-5), (spec.name, point, j, k)


PUBLIC = [s for s in OP_ROWS if not s.uses_const]  # what a user calls (not the constant-operand forms)


@pytest.mark.parametrize("spec", PUBLIC, ids=op_id)
def test_primal_matches_its_numpy_twin(spec, rng):
    points = sample_domain(spec, 50, rng)
    with np.errstate(all="ignore"):
        ours = [spec.primal_function(*(list(p) + [None] * (3 - len(p))), 0.0, None) for p in points]
        theirs = spec.twin_function()(*points.T)
    # a few ulp: numpy's SIMD versions of some functions differ from libm in the last bit
    np.testing.assert_allclose(np.array(ours, dtype=float), theirs, rtol=1e-15, atol=1e-300)


def test_every_public_op_has_a_numpy_twin():
    missing = [s.name for s in PUBLIC if not s.twin]
    assert not missing, f"give these rows of tapead/ops.py a twin= (the numpy or scipy call): {missing}"
    assert not [s.name for s in OPS if s.twin and s not in PUBLIC]


@pytest.mark.parametrize("spec", OP_ROWS, ids=op_id)
def test_derived_facts_hold_on_the_domain(spec, rng):
    """The facts ops.py derives from the formulas' text, checked on values: a partial of kind zero,
    one or minus_one is that number, a const one the same at every point; and the partials
    (second partials with them) read nothing beyond ``reads`` (``reads_second``): the other
    operands and z replaced by NaN change no value."""
    want = {"zero": 0.0, "one": 1.0, "minus_one": -1.0}
    c = const_for(spec, rng)
    points = sample_domain(spec, 20, rng)
    for exprs, kinds, reads in ((spec.partials, spec.kinds, spec.reads),
                                (spec.partials + spec.second, spec.kinds + spec.second_kinds, spec.reads_second)):
        for expr, kind in zip(exprs, kinds):
            f = numpy_function(expr)
            got, hidden = [], []
            for point in points:
                args = list(point) + [None] * (3 - spec.arity)
                z = spec.primal_function(*args, c, None)
                got.append(f(*args, c, z))
                hidden.append(f(*[a if reads[k] else np.nan for k, a in enumerate(args)], c,
                                z if reads[3] else np.nan))
            np.testing.assert_array_equal(hidden, got, err_msg=f"{spec.name}: {expr} reads more than {reads}")
            if kind in want:
                assert set(got) == {want[kind]}, (spec.name, expr)
            elif kind == "const":
                assert len(set(got)) == 1, (spec.name, expr)
    assert spec.nonzero == tuple(kind != "zero" for kind in spec.kinds)


def test_nan_propagates_through_maximum_and_minimum():
    for name in ("maximum", "minimum"):
        f = BY_NAME[name].primal_function
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
