"""The optimizer: smaller tapes, identical values, derivatives to rounding, valid tapes."""

from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tapead
from tapead import passes, reference
from tapead.layout import reverse_reads
from tapead.ops import OPS
from tapead.passes import eliminate_dead_code, optimize

from .helpers import assert_close, random_tapes


def _results(tape, X, P, V):
    args = (P,) if tape.n_params else ()
    y = tape(X, *args)
    _, y_dot = tape.jvp(X, *args, V)
    _, x_bar = tape.vjp(X, *args, np.ones(tape.out_shape))
    return y, y_dot, x_bar


@given(tape=random_tapes(max_ops=16), seed=st.integers(0, 2**32 - 1))
def test_optimize_preserves_values_exactly_and_derivatives_to_rounding(tape, seed):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, (200, tape.n_in))
    X[::7] = np.round(X[::7])  # integers, zeros: the edge cases of identities
    P = rng.uniform(-2, 2, (200, tape.n_params))
    V = rng.normal(size=(200, tape.n_in))
    opt = tapead.optimize(tape)
    tapead.validate(opt)
    assert opt.n_ops <= tape.n_ops
    before, after = _results(tape, X, P, V), _results(opt, X, P, V)
    np.testing.assert_array_equal(after[0], before[0])  # values: bit for bit
    for a, b in zip(after[1:], before[1:]):
        finite = np.isfinite(a) & np.isfinite(b)
        assert_close(a[finite], b[finite], rtol=1e-12, atol=1e-12)


def test_each_rewrite():
    def f(x):
        a = x[0] * x[1]
        b = x[1] * x[0]  # CSE, commutative
        c = -(-a)  # -(-x) -> x
        d = x[0] * (-1.0)  # -> neg
        e = tapead.where(x[0] > 0, b, b)  # where(c, a, a) -> a
        k = tapead.sqrt(tapead.maximum(4.0 * 4.0, 2.0))  # folded to 4
        g = tapead.where(tapead.lt(1.0, 2.0), x[0], np.log(x[1]))  # constant condition; log is dead
        x[0] + 0.0 * np.sin(x[1])  # dead code
        return c + d + e + k * g + (a - (-0.0))

    tape = tapead.record(f, 2, optimize=False)
    opt = tapead.optimize(tape)
    text = str(opt)
    assert "log" not in text and "sin" not in text and "sqrt" not in text and "where" not in text
    assert text.count("v_{-1}*v_0") == 1
    X = np.random.default_rng(0).normal(size=(50, 2))
    np.testing.assert_array_equal(opt(X), tape(X))
    assert opt.n_ops < tape.n_ops and opt.n_recorded == tape.n_ops


def test_multiply_add_fusion_keeps_every_bit():
    def f(x):
        shared = 2.0 * x[2]  # read twice: kept as a mulc
        return [(x[0] + 3.0 * x[1]) * (x[2] - 0.5 * x[0]) + shared, shared * x[1], 4.0 * x[0]]

    plain = tapead.record(f, 3, optimize=False)
    fused = tapead.optimize(plain)
    assert [OPS[code].name for code in fused.op[3:]].count("addmulc") == 2
    X = np.random.default_rng(3).normal(size=(1000, 3)) * 10.0 ** np.arange(-2, 1)
    X[::5] = 0.0  # signed zeros through x + c*y and x - c*y
    X[1::5] = -0.0
    W = np.random.default_rng(4).normal(size=(1000, 3))
    V = np.random.default_rng(5).normal(size=(1000, 3))
    for method, args in (("__call__", (X,)), ("vjp", (X, W)), ("jvp", (X, V))):
        got, expected = getattr(fused, method)(*args), getattr(plain, method)(*args)
        for a, b in zip(*((r,) if isinstance(r, np.ndarray) else r for r in (got, expected))):
            np.testing.assert_array_equal(np.signbit(a), np.signbit(b))
            np.testing.assert_array_equal(a, b)


def test_x_plus_zero_is_kept_because_of_negative_zero():
    tape = tapead.record(lambda x: x[0] + 0.0, 1)
    assert tape.n_ops == 1
    assert np.signbit(tape(np.array([-0.0]))) == np.signbit(-0.0 + 0.0)


def test_record_optimizes_by_default_and_source_lines_follow():
    def f(x):
        a = np.sin(x[0])
        b = np.sin(x[0])
        return np.log(a + b - 2.0)

    tape = tapead.record(f, 1)
    assert tape.n_ops == 4 and tape.n_recorded == 5
    (report,) = tape.find_nonfinite(np.array([[0.1]]))
    assert "return np.log(a + b - 2.0)" in report.source


def test_dead_code_elimination_keeps_inputs_and_params():
    tape = tapead.record(lambda x, p: x[2] * 2.0, 3, n_params=2, optimize=False)
    opt = eliminate_dead_code(tape)
    assert (opt.n_in, opt.n_params, opt.n_ops) == (3, 2, 1)
    assert optimize(tape).n_slots == 6


