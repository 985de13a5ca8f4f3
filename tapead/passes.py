"""Tape optimisation: passes that return a smaller tape computing the same results.

One forward pass does, per instruction and in this order (value numbering, as in
Griewank & Walther section 6.1 and every compiler's local optimizer):

* operands are renamed through what earlier instructions were replaced by;
* identities that hold for every IEEE value, derivatives included: x + (-0.0) -> x,
  x * 1 -> x, x / 1 -> x, x * (-1) -> -x, -(-x) -> x, x * x -> x**2, where(c, a, a) -> a,
  where(constant, a, b) -> a or b (but not x + 0.0 -> x: wrong at x = -0.0);
* constant folding of IEEE-exact ops (``OpSpec.exact``: numpy and the kernels agree bit for
  bit); transcendentals on constants are left to the kernels, which evaluate them with libm;
* common subexpression elimination: an instruction equal to an earlier one (same op, same
  operands, same immediate bits; commutative ops with sorted operands) becomes that one.

Then dead code elimination keeps only what the outputs depend on, and the slots are
renumbered. Values are preserved bit for bit. Derivatives are preserved to rounding: CSE
merges the adjoints of equal values before they are multiplied by a partial, so
d*(a + b) replaces d*a + d*b.
"""

from __future__ import annotations

import numpy as np

from tapead.ops import BY_NAME, CONST, OPS, numpy_function
from tapead.tape import INDEX_DTYPE, OP_DTYPE, TapeData, validate

__all__ = ["optimize", "eliminate_dead_code"]

_PRIMAL = [numpy_function(s.primal) for s in OPS]
_NEG, _SQUARE, _MULC = BY_NAME["neg"].code, BY_NAME["square"].code, BY_NAME["mulc"].code
_ADDC, _DIVC, _MUL, _WHERE = BY_NAME["addc"].code, BY_NAME["divc"].code, BY_NAME["mul"].code, BY_NAME["where"].code


def _bits(c: float) -> bytes:
    return np.float64(c).tobytes()


class _Builder:
    """A new tape, instruction by instruction, with value numbering."""

    def __init__(self, tape: TapeData) -> None:
        lead = tape.n_in + tape.n_params
        self.op = tape.op[:lead].tolist()
        self.args = [(-1, -1, -1)] * lead
        self.const = [0.0] * lead
        self.origin = list(range(lead))  # the old slot each new instruction came from
        self.seen: dict[tuple, int] = {}

    def constant_value(self, slot: int) -> float | None:
        return self.const[slot] if self.op[slot] == CONST else None

    def emit(self, code: int, args: tuple[int, ...], c: float, origin: int) -> int:
        spec = OPS[code]
        if spec.commutative:
            args = tuple(sorted(args))
        key = (code, args, _bits(c) if spec.uses_const or code == CONST else b"")
        slot = self.seen.get(key)
        if slot is None:
            slot = self.seen[key] = len(self.op)
            self.op.append(code)
            self.args.append(tuple(args) + (-1,) * (3 - len(args)))
            self.const.append(float(c))
            self.origin.append(origin)
        return slot


def _simplify(b: _Builder, code: int, args: tuple[int, ...], c: float, origin: int) -> int:
    """The new slot for instruction (code, args, c) after identities and folding."""
    spec = OPS[code]
    if code == _ADDC and _bits(c) == _bits(-0.0):
        return args[0]
    if code in (_MULC, _DIVC) and c == 1.0:
        return args[0]
    if code == _MULC and c == -1.0:
        code = _NEG
    if code == _NEG and b.op[args[0]] == _NEG:
        return b.args[args[0]][0]
    if code == _MUL and args[0] == args[1]:
        code, args = _SQUARE, args[:1]
    if code == _WHERE:
        if args[1] == args[2]:
            return args[1]
        condition = b.constant_value(args[0])
        if condition is not None:
            return args[1] if condition != 0.0 else args[2]
    constants = [b.constant_value(a) for a in args]
    if spec.exact and args and all(v is not None for v in constants):
        operands = [np.float64(v) for v in constants] + [None] * (3 - len(args))
        with np.errstate(all="ignore"):
            value = float(_PRIMAL[code](*operands, np.float64(c), None))
        return b.emit(CONST, (), value, origin)
    return b.emit(code, args, c, origin)


