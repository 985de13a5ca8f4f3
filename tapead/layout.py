"""Where each sweep keeps its values and adjoints: one frozen :class:`Layout` per sweep.

A sweep's scratch holds a few rows per point (docs/design.md, "Slot layouts"): instruction i
reads rows ``args[k][i]`` and writes row ``res[i]``, rows reused once their value is dead
(tapead.passes.compact_slots). The reverse sweeps add an adjoint layout (the forward layout's
rows, walked backwards) and per-instruction flags (tapead.passes.reverse_flags); their value
rows pin the values that the local partials read again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tapead import passes
from tapead.tape import TapeData


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class Rows:
    """Scratch rows of one sweep: instruction i reads rows arg0[i], arg1[i], arg2[i] (-1: no
    operand) and writes row res[i]; ``n`` rows per point in all."""

    arg0: np.ndarray
    arg1: np.ndarray
    arg2: np.ndarray
    res: np.ndarray
    n: int

    @classmethod
    def of(cls, tape: TapeData, keep: np.ndarray | None = None) -> Rows:
        """Value rows reused once dead, except those where ``keep`` is true."""
        *args, res, n = passes.compact_slots(tape, keep)
        return cls(*(_frozen(a) for a in (*args, res)), int(n))

    def arguments(self) -> tuple:
        return self.arg0, self.arg1, self.arg2, self.res, self.n


@dataclass(frozen=True)
class Layout:
    """Everything a sweep needs from the tape besides its constants: the op codes it runs
    (dot-product chains marked for the value and gradient sweeps), its value rows, and for a
    reverse sweep the adjoint rows and the zeroing/dead flags."""

    op: np.ndarray
    values: Rows
    adjoints: Rows | None = None
    flags: np.ndarray | None = None

    @property
    def rows(self) -> int:
        """Scratch rows per point (values and adjoints; times 1 + q with q tangent directions)."""
        return self.values.n + (self.adjoints.n if self.adjoints is not None else 0)

    def adjoint_arguments(self) -> tuple:
        """The reverse sweeps' arguments after the parameters: adjoint rows and flags."""
        return () if self.adjoints is None else (*self.adjoints.arguments(), self.flags)


@dataclass(frozen=True)
class Layouts:
    """The four sweeps' layouts of one tape."""

    primal: Layout
    tangent: Layout
    reverse: Layout
    hessian: Layout

    @classmethod
    def of(cls, tape: TapeData) -> Layouts:
        forward = Rows.of(tape)
        chained = _frozen(passes.chain_ops(tape))
        flags = _frozen(passes.reverse_flags(tape))
        reverse = Rows.of(tape, keep=passes.reverse_reads(tape))
        hessian = Rows.of(tape, keep=passes.reverse_reads(tape, second=True))
        return cls(primal=Layout(chained, forward), tangent=Layout(tape.op, forward),
                   reverse=Layout(chained, reverse, forward, flags), hessian=Layout(tape.op, hessian, forward, flags))
