"""Derivatives of a tape as traced code (tapead.transform): a tape's gradient, VJP, JVP,
Jacobian and Hessian called on traced values inside another record, checked against the
tape's own numeric methods (the kernels), the reference interpreter and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tapead
import tapead.transform
from tapead import reference
from tapead.ops import BY_NAME, OPS
from tapead.transform import compile_expression

from .helpers import OP_ROWS, assert_close, const_for, copysign_of_nan, op_id, random_tapes, sample_domain


def f_example(x):
    return np.log(x[0]) + x[0] * x[1] - np.sin(x[1])


def f_smooth(x):
    """Three inputs, transcendentals, a division and a power: third derivatives are nontrivial."""
    return np.exp(0.3 * x[0] * x[1]) + np.sin(x[2]) * x[0] ** 3 + np.log1p(x[1] ** 2) / (2.0 + np.tanh(x[2]))


def f_vector(x, p):
    """Two parameters and three outputs."""
    return [p[0] * np.sin(x[0]) * x[1], np.exp(x[1] - p[1]) + x[0] ** 2, np.arctan2(x[0], 1.5 + x[1] ** 2)]


# ---- the op table's partials, walked through the converter ------------------------------------


def _partial_tape(spec, k: int, c: float):
    """A tape (optimize=False) of the op's k-th partial as compile_expression emits it."""

    def partial(x):
        z = x[0].rec.emit(spec.name, tuple(x[: spec.arity]), c)
        env = {"x": None, "y": None, "w": None, "z": z, "c": c}
        env.update(zip(("x", "y", "w"), x[: spec.arity]))
        return compile_expression(spec.partials[k])(env)

    return tapead.record(partial, spec.arity, optimize=False)


@pytest.mark.parametrize("spec", OP_ROWS, ids=op_id)
def test_every_partial_converts_and_matches_reference(spec, rng):
    """Every op's partials, traced, against the reference interpreter's formulas: a new op
    whose partial uses a construct without a traced form fails here."""
    c = const_for(spec, rng)
    X = sample_domain(spec, 64, rng)
    for k in range(spec.arity):
        tape = _partial_tape(spec, k, c)
        data = tapead.record(lambda x: x[0].rec.emit(spec.name, tuple(x[: spec.arity]), c), spec.arity,
                             optimize=False)
        want = np.array([reference.local_partials(data, reference.values(data, x), spec.arity)[k] for x in X])
        got = reference.evaluate(tape, X)[:, 0]
        assert_close(got, want, rtol=1e-14, atol=0.0)
        assert_close(tape(X), want, rtol=1e-14, atol=0.0)  # and through the kernels


def test_every_partial_compiles_once():
    for spec in OPS:
        for expr in spec.partials:
            assert compile_expression(expr) is compile_expression(expr)


@pytest.mark.parametrize("expr, named", [("x % y", "Mod"), ("abs(x)", "abs(x)"), ("np.nonsuch(x)", "np.nonsuch"),
                                         ("q * x", "'q'"), ("x if y else 'a'", "Constant"), ("[x]", "List")])
def test_a_construct_without_traced_form_is_refused_by_name(expr, named):
    with pytest.raises(ValueError, match="no traced form") as error:
        compile_expression(expr)
    assert named in str(error.value)


# ---- the worked example: bit for bit against the kernels ---------------------------------------


def test_gradient_of_the_worked_example_is_the_kernels_bit_for_bit(rng):
    f = tapead.record(f_example, 2)
    g = tapead.record(lambda x: f.gradient(x), 2)
    X = rng.uniform(0.5, 4.0, (300, 2))
    np.testing.assert_array_equal(g(X), f.gradient(X))
    assert g(np.array([2.0, 5.0])).tolist() == [5.5, 1.7163378145367738]
    vg = tapead.record(lambda x: [f.value_and_gradient(x)[0], *f.value_and_gradient(x)[1]], 2)
    np.testing.assert_array_equal(vg(X), np.column_stack([f(X), f.gradient(X)]))


def test_hessian_of_the_worked_example_against_the_formula(rng):
    f = tapead.record(f_example, 2)
    h = tapead.record(lambda x: f.hessian(x), 2)
    X = rng.uniform(0.5, 4.0, (100, 2))
    expected = np.zeros((100, 2, 2))
    expected[:, 0, 0] = -1.0 / X[:, 0] ** 2
    expected[:, 0, 1] = expected[:, 1, 0] = 1.0
    expected[:, 1, 1] = np.sin(X[:, 1])
    assert_close(h(X), expected, rtol=1e-14, atol=0.0)
    assert_close(h(X), f.hessian(X), rtol=1e-14, atol=0.0)


