"""The slow, obvious reference interpreter: the oracle every kernel is tested against.

One point at a time, one instruction at a time, in plain Python over numpy
float64 scalars, straight from the op table's formulas:

* evaluation trace (Griewank & Walther, table 2.2): v_i = phi_i(v_j, j < i);
* tangent trace (section 3.1): v_dot_i = sum_j d phi_i / d v_j * v_dot_j;
* adjoint trace (section 3.2): v_bar_j += d phi_i / d v_j * v_bar_i, i descending.

It shares the sweeps' one convention beyond textbook AD, zero skipping
(a product partial * tangent or partial * adjoint is 0 when either factor
is 0), so that the derivatives of ``where`` never pick up the unselected
branch's NaN (docs/design.md, "Zero skipping").
"""

from __future__ import annotations

import types

import numpy as np

from tapead.ops import CONST, OPS, numpy_function, zero_skip_mul
from tapead.tape import TapeData

__all__ = ["values", "operand_slots", "local_partials", "tangents", "adjoints", "hessian_vector", "evaluate", "jvp", "vjp"]

_F = np.float64


class _CPowNumpy:
    """numpy as the table's formulas see it here, except that ``np.power`` is C99's pow.

    numpy's np.power of two float64 scalars takes y == 0.5 as sqrt(x): NaN at x = -inf and -0
    at x = -0, where C99 pow (Annex F.9.4.4: +inf and +0), Numba's np.power in the kernels and
    numpy's own array loop agree. The float64 ``**`` operator calls C's pow.
    """

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def power(x, y):
        return _F(x) ** _F(y)


def _table_function(expr: str):
    """The table's formula ``expr`` as ops.numpy_function builds it, with C's pow for np.power."""
    f = numpy_function(expr)
    return types.FunctionType(f.__code__, {**f.__globals__, "np": _CPowNumpy()})


_PRIMAL = [_table_function(s.primal) for s in OPS]
_PARTIALS = [[_table_function(e) for e in s.partials] for s in OPS]
_SECOND = [[_table_function(e) for e in s.second] for s in OPS]


def operand_slots(tape: TapeData, i: int) -> list[int]:
    """The slots instruction ``i`` reads, one per operand of its op."""
    return [int(a) for a in (tape.arg0[i], tape.arg1[i], tape.arg2[i])[: OPS[tape.op[i]].arity]]


def _operands(tape: TapeData, v: np.ndarray, i: int) -> list:
    """The operands' values of instruction ``i``, None for those its op does not have."""
    operands = [v[a] for a in operand_slots(tape, i)]
    return operands + [None] * (3 - len(operands))


def values(tape: TapeData, x, p=()) -> np.ndarray:
    """Every slot's value v_i at one point."""
    v = np.zeros(tape.n_slots)
    v[: tape.n_in] = x
    v[tape.n_in : tape.n_in + tape.n_params] = p
    with np.errstate(all="ignore"):
        for i in range(tape.n_in + tape.n_params, tape.n_slots):
            v[i] = _PRIMAL[tape.op[i]](*_operands(tape, v, i), _F(tape.const[i]), None)
    return v


def local_partials(tape: TapeData, v: np.ndarray, i: int) -> list[float]:
    """d v_i / d v_arg for each operand of instruction i (the edge labels of the graph, as in
    docs/design.md, "The worked example")."""
    if tape.op[i] <= CONST:
        return []
    args = _operands(tape, v, i)
    with np.errstate(all="ignore"):
        return [float(d(*args, _F(tape.const[i]), _F(v[i]))) for d in _PARTIALS[tape.op[i]]]


def tangents(tape: TapeData, x, p, x_dot) -> tuple[np.ndarray, np.ndarray]:
    """(v, v_dot) at one point for one input direction x_dot."""
    v = values(tape, x, p)
    v_dot = np.zeros(tape.n_slots)
    v_dot[: tape.n_in] = x_dot
    for i in range(tape.n_in + tape.n_params, tape.n_slots):
        d = local_partials(tape, v, i)
        with np.errstate(all="ignore"):
            v_dot[i] = sum((zero_skip_mul(dk, v_dot[a]) for dk, a in zip(d, operand_slots(tape, i))), _F(0.0))
    return v, v_dot


