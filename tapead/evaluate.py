"""The evaluation methods' work: each runs sweeps of ``tapead.kernels.sweeps`` over all points,
block by block (tapead.runtime.sweep), on arguments that tapead.shapes has checked.

Arguments follow the sweeps' conventions: points X (N, n) (a stride-0 view for one x shared by
all points), parameters P with a point step ``p_step`` (1: a row per point, 0: one row for
all), seeds V (N or 1, n, q) and output weights W (N or 1, m, r) with their steps. Results are
(N, m), (N, m, q), (N, n, r), (N, n, q) arrays, or sums over the points when reduced: the
adjoint and Hessian sweeps sum each tile's points, values and Jacobians are summed per block
with numpy's pairwise sum, and tiles and blocks are added here in a fixed tree, so a sum has
the same bits whatever the thread count.
"""

from __future__ import annotations

import numpy as np

from tapead.runtime import blocks, rows, sweep, tile_size

# Directions per sweep for Jacobians and Hessians: more are split over several sweeps,
# which keeps scratch (slots x directions x tile) bounded.
MAX_DIRECTIONS = 32


def chunks(q: int, size: int = MAX_DIRECTIONS) -> list[slice]:
    return [slice(k, min(q, k + size)) for k in range(0, q, size)]


def unit(n: int, cols: slice) -> np.ndarray:
    """Seeds (1, n, q): the unit vectors of coordinates ``cols`` (a chunk of the identity)."""
    q = cols.stop - cols.start
    S = np.zeros((1, n, q))
    S[0, np.arange(cols.start, cols.stop), np.arange(q)] = 1.0
    return S


def pairwise(S: np.ndarray) -> np.ndarray:
    """The sum over axis 0 in a fixed tree (adjacent pairs, level by level): the same bits
    whatever the thread count, and rounding that grows with log2 of the number of terms."""
    while S.shape[0] > 1:
        half = S.shape[0] // 2
        paired = S[0:2 * half:2] + S[1:2 * half:2]
        S = np.concatenate([paired, S[2 * half:]]) if S.shape[0] % 2 else paired
    return S[0]


def weighted_sum(Y: np.ndarray, w) -> np.ndarray:
    """sum_k w_k Y[k] over axis 0 (w None: all 1), column by column with numpy's pairwise sum."""
    Y = Y.reshape(Y.shape[0], -1)
    return np.array([np.sum(Y[:, j] if w is None else w * Y[:, j]) for j in range(Y.shape[1])])


def _empty(out, shape: tuple[int, ...]) -> np.ndarray:
    return np.empty(shape) if out is None else out


def jacobian_mode(n: int, m: int) -> str:
    """The faster Jacobian sweep for n inputs and m outputs: reverse (m adjoint directions)
    when m < n, else forward (n tangent directions).

    bench/jacobian_mode.py measured both on 14 shapes from 1 -> 1 to 30 -> 5 and 5 -> 30, on
    tapes of 2 to 451 ops (arithmetic only, dense layers, transcendental-heavy): a reverse
    direction costs no more than a forward one, so the mode with fewer directions won or
    tied (within 10%) on every shape with n != m, whatever the op count; at n = m forward was
    3-20% faster (reverse also runs the values before its adjoints)."""
    return "reverse" if m < n else "forward"


def primal(tape, X, P, p_step, Y=None, progress=None) -> np.ndarray:
    """Values Y (N, m)."""
    layout = tape.layouts.primal
    Y = _empty(Y, (X.shape[0], tape.n_out))
    sweep("forward_primal", tape.layouts.tape, layout, tile_size(layout.rows), X, P, p_step, outputs=(Y,), progress=progress)
    return Y


def primal_sum(tape, X, P, p_step, weights, progress=None) -> np.ndarray:
    """sum_k w_k y(X[k]) (m,)."""
    parts = [weighted_sum(primal(tape, X[b], rows(P, p_step, b), p_step), None if weights is None else weights[b])
             for b in blocks(X.shape[0], progress)]
    return pairwise(np.array(parts))


