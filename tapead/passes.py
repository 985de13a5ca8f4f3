"""Tape optimisation: passes that return a smaller tape computing the same results.

One forward pass does, per instruction and in this order (value numbering, as in
Griewank & Walther section 6.1 and every compiler's local optimizer):

* operands are renamed through what earlier instructions were replaced by;
* identities that hold for every IEEE value, derivatives included: x + (-0.0) -> x,
  x * 1 -> x, x / 1 -> x, x * (-1) -> -x, -(-x) -> x, x * x -> x**2, where(c, a, a) -> a,
  where(constant, a, b) -> a or b (but not x + 0.0 -> x: wrong at x = -0.0);
* constant folding of IEEE-exact ops (``OpSpec.exact``: numpy and the kernels agree bit for
  bit); transcendentals on constants are left to the kernels (libm, kernels/vmath.py and numpy
  may differ in the last bit);
* common subexpression elimination: an instruction equal to an earlier one (same op, same
  operands, same immediate bits; commutative ops with sorted operands) becomes that one.

Then dead code elimination keeps only what the outputs depend on, the slots are
renumbered, and an add or sub of a product by a constant read nowhere else becomes one
``addmulc`` instruction (``fuse_multiply_add``). Values are preserved bit for bit.
Derivatives are preserved to rounding: CSE merges the adjoints of equal values before they
are multiplied by a partial, so d*(a + b) replaces d*a + d*b.
"""

from __future__ import annotations

import numpy as np

from tapead.kernels.tiles import CHAIN_ADDMULC, CHAIN_END, CHAIN_LINK, CHAIN_MULC
from tapead.ops import BY_NAME, CONST, OPS
from tapead.tape import INDEX_DTYPE, OP_DTYPE, TapeData, validate

__all__ = ["optimize", "eliminate_dead_code", "fuse_multiply_add", "fuse_products", "chain_ops"]

# per opcode, the columns of the op table the pass reads (``OpSpec.uses_const`` is a regex search)
_ARITY = [s.arity for s in OPS]
_EXACT = [s.exact for s in OPS]
_COMMUTATIVE = [s.commutative for s in OPS]
_KEYED_CONST = [s.uses_const or s.code == CONST for s in OPS]  # the immediate is part of the CSE key
_NEG, _SQUARE, _MULC = BY_NAME["neg"].code, BY_NAME["square"].code, BY_NAME["mulc"].code
_ADDC, _DIVC, _MUL, _WHERE = BY_NAME["addc"].code, BY_NAME["divc"].code, BY_NAME["mul"].code, BY_NAME["where"].code
_ADD, _SUB, _ADDMULC = BY_NAME["add"].code, BY_NAME["sub"].code, BY_NAME["addmulc"].code
_MULADD, _MULADDC = BY_NAME["muladd"].code, BY_NAME["muladdc"].code


def _bits(c: float) -> int:
    """The IEEE bits of ``c`` (tells -0.0 from 0.0 and NaNs apart, unlike ==)."""
    return int(np.float64(c).view(np.int64))


_NEG_ZERO = _bits(-0.0)


def _live(tape: TapeData) -> np.ndarray:
    """Which slots the outputs depend on (the inputs and parameters always count)."""
    lead, n = tape.n_in + tape.n_params, tape.n_slots
    arity = np.array(_ARITY)[tape.op]
    # operands as lists, -1 where the op has none; entry n of ``live`` takes those -1 writes
    args = (tape.arg0, tape.arg1, tape.arg2)
    arg0, arg1, arg2 = (np.where(arity > k, arg, -1).tolist() for k, arg in enumerate(args))
    live = [True] * lead + [False] * (n - lead + 1)
    for s in tape.outputs.tolist():
        live[s] = True
    for i in range(n - 1, lead - 1, -1):
        if live[i]:
            live[arg0[i]] = live[arg1[i]] = live[arg2[i]] = True
    return np.array(live[:n])


