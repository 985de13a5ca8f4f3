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
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np

__all__ = ["values", "gradient", "value_and_gradient", "jvp", "jacobian"]


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


def _blockwise(method: str, tape, X, P, tail: tuple[int, ...], **kwargs):
    """map tape.method over the point chunks; results have shape (N, *tail)."""
    X, params = _prepare(tape, X, P)
    shared = dask.delayed(tape, pure=True)  # one task: the tape travels once per worker
    index = "i" + "".join(chr(ord("k") + d) for d in range(len(tail)))
    new_axes = {index[1 + d]: size for d, size in enumerate(tail)}

    def run(x, tape, *p):
        return getattr(tape, method)(x, *p, **kwargs)

    args = [X, "ij", shared, None]
    for array, ind in params:
        args += [array, ind]
    meta = np.empty((0,) * len(index))  # known: do not call run to find out
    return da.blockwise(run, index, *args, new_axes=new_axes, concatenate=True, dtype=np.float64, meta=meta)


def values(tape, X, P=None):
    """Lazy ``tape(X)``: (N, *out_shape)."""
    return _blockwise("__call__", tape, X, P, tape.out_shape)


def gradient(tape, X, P=None):
    """Lazy ``tape.gradient(X)``: (N, n)."""
    return _blockwise("gradient", tape, X, P, (tape.n_in,))


def value_and_gradient(tape, X, P=None):
    """Lazy (values (N,), gradients (N, n)), computed in one sweep per chunk."""
    both = _blockwise("_value_and_gradient_stacked", tape, X, P, (tape.n_in + 1,))
    return both[:, 0], both[:, 1:]


def jvp(tape, X, V, P=None):
    """Lazy J(x) @ v for one direction ``V`` (n,) shared by all points: (N, *out_shape)."""
    V = np.asarray(V, dtype=float)
    if V.shape != (tape.n_in,):
        raise ValueError(f"V must have shape ({tape.n_in},)")
    return _blockwise("_jvp_tangent", tape, X, P, tape.out_shape, V=V)


def jacobian(tape, X, P=None, mode: str = "auto"):
    """Lazy Jacobians: (N, *out_shape, n)."""
    return _blockwise("jacobian", tape, X, P, (*tape.out_shape, tape.n_in), mode=mode)