def tangent(tape, X, P, p_step, V, v_step, Y=None, Y_dot=None, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Values Y (N, m) and tangents Y_dot (N, m, q) = J @ V in one sweep."""
    layout, q = tape.layouts.tangent, V.shape[2]
    Y = _empty(Y, (X.shape[0], tape.n_out))
    Y_dot = _empty(Y_dot, (X.shape[0], tape.n_out, q))
    sweep("forward_tangent", tape.layouts.tape, layout, tile_size(layout.values.n, q), X, P, p_step, (V, v_step),
          outputs=(Y, Y_dot), progress=progress)
    return Y, Y_dot


def _reverse_tile(layout, r: int) -> int:
    return tile_size(layout.values.n + r * layout.adjoints.n)


def adjoint(tape, X, P, p_step, W, w_step, Y=None, X_bar=None, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """Values Y (N, m) and adjoints X_bar (N, n, r) = J.T @ W in one sweep."""
    layout, r = tape.layouts.reverse, W.shape[2]
    Y = _empty(Y, (X.shape[0], tape.n_out))
    X_bar = _empty(X_bar, (X.shape[0], tape.n_in, r))
    sweep("reverse_adjoint", tape.layouts.tape, layout, _reverse_tile(layout, r), X, P, p_step, (W, w_step),
          outputs=(Y, X_bar), tail=(0,), progress=progress)
    return Y, X_bar


def adjoint_sum(tape, X, P, p_step, W, w_step, weights, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """(sum_k w_k y(X[k]), sum_k w_k J(X[k]).T @ W[k]): the reverse sweep sums the adjoints of
    each tile's points (kernels/tiles.py, _row_sum). Memory: one block's values and one sum
    per tile."""
    layout, r = tape.layouts.reverse, W.shape[2]
    tile = _reverse_tile(layout, r)
    ys, gs = [], []
    for block in blocks(X.shape[0], progress):
        m = block.stop - block.start
        Wb, step = rows(W, w_step, block), w_step
        if weights is not None:  # the seed of point k is w_k W[k]
            Wb, step = np.ascontiguousarray(weights[block, None, None] * Wb), 1
        t = min(tile, m)
        Y, S = np.empty((m, tape.n_out)), np.empty((-(-m // t), tape.n_in, r))
        sweep("reverse_adjoint", tape.layouts.tape, layout, t, X[block], rows(P, p_step, block), p_step, (Wb, step),
              outputs=(Y,), tail=(S, 1))
        ys.append(weighted_sum(Y, None if weights is None else weights[block]))
        gs.append(pairwise(S))
    return pairwise(np.array(ys)), pairwise(np.array(gs))


def hessian(tape, X, P, p_step, W, w_step, V, v_step, Y=None, G=None, HV=None, progress=None, reduce=False,
            weights=None, values: bool = True) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray]:
    """(y, grad L, H_L @ V) for L = W . y (V None: the identity), forward over reverse, BLOCK
    points and 32 directions at a time, so that memory beyond X and the results is bounded:
    (N, m), (N, n) (both None unless ``values``), (N, n, q). With ``reduce``: the sums over the
    points, each term weighted by ``weights`` (m,), (n,), (n, q), summed per tile in the sweep,
    then in a fixed tree."""
    layout = tape.layouts.hessian
    n, N = tape.n_in, X.shape[0]
    q = n if V is None else V.shape[2]
    if not reduce:
        Y, G, HV = _values(Y, values, (N, tape.n_out)), _values(G, values, (N, n)), _empty(HV, (N, n, q))
    sums = []
    for block in blocks(N, progress):
        Xb, Pb = X[block], rows(P, p_step, block)
        m = Xb.shape[0]
        Wb, ws = rows(W, w_step, block), w_step
        if weights is not None:  # L_k = w_k W[k] . y
            Wb, ws = np.ascontiguousarray(weights[block, None] * Wb), 1
        Yb, Gb = _block_rows(None if reduce else Y, block, (tape.n_out,)), _block_rows(G, block, (n,))
        H_sum = np.empty((n, q))
        for cols in chunks(q):
            if V is None:
                Vc, step = unit(n, cols), 0
            else:
                Vc, step = np.ascontiguousarray(rows(V, v_step, block)[:, :, cols]), v_step
            tile = min(tile_size(layout.rows * (1 + Vc.shape[2]), minimum=16), m)  # values, adjoints, tangents
            whole = cols == slice(0, q)
            if reduce:  # one row of sums per tile
                n_tiles = -(-m // tile)
                Gt, Ht = np.empty((n_tiles, n)), np.empty((n_tiles, n, Vc.shape[2]))
                outputs, tail = (Yb,), (Gt, Ht, 1)
            else:
                Gt, Ht = Gb, HV[block] if whole else np.empty((m, n, Vc.shape[2]))
                outputs, tail = (Yb, Gt, Ht), (0,)
            sweep("reverse_hessian", tape.layouts.tape, layout, tile, Xb, Pb, p_step, (Wb, ws), (Vc, step),
                  outputs=outputs, tail=tail)
            if reduce:
                H_sum[:, cols] = pairwise(Ht)
            elif not whole:
                HV[block, :, cols] = Ht
        if reduce:
            sums.append((weighted_sum(Yb, None if weights is None else weights[block]), pairwise(Gt), H_sum))
    if reduce:
        return tuple(pairwise(np.array(part)) for part in zip(*sums))
    return Y, G, HV


def _values(Y, values: bool, shape: tuple[int, ...]) -> np.ndarray | None:
    """The values' array: the caller's, a new one, or None when only derivatives are asked for
    (each block then writes its values to a block-sized temporary)."""
    return _empty(Y, shape) if values else None


def _block_rows(Y, block: slice, shape: tuple[int, ...]) -> np.ndarray:
    return np.empty((block.stop - block.start, *shape)) if Y is None else Y[block]


def jacobian(tape, X, P, p_step, mode: str, Y=None, J=None, progress=None,
             values: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """Values (N, m) (None unless ``values``) and Jacobians (N, m, n): tangent sweeps of unit
    directions (``mode`` "forward") or adjoint sweeps of unit output weights ("reverse"), 32
    at a time."""
    n, m, N = tape.n_in, tape.n_out, X.shape[0]
    Y, J = _values(Y, values, (N, m)), _empty(J, (N, m, n))
    for block in blocks(N, progress):
        Xb, Pb, Yb = X[block], rows(P, p_step, block), _block_rows(Y, block, (m,))
        if mode == "forward" and n <= MAX_DIRECTIONS:  # one sweep writes the block's Jacobians in place
            tangent(tape, Xb, Pb, p_step, unit(n, slice(0, n)), 0, Yb, J[block])
        elif mode == "forward":
            for cols in chunks(n):
                J[block, :, cols] = tangent(tape, Xb, Pb, p_step, unit(n, cols), 0, Yb)[1]
        else:
            for outs in chunks(m):
                J[block, outs, :] = adjoint(tape, Xb, Pb, p_step, unit(m, outs), 0, Yb)[1].transpose(0, 2, 1)
    return Y, J


def jacobian_sum(tape, X, P, p_step, mode: str, weights, progress=None) -> tuple[np.ndarray, np.ndarray]:
    """sum_k w_k y(X[k]) (m,) and sum_k w_k J(X[k]) (m, n), block by block."""
    parts = []
    for b in blocks(X.shape[0], progress):
        w = None if weights is None else weights[b]
        Y, J = jacobian(tape, X[b], rows(P, p_step, b), p_step, mode)
        parts.append((weighted_sum(Y, w), weighted_sum(J, w)))
    y, J = (pairwise(np.array(part)) for part in zip(*parts))
    return y, J.reshape(tape.n_out, tape.n_in)


def sparse_jacobian(tape, coloring, X, P, p_step, progress=None) -> np.ndarray:
    """The Jacobians' structural nonzeros (N, nnz): one tangent direction per color."""
    values = np.empty((X.shape[0], coloring.rows.size))
    for block in blocks(X.shape[0], progress):
        B = np.empty((block.stop - block.start, tape.n_out, coloring.n_colors))
        for cols in chunks(coloring.n_colors):
            seeds = coloring.seed_columns(cols)[None]
            B[:, :, cols] = tangent(tape, X[block], rows(P, p_step, block), p_step, seeds, 0)[1]
        values[block] = B[:, coloring.source_row, coloring.source_col]
    return values


def sparse_hessian(tape, coloring, X, P, p_step, W, w_step, progress=None) -> np.ndarray:
    """The Hessians' structural nonzeros (N, nnz): star-colored forward-over-reverse sweeps."""
    values = np.empty((X.shape[0], coloring.rows.size))
    for block in blocks(X.shape[0], progress):
        seeds = None if coloring.dense else coloring.seeds[None]  # None: the identity, a chunk at a time
        B = hessian(tape, X[block], rows(P, p_step, block), p_step, rows(W, w_step, block), w_step, seeds, 0,
                    values=False)[2]
        values[block] = B[:, coloring.source_row, coloring.source_col]
    return values
