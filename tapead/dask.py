"""Evaluation over dask arrays of points: lazily, chunk by chunk, on any dask scheduler.

Optional: ``pip install "tapead[dask]"``. The points ``X`` are a dask array (N, n) chunked
along the point axis (the input axis is made one chunk). The tape enters the graph once,
as a single task, so a distributed cluster ships it (through the tape's pickle-free bytes)
once per worker, not once per chunk.

Examples
--------
>>> import numpy as np, dask.array as da, tapead, tapead.dask
>>> tape = tapead.record(lambda x: np.log(x[0]) + x[0] * x[1] - np.sin(x[1]), 2)
>>> X = da.from_array(np.tile([2.0, 5.0], (10, 1)), chunks=(4, 2))
>>> tapead.dask.gradient(tape, X).compute()[0].tolist()
[5.5, 1.7163378145367738]

With ``reduce="sum"`` (or ``"mean"``, optional ``weights``) the result is the sum over the
points instead: each chunk's sum is computed where the chunk lives (inside the sweeps), and
the client adds the chunks' sums in a fixed tree and returns numpy results. One x (n,) with
parameters P as a dask array (N, k) evaluates x at every row of P: a likelihood over
observations larger than one machine's memory.

>>> nll = tapead.record(lambda th, obs: (obs[0] - th[0]) ** 2, 1, n_params=1)
>>> obs = da.from_array(np.arange(6.0).reshape(6, 1), chunks=(2, 1))
>>> tapead.dask.value_and_gradient(nll, np.array([1.0]), obs, reduce="sum")
(31.0, array([-18.]))
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np

__all__ = ["values", "gradient", "value_and_gradient", "hvp", "jvp", "jacobian"]


def _prepare(tape, X, P):
    if not isinstance(X, da.Array) or X.ndim != 2 or X.shape[1] != tape.n_in:
        raise ValueError(f"X must be a dask array of shape (N, {tape.n_in})")
    X = X.rechunk({1: -1})
    args = []
    if tape.n_params:
        if P is None:
            raise TypeError(f"this tape has {tape.n_params} parameters: pass P")
        if isinstance(P, da.Array):
            args.append((P.rechunk({0: X.chunks[0], 1: -1}), "ij"))
        else:
            args.append((np.asarray(P, dtype=float), None))
    return X, args


def _blockwise(method, tape, X, P, tail: tuple[int, ...], **kwargs):
    """map tape.method (a name, or a function of (tape, x, *p)) over the point chunks; results
    have shape (N, *tail)."""
    X, params = _prepare(tape, X, P)
    shared = dask.delayed(tape, pure=True)  # one task: the tape travels once per worker
    index = "i" + "".join(chr(ord("k") + d) for d in range(len(tail)))
    new_axes = {index[1 + d]: size for d, size in enumerate(tail)}

    def run(x, tape, *p):
        if callable(method):
            return method(tape, x, *p, **kwargs)
        return getattr(tape, method)(x, *p, **kwargs)

    args = [X, "ij", shared, None]
    for array, ind in params:
        args += [array, ind]
    meta = np.empty((0,) * len(index))  # known: do not call run to find out
    return da.blockwise(run, index, *args, new_axes=new_axes, concatenate=True, dtype=np.float64, meta=meta)


def _stacked(tape, x, *p):
    """A chunk's values and gradients as one array: a dask block returns one array."""
    y, g = tape.value_and_gradient(x, *p)
    return np.column_stack([y, g])


def _tangent(tape, x, *p, V):
    return tape.jvp(x, *p, V)[1]


def _chunk_sum(tape, method, x, p, w, extra):
    """(the chunk's weight, its sums): one chunk's reduction, run where the chunk lives."""
    sums = getattr(tape, method)(x, *p, *extra, reduce="sum", weights=w)
    n_rows = (p[0] if p else x).shape[0]
    return (float(n_rows) if w is None else float(np.sum(w))), sums


