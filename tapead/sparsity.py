"""Sparsity patterns of Jacobians and Hessians from the tape alone, and the colorings that
compress them (Griewank & Walther, chapters 7 and 8; Gebremedhin, Manne & Pothen, "What color
is your Jacobian?", SIAM Review 47, 2005).

* Jacobian pattern: forward propagation of each value's set of input dependencies (bitsets),
  across the edges whose local partial is not identically zero.
* Hessian pattern: every instruction that reaches an output and has a nonzero second partial
  d^2 v_i / dv_a dv_b couples the dependencies of a with those of b (nonlinear interactions).
* Jacobian: greedy distance-2 (column intersection) coloring, largest degree first; any two
  columns sharing a row get different colors, so one tangent per color recovers J directly.
* Hessian: greedy star coloring (GMP05 algorithm 4.1), largest degree first: a proper coloring
  in which every path on four vertices uses at least three colors, so each entry is read
  directly from one of two compressed columns; an arrowhead needs 2 colors, not n.

Sets of inputs, rows and vertices are Python ints used as bitsets, so one union or test costs
a pass over n / 30 machine digits in C: both colorings take a few such operations per nonzero
and per color tried, O(nnz + n * colors) in all, where walking neighbours of neighbours took
O(n^4) on a dense Hessian. A pattern at least ``DENSE`` full (a Jacobian row that wide, which
alone needs that many colors) is not colored at all: each column gets its own color.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from tapead.ops import OPS
from tapead.reference import operand_slots
from tapead.tape import TapeData

__all__ = ["Coloring", "jacobian_pattern", "hessian_pattern", "color_columns", "star_color", "to_scipy"]

# per opcode: which partials are not identically zero, and the operand pairs whose second partial is not
_NONZERO_PARTIAL = [spec.nonzero for spec in OPS]
_NONZERO_SECOND = [spec.nonzero_pairs for spec in OPS]


def _bits(mask: int) -> list[int]:
    """The positions of a bitset's set bits, ascending."""
    if mask.bit_count() > 32:  # many: one pass in C
        data = np.frombuffer(mask.to_bytes((mask.bit_length() + 7) // 8, "little"), dtype=np.uint8)
        return np.flatnonzero(np.unpackbits(data, bitorder="little")).tolist()
    found = []  # few: peel off the lowest, one at a time
    while mask:
        low = mask & -mask
        found.append(low.bit_length() - 1)
        mask ^= low
    return found


def _dependencies(tape: TapeData) -> list[int]:
    """deps[i]: bitset of the inputs that v_i depends on through nonzero partials."""
    deps = [1 << j for j in range(tape.n_in)] + [0] * (tape.n_slots - tape.n_in)
    for i in range(tape.n_in + tape.n_params, tape.n_slots):
        mask = 0
        for a, nonzero in zip(operand_slots(tape, i), _NONZERO_PARTIAL[tape.op[i]]):
            if nonzero:
                mask |= deps[a]
        deps[i] = mask
    return deps


def _pattern(row_masks: list[int]) -> tuple[np.ndarray, np.ndarray]:
    cols = [_bits(mask) for mask in row_masks]
    rows = np.repeat(np.arange(len(cols), dtype=np.int64), [len(c) for c in cols])
    return rows, np.fromiter(itertools.chain.from_iterable(cols), dtype=np.int64, count=len(rows))


def jacobian_pattern(tape: TapeData) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of dy_r/dx_c that are not identically zero, row-major."""
    deps = _dependencies(tape)
    return _pattern([deps[s] for s in tape.outputs])


def hessian_pattern(tape: TapeData) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols), both triangles, of the Hessian of any weighted sum of the outputs."""
    deps = _dependencies(tape)
    live = np.zeros(tape.n_slots, dtype=bool)
    live[tape.outputs] = True
    # a second partial couples every input of deps[a] with every input of deps[b]: collected per
    # operand slot first (x_i * s, i = 1..n, meet s n times), then spread over the rows once
    partners = [0] * tape.n_slots
    for i in range(tape.n_slots - 1, tape.n_in + tape.n_params - 1, -1):
        if not live[i]:
            continue
        args = operand_slots(tape, i)
        for a, nonzero in zip(args, _NONZERO_PARTIAL[tape.op[i]]):
            live[a] |= nonzero
        for j, k in _NONZERO_SECOND[tape.op[i]]:
            a, b = args[j], args[k]
            partners[a] |= deps[b]
            partners[b] |= deps[a]
    rows = [0] * tape.n_in
    for a, partner in enumerate(partners):
        if partner:
            for r in _bits(deps[a]):
                rows[r] |= partner
    return _pattern(rows)


DENSE = 0.9  # a pattern this full leaves a coloring almost nothing to save: each column its own color


@dataclass(frozen=True)
class Coloring:
    """A compressed evaluation: ``seeds`` (n, n_colors) are the directions to sweep; entry
    ``(rows[k], cols[k])`` is read from the compressed result at ``[source_row[k], source_col[k]]``.
    ``dense``: the pattern was (nearly) dense, and every column got its own color."""

    rows: np.ndarray
    cols: np.ndarray
    colors: np.ndarray
    n_colors: int
    source_row: np.ndarray
    source_col: np.ndarray
    dense: bool = False

    @property
    def seeds(self) -> np.ndarray:
        """(n, n_colors): column j of the directions is the sum of the unit vectors of color j."""
        return self.seed_columns(slice(0, self.n_colors))

    def seed_columns(self, cols: slice) -> np.ndarray:
        """The directions of colors ``cols`` only, (n, len): sweeps take them a chunk at a time,
        so a dense fallback of n colors never makes an n x n matrix."""
        start, stop = cols.start, min(cols.stop, self.n_colors)
        seeds = np.zeros((len(self.colors), stop - start))
        mine = (self.colors >= start) & (self.colors < stop)
        seeds[np.flatnonzero(mine), self.colors[mine] - start] = 1.0
        return seeds

    def stats(self) -> dict:
        """Structural nonzeros, colors (sweeps or directions) and whether the dense fallback was taken."""
        return {"nnz": len(self.rows), "colors": self.n_colors, "dense": self.dense}


def _greedy_order(degree: np.ndarray) -> np.ndarray:
    return np.argsort(-degree, kind="stable")  # largest degree first


def _masks(major: np.ndarray, minor: np.ndarray, n: int) -> tuple[list[int], list[list[int]]]:
    """Per major index: the bitset of its minor indices, and their list."""
    masks, lists = [0] * n, [[] for _ in range(n)]
    for a, b in zip(major.tolist(), minor.tolist()):
        masks[a] |= 1 << b
        lists[a].append(b)
    return masks, lists


def _first_free(forbidden: int, classes: list[int]) -> int:
    """The smallest color whose class (bitset of the vertices holding it) misses ``forbidden``;
    ``len(classes)`` when none does."""
    k = 0
    while k < len(classes) and forbidden & classes[k]:
        k += 1
    return k


def _bool_rows(masks: list[int], n: int) -> np.ndarray:
    """Bitsets as the rows of a boolean (len(masks), n) array."""
    data = b"".join(m.to_bytes((n + 7) // 8, "little") for m in masks)
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")
    return bits.reshape(len(masks), -1)[:, :n].astype(bool)


def color_columns(pattern: tuple[np.ndarray, np.ndarray], n: int) -> Coloring:
    """Distance-2 coloring of the column intersection graph: columns sharing a row differ.

    Bitsets: a column's conflicts are the union of its rows, a color is free when its class
    misses them, so a column costs one OR per row and one AND per color tried.
    """
    rows, cols = pattern
    n_rows = int(rows.max()) + 1 if len(rows) else 0
    width = np.bincount(rows, minlength=n_rows)
    dense = bool(len(rows)) and bool(width.max() >= DENSE * n)  # a row this wide needs as many colors
    if dense:
        colors = np.arange(n, dtype=np.int64)
    else:
        row_cols = _masks(rows, cols, n_rows)[0]
        col_rows = _masks(cols, rows, n)[1]
        colors = np.full(n, -1, dtype=np.int64)
        classes: list[int] = []
        for c in _greedy_order(np.bincount(cols, weights=width[rows], minlength=n)).tolist():
            conflicts = 0
            for r in col_rows[c]:
                conflicts |= row_cols[r]
            colors[c] = k = _first_free(conflicts, classes)
            if k == len(classes):
                classes.append(0)
            classes[k] |= 1 << c
    n_colors = int(colors.max()) + 1 if n else 0
    return Coloring(rows, cols, colors, n_colors, rows, colors[cols], dense)


def star_color(pattern: tuple[np.ndarray, np.ndarray], n: int) -> Coloring:
    """Greedy star coloring of the (symmetric) Hessian pattern's adjacency graph and its direct recovery.

    Bitsets per vertex (neighbours) and per color (its class; the vertices with at least one,
    and at least two, neighbours of that color), so a vertex costs one OR per neighbour and one
    AND per color tried instead of a walk over paths of three edges.
    """
    rows, cols = pattern
    off = rows != cols
    dense = bool(len(rows) >= DENSE * n * n)
    if dense:
        colors = np.arange(n, dtype=np.int64)
    else:
        adjacent, neighbours = _masks(rows[off], cols[off], n)
        color = [-1] * n
        classes: list[int] = []
        once: list[int] = []  # per color: the vertices with a neighbour of that color
        twice: list[int] = []  # ... with two or more
        for v in _greedy_order(np.array([m.bit_count() for m in adjacent])).tolist():
            forbidden = adjacent[v]  # a neighbour's color
            for w in neighbours[v]:
                j = color[w]
                # uncolored w: v's color would meet x's two steps apart, at the ends of v-w-x;
                # colored w: x's color would close v-w-x-y on two colors, y another j-neighbour of x
                forbidden |= adjacent[w] if j < 0 else adjacent[w] & twice[j]
            color[v] = k = _first_free(forbidden, classes)
            if k == len(classes):
                classes.append(0)
                once.append(0)
                twice.append(0)
            classes[k] |= 1 << v
            twice[k] |= once[k] & adjacent[v]
            once[k] |= adjacent[v]
        colors = np.array(color, dtype=np.int64)
    n_colors = int(colors.max()) + 1 if n else 0
    source_row, source_col = rows.copy(), colors[cols]
    if not dense and n_colors:
        # H[i, j] = B[i, color j] unless i has another neighbour of j's color; then B[j, color i]
        has_two = _bool_rows(twice, n)  # [k, i]: i has two or more neighbours of color k
        swap = off & has_two[colors[cols], rows]
        if np.any(has_two[colors[rows[swap]], cols[swap]]):
            raise AssertionError("star coloring failed")  # cannot happen
        source_row[swap], source_col[swap] = cols[swap], colors[rows[swap]]
    return Coloring(rows, cols, colors, n_colors, source_row, source_col, dense)


def to_scipy(pattern: tuple[np.ndarray, np.ndarray], values: np.ndarray, shape: tuple[int, int]):
    """One point's sparse matrix as scipy.sparse.csr_matrix (scipy is optional)."""
    try:
        import scipy.sparse
    except ImportError as error:  # pragma: no cover - scipy is installed with the test extra
        raise ImportError("to_scipy needs scipy: pip install scipy") from error
    rows, cols = pattern
    return scipy.sparse.csr_matrix((np.asarray(values, dtype=float), (rows, cols)), shape=shape)
