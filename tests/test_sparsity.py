"""Sparsity patterns and colorings: the bitset greedy colorings against the slow, obvious ones,
their defining properties on random patterns, recovery, and the dense fallback."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tapead
from tapead import sparsity

from .helpers import assert_close, random_tapes

# ---- the slow, obvious oracles: the per-instruction pattern, the path-walking greedy colorings ----


def reference_dependencies(tape) -> list[set[int]]:
    """Per slot, the inputs it depends on through partials that are not identically zero."""
    deps = [{j} for j in range(tape.n_in)] + [set() for _ in range(tape.n_in, tape.n_slots)]
    for i in range(tape.n_in + tape.n_params, tape.n_slots):
        spec = tapead.ops.OPS[tape.op[i]]
        for a, nonzero in zip(tapead.reference.operand_slots(tape, i), spec.nonzero):
            if nonzero:
                deps[i] |= deps[a]
    return deps


def reference_hessian_pattern(tape) -> set[tuple[int, int]]:
    """Every instruction that reaches an output couples the inputs of its operands' second partials."""
    deps = reference_dependencies(tape)
    live = np.zeros(tape.n_slots, dtype=bool)
    live[tape.outputs] = True
    found = set()
    for i in range(tape.n_slots - 1, tape.n_in + tape.n_params - 1, -1):
        if live[i]:
            spec = tapead.ops.OPS[tape.op[i]]
            args = tapead.reference.operand_slots(tape, i)
            for a, nonzero in zip(args, spec.nonzero):
                live[a] |= nonzero
            for j, k in spec.nonzero_pairs:
                pairs = itertools.product(deps[args[j]], deps[args[k]])
                found |= {(int(r), int(c)) for p in pairs for r, c in (p, p[::-1])}
    return found


def _smallest_free(forbidden: set[int]) -> int:
    return next(c for c in itertools.count() if c not in forbidden)


def reference_star_colors(adjacent: list[set[int]]) -> list[int]:
    """GMP05 algorithm 4.1, largest degree first, walking the paths v-w-x-y."""
    colors = [-1] * len(adjacent)
    for v in np.argsort([-len(a) for a in adjacent], kind="stable"):
        forbidden = set()
        for w in adjacent[v]:
            if colors[w] >= 0:
                forbidden.add(colors[w])
            for x in adjacent[w] - {v}:
                if colors[x] >= 0 and (colors[w] < 0 or any(colors[y] == colors[w] for y in adjacent[x] - {w})):
                    forbidden.add(colors[x])
        colors[v] = _smallest_free(forbidden)
    return colors


def reference_column_colors(row_cols: list[set[int]], n: int) -> list[int]:
    """Largest degree first, each column the smallest color no column sharing a row holds."""
    col_rows = [{r for r, cs in enumerate(row_cols) if c in cs} for c in range(n)]
    colors = [-1] * n
    for c in np.argsort([-sum(len(row_cols[r]) for r in col_rows[c]) for c in range(n)], kind="stable"):
        colors[c] = _smallest_free({colors[k] for r in col_rows[c] for k in row_cols[r] if colors[k] >= 0})
    return colors


# ---- random patterns ----


