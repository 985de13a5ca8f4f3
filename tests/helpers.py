"""Shared test helpers: tapes built straight from the op table, points sampled on op domains,
random tapes (a hypothesis strategy), the comparison the tests use, the worked example's traces
as printed, and a strict parser for the DOT text tapead writes."""

from __future__ import annotations

import re

import numpy as np
from hypothesis import strategies as st

from tapead import reference
from tapead.api import Tape
from tapead.ops import BY_NAME, CONST, INPUT, OPS, OpSpec
from tapead.tape import TapeData

OP_ROWS = [spec for spec in OPS if spec.code > CONST]
TAPE_ROWS = [spec for spec in OPS if spec.code >= CONST]  # what a tape's body may hold


def op_id(spec: OpSpec) -> str:
    return spec.name


def const_for(spec: OpSpec, rng: np.random.Generator) -> float:
    """An immediate for ops that take one: away from 0 (divisors) and from integers (powc)."""
    if not spec.uses_const:
        return 0.0
    c = rng.uniform(0.3, 2.5) * rng.choice([-1.0, 1.0])
    return c + 0.1 if spec.name == "powc" and float(c).is_integer() else c


def one_op_tape(spec: OpSpec, c: float = 0.0) -> Tape:
    """y = op(x1, .., x_arity; c) as a tape, built directly (no tracer)."""
    n = spec.arity
    args = [list(range(n)) + [-1] * (3 - n)]
    op = np.array([INPUT] * n + [spec.code], dtype=np.int32)
    arg = np.array([[-1, -1, -1]] * n + args, dtype=np.int32)
    return Tape.from_data(
        TapeData(
            op=op,
            arg0=arg[:, 0].copy(),
            arg1=arg[:, 1].copy(),
            arg2=arg[:, 2].copy(),
            const=np.array([0.0] * n + [c]),
            outputs=np.array([n], dtype=np.int32),
            n_in=n,
        )
    )


def sample_domain(spec: OpSpec, n_points: int, rng: np.random.Generator) -> np.ndarray:
    """Points on the op's test domain; operands whose domain is (0.5, 3) get a random sign."""
    cols = []
    for lo, hi in spec.domain:
        col = rng.uniform(lo, hi, n_points)
        if (lo, hi) == (0.5, 3.0):
            col *= rng.choice([-1.0, 1.0], n_points)
        cols.append(col)
    return np.stack(cols, axis=1)


@st.composite
def random_tapes(draw, max_inputs: int = 3, max_ops: int = 12, max_outputs: int = 3, n_params: int | None = None):
    """A random valid tape over every op of the table: any op may follow any other."""
    n_in = draw(st.integers(1, max_inputs))
    k = draw(st.integers(0, 2)) if n_params is None else n_params
    n_lead = n_in + k
    ops = [INPUT] * n_in + [OPS[1].code] * k
    args = [[-1, -1, -1]] * n_lead
    consts = [0.0] * n_lead
    for i in range(n_lead, n_lead + draw(st.integers(1, max_ops))):
        spec = draw(st.sampled_from(TAPE_ROWS))
        chosen = [draw(st.integers(0, i - 1)) for _ in range(spec.arity)]
        # prefer recent slots so tapes are deep, not only wide
        chosen = [max(a, i - 1 - draw(st.integers(0, 3))) if draw(st.booleans()) else a for a in chosen]
        ops.append(spec.code)
        args.append(chosen + [-1] * (3 - spec.arity))
        consts.append(draw(st.sampled_from([0.5, -1.5, 2.0, 3.0, -0.75])) if spec.uses_const or spec.code == CONST else 0.0)
    n_slots = len(ops)
    n_out = draw(st.integers(1, max_outputs))
    outputs = [draw(st.integers(0, n_slots - 1)) for _ in range(n_out)]
    arg = np.array(args, dtype=np.int32)
    return Tape.from_data(
        TapeData(
            op=np.array(ops, dtype=np.int32),
            arg0=arg[:, 0].copy(),
            arg1=arg[:, 1].copy(),
            arg2=arg[:, 2].copy(),
            const=np.array(consts, dtype=np.float64),
            outputs=np.array(outputs, dtype=np.int32),
            n_in=n_in,
            n_params=k,
            out_shape=(n_out,),
        )
    )


def assert_close(actual, expected, rtol=1e-12, atol=1e-12):
    """Equal to rounding; NaN where the reference has NaN, inf of the same sign where it has inf."""
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)


def copysign_of_nan(tape, X, P) -> np.ndarray:
    """The points where a copysign reads a NaN (its result's sign, or its partial's, is the
    NaN's): IEEE leaves a NaN's sign to the implementation (numpy's log(-1) is -nan, libm's
    and vmath's +nan), so copysign's result there is too."""
    readers = np.flatnonzero(tape.op == BY_NAME["copysign"].code)
    if not readers.size:
        return np.zeros(X.shape[0], bool)
    v = np.array([reference.values(tape, x, p) for x, p in zip(X, P)]).reshape(X.shape[0], tape.n_slots)
    return np.isnan(v[:, np.r_[tape.arg0[readers], tape.arg1[readers]]]).any(axis=1)