def _reduce(method, tape, X, P, reduce, weights, *extra):
    """sum (or mean) over the points of ``tape.method``: per chunk on the workers, then the
    chunks' sums added on the client in a fixed tree (the same bits for the same chunks)."""
    from tapead.evaluate import pairwise as _pairwise

    if reduce not in ("sum", "mean"):
        raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
    rows = X if isinstance(X, da.Array) else P
    if not isinstance(rows, da.Array) or rows.ndim != 2:
        raise ValueError("reduce= sums over the rows of a dask array: pass X (N, n), or one x (n,) and P (N, k), "
                         "as dask arrays")
    chunks = rows.chunks[0]

    def pieces(A, name):
        if A is None:
            return [None] * len(chunks)
        if not isinstance(A, da.Array):
            A = da.from_array(np.asarray(A, dtype=float), chunks=(chunks,) + tuple((s,) for s in np.shape(A)[1:]))
        elif A.shape[0] != rows.shape[0]:
            raise ValueError(f"{name} must have {rows.shape[0]} rows, like the points, got shape {A.shape}")
        return list(A.rechunk((chunks,) + tuple((s,) for s in A.shape[1:])).to_delayed().ravel())

    xs = pieces(X, "X") if isinstance(X, da.Array) else [np.asarray(X, dtype=float)] * len(chunks)
    ps = pieces(P, "P") if tape.n_params else [None] * len(chunks)
    ws = pieces(weights, "weights")
    shared = dask.delayed(tape, pure=True)
    parts = dask.compute(*[dask.delayed(_chunk_sum)(shared, method, x, () if p is None else (p,), w, extra)
                           for x, p, w in zip(xs, ps, ws)])
    total_weight = sum(weight for weight, _ in parts)
    results = [sums if isinstance(sums, tuple) else (sums,) for _, sums in parts]
    combined = tuple(_pairwise(np.array([r[j] for r in results])) for j in range(len(results[0])))
    if reduce == "mean":
        combined = tuple(c / total_weight for c in combined)
    return combined if len(combined) > 1 else combined[0]


def values(tape, X, P=None, reduce=None, weights=None):
    """Lazy ``tape(X)``: (N, *out_shape); with ``reduce``, their sum or mean (computed)."""
    if reduce is not None:
        total = _reduce("__call__", tape, X, P, reduce, weights)
        return total if tape.out_shape else float(total)
    return _blockwise("__call__", tape, X, P, tape.out_shape)


def gradient(tape, X, P=None, reduce=None, weights=None):
    """Lazy ``tape.gradient(X)``: (N, n); with ``reduce``, the gradient of the sum or mean (computed)."""
    if reduce is not None:
        return _reduce("value_and_gradient", tape, X, P, reduce, weights)[1]
    return _blockwise("gradient", tape, X, P, (tape.n_in,))


def value_and_gradient(tape, X, P=None, reduce=None, weights=None):
    """Lazy (values (N,), gradients (N, n)), computed in one sweep per chunk; with ``reduce``,
    the sum (or mean) of f and its gradient, computed: (float, (n,))."""
    if reduce is not None:
        f, g = _reduce("value_and_gradient", tape, X, P, reduce, weights)
        return float(f), g
    both = _blockwise(_stacked, tape, X, P, (tape.n_in + 1,))
    return both[:, 0], both[:, 1:]


def hvp(tape, X, V, P=None, reduce="sum", weights=None):
    """The Hessian of the sum (or mean) over the points, times ``V`` (n,): (n,), computed."""
    return _reduce("hvp", tape, X, P, reduce, weights, np.asarray(V, dtype=float))


def jvp(tape, X, V, P=None):
    """Lazy J(x) @ v for one direction ``V`` (n,) shared by all points: (N, *out_shape)."""
    V = np.asarray(V, dtype=float)
    if V.shape != (tape.n_in,):
        raise ValueError(f"V must have shape ({tape.n_in},)")
    return _blockwise(_tangent, tape, X, P, tape.out_shape, V=V)


def jacobian(tape, X, P=None, mode: str = "auto"):
    """Lazy Jacobians: (N, *out_shape, n)."""
    return _blockwise("jacobian", tape, X, P, (*tape.out_shape, tape.n_in), mode=mode)