# ---- random tapes: every method against the numeric one -----------------------------------------


def _points(tape, seed: int, n_points: int = 40):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, (n_points, tape.n_in))
    P = rng.uniform(-2, 2, (n_points, tape.n_params))
    return rng, X, P, ~copysign_of_nan(tape, X, P)


@given(tape=random_tapes(), seed=st.integers(0, 2**32 - 1))
def test_random_tapes_vjp_and_jvp(tape, seed):
    """Several outputs, parameters, traced seeds: VJP and JVP against the kernels and, with the
    recorded tapes run by the reference interpreter, against the reference's own sweeps."""
    rng, X, P, ok = _points(tape, seed)
    n, k, m = tape.n_in, tape.n_params, tape.n_out
    W = rng.normal(size=(len(X), m))
    V = rng.normal(size=(len(X), n))
    vjp = tapead.record(lambda x, q: tape.vjp(x, *([q[:k]] if k else []), q[k:])[1], n, k + m)
    jvp = tapead.record(lambda x, q: tape.jvp(x, *([q[:k]] if k else []), q[k:])[1], n, k + n)
    args = (P,) if k else ()
    _, x_bar = reference.vjp(tape, X, P, W[:, :, None])
    _, y_dot = reference.jvp(tape, X, P, V[:, :, None])
    pairs = [(vjp(X, np.hstack([P, W])), tape.vjp(X, *args, W)[1]), (jvp(X, np.hstack([P, V])), tape.jvp(X, *args, V)[1]),
             (reference.evaluate(vjp, X, np.hstack([P, W])), x_bar[:, :, 0]),
             (reference.evaluate(jvp, X, np.hstack([P, V])), y_dot[:, :, 0])]
    # bit for bit (the sweeps and the recorded ops compute transcendental partials with the same
    # vmath functions), unless pow(x, 2) in a partial records as x * x (powc)
    exact = not np.isin(tape.op, [BY_NAME[name].code for name in ("pow", "powc")]).any()
    for got, want in pairs:
        if exact:
            np.testing.assert_array_equal(got[ok], want[ok])
        assert_close(got[ok], want[ok], rtol=1e-10, atol=1e-12)


@given(tape=random_tapes(), seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(["forward", "reverse", "auto"]))
def test_random_tapes_jacobian(tape, seed, mode):
    _, X, P, ok = _points(tape, seed)
    k = tape.n_params
    args = (P,) if k else ()
    J = tapead.record(lambda x, *p: tape.jacobian(x, *p, mode=mode), tape.n_in, k)
    assert_close(J(X, *args)[ok], tape.jacobian(X, *args, mode=mode)[ok], rtol=1e-10, atol=1e-12)


@given(tape=random_tapes(max_outputs=2), seed=st.integers(0, 2**32 - 1))
def test_random_tapes_hessian(tape, seed):
    """Forward over the recorded reverse sweep against the kernels' Hessian sweep (the table's
    second partials): to rounding, with the slack that moving x by one ulp gives, where both
    are finite (the two differentiate different formulas, so an inf or NaN can differ)."""
    rng, X, P, ok = _points(tape, seed, 25)
    n, k, m = tape.n_in, tape.n_params, tape.n_out
    W = rng.normal(size=(len(X), m))
    args = (P,) if k else ()
    H_tape = tapead.record(lambda x, q: tape.hessian(x, *([q[:k]] if k else []), W=q[k:]), n, k + m)
    got = H_tape(X, np.hstack([P, W]))
    want = tape.hessian(X, *args, W=W)
    moved = tape.hessian(np.nextafter(X, np.inf), *args, W=W)
    with np.errstate(invalid="ignore"):
        slack = np.nan_to_num(4.0 * np.abs(moved - want), nan=0.0, posinf=0.0)
    both = np.isfinite(got) & np.isfinite(want) & ok[:, None, None]
    assert_close(got[both], want[both], rtol=1e-9, atol=1e-12 + slack.max(initial=0.0))