def eliminate_dead_code(tape: TapeData) -> TapeData:
    """Keep the inputs, parameters and what the outputs depend on; renumber the slots."""
    live = _live(tape)
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
    lead, n = tape.n_in + tape.n_params, tape.n_slots
    # the merged tape, one instruction at a time; origin: the old slot each new one came from
    op, const, origin = tape.op[:lead].tolist(), [0.0] * lead, list(range(lead))
    arg0, arg1, arg2 = [-1] * lead, [-1] * lead, [-1] * lead
    seen: dict[tuple, int] = {}  # (op, operands, immediate bits) -> new slot: value numbering
    # new_slot[i]: what old slot i became; the extra last entry renames "no operand" (-1) to -1
    new_slot = list(range(lead)) + [-1] * (n - lead + 1)
    body = (tape.op, tape.arg0, tape.arg1, tape.arg2, tape.const, tape.const.view(np.int64))
    for i, code, x, y, w, c, bits in zip(range(lead, n), *(column[lead:].tolist() for column in body)):
        x, y, w = new_slot[x], new_slot[y], new_slot[w]
        # identities that hold for every IEEE value
        if code == _ADDC and bits == _NEG_ZERO or (code == _MULC or code == _DIVC) and c == 1.0:
            new_slot[i] = x  # x + (-0.0), x * 1, x / 1 -> x
            continue
        if code == _MULC and c == -1.0:
            code = _NEG  # x * (-1) -> -x
        if code == _NEG and op[x] == _NEG:
            new_slot[i] = arg0[x]  # -(-x) -> x
            continue
        if code == _MUL and x == y:
            code, y = _SQUARE, -1  # x * x -> x**2
        if code == _WHERE:
            if y == w:
                new_slot[i] = y  # where(c, a, a) -> a
                continue
            if op[x] == CONST:
                new_slot[i] = y if const[x] != 0.0 else w  # where(constant, a, b) -> a or b
                continue
        # exact constant folding (the cheap test op[x] first: most operands are not constants)
        arity = _ARITY[code]
        if _EXACT[code] and arity and op[x] == CONST and all(op[a] == CONST for a in (x, y, w)[:arity]):
            c = OPS[code].fold([const[a] for a in (x, y, w)[:arity]], c)
            code, x, y, w, bits = CONST, -1, -1, -1, _bits(c)
        elif _COMMUTATIVE[code] and y < x:
            x, y = y, x
        # common subexpressions
        key = (code, x, y, w, bits if _KEYED_CONST[code] else 0)
        slot = seen.get(key)
        if slot is None:
            slot = seen[key] = len(op)
            op.append(code)
            arg0.append(x)
            arg1.append(y)
            arg2.append(w)
            const.append(c)
            origin.append(i)
        new_slot[i] = slot
    outputs = np.array([new_slot[s] for s in tape.outputs.tolist()], dtype=INDEX_DTYPE)
    source_index = None if tape.source_index is None else tape.source_index[np.array(origin)].copy()
    merged = TapeData(
        op=np.array(op, dtype=OP_DTYPE), arg0=np.array(arg0, dtype=INDEX_DTYPE),
        arg1=np.array(arg1, dtype=INDEX_DTYPE), arg2=np.array(arg2, dtype=INDEX_DTYPE),
        const=np.array(const, dtype=np.float64), outputs=outputs, n_in=tape.n_in, n_params=tape.n_params,
        out_shape=tape.out_shape, source=tape.source, source_index=source_index,
        n_recorded=tape.n_recorded or tape.n_ops,
    )
    return fuse_multiply_add(eliminate_dead_code(merged))


def _readers(tape: TapeData) -> list[int]:
    """Per slot, how many operands and outputs read it (the extra last entry counts the -1s
    of absent operands)."""
    readers = np.zeros(tape.n_slots + 1, dtype=np.int64)
    for arg in (tape.arg0, tape.arg1, tape.arg2):
        np.add.at(readers, arg, 1)
    readers[tape.outputs] += 1
    return readers.tolist()


def fuse_multiply_add(tape: TapeData) -> TapeData:
    """a + c*y and a - c*y as one ``addmulc`` instruction where the product is a mulc that
    nothing else reads (not an output either); the mulc then dies.

    Same values as the pair: c*y is rounded, then the sum (a - c*y == a + (-c)*y in IEEE; only
    a NaN constant's sign bit may differ), and equal derivatives (in the sub case a zero tangent
    may change sign: the zero-skipping product gives +0.0 where the pair negated it). The
    sweeps read and write one row less (an MLP's dense layers and RK4's stages are made of
    these pairs).
    """
    op, arg0, arg1, arg2, const = _columns(tape)
    readers = _readers(tape)
    fused = False
    for i in range(tape.n_in + tape.n_params, tape.n_slots):
        code = op[i]
        if code != _ADD and code != _SUB:
            continue
        a, t = arg0[i], arg1[i]
        if not (op[t] == _MULC and readers[t] == 1) and code == _ADD:
            a, t = t, a  # add is commutative bit for bit
        if op[t] == _MULC and readers[t] == 1 and a != t:
            op[i], arg0[i], arg1[i] = _ADDMULC, a, arg0[t]
            const[i] = const[t] if code == _ADD else -const[t]
            fused = True
    return _rebuilt(tape, op, arg0, arg1, arg2, const) if fused else tape