@st.composite
def symmetric_patterns(draw, max_n=14):
    n = draw(st.integers(1, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = rng.random((n, n)) < draw(st.sampled_from([0.05, 0.15, 0.3, 0.6]))
    A |= A.T
    return n, np.nonzero(A)


@st.composite
def rectangular_patterns(draw, max_n=14):
    m, n = draw(st.integers(1, max_n)), draw(st.integers(1, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    A = rng.random((m, n)) < draw(st.sampled_from([0.05, 0.15, 0.3, 0.6]))
    A[-1, rng.integers(n)] = True  # m rows, as a Jacobian's pattern would have
    return m, n, np.nonzero(A)


def _values(pattern, shape, rng) -> np.ndarray:
    M = np.zeros(shape)
    M[pattern] = rng.uniform(1.0, 2.0, len(pattern[0]))
    return M


@given(pattern=symmetric_patterns(), seed=st.integers(0, 2**32 - 1))
def test_star_coloring_is_a_star_coloring_and_recovers_the_matrix(pattern, seed):
    n, (rows, cols) = pattern
    coloring = sparsity.star_color((rows, cols), n)
    color = coloring.colors.tolist()
    adjacent = [set() for _ in range(n)]
    for r, c in zip(rows.tolist(), cols.tolist()):
        if r != c:
            adjacent[r].add(c)
    for v, w in itertools.product(range(n), repeat=2):
        assert w not in adjacent[v] or color[v] != color[w]  # proper
    for v in range(n):  # every path on four vertices uses three colors or more
        for w in adjacent[v]:
            for x in adjacent[w] - {v}:
                for y in adjacent[x] - {v, w}:
                    assert not (color[v] == color[x] and color[w] == color[y]), (v, w, x, y)
    if not coloring.dense:
        assert color == reference_star_colors(adjacent)
    H = _values((rows, cols), (n, n), np.random.default_rng(seed))
    H = H + H.T
    B = H @ coloring.seeds  # one Hessian-vector product per color
    assert np.array_equal(B[coloring.source_row, coloring.source_col], H[rows, cols])


@given(pattern=rectangular_patterns(), seed=st.integers(0, 2**32 - 1))
def test_column_coloring_is_distance_2_and_recovers_the_matrix(pattern, seed):
    m, n, (rows, cols) = pattern
    coloring = sparsity.color_columns((rows, cols), n)
    row_cols = [set(cols[rows == r].tolist()) for r in range(m)]
    for cs in row_cols:  # columns sharing a row differ
        assert len({int(coloring.colors[c]) for c in cs}) == len(cs)
    if not coloring.dense:
        assert coloring.colors.tolist() == reference_column_colors(row_cols, n)
    J = _values((rows, cols), (m, n), np.random.default_rng(seed))
    B = J @ coloring.seeds  # one Jacobian-vector product per color
    assert np.array_equal(B[coloring.source_row, coloring.source_col], J[rows, cols])


@given(tape=random_tapes(max_inputs=6, max_ops=20))
def test_jacobian_pattern_is_the_dependency_one(tape):
    rows, cols = sparsity.jacobian_pattern(tape)
    deps = reference_dependencies(tape)
    assert list(zip(rows.tolist(), cols.tolist())) == [(r, c) for r, s in enumerate(tape.outputs.tolist())
                                                       for c in sorted(deps[s])]


@given(tape=random_tapes(max_inputs=6, max_ops=20))
def test_hessian_pattern_is_the_per_instruction_one(tape):
    rows, cols = sparsity.hessian_pattern(tape)
    assert set(zip(rows.tolist(), cols.tolist())) == reference_hessian_pattern(tape)
    assert len(rows) == len(set(zip(rows.tolist(), cols.tolist())))


@given(tape=random_tapes(max_inputs=6, max_ops=20), seed=st.integers(0, 2**32 - 1))
def test_sparse_results_equal_dense_ones_on_random_tapes(tape, seed):
    rng = np.random.default_rng(seed)
    X = rng.uniform(-2, 2, (8, tape.n_in))
    P = rng.uniform(-2, 2, (8, tape.n_params))
    args = (P,) if tape.n_params else ()
    W = rng.uniform(-2, 2, tape.n_out)  # the Hessian of sum_i W_i f_i
    J, H = tape.jacobian(X, *args, mode="forward"), tape.hessian(X, *args, W=W)
    (r, c), values = tape.sparse_jacobian(X, *args)
    finite = np.isfinite(J).all(axis=(1, 2))  # a NaN partial spreads over its compressed column
    assert_close(values[finite], J[finite][:, r, c], rtol=1e-10, atol=1e-10)
    (r, c), values = tape.sparse_hessian(X, *args, W=W)
    finite = np.isfinite(H).all(axis=(1, 2))
    scale = max(1.0, float(np.abs(H[finite]).max(initial=0.0)))
    assert_close(values[finite], H[finite][:, r, c], rtol=1e-10, atol=1e-10 * scale)


# ---- the dense fallback: each column its own color, without coloring ----


def test_a_dense_hessian_takes_the_fallback_and_still_recovers():
    n = 200  # the path-walking star coloring took minutes here
    tape = tapead.record(lambda x: np.sum(x) ** 2 + np.sum(np.sin(x) * np.sum(x)), n)
    assert tape.stats()["colors"]["hessian"] == {"nnz": n * n, "colors": n, "dense": True}
    X = np.random.default_rng(1).normal(size=(2, n))
    (r, c), values = tape.sparse_hessian(X)
    assert_close(values, tape.hessian(X)[:, r, c])


def test_a_dense_jacobian_or_a_full_row_takes_the_fallback():
    n = 200
    tape = tapead.record(lambda x: x * np.sum(x), n)
    assert tape.stats()["colors"]["jacobian"] == {"nnz": n * n, "colors": n, "dense": True}
    X = np.random.default_rng(2).normal(size=(2, n))
    (r, c), values = tape.sparse_jacobian(X)
    assert_close(values, tape.jacobian(X, mode="forward")[:, r, c])
    # one full row and a diagonal: 2 n - 1 entries of n^2, yet no coloring beats n colors
    diagonal = np.arange(1, n)
    pattern = (np.r_[np.zeros(n, int), diagonal], np.r_[np.arange(n), diagonal])
    stats = sparsity.color_columns(pattern, n).stats()
    assert stats == {"nnz": 2 * n - 1, "colors": n, "dense": True} and type(stats["dense"]) is bool


def test_nearly_dense_hessians_fall_back_and_sparse_ones_do_not():
    n = 40
    full = np.ones((n, n), dtype=bool)
    full[np.arange(n - 1), np.arange(1, n)] = full[np.arange(1, n), np.arange(n - 1)] = False  # 95% full
    assert sparsity.star_color(np.nonzero(full), n).dense
    band = np.abs(np.subtract.outer(np.arange(n), np.arange(n))) <= 1
    coloring = sparsity.star_color(np.nonzero(band), n)
    assert coloring.stats() == {"nnz": 3 * n - 2, "colors": 3, "dense": False}


@pytest.mark.parametrize("n", [0, 1])
def test_tiny_patterns(n):
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    for coloring in (sparsity.star_color(empty, n), sparsity.color_columns(empty, n)):
        assert coloring.n_colors == n and coloring.seeds.shape == (n, n)


def test_stats_report_both_colorings():
    rosen = tapead.record(lambda x: np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2), 6)
    colors = rosen.stats()["colors"]
    assert colors["hessian"] == {"nnz": 16, "colors": 3, "dense": False}  # tridiagonal: star coloring, 3 sweeps
    assert colors["jacobian"] == {"nnz": 6, "colors": 6, "dense": True}  # one full row