def test_several_outputs_and_parameters_every_method(rng):
    f = tapead.record(f_vector, 2, 2)
    X, P = rng.uniform(-1.5, 1.5, (50, 2)), rng.uniform(0.5, 2.0, (50, 2))
    W3 = rng.normal(size=(1, 3, 4))  # four VJP directions, the same at every point
    V2 = rng.normal(size=(2, 3))  # three JVP directions
    Wh = np.array([0.5, -1.0, 2.0])
    parts = {
        "vjp": (lambda x, p: f.vjp(x, p, W3)[1], f.vjp(X, P, W3)[1]),
        "jvp": (lambda x, p: f.jvp(x, p, V2)[1], f.jvp(X, P, V2[None])[1]),
        "jacobian": (lambda x, p: f.jacobian(x, p), f.jacobian(X, P)),
        "value_and_jacobian": (lambda x, p: f.value_and_jacobian(x, p, mode="reverse")[1], f.jacobian(X, P)),
        "hessian": (lambda x, p: f.hessian(x, p, W=Wh), f.hessian(X, P, W=Wh)),
        "hvp": (lambda x, p: f.hvp(x, p, V2, W=Wh), f.hvp(X, P, V2[None], W=Wh)),
        "values": (lambda x, p: f.value_gradient_and_hessian(x, p, W=Wh)[0], f(X, P)),
        "gradient": (lambda x, p: f.value_gradient_and_hessian(x, p, W=Wh)[1],
                     f.value_gradient_and_hessian(X, P, W=Wh)[1]),
    }
    for name, (traced, numeric) in parts.items():
        tape = tapead.record(traced, 2, 2)
        assert tape.out_shape == numeric.shape[1:], name
        assert_close(tape(X, P), numeric, rtol=1e-13, atol=1e-14)


def test_traced_seeds_weights_and_parameters_only(rng):
    """A traced W (Hessian weights), traced directions, and a numeric x with traced parameters."""
    f = tapead.record(f_vector, 2, 2)
    X, P = rng.uniform(-1.5, 1.5, (30, 2)), rng.uniform(0.5, 2.0, (30, 2))
    W, V = rng.normal(size=(30, 3)), rng.normal(size=(30, 2))
    hw = tapead.record(lambda x, q: f.hessian(x, q[:2], W=q[2:]), 2, 5)
    assert_close(hw(X, np.hstack([P, W])), f.hessian(X, P, W=W), rtol=1e-13, atol=1e-14)
    hv = tapead.record(lambda x, q: f.hvp(x, q[:2], q[2:], W=np.ones(3)), 2, 4)
    assert_close(hv(X, np.hstack([P, V])), f.hvp(X, P, V, W=np.ones(3)), rtol=1e-13, atol=1e-14)
    x0 = np.array([0.3, -0.7])
    jp = tapead.record(lambda p: f.jacobian(x0, p), 2)  # differentiated in p: x is a constant here
    assert_close(jp(P), f.jacobian(np.broadcast_to(x0, (30, 2)), P), rtol=1e-13, atol=1e-14)


# ---- higher orders ---------------------------------------------------------------------------------


def test_third_derivatives_against_finite_differences_of_the_hessian(rng):
    f = tapead.record(f_smooth, 3)
    H = tapead.record(lambda x: f.hessian(x), 3)
    x = rng.uniform(-1.0, 1.0, 3)
    T = H.jacobian(x)  # (3, 3, 3): d H_ij / d x_k
    h = 1e-5
    for j in range(3):
        e = np.zeros(3)
        e[j] = h
        fd = (f.hessian(x + e) - f.hessian(x - e)) / (2 * h)
        np.testing.assert_allclose(T[:, :, j], fd, rtol=1e-6, atol=1e-6)
    assert_close(T, T.transpose(1, 0, 2), rtol=1e-12, atol=1e-12)  # symmetric in every pair
    assert_close(T, T.transpose(0, 2, 1), rtol=1e-12, atol=1e-12)
    assert_close(H(x), f.hessian(x), rtol=1e-13, atol=1e-13)


def test_gradient_of_a_recorded_gradient_is_the_hessian(rng):
    f = tapead.record(f_smooth, 3)
    g = tapead.record(lambda x: f.gradient(x), 3)
    gg = tapead.record(lambda x: g.jacobian(x), 3)
    X = rng.uniform(-1.0, 1.0, (40, 3))
    assert_close(gg(X), f.hessian(X), rtol=1e-12, atol=1e-13)
    assert_close(g.jacobian(X), f.hessian(X), rtol=1e-12, atol=1e-13)


def test_where_never_leaks_the_unselected_branch():
    """where(x < 1, x, sqrt(x)) at 0: the sqrt branch's partial is inf there; the gradient
    recorded as a tape is still 1 (and its derivative 0), as the kernels give."""
    w = tapead.record(lambda x: tapead.where(x[0] < 1, x[0], np.sqrt(x[0])), 1)
    grad = tapead.record(lambda x: w.gradient(x), 1)
    hess = tapead.record(lambda x: w.hessian(x), 1)
    X = np.array([[0.0], [0.5], [4.0]])
    assert grad(X).tolist() == [[1.0], [1.0], [0.25]] == w.gradient(X).tolist()
    assert hess(X)[:2].tolist() == [[[0.0]], [[0.0]]]
    assert grad.jacobian(X)[:2].tolist() == [[[0.0]], [[0.0]]]
    assert_close(hess(X)[2], [[-1.0 / 32.0]], rtol=1e-15, atol=0.0)