# the worked example (docs/design.md) explained at (2, 5) for x1: tapead explain and Tape.explain
WORKED_EXAMPLE_TRACES = """\
Evaluation trace at x1 = 2, x2 = 5
  v_{-1} = x1     = 2
  v_0 = x2        = 5
  v1 = log v_{-1} = 0.693147
  v2 = v_{-1}*v_0 = 10
  v3 = v1 + v2    = 10.6931
  v4 = sin v_0    = -0.958924
  v5 = v3 - v4    = 11.6521
  y1 = v5         = 11.6521

Forward tangent trace for x1, seed x_dot = (1, 0)
  v_{-1}_dot = seed                 = 1
  v_0_dot = seed                    = 0
  v1_dot = 0.5*v_{-1}_dot           = 0.5
  v2_dot = 5*v_{-1}_dot + 2*v_0_dot = 5
  v3_dot = 1*v1_dot + 1*v2_dot      = 5.5
  v4_dot = 0.283662*v_0_dot         = 0
  v5_dot = 1*v3_dot + (-1)*v4_dot   = 5.5

Reverse adjoint trace, seed y_bar = (1)
  v5_bar = 1 (seed of y1)              = 1
  v4_bar = v5_bar*(-1)                 = -1
  v3_bar = v5_bar*1                    = 1
  v2_bar = v3_bar*1                    = 1
  v1_bar = v3_bar*1                    = 1
  v_0_bar = v2_bar*2 + v4_bar*0.283662 = 1.71634
  v_{-1}_bar = v1_bar*0.5 + v2_bar*5   = 5.5

Edge partials (local partial dv_i/dv_j of each edge at this point)
  dv5/dv3     = 1
  dv5/dv4     = -1
  dv4/dv_0    = 0.283662
  dv3/dv1     = 1
  dv3/dv2     = 1
  dv2/dv_{-1} = 5
  dv2/dv_0    = 2
  dv1/dv_{-1} = 0.5

Paths: each derivative is the sum over paths of the products of edge partials
  v5 -> v3 -> v1 -> v_{-1}: 1 * 1 * 0.5 = 0.5
  v5 -> v3 -> v2 -> v_{-1}: 1 * 1 * 5   = 5
  dy1/dx1                               = 5.5  (2 paths)
  v5 -> v3 -> v2 -> v_0: 1 * 1 * 2      = 2
  v5 -> v4 -> v_0: (-1) * 0.283662      = -0.283662
  dy1/dx2                               = 1.71634  (2 paths)"""


_DOT_TOKEN = re.compile(r'\s*(?:(->)|("(?:\\.|[^"\\])*")|([A-Za-z_][A-Za-z0-9_]*|-?\d+(?:\.\d+)?)|([{}\[\]=,;]))')


def parse_dot(text: str) -> tuple[dict[str, dict], list[tuple[str, str, dict]]]:
    """A strict parser for the DOT subset to_dot writes: (nodes with attributes, edges with attributes).

    Fails on anything else: unbalanced quotes or brackets, unknown statements, edges to undeclared nodes.
    """
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        m = _DOT_TOKEN.match(text, pos)
        assert m, f"cannot tokenize DOT at {text[pos:pos + 30]!r}"
        tokens.append(m.group(m.lastindex))
        pos = m.end()
    k = 0

    def take(expected=None):
        nonlocal k
        tok = tokens[k]
        k += 1
        assert expected is None or tok == expected, f"expected {expected!r}, got {tok!r}"
        return tok

    def value(tok):
        # the DOT language unescapes only \" (graphviz reads \n and \\ in labels later)
        return tok[1:-1].replace('\\"', '"') if tok.startswith('"') else tok

    def attrs():
        out = {}
        if tokens[k] != "[":
            return out
        take("[")
        while tokens[k] != "]":
            name = take()
            take("=")
            out[name] = value(take())
            if tokens[k] == ",":
                take(",")
        take("]")
        return out

    take("digraph")
    take("tape")
    take("{")
    nodes, edges = {}, []
    while tokens[k] != "}":
        first = take()
        if tokens[k] == "=":
            take("=")
            take()
        elif first in ("node", "edge", "graph"):
            attrs()
        elif tokens[k] == "->":
            take("->")
            second = take()
            edges.append((first, second, attrs()))
        else:
            assert re.fullmatch(r"n\d+", first), first
            nodes[first] = attrs()
        take(";")
    take("}")
    assert k == len(tokens), "text after the graph"
    for a, b, _ in edges:
        assert a in nodes and b in nodes, f"edge {a} -> {b} between undeclared nodes"
    return nodes, edges
