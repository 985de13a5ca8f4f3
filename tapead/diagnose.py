"""Finding where NaN and inf came from, point by point.

The kernels find the points whose outputs or gradients are not finite; the
reference interpreter then replays each such point alone and names the first
instruction that produced a non-finite value (forward), or, when every value
is finite, the first contribution partial * adjoint of the reverse sweep that
is not finite; with the line of the user's function that recorded it.
"""

from __future__ import annotations

import linecache
from dataclasses import dataclass

import numpy as np

from tapead import reference
from tapead.ops import CONST, OPS
from tapead.tape import TapeData, format_instruction, slot_name

__all__ = ["NonFinite", "diagnose_point"]


@dataclass(frozen=True)
class NonFinite:
    """Where point ``point`` first went non-finite."""

    point: int
    stage: str  # "value": v_i itself; "derivative": a partial * adjoint in the reverse sweep
    slot: int
    instruction: str  # as printed, e.g. "v3 = log v2"
    op: str
    operands: tuple[float, ...]
    value: float  # v_i for "value", the contribution for "derivative"
    source: str  # "file:line: code" of the user's function, or "" when not recorded

    def __str__(self) -> str:
        args = ", ".join(f"{a:.6g}" for a in self.operands)
        what = "value" if self.stage == "value" else "derivative contribution"
        text = f"point {self.point}: {self.instruction} gave {what} {self.value} (op {self.op} of {args})"
        return text + (f"\n    recorded at {self.source}" if self.source else "")


def _source(tape: TapeData, slot: int) -> str:
    if tape.source_index is None or tape.source_index[slot] < 0:
        return ""
    place = tape.source[tape.source_index[slot]]
    file, _, line = place.rpartition(":")
    code = linecache.getline(file, int(line)).strip() if line.isdigit() else ""
    return f"{place}: {code}" if code else place


def _record(tape: TapeData, k: int, stage: str, i: int, v: np.ndarray, value: float) -> NonFinite:
    spec = OPS[tape.op[i]]
    args = [tape.arg0[i], tape.arg1[i], tape.arg2[i]][: spec.arity]
    return NonFinite(
        point=k, stage=stage, slot=i,
        instruction=f"{slot_name(tape, i)} = {format_instruction(tape, i)}",
        op=spec.name, operands=tuple(float(v[a]) for a in args), value=float(value), source=_source(tape, i),
    )


def diagnose_point(tape: TapeData, k: int, x: np.ndarray, p: np.ndarray, y_bar: np.ndarray) -> NonFinite | None:
    """The first non-finite value of point ``k`` (inputs included), else the first non-finite
    reverse contribution for output weights ``y_bar``; None if there is neither."""
    v, v_bar = reference.adjoints(tape, x, p, y_bar)
    bad = np.flatnonzero(~np.isfinite(v))
    if bad.size:
        return _record(tape, k, "value", int(bad[0]), v, v[bad[0]])
    for i in range(tape.n_slots - 1, tape.n_in + tape.n_params - 1, -1):
        if tape.op[i] <= CONST or v_bar[i] == 0.0:
            continue
        for d in reference.local_partials(tape, v, i):
            contribution = reference.mz(d, v_bar[i])
            if not np.isfinite(contribution):
                return _record(tape, k, "derivative", i, v, contribution)
    return None