def adjoints(tape: TapeData, x, p, y_bar) -> tuple[np.ndarray, np.ndarray]:
    """(v, v_bar) at one point for one output weighting y_bar."""
    v = values(tape, x, p)
    v_bar = np.zeros(tape.n_slots)
    for j, s in enumerate(tape.outputs):
        v_bar[s] += y_bar[j]
    for i in range(tape.n_slots - 1, tape.n_in + tape.n_params - 1, -1):
        d = local_partials(tape, v, i)
        for dk, a in zip(d, operand_slots(tape, i)):
            with np.errstate(all="ignore"):
                v_bar[a] += zero_skip_mul(dk, v_bar[i])
    return v, v_bar


def local_second_partials(tape: TapeData, v: np.ndarray, i: int) -> np.ndarray:
    """The symmetric matrix d^2 v_i / d v_arg_j d v_arg_k of instruction i."""
    spec = OPS[tape.op[i]]
    H = np.zeros((spec.arity, spec.arity))
    if tape.op[i] <= CONST:
        return H
    args = _operands(tape, v, i)
    with np.errstate(all="ignore"):
        for (j, k), h in zip(spec.pairs, _SECOND[tape.op[i]]):
            H[j, k] = H[k, j] = h(*args, _F(tape.const[i]), _F(v[i]))
    return H


def hessian_vector(tape: TapeData, x, p, y_bar, x_dot) -> tuple[np.ndarray, np.ndarray]:
    """(grad L, H_L @ x_dot) at one point for L = y_bar . y, forward over reverse."""
    v, v_dot = tangents(tape, x, p, x_dot)
    v_bar = np.zeros(tape.n_slots)
    v_bar_dot = np.zeros(tape.n_slots)
    for j, s in enumerate(tape.outputs):
        v_bar[s] += y_bar[j]
    for i in range(tape.n_slots - 1, tape.n_in + tape.n_params - 1, -1):
        d = local_partials(tape, v, i)
        H = local_second_partials(tape, v, i)
        slots = operand_slots(tape, i)
        with np.errstate(all="ignore"):
            for k, a in enumerate(slots):
                curvature = sum((zero_skip_mul(zero_skip_mul(v_bar[i], H[k, l]), v_dot[b])
                                 for l, b in enumerate(slots)), _F(0.0))
                v_bar_dot[a] += zero_skip_mul(d[k], v_bar_dot[i]) + curvature
                v_bar[a] += zero_skip_mul(d[k], v_bar[i])
    return v_bar[: tape.n_in], v_bar_dot[: tape.n_in]


# ---- batched over points, in the kernels' array conventions ----------------


def _param_rows(tape: TapeData, P, n_points: int):
    if P is None or tape.n_params == 0:
        return [()] * n_points
    P = np.asarray(P, dtype=float).reshape(-1, tape.n_params)
    return [P[k % P.shape[0]] for k in range(n_points)]


def evaluate(tape: TapeData, X, P=None) -> np.ndarray:
    """Y (N, m) for X (N, n)."""
    X = np.asarray(X, dtype=float)
    rows = _param_rows(tape, P, len(X))
    return np.array([values(tape, x, p)[tape.outputs] for x, p in zip(X, rows)]).reshape(len(X), tape.n_out)


def jvp(tape: TapeData, X, P, V) -> tuple[np.ndarray, np.ndarray]:
    """(Y (N, m), Y_dot (N, m, q)) for X (N, n) and V (N, n, q)."""
    X, V = np.asarray(X, dtype=float), np.asarray(V, dtype=float)
    rows = _param_rows(tape, P, len(X))
    Y = evaluate(tape, X, P)
    Y_dot = np.zeros((len(X), tape.n_out, V.shape[2]))
    for k, (x, p) in enumerate(zip(X, rows)):
        for d in range(V.shape[2]):
            Y_dot[k, :, d] = tangents(tape, x, p, V[k, :, d])[1][tape.outputs]
    return Y, Y_dot


def vjp(tape: TapeData, X, P, W) -> tuple[np.ndarray, np.ndarray]:
    """(Y (N, m), X_bar (N, n, r)) for X (N, n) and W (N, m, r)."""
    X, W = np.asarray(X, dtype=float), np.asarray(W, dtype=float)
    rows = _param_rows(tape, P, len(X))
    Y = evaluate(tape, X, P)
    X_bar = np.zeros((len(X), tape.n_in, W.shape[2]))
    for k, (x, p) in enumerate(zip(X, rows)):
        for d in range(W.shape[2]):
            X_bar[k, :, d] = adjoints(tape, x, p, W[k, :, d])[1][: tape.n_in]
    return Y, X_bar