def test_second_derivatives_of_a_custom_rule_are_the_kernels(rng):
    """A tape with a user rule (stop_gradient inside): its recorded gradient's Jacobian is the
    symmetrised derivative of the rule, as tape.hessian gives it."""
    rule = tapead.custom_derivative(lambda x: np.log1p(np.exp(x[0] * x[1])),
                                    lambda x: [x[1] * tapead.sigmoid(x[0] * x[1]), x[0] * tapead.sigmoid(x[0] * x[1])])
    f = tapead.record(lambda x: rule(x) * x[0], 2)
    g = tapead.record(lambda x: f.gradient(x), 2)
    X = rng.uniform(-2.0, 2.0, (50, 2))
    np.testing.assert_array_equal(g(X), f.gradient(X))
    assert_close(g.jacobian(X), f.hessian(X), rtol=1e-13, atol=1e-14)
    assert_close(tapead.record(lambda x: f.hessian(x), 2)(X), f.hessian(X), rtol=1e-13, atol=1e-14)


def test_the_optimizer_leaves_results_unchanged(rng):
    f = tapead.record(f_vector, 2, 2)
    X, P = rng.uniform(-1.5, 1.5, (60, 2)), rng.uniform(0.5, 2.0, (60, 2))
    W = np.array([1.0, -2.0, 0.5])
    for traced in (lambda x, p: f.jacobian(x, p), lambda x, p: f.hessian(x, p, W=W),
                   lambda x, p: f.vjp(x, p, W)[1]):
        raw = tapead.record(traced, 2, 2, optimize=False)
        opt = tapead.record(traced, 2, 2)
        assert opt.n_ops <= raw.n_ops
        np.testing.assert_array_equal(opt(X, P), raw(X, P))  # values bit for bit
        assert_close(opt.jacobian(X, P), raw.jacobian(X, P), rtol=1e-12, atol=1e-13)  # derivatives to rounding


# ---- refusals ------------------------------------------------------------------------------------


def test_numeric_only_arguments_are_refused_on_traced_values():
    f = tapead.record(f_example, 2)
    with pytest.raises(ValueError, match="reduce= applies to numeric points only"):
        tapead.record(lambda x: f.gradient(x, reduce="sum"), 2)
    with pytest.raises(ValueError, match="out= applies to numeric points only"):
        tapead.record(lambda x: f.hessian(x, out=np.empty((2, 2))), 2)
    with pytest.raises(ValueError, match="takes one point: X of shape"):
        tapead.record(lambda x: f.gradient(np.stack([x, x])), 2)
    with pytest.raises(ValueError, match="gradient needs a scalar function"):
        tapead.record(lambda x: tapead.record(lambda y: [y[0], y[1]], 2).gradient(x), 2)
    with pytest.raises(TypeError, match=r"jvp takes \(X, V\)"):
        tapead.record(lambda x: f.jvp(x), 2)


def test_a_guarded_tape_refuses_to_be_differentiated_inside_a_record():
    g = tapead.record(lambda x: x[0] * 2.0 if x[0] > 0 else -x[0], 1, branches="guard", at=np.array([1.0]))
    for method in (lambda x: g.gradient(x), lambda x: g.jvp(x, np.ones(1)), lambda x: g.vjp(x, 1.0),
                   lambda x: g.jacobian(x), lambda x: g.hessian(x), lambda x: g.hvp(x, np.ones(1)),
                   lambda x: g.value_gradient_and_hessian(x)):
        with pytest.raises(TypeError, match="branches='guard' cannot be differentiated"):
            tapead.record(method, 1)
    assert g.gradient(np.array([[2.0], [-3.0]])).tolist() == [[2.0], [-1.0]]  # numeric points still work


def test_a_tape_called_on_traced_values_refuses_arguments_for_numbers():
    inner = tapead.record(lambda x: x[0] * x[1], 2)
    for kwargs in ({"reduce": "sum"}, {"weights": np.ones(1)}, {"out": np.empty(())}, {"progress": print}):
        with pytest.raises(TypeError, match="numbers only"):
            tapead.record(lambda x, kwargs=kwargs: inner(x, **kwargs), 2)
