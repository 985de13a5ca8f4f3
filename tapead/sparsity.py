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
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tapead.ops import OPS
from tapead.tape import TapeData

__all__ = ["Coloring", "jacobian_pattern", "hessian_pattern", "color_columns", "star_color", "to_scipy"]

_NONZERO_PARTIAL = [tuple(p.strip() != "0.0" for p in spec.partials) for spec in OPS]
_NONZERO_SECOND = [
    tuple(
        (j, k)
        for (j, k), h in zip([(j, k) for j in range(s.arity) for k in range(j, s.arity)], s.second)
        if h.strip() != "0.0"
    )
    for s in OPS
]


def _bits(mask: int):
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _operands(tape: TapeData, i: int) -> list[int]:
    return [int(tape.arg0[i]), int(tape.arg1[i]), int(tape.arg2[i])][: OPS[tape.op[i]].arity]


def _dependencies(tape: TapeData) -> list[int]:
    """deps[i]: bitset of the inputs that v_i depends on through nonzero partials."""
    deps = [1 << j for j in range(tape.n_in)] + [0] * (tape.n_slots - tape.n_in)
    for i in range(tape.n_in + tape.n_params, tape.n_slots):
        mask = 0
        for a, nonzero in zip(_operands(tape, i), _NONZERO_PARTIAL[tape.op[i]]):
            if nonzero:
                mask |= deps[a]
        deps[i] = mask
    return deps


def _pattern(row_masks: list[int]) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = [], []
    for r, mask in enumerate(row_masks):
        for c in _bits(mask):
            rows.append(r)
            cols.append(c)
    return np.array(rows, dtype=np.int64), np.array(cols, dtype=np.int64)


def jacobian_pattern(tape: TapeData) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of dy_r/dx_c that are not identically zero, row-major."""
    deps = _dependencies(tape)
    return _pattern([deps[s] for s in tape.outputs])


def hessian_pattern(tape: TapeData) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols), both triangles, of the Hessian of any weighted sum of the outputs."""
    deps = _dependencies(tape)
    live = np.zeros(tape.n_slots, dtype=bool)
    live[tape.outputs] = True
    rows = [0] * tape.n_in
    for i in range(tape.n_slots - 1, tape.n_in + tape.n_params - 1, -1):
        if not live[i]:
            continue
        args = _operands(tape, i)
        for a, nonzero in zip(args, _NONZERO_PARTIAL[tape.op[i]]):
            live[a] |= nonzero
        for j, k in _NONZERO_SECOND[tape.op[i]]:
            for r in _bits(deps[args[j]]):
                rows[r] |= deps[args[k]]
            for r in _bits(deps[args[k]]):
                rows[r] |= deps[args[j]]
    return _pattern(rows)


@dataclass(frozen=True)
class Coloring:
    """A compressed evaluation: ``seeds`` (n, n_colors) are the directions to sweep; entry
    ``(rows[k], cols[k])`` is read from the compressed result at ``[source_row[k], source_col[k]]``."""

    rows: np.ndarray
    cols: np.ndarray
    colors: np.ndarray
    n_colors: int
    seeds: np.ndarray
    source_row: np.ndarray
    source_col: np.ndarray


def _greedy_order(degree: np.ndarray) -> np.ndarray:
    return np.argsort(-degree, kind="stable")  # largest degree first


def _seeds(colors: np.ndarray, n_colors: int) -> np.ndarray:
    seeds = np.zeros((len(colors), n_colors))
    seeds[np.arange(len(colors)), colors] = 1.0
    return seeds


def _smallest_free(forbidden: set[int]) -> int:
    c = 0
    while c in forbidden:
        c += 1
    return c


def color_columns(pattern: tuple[np.ndarray, np.ndarray], n: int) -> Coloring:
    """Distance-2 coloring of the column intersection graph: columns sharing a row differ."""
    rows, cols = pattern
    row_cols: dict[int, list[int]] = {}
    col_rows: list[list[int]] = [[] for _ in range(n)]
    for r, c in zip(rows.tolist(), cols.tolist()):
        row_cols.setdefault(r, []).append(c)
        col_rows[c].append(r)
    colors = np.full(n, -1, dtype=np.int64)
    degree = np.array([sum(len(row_cols[r]) for r in col_rows[c]) for c in range(n)])
    for c in _greedy_order(degree):
        forbidden = {colors[k] for r in col_rows[c] for k in row_cols[r] if colors[k] >= 0}
        colors[c] = _smallest_free(forbidden)
    n_colors = int(colors.max()) + 1 if n else 0
    return Coloring(rows, cols, colors, n_colors, _seeds(colors, n_colors), rows, colors[cols])


def star_color(pattern: tuple[np.ndarray, np.ndarray], n: int) -> Coloring:
    """Greedy star coloring of the Hessian's adjacency graph and its direct recovery."""
    rows, cols = pattern
    adjacent: list[set[int]] = [set() for _ in range(n)]
    for r, c in zip(rows.tolist(), cols.tolist()):
        if r != c:
            adjacent[r].add(c)
    colors = np.full(n, -1, dtype=np.int64)
    for v in _greedy_order(np.array([len(a) for a in adjacent])):
        forbidden = set()
        for w in adjacent[v]:
            if colors[w] >= 0:
                forbidden.add(colors[w])
            for x in adjacent[w]:
                if x == v or colors[x] < 0:
                    continue
                if colors[w] < 0:
                    forbidden.add(colors[x])  # v and x would share a color two steps apart
                elif any(colors[y] == colors[w] for y in adjacent[x] if y != w):
                    forbidden.add(colors[x])  # v-w-x-y would be a two-colored path
        colors[v] = _smallest_free(forbidden)
    n_colors = int(colors.max()) + 1 if n else 0
    # H[i, j] = B[i, color j] when j is i's only neighbour of its color, else B[j, color i]
    source_row, source_col = rows.copy(), colors[cols].copy()
    for k, (i, j) in enumerate(zip(rows.tolist(), cols.tolist())):
        if i == j or not any(colors[u] == colors[j] for u in adjacent[i] if u != j):
            continue
        if any(colors[u] == colors[i] for u in adjacent[j] if u != i):
            raise AssertionError(f"star coloring failed at ({i}, {j})")  # cannot happen
        source_row[k], source_col[k] = j, colors[i]
    return Coloring(rows, cols, colors, n_colors, _seeds(colors, n_colors), source_row, source_col)


def to_scipy(pattern: tuple[np.ndarray, np.ndarray], values: np.ndarray, shape: tuple[int, int]):
    """One point's sparse matrix as scipy.sparse.csr_matrix (scipy is optional)."""
    try:
        import scipy.sparse
    except ImportError as error:  # pragma: no cover - scipy is installed with the test extra
        raise ImportError("to_scipy needs scipy: pip install scipy") from error
    rows, cols = pattern
    return scipy.sparse.csr_matrix((np.asarray(values, dtype=float), (rows, cols)), shape=shape)
