"""The tape: a recorded evaluation trace as plain numpy arrays, its checker and printer.

Griewank & Walther, *Evaluating Derivatives*, section 2.2 (the evaluation
procedure). The function's inputs are v_{1-n} .. v_0 and its intermediates
v_1 .. v_l; here they are the slots of one SSA array:

* slots ``0 .. n_in-1`` hold the inputs x_1 .. x_n (printed v_{1-n} .. v_0);
* the next ``n_params`` slots hold the parameters p_1 .. p_k (constants that
  change per point and are never differentiated);
* every later slot ``i`` is the result of instruction ``i``:
  ``v[i] = OPS[op[i]](v[arg0[i]], v[arg1[i]], v[arg2[i]]; const[i])``;
* ``outputs[j]`` is the slot of y_{j+1}.

A tape is never trusted: :func:`validate` checks every invariant the kernels
rely on (they index without bounds checks) and runs after recording, after
every pass and on every load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from tapead.ops import CONST, INPUT, OPS, PARAM

__all__ = ["TapeData", "TapeError", "validate", "slot_name", "instruction_context"]

OP_DTYPE = np.dtype(np.int32)
INDEX_DTYPE = np.dtype(np.int32)
MAX_SLOTS = 2**31 - 1


class TapeError(ValueError):
    """A tape that breaks an invariant (malformed, corrupted or hostile)."""


@dataclass(frozen=True, eq=False)
class TapeData:
    """The arrays of a tape; see the module docstring for their meaning."""

    op: np.ndarray
    arg0: np.ndarray
    arg1: np.ndarray
    arg2: np.ndarray
    const: np.ndarray
    outputs: np.ndarray
    n_in: int
    n_params: int = 0
    out_shape: tuple[int, ...] = ()
    # optional: per slot, an index into ``source``, or -1. An entry is "file:line" (recorded in
    # this process: tapead.diagnose reads its code when shown) or "file:line: code" (text, as
    # tape files carry it: never a path to open)
    source: tuple[str, ...] = ()
    source_index: np.ndarray | None = None
    n_recorded: int = 0  # instructions as recorded, before optimisation (0: not known)

    @property
    def n_slots(self) -> int:
        return int(self.op.shape[0])

    @property
    def n_out(self) -> int:
        return int(self.outputs.shape[0])

    @property
    def n_ops(self) -> int:
        """Instructions after the inputs and parameters."""
        return self.n_slots - self.n_in - self.n_params

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in ("op", "arg0", "arg1", "arg2", "const", "outputs")}

    def __str__(self) -> str:
        return format_tape(self)

    def __repr__(self) -> str:
        return (f"<{type(self).__name__}: {self.n_in} inputs, {self.n_params} parameters, "
                f"{self.n_ops} instructions, outputs of shape {self.out_shape}>")


def validate(tape: TapeData) -> TapeData:
    """Check every invariant of ``tape``; raise :class:`TapeError` naming the first broken one.

    Returns the tape, so ``validate(t)`` can be used inline.
    """
    arrays = tape.arrays()
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray) or array.ndim != 1:
            raise TapeError(f"tape.{name} must be a 1-D numpy array")
        if not array.flags.c_contiguous:
            raise TapeError(f"tape.{name} must be C-contiguous")
    expected = {"op": OP_DTYPE, "const": np.dtype(np.float64)}
    for name, array in arrays.items():
        want = expected.get(name, INDEX_DTYPE)
        if array.dtype != want:
            raise TapeError(f"tape.{name} must have dtype {want}, got {array.dtype}")
    n_slots = tape.n_slots
    for name in ("arg0", "arg1", "arg2", "const"):
        if arrays[name].shape[0] != n_slots:
            raise TapeError(f"tape.{name} has {arrays[name].shape[0]} entries, tape.op has {n_slots}")
    for name in ("n_in", "n_params", "n_recorded"):
        value = getattr(tape, name)
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise TapeError(f"tape.{name} must be a non-negative integer, got {value!r}")
    if tape.n_in < 1:
        raise TapeError("a tape needs at least one input")
    n_lead = tape.n_in + tape.n_params
    if n_lead > n_slots:
        raise TapeError(f"tape has {n_slots} slots, fewer than its {n_lead} inputs and parameters")
    op = tape.op
    if np.any(op[: tape.n_in] != INPUT) or np.any(op[tape.n_in : n_lead] != PARAM):
        raise TapeError("the first slots of a tape must be its inputs, then its parameters")
    body = op[n_lead:]
    if body.size and (body.min() < CONST or body.max() >= len(OPS)):
        bad = int(np.flatnonzero((body < CONST) | (body >= len(OPS)))[0]) + n_lead
        raise TapeError(f"instruction {bad} has unknown opcode {int(op[bad])}:\n{instruction_context(tape, bad)}")
    arity = np.array([spec.arity for spec in OPS])[op]
    index = np.arange(n_slots)
    for k, name in enumerate(("arg0", "arg1", "arg2")):
        arg = arrays[name]
        used = arity > k
        bad = used & ((arg < 0) | (arg >= index))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise TapeError(
                f"instruction {i} ({OPS[op[i]].name}) reads slot {int(arg[i])} in {name}: "
                f"operands must be earlier slots:\n{instruction_context(tape, i)}"
            )
        if np.any(arg[~used] != -1):
            i = int(np.flatnonzero(~used & (arg != -1))[0])
            raise TapeError(f"instruction {i} has {name} = {int(arg[i])}, which its op does not use: must be -1:\n"
                            f"{instruction_context(tape, i)}")
    outputs = tape.outputs
    if outputs.size and (outputs.min() < 0 or outputs.max() >= n_slots):
        raise TapeError(f"tape.outputs must name slots in [0, {n_slots}), got {outputs.tolist()[:8]}")
    shape = tape.out_shape
    if not isinstance(shape, tuple) or any(not isinstance(s, int) or isinstance(s, bool) or s < 0 for s in shape):
        raise TapeError(f"tape.out_shape must be a tuple of non-negative ints, got {shape!r}")
    if math.prod(shape) != outputs.size:  # Python ints: no int64 wrap-around to a matching 0
        raise TapeError(f"tape.out_shape {shape} does not hold its {outputs.size} outputs")
    if outputs.size == 0:
        raise TapeError("a tape needs at least one output")
    where = tape.source_index
    if where is not None:
        if not isinstance(where, np.ndarray) or where.dtype != INDEX_DTYPE or where.shape != (n_slots,):
            raise TapeError(f"tape.source_index must be an int32 array of {n_slots} entries")
        if where.size and (where.min() < -1 or where.max() >= len(tape.source)):
            raise TapeError("tape.source_index points outside tape.source")
    if not all(isinstance(s, str) for s in tape.source):
        raise TapeError("tape.source must be a tuple of strings")
    return tape


# ---- printing, in the notation of docs/design.md, "Notation" -------------


def slot_name(tape: TapeData, slot: int) -> str:
    """v_{-1}, v_0 for inputs (v_{i-n} = x_i), p1.. for parameters, v1.. for intermediates."""
    if slot < tape.n_in:
        k = slot - tape.n_in + 1
        return f"v_{{{k}}}" if k < 0 else "v_0"
    if slot < tape.n_in + tape.n_params:
        return f"p{slot - tape.n_in + 1}"
    return f"v{slot - tape.n_in - tape.n_params + 1}"


def format_const(c: float) -> str:
    c = float(c)
    return str(int(c)) if c.is_integer() and abs(c) < 1e16 else repr(c)


def format_instruction(tape: TapeData, i: int) -> str:
    """The right-hand side of instruction ``i``, as in ``log v_{-1}``."""
    return _format_row(tape, i, OPS)


def _format_row(tape: TapeData, i: int, ops) -> str:
    """Instruction ``i``'s right-hand side, its opcode read through ``ops`` (code -> OpSpec or
    None); an operand outside the tape prints as ``<slot k>``."""
    spec = ops[tape.op[i]]
    if spec.code == INPUT:
        return f"x{i + 1}"
    if spec.code == PARAM:
        return f"p{i - tape.n_in + 1}"

    def operand(args: np.ndarray) -> str:
        if i >= args.shape[0]:
            return "<slot ?>"
        a = int(args[i])
        return slot_name(tape, a) if 0 <= a < tape.n_slots else f"<slot {a}>"

    names = {
        "x": operand(tape.arg0) if spec.arity > 0 else "",
        "y": operand(tape.arg1) if spec.arity > 1 else "",
        "w": operand(tape.arg2) if spec.arity > 2 else "",
        "c": format_const(tape.const[i]) if i < tape.const.shape[0] else "?",
    }
    return spec.fmt.format(**names)


def instruction_context(tape: TapeData, i: int, ops=OPS, radius: int = 2) -> str:
    """Instruction ``i`` and up to ``radius`` neighbours on each side, as ``print(tape)`` shows
    them, ``i`` marked with ``>`` and followed by its raw fields: what a :class:`TapeError`
    about instruction ``i`` shows.

    ``ops`` maps opcodes to op specs (default: the op table; while loading, a tape file's own
    op names mapped to specs, or None for one this tapead lacks). The data may be malformed
    (this runs before the arrays are checked): an opcode outside ``ops`` or mapped to None, an
    operand outside the tape or an entry the arrays lack prints raw instead.
    """
    lines = []
    for j in range(max(0, i - radius), min(tape.n_slots, i + radius + 1)):
        code = tape.op[j]
        spec = ops[code] if 0 <= code < len(ops) else None
        text = f"{slot_name(tape, j)} = " + (_format_row(tape, j, ops) if spec is not None else f"<opcode {int(code)}>")
        if j != i:
            lines.append(f"    {text}")
            continue
        fields = [f"{name} {_raw(getattr(tape, name), j)}" for name in ("op", "arg0", "arg1", "arg2", "const")]
        if spec is not None:
            fields[0] += f" ({spec.name})"
        lines.append(f"  > {text}    [{', '.join(fields)}]")
    return "\n".join(lines)


def _raw(array: np.ndarray, j: int) -> str:
    """``array[j]`` as Python prints it, or ``?`` where the array has no entry ``j``."""
    return repr(array[j].item()) if j < array.shape[0] else "?"


def output_name(j: int) -> str:
    return f"y{j + 1}"


def format_tape(tape: TapeData, limit: int = 200) -> str:
    """One line per instruction, then one per output: ``v1 = log v_{-1}`` ... ``y = v5``."""
    header = (
        f"Tape: {tape.n_in} inputs, {tape.n_params} parameters, {tape.n_ops} instructions, "
        f"{tape.n_out} outputs"
    )
    lines = [header]
    rows = range(tape.n_slots)
    if tape.n_slots > limit:
        rows = [*range(limit // 2), None, *range(tape.n_slots - limit // 2, tape.n_slots)]
    for i in rows:
        if i is None:
            lines.append(f"  ... {tape.n_slots - limit} instructions not shown ...")
            continue
        lines.append(f"  {slot_name(tape, i)} = {format_instruction(tape, i)}")
    for j, s in enumerate(tape.outputs):
        lines.append(f"  {output_name(j)} = {slot_name(tape, s)}")
    return "\n".join(lines)
