"""Where each sweep keeps its values and adjoints: one frozen :class:`Layout` per sweep.

A sweep's scratch holds a few rows per point (docs/design.md, "Slot layouts"): instruction i
reads rows ``args[k][i]`` and writes row ``res[i]``, rows reused once their value is dead
(compact_slots). The reverse sweeps add an adjoint layout (the forward layout's rows, walked
backwards) and per-instruction flags (reverse_flags); their value rows pin the values that the
local partials read again (reverse_reads).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from tapead import passes
from tapead.kernels.tiles import CHAIN_END, CHAIN_MULC
from tapead.ops import READS, READS_SECOND
from tapead.runtime import tile_size
from tapead.tape import INDEX_DTYPE, TapeData


def frozen(a: np.ndarray) -> np.ndarray:
    """A read-only copy of ``a``: what the kernels get of every tape array (a writable array
    would compile another signature)."""
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
        *args, res, n = compact_slots(tape, keep)
        return cls(*(frozen(a) for a in (*args, res)), int(n))

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
    """The four sweeps' layouts of one tape, and the tape they run: the tape with products
    fused into the sums that read them (passes.fuse_products), the same values and
    derivatives in fewer instructions; inputs, parameters and outputs as the tape's."""

    tape: TapeData
    primal: Layout
    tangent: Layout
    reverse: Layout
    hessian: Layout

    def sizes(self, tape: TapeData) -> dict:
        """Instructions recorded, after optimisation and as the sweeps run them, slots, the values
        the reverse sweep reads, scratch rows, bytes per point and tile of each sweep, and the
        dot-product chains."""
        rows = self.primal.values.n  # values of the forward sweeps, adjoints of the reverse one
        reverse = self.reverse.values.n + rows  # value rows reused, but those read again pinned
        hessian = self.hessian.values.n + rows
        chained, run = self.reverse.op, self.tape
        return {
            "recorded_ops": tape.n_recorded or tape.n_ops, "ops": tape.n_ops, "slots": tape.n_slots,
            "sweep_ops": run.n_ops, "values_read_by_reverse": int(reverse_reads(run).sum()),
            "rows": {"values": rows, "gradient": reverse, "hessian": hessian},
            "bytes_per_point": {"values": 8 * rows, "gradient": 8 * reverse, "jvp": f"8 * {rows} * (1 + q)",
                                "hessian": f"8 * {hessian} * (1 + q)"},
            "tile": {"values": tile_size(rows), "gradient": tile_size(reverse)},
            "chains": {"count": int(np.sum(chained >= CHAIN_END)), "ops": int(np.sum(chained >= CHAIN_MULC))},
        }

    @classmethod
    def of(cls, tape: TapeData) -> Layouts:
        fused = passes.fuse_products(tape)
        if fused is not tape:  # read-only, as the kernels get every tape array (one signature)
            tape = replace(fused, **{k: frozen(v) for k, v in vars(fused).items() if isinstance(v, np.ndarray)})
        forward = Rows.of(tape)
        chained = frozen(passes.chain_ops(tape))
        flags = frozen(reverse_flags(tape))
        reverse = Rows.of(tape, keep=reverse_reads(tape))
        hessian = Rows.of(tape, keep=reverse_reads(tape, second=True))
        return cls(tape=tape, primal=Layout(chained, forward), tangent=Layout(tape.op, forward),
                   reverse=Layout(chained, reverse, forward, flags), hessian=Layout(tape.op, hessian, forward, flags))


def compact_slots(tape: TapeData, keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                                                           np.ndarray, int]:
    """The forward sweeps' layout: value rows reused once dead (linear scan over live ranges).

    Returns (arg0, arg1, arg2, res, n_values): instruction i reads rows arg*[i] and writes row
    res[i]. A value lives from its instruction to its last reader; outputs and the slots
    where ``keep`` is true to the end. A result never takes the row of its own operand, so
    no sweep reads a row it has just written. A prototype measured forward sweeps 4.6x faster
    this way than with one row per slot on a 14k-op tape (docs/design.md, "Slot layouts").

    The adjoint of a value lives over the same range in reverse (from its last reader's
    accumulation down to its own instruction), so the reverse sweep gives adjoints these
    rows too, and keeps the values it reads (``reverse_reads``) in rows never reused.
    """
    n, lead = tape.n_slots, tape.n_in + tape.n_params
    last = last_use(tape).astype(np.int64)
    if keep is not None:
        last[keep] = n
    args = (tape.arg0, tape.arg1, tape.arg2)
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


def last_use(tape: TapeData) -> np.ndarray:
    """Per slot, the last instruction that reads it; -1 if none, n_slots for outputs."""
    last = np.full(tape.n_slots, -1, dtype=INDEX_DTYPE)
    index = np.arange(tape.n_slots, dtype=INDEX_DTYPE)
    for arg in (tape.arg0, tape.arg1, tape.arg2):
        used = arg >= 0
        np.maximum.at(last, arg[used], index[used])
    last[tape.outputs] = tape.n_slots
    return last


def reverse_reads(tape: TapeData, second: bool = False) -> np.ndarray:
    """Which slots' values the reverse sweep reads again (to compute local partials); with
    ``second``, what the Hessian sweep reads (values and tangents)."""
    reads = np.zeros(tape.n_slots, dtype=bool)
    body = np.arange(tape.n_in + tape.n_params, tape.n_slots)
    needs = (READS_SECOND if second else READS)[tape.op[body]]
    for k, arg in enumerate((tape.arg0, tape.arg1, tape.arg2)):
        reads[arg[body][needs[:, k]]] = True
    reads[body[needs[:, 3]]] = True
    return reads


def reverse_flags(tape: TapeData) -> np.ndarray:
    """Per instruction of the reverse sweep: bit k (k < 3) when operand k's adjoint is first
    accumulated here (its reused row is zeroed first, or its first contribution assigned;
    an operand read twice, as in x * x, only at its first position), bit 3 when nothing reads
    the slot (its adjoint is zero: the instruction is skipped, and an input gets a zero
    gradient)."""
    last = last_use(tape)
    index = np.arange(tape.n_slots)
    flags = np.where(last < 0, 8, 0).astype(INDEX_DTYPE)
    args = (tape.arg0, tape.arg1, tape.arg2)
    for k, arg in enumerate(args):
        first = (arg >= 0) & (last[np.maximum(arg, 0)] == index)
        for earlier in args[:k]:
            first &= arg != earlier
        flags |= np.where(first, 1 << k, 0).astype(INDEX_DTYPE)
    return flags