def fuse_products(tape: TapeData) -> TapeData:
    """x*y + w (an add of a mul) as one ``muladd`` and x*y + c (an addc of a mul) as one
    ``muladdc`` instruction, where nothing else reads the product; the mul then dies.

    This is the form the sweeps run (tapead.layout), not the tape a user reads: the worked
    example's trace keeps its textbook instructions. Only a product computed just before its
    sum is fused, and only when the sum's other operand is neither factor: then the reverse
    sweep adds the same contributions to every adjoint in the same order, so values and
    derivatives are the pair's bit for bit (the product is rounded, then the sum: no FMA).
    Horner steps and running dot products of two traced vectors are made of these pairs.
    """
    op, arg0, arg1, arg2, const = _columns(tape)
    readers = _readers(tape)
    fused = False

    def fusable(t: int, i: int, other: int = -1) -> bool:
        return t == i - 1 and op[t] == _MUL and readers[t] == 1 and other not in (t, arg0[t], arg1[t])

    for i in range(tape.n_in + tape.n_params, tape.n_slots):
        code = op[i]
        if code == _ADDC and fusable(arg0[i], i):
            t = arg0[i]
            op[i], arg0[i], arg1[i] = _MULADDC, arg0[t], arg1[t]
            fused = True
        elif code == _ADD:
            a, t = (arg0[i], arg1[i]) if arg1[i] == i - 1 else (arg1[i], arg0[i])  # add is commutative
            if fusable(t, i, a):
                op[i], arg0[i], arg1[i], arg2[i] = _MULADD, arg0[t], arg1[t], a
                fused = True
    return _rebuilt(tape, op, arg0, arg1, arg2, const) if fused else tape


def _columns(tape: TapeData) -> tuple[list, list, list, list, list]:
    return tape.op.tolist(), tape.arg0.tolist(), tape.arg1.tolist(), tape.arg2.tolist(), tape.const.tolist()


def _rebuilt(tape: TapeData, op, arg0, arg1, arg2, const) -> TapeData:
    """``tape`` with new instruction columns, the instructions nothing reads any more removed."""
    return eliminate_dead_code(TapeData(
        op=np.array(op, dtype=OP_DTYPE), arg0=np.array(arg0, dtype=INDEX_DTYPE),
        arg1=np.array(arg1, dtype=INDEX_DTYPE), arg2=np.array(arg2, dtype=INDEX_DTYPE),
        const=np.array(const, dtype=np.float64), outputs=tape.outputs, n_in=tape.n_in, n_params=tape.n_params,
        out_shape=tape.out_shape, source=tape.source, source_index=tape.source_index, n_recorded=tape.n_recorded,
    ))


# codes the value and gradient sweeps know beyond OPS (chain_ops): a chain's first instruction,
# a mulc or an addmulc; the addmulcs inside it; its last instruction
if len(OPS) > CHAIN_MULC:  # the chain codes must stay above every op code
    raise ImportError(f"{len(OPS)} ops: the chain op codes of tapead.kernels.tiles collide with the table's")


def chain_ops(tape: TapeData, min_length: int = 3) -> np.ndarray:
    """The op codes the value and gradient sweeps run: ``tape.op`` with every dot-product
    chain marked, so that they run it as one instruction.

    A chain is a run of consecutive instructions, a mulc or an addmulc then addmulcs, each
    adding c_k * x_k to the one before it, which nothing else reads (an MLP layer's row,
    a logistic regression's w . x). The forward part runs it in one pass per four terms,
    with the same roundings in the same order; the reverse part accumulates
    c_k * (its adjoint) into each x_k's adjoint in the order the instructions would, and
    skips the copies of the running sum's adjoint. Results are bit for bit those of the
    instructions. A chain whose sum nothing reads is left alone (its skip rules differ).
    The layouts (compact_slots, reverse_flags) are those of the instructions: the sweeps
    read every x_k before the sum's row is written, and zero x_k's adjoint row as the
    instruction that read x_k would have.
    """
    lead, n = tape.n_in + tape.n_params, tape.n_slots
    op, arg0, readers = tape.op.tolist(), tape.arg0.tolist(), _readers(tape)
    chained = tape.op.copy()
    i = lead
    while i < n:
        end = i
        if op[i] == _MULC or op[i] == _ADDMULC:
            while end + 1 < n and op[end + 1] == _ADDMULC and arg0[end + 1] == end and readers[end] == 1:
                end += 1
        if end - i + 1 >= min_length and readers[end]:
            chained[i] = CHAIN_MULC if op[i] == _MULC else CHAIN_ADDMULC
            chained[i + 1:end] = CHAIN_LINK
            chained[end] = CHAIN_END
        i = end + 1
    return chained
