"""Finding where NaN and inf came from, point by point.

The kernels find the points whose outputs or gradients are not finite; the
reference interpreter then replays each such point alone and names the first
instruction that produced a non-finite value (forward), or, when every value
is finite, the first contribution partial * adjoint of the reverse sweep that
is not finite; with the line of the user's function that recorded it.

A tape's ``source`` entries are places "file:line" recorded in this process, whose code is read
(through linecache) when shown or saved, or text "file:line: code" that a tape file carried. A
place from a file is never opened: :func:`text_from_file` turns every entry a file holds into
text, so a tape file cannot make tapead read, print or hang on a path it names.
"""

from __future__ import annotations

import linecache
import re
from dataclasses import dataclass

import numpy as np

from tapead import reference
from tapead.ops import CONST, OPS, zero_skip_mul
from tapead.tape import TapeData, format_instruction, slot_name

__all__ = ["NonFinite", "diagnose_point", "source_text", "text_from_file"]

MAX_SOURCE_CHARS = 500  # a source line as shown and saved; longer ones are cut


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


_PLACE = re.compile(r"(.+):([0-9]+)", re.DOTALL)  # "file:line", as the tracer records it


def _printable(text: str) -> str:
    """One line of at most MAX_SOURCE_CHARS printable characters (no terminal escapes)."""
    if len(text) > MAX_SOURCE_CHARS:
        text = text[: MAX_SOURCE_CHARS - 3] + "..."
    return "".join(c if c.isprintable() else " " for c in text)


def source_text(entry: str) -> str:
    """``entry`` of a tape's ``source`` as text: a place recorded in this process gets its code
    ("file:line: code"); text is returned as it is."""
    place = _PLACE.fullmatch(entry)
    if place is None:
        return _printable(entry)
    code = linecache.getline(place[1], int(place[2])).strip()
    return _printable(f"{entry}: {code}" if code else entry)


def text_from_file(entry: str) -> str:
    """A ``source`` entry read from a tape file, as text that is never taken for a place to open
    (one that reads as "file:line", from an older file or a hostile one, is marked)."""
    entry = _printable(entry)
    return f"{entry} (from a tape file)" if _PLACE.fullmatch(entry) else entry


def _source(tape: TapeData, slot: int) -> str:
    if tape.source_index is None or tape.source_index[slot] < 0:
        return ""
    return source_text(tape.source[tape.source_index[slot]])


def _record(tape: TapeData, k: int, stage: str, i: int, v: np.ndarray, value: float) -> NonFinite:
    spec = OPS[tape.op[i]]
    args = reference.operand_slots(tape, i)
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
            contribution = zero_skip_mul(d, v_bar[i])
            if not np.isfinite(contribution):
                return _record(tape, k, "derivative", i, v, contribution)
    return None


def find_nonfinite(tape: TapeData, points: np.ndarray, X: np.ndarray, P: np.ndarray, p_step: int,
                   y_bar: np.ndarray) -> list[NonFinite]:
    """The reports of the given ``points`` (indices into X), those that have one."""
    found = [diagnose_point(tape, int(k), X[k], P[k * p_step], y_bar) for k in points]
    return [report for report in found if report is not None]