@pytest.mark.parametrize("n", [10, 100])
def test_stats(n):
    stats = tapead.record(lambda x: np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2), n).stats()
    # 8 ops per term (one mulc + add fused into addmulc) and n - 2 adds
    assert stats["recorded_ops"] == 8 * (n - 1) - 1 and stats["ops"] == 7 * (n - 1) - 1
    assert stats["slots"] == n + stats["ops"]
    # the reverse sweep keeps the values its partials read: x[:-1] and both squared differences
    assert stats["values_read_by_reverse"] == 3 * (n - 1)
    # numpy-style recording keeps up to two length-n vectors live: 2n rows, not 9n slots
    rows, reads = stats["rows"], stats["values_read_by_reverse"]
    assert rows["values"] <= 2 * n and reads <= rows["gradient"] - rows["values"] <= reads + 2 * n
    assert stats["bytes_per_point"]["gradient"] == 8 * rows["gradient"] < 16 * stats["slots"] // 2


@pytest.mark.parametrize("layout, second", [("reverse", False), ("hessian", True)])
@given(tape=random_tapes(max_ops=24))
def test_reverse_layout_keeps_every_value_and_adjoint_it_reads(layout, second, tape):
    """Replay a reverse sweep's layout on slot numbers instead of values: every row read holds
    the slot it is meant to, in the forward part and in the reverse part."""
    sweep, tape = getattr(tape.layouts, layout), tape.layouts.tape  # the layout of the tape the sweeps run
    (*vargs, res, n_values), (*bargs, bres, n_bar) = sweep.values.arguments(), sweep.adjoints.arguments()
    flags = sweep.flags
    args, lead, n = (tape.arg0, tape.arg1, tape.arg2), tape.n_in + tape.n_params, tape.n_slots
    held = np.full(n_values, -1)
    held[res[:lead]] = np.arange(lead)
    for i in range(lead, n):
        for arg, varg in zip(args, vargs):
            assert arg[i] < 0 or held[varg[i]] == arg[i]
        held[res[i]] = i
    for s in [*np.flatnonzero(reverse_reads(tape, second)), *tape.outputs]:
        assert held[res[s]] == s
    owner = np.full(n_bar, -1)
    owner[bres[tape.outputs]] = tape.outputs
    for i in range(n - 1, lead - 1, -1):
        for k, (arg, barg) in enumerate(zip(args, bargs)):
            if flags[i] & (1 << k):
                owner[barg[i]] = arg[i]  # zeroed: the operand's adjoint from here on
        if flags[i] & 8:
            continue
        assert owner[bres[i]] == i
        for arg, barg in zip(args, bargs):
            assert arg[i] < 0 or owner[barg[i]] == arg[i]
    for j in range(tape.n_in):
        assert flags[j] & 8 or owner[bres[j]] == j


def test_products_are_fused_into_the_sums_the_sweeps_run():
    coeffs = [1.0, -0.5, 0.25, 2.0, -3.0]

    def horner(x):
        p = coeffs[0]
        for c in coeffs[1:]:
            p = p * x[0] + c
        return x[0] * x[0] + p * x[1]  # a muladd of a mul and a square (not fused: not a mul)

    tape = tapead.record(horner, 2)
    run = tape.layouts.tape
    names = [OPS[c].name for c in run.op[run.n_in:]]
    assert names.count("muladdc") == 3 and names.count("muladd") == 1 and "mul" not in names, names
    assert tape.stats()["sweep_ops"] == run.n_ops < tape.n_ops
    assert "muladd" not in str(tape)  # the tape a user reads keeps its instructions
    X = np.random.default_rng(5).uniform(-2, 2, (300, 2))
    np.testing.assert_array_equal(tape(X), reference.evaluate(tape, X)[:, 0])
    _, G = reference.vjp(tape, X, None, np.ones((300, 1, 1)))
    np.testing.assert_array_equal(tape.gradient(X), G[:, :, 0])


def _unfused(tape):
    plain = tapead.Tape.from_data(tape)
    with mock.patch.object(passes, "fuse_products", lambda t: t):
        assert plain.layouts.tape.n_ops == tape.n_ops  # laid out without fusing
    return plain


def test_a_product_is_fused_only_where_the_adjoints_add_up_in_the_same_order():
    # x0 * x1 is used only after x0's other uses: fused there, x0's adjoint would add the
    # product's contribution before theirs instead of after (a different rounding)
    def f(x):
        p = x[0] * x[1]
        q = np.sin(x[0]) * 0.3 + np.exp(x[0]) * x[0]
        return p + q + (x[0] * (x[1] + 1.0) + 1.5)

    tape = tapead.record(f, 2)
    X = np.random.default_rng(7).uniform(-2, 2, (2000, 2))
    np.testing.assert_array_equal(tape.gradient(X), _unfused(tape).gradient(X))
    assert "muladdc" in [OPS[c].name for c in tape.layouts.tape.op]  # the adjacent pair is fused


@given(tape=random_tapes(max_ops=24), seed=st.integers(0, 2**32 - 1))
def test_fused_products_give_the_unfused_results_bit_for_bit(tape, seed):
    plain = _unfused(tape)
    rng = np.random.default_rng(seed)
    X, P = rng.uniform(-2, 2, (50, tape.n_in)), rng.uniform(-2, 2, (50, tape.n_params))
    args = (P,) if tape.n_params else ()
    W, V = np.ones((1, tape.n_out, 1)), rng.normal(size=(50, tape.n_in, 2))
    for method in (lambda t: t.vjp(X, *args, W), lambda t: t.jvp(X, *args, V),
                   lambda t: (t.hessian(X, *args, W=np.ones(tape.out_shape)),)):
        for got, want in zip(method(tape), method(plain)):
            np.testing.assert_array_equal(np.where(np.isnan(want), 0.0, got), np.where(np.isnan(want), 0.0, want))