def eliminate_dead_code(tape: TapeData) -> TapeData:
    """Keep the inputs, parameters and what the outputs depend on; renumber the slots."""
    lead = tape.n_in + tape.n_params
    live = np.zeros(tape.n_slots, dtype=bool)
    live[:lead] = True
    live[tape.outputs] = True
    for i in range(tape.n_slots - 1, lead - 1, -1):
        if live[i]:
            for a in (tape.arg0[i], tape.arg1[i], tape.arg2[i])[: OPS[tape.op[i]].arity]:
                live[a] = True
    new_index = np.cumsum(live) - 1
    remap = np.where(live, new_index, -1).astype(INDEX_DTYPE)

    def renumber(arg: np.ndarray) -> np.ndarray:
        kept = arg[live]
        return np.where(kept >= 0, remap[np.maximum(kept, 0)], -1).astype(INDEX_DTYPE)

    return validate(TapeData(
        op=tape.op[live].copy(), arg0=renumber(tape.arg0), arg1=renumber(tape.arg1), arg2=renumber(tape.arg2),
        const=tape.const[live].copy(), outputs=remap[tape.outputs].astype(INDEX_DTYPE), n_in=tape.n_in,
        n_params=tape.n_params, out_shape=tape.out_shape, source=tape.source,
        source_index=None if tape.source_index is None else tape.source_index[live].copy(),
        n_recorded=tape.n_recorded,
    ))


def optimize(tape: TapeData) -> TapeData:
    """Identities, constant folding and CSE in one pass, then dead code elimination.

    Examples
    --------
    >>> import numpy as np, tapead
    >>> tape = tapead.record(lambda x: np.sin(x[0] * x[1]) + np.sin(x[1] * x[0]) * (2.0 - 1.0), 2,
    ...                      optimize=False)
    >>> tape.n_ops, tapead.optimize(tape).n_ops
    (5, 3)
    """
    validate(tape)
    b = _Builder(tape)
    new_slot = list(range(tape.n_in + tape.n_params))
    for i in range(tape.n_in + tape.n_params, tape.n_slots):
        code = int(tape.op[i])
        args = tuple(new_slot[a] for a in (tape.arg0[i], tape.arg1[i], tape.arg2[i])[: OPS[code].arity])
        new_slot.append(_simplify(b, code, args, float(tape.const[i]), i))
    index = np.array(b.args, dtype=INDEX_DTYPE).reshape(-1, 3)
    source_index = None if tape.source_index is None else tape.source_index[np.array(b.origin)].copy()
    merged = TapeData(
        op=np.array(b.op, dtype=OP_DTYPE), arg0=index[:, 0].copy(), arg1=index[:, 1].copy(),
        arg2=index[:, 2].copy(), const=np.array(b.const), outputs=np.array(
            [new_slot[s] for s in tape.outputs], dtype=INDEX_DTYPE),
        n_in=tape.n_in, n_params=tape.n_params, out_shape=tape.out_shape, source=tape.source,
        source_index=source_index, n_recorded=tape.n_recorded or tape.n_ops,
    )
    return eliminate_dead_code(merged)


def compact_slots(tape: TapeData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """The forward sweeps' layout: value rows reused once dead (linear scan over live ranges).

    Returns (arg0, arg1, arg2, res, n_values): instruction i reads rows arg*[i] and writes row
    res[i]. A value lives from its instruction to its last reader; outputs to the end. A
    result never takes the row of its own operand, so no sweep reads a row it has just
    written. DESIGN.md section 6 measured 4.6x on forward sweeps of a 14k-op tape.
    """
    n, lead = tape.n_slots, tape.n_in + tape.n_params
    last = np.full(n, -1, dtype=np.int64)
    index = np.arange(n)
    args = (tape.arg0, tape.arg1, tape.arg2)
    for arg in args:
        used = arg >= 0
        np.maximum.at(last, arg[used], index[used])
    last[tape.outputs] = n
    res = np.empty(n, dtype=INDEX_DTYPE)
    res[:lead] = np.arange(lead)
    free: list[int] = []
    n_values = lead
    expiring: dict[int, list[int]] = {}
    for j in range(lead):
        expiring.setdefault(max(int(last[j]), j), []).append(j)
    for i in range(lead, n):
        if free:
            res[i] = free.pop()
        else:
            res[i] = n_values
            n_values += 1
        expiring.setdefault(max(int(last[i]), i), []).append(i)
        free += [int(res[j]) for j in expiring.pop(i, ())]  # rows whose values die here
    renamed = [np.where(arg >= 0, res[np.maximum(arg, 0)], -1).astype(INDEX_DTYPE) for arg in args]
    return (*renamed, res, max(n_values, 1))
