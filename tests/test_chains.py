"""Dot-product chains (passes.chain_ops): which runs are marked, and that the value and
gradient sweeps give the bits the instructions give."""

import dataclasses

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import tapead
from tapead.ops import BY_NAME
from tapead.passes import CHAIN_ADDMULC, CHAIN_END, CHAIN_LINK, CHAIN_MULC, chain_ops

C = np.array([0.5, -1.25, 3.0, 0.1, -0.7, 2.5, 1e-3, -4.0])


def test_a_dot_product_is_one_chain():
    tape = tapead.record(lambda x: C @ x, 8)
    assert tape.op[8:].tolist() == [BY_NAME["mulc"].code] + [BY_NAME["addmulc"].code] * 7
    assert chain_ops(tape)[8:].tolist() == [CHAIN_MULC] + [CHAIN_LINK] * 6 + [CHAIN_END]
    assert tape.stats()["chains"] == {"count": 1, "ops": 8}


def test_what_is_not_a_chain():
    # the running sum read elsewhere ends the chain there; a short run is left alone
    tape = tapead.record(lambda x: (s := C[:4] @ x[:4]) * (s + C[4:] @ x[4:]), 8)
    codes = chain_ops(tape).tolist()
    assert codes.count(CHAIN_END) == 2 and codes.count(CHAIN_MULC) == 2
    assert chain_ops(tapead.record(lambda x: x[0] + 2.0 * x[1], 2)).tolist() == \
        tapead.record(lambda x: x[0] + 2.0 * x[1], 2).op.tolist()
    # an addend first: the chain starts with an addmulc
    tape = tapead.record(lambda x: x[0] + 2.0 * x[1] + 3.0 * x[2] - 4.0 * x[1], 3)
    assert chain_ops(tape)[3:].tolist() == [CHAIN_ADDMULC, CHAIN_LINK, CHAIN_END]
    # a chain whose sum nothing reads (only in a tape built by hand) is left alone
    dead = tapead.Tape.from_data(dataclasses.replace(tapead.record(lambda x: C @ x, 8),
                                                     outputs=np.array([0], dtype=np.int32)))
    assert chain_ops(dead).tolist() == dead.op.tolist()
    X = np.random.default_rng(0).normal(size=(5, 8))
    np.testing.assert_array_equal(dead.gradient(X), np.eye(8)[[0] * 5])


def _without_chains(tape):
    plain = tapead.Tape.from_data(tape)
    layouts = plain.layouts  # the same layouts with the op codes unmarked (as the tangent sweep's)
    unmarked = layouts.tangent.op
    plain.__dict__["layouts"] = dataclasses.replace(layouts, primal=dataclasses.replace(layouts.primal, op=unmarked),
                                                    reverse=dataclasses.replace(layouts.reverse, op=unmarked))
    return plain


def _assert_same_bits(got, want):
    # a NaN's sign and payload depend on operand order, which LLVM may swap: NaN where NaN
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(np.where(nan, 0.0, got).view(np.int64), np.where(nan, 0.0, want).view(np.int64))


@st.composite
def chained_functions(draw):
    """Functions made of dot products over earlier values (repeats, zero and negative
    coefficients, an addend, parameters among the operands), a few nonlinear steps between."""
    n_in, n_params = draw(st.integers(1, 5)), draw(st.integers(0, 2))
    coef = st.sampled_from([0.0, 0.5, -1.5, 2.0, 3.25, -0.125, 1e300])
    steps = []
    for _ in range(draw(st.integers(1, 5))):
        n = n_in + n_params + len(steps)
        terms = draw(st.lists(st.tuples(coef, st.integers(0, n - 1)), min_size=1, max_size=11))
        addend = draw(st.none() | st.integers(0, n - 1))
        steps.append((terms, addend, draw(st.sampled_from(["", "sin", "square"]))))
    n_out = draw(st.integers(1, 3))

    def f(x, p=()):
        v = [x[i] for i in range(n_in)] + [p[i] for i in range(n_params)]
        for terms, addend, after in steps:
            (c, k), rest = terms[0], terms[1:]
            s = v[addend] + c * v[k] if addend is not None else c * v[k]
            for c, k in rest:
                s = s + c * v[k]
            v.append(np.sin(s) if after == "sin" else s * s if after == "square" else s)
        return np.stack(v[-n_out:]) if n_out > 1 else v[-1]

    return f, n_in, n_params


@settings(max_examples=60, deadline=None)
@given(fn=chained_functions(), seed=st.integers(0, 2**32 - 1))
def test_chains_give_the_bits_of_the_instructions(fn, seed):
    f, n_in, n_params = fn
    tape = tapead.record(f, n_in, n_params=n_params) if n_params else tapead.record(f, n_in)
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, (300, n_in))
    X[::5] = rng.choice([0.0, -0.0, 1.0, np.inf, -np.inf, np.nan, 1e300], X[::5].shape)
    args = (rng.uniform(-2, 2, (300, n_params)),) if n_params else ()
    plain = _without_chains(tape)
    W = rng.choice([0.0, -0.0, 1.0, -2.5], (300, *tape.out_shape))
    pairs = [(tape(X, *args), plain(X, *args)), *zip(tape.vjp(X, *args, W), plain.vjp(X, *args, W)),
             (tape.jacobian(X, *args, mode="reverse"), plain.jacobian(X, *args, mode="reverse"))]
    if tape.out_shape == ():
        pairs += zip(tape.value_and_gradient(X, *args), plain.value_and_gradient(X, *args))
    for got, want in pairs:
        _assert_same_bits(got, want)
