"""Argument rules of the evaluation methods, as pure functions of the tape's sizes.

Every function here checks one argument and brings it to the layout the sweeps take:
points first, a step of 1 for per-point arrays and 0 for one row shared by every point,
C-contiguous float64 where the kernels read it. Nothing here writes the caller's arrays.

Conventions: ``n`` inputs, ``k`` parameters, outputs of shape ``out_shape`` (``m`` of them
flattened), ``N`` points. ``batched`` says whether results keep their point axis.
"""

from __future__ import annotations

import numpy as np

REDUCTIONS = (None, "sum", "mean")


def float_array(a, name: str, shape_text: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array of shape {shape_text}, got dtype {a.dtype}")
    return a


def contiguous(a: np.ndarray) -> np.ndarray:
    """C-contiguous writable float64 (a copy when needed; the caller's array is never written)."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    return a if a.flags.writeable else a.copy()


def split(args: tuple, n_params: int, extra: list[str], method: str) -> tuple:
    """The arguments after X: (P, *extra), with P None for a tape without parameters."""
    names = ["X"] + (["P"] if n_params else []) + extra
    if len(args) != len(names) - 1:
        raise TypeError(f"{method} takes ({', '.join(names)}) for a tape with {n_params} parameters, "
                        f"got {1 + len(args)} arguments")
    return args if n_params else (None, *args)


def points(X, P, n: int, k: int) -> tuple[np.ndarray, bool]:
    """(X as (N, n), batched). One x (n,) with parameters P of (N, k), N > 1, is N points: x
    repeated as a stride-0 view, never copied N times (with P of (1, k), one point)."""
    X = float_array(X, "X", f"(N, {n}) or ({n},)")
    if X.ndim == 1 and X.shape[0] == n:
        if P is not None and np.ndim(P) == 2 and np.shape(P)[1:] == (k,) and np.shape(P)[0] != 1:
            return np.broadcast_to(X.astype(np.float64, copy=False), (np.shape(P)[0], n)), True
        return X.reshape(1, n), False
    if X.ndim == 2 and X.shape[1] == n:
        return X, True  # converted block by block by the launch
    raise ValueError(f"X must have shape (N, {n}) or ({n},) for this tape's {n} inputs, got {X.shape}")


def params(P, k: int, n_points: int) -> tuple[np.ndarray, int]:
    """(P as (N, k) or (1, k), its point step)."""
    if k == 0:
        return np.zeros((1, 0)), 0
    P = float_array(P, "P", f"(N, {k}) or ({k},)")
    if (P.ndim == 1 and P.shape[0] == k) or P.shape == (1, k):  # one row for every point
        return contiguous(P.reshape(1, k)), 0
    if P.ndim == 2 and P.shape == (n_points, k):
        return P, 1
    raise ValueError(f"P must have shape ({n_points}, {k}) or ({k},) for this tape's {k} parameters, got {P.shape}")


def directions(S, name: str, width: int, n_points: int, batched: bool) -> tuple[np.ndarray, int, bool]:
    """Seed directions as (N or 1, width, q) with a point step, and whether q was given. With
    exactly ``width`` points a (width, width) S is refused as ambiguous."""
    S = float_array(S, name, f"(N, {width}), ({width},), (N, {width}, q) or ({width}, q)")
    shape = S.shape
    if batched and S.ndim == 2 and shape == (n_points, width) == (width, n_points):
        raise ValueError(
            f"{name} of shape {shape} with {n_points} points is ambiguous: pass {name}[None] (shape "
            f"(1, {width}, {width})) for the same {width} directions at every point, or {name}[:, :, None] "
            "for one direction per point")
    if S.ndim == 3 and shape[:2] == (1, width):  # q directions shared by every point
        return contiguous(S), 0, True
    if batched and S.ndim == 2 and shape == (n_points, width):
        return S[:, :, None], 1, False
    if batched and S.ndim == 3 and shape[:2] == (n_points, width):
        return S, 1, True
    if S.ndim == 1 and shape[0] == width:
        return contiguous(S.reshape(1, width, 1)), 0, False
    if S.ndim == 2 and shape[0] == width:
        return contiguous(S[None]), 0, True
    expected = f"(N, {width}), ({width},), (N, {width}, q), ({width}, q) or (1, {width}, q) with N = {n_points}"
    raise ValueError(f"{name} must have shape {expected}, got {shape}")


def output_directions(W, out_shape: tuple, n_points: int, batched: bool) -> tuple[np.ndarray, int, bool]:
    """vjp's W as (N or 1, m, r) with a point step, and whether r directions were given. Several
    directions always carry both a point axis and a last axis, (N, *out_shape, r) or
    (1, *out_shape, r): (N, *out_shape) keeps its one meaning, a direction per point."""
    shape, m = out_shape, int(np.prod(out_shape, dtype=int))
    W = float_array(W, "W", f"(N, *{shape}), {shape}, (N, *{shape}, r) or (1, *{shape}, r)")
    if batched and W.shape == (n_points, *shape):
        return W.reshape(n_points, m, 1), 1, False
    if W.shape == shape:
        return contiguous(W.reshape(1, m, 1)), 0, False
    if W.ndim == len(shape) + 2 and W.shape[1:-1] == shape:
        if W.shape[0] == 1:
            return contiguous(W.reshape(1, m, W.shape[-1])), 0, True
        if batched and W.shape[0] == n_points:
            return W.reshape(n_points, m, W.shape[-1]), 1, True
    raise ValueError(f"W must have shape (N, *{shape}) or {shape} (the outputs' shape), or (N, *{shape}, r) or "
                     f"(1, *{shape}, r) for r directions, with N = {n_points}; got {W.shape}")


def output_weights(W, out_shape: tuple, n_points: int, batched: bool, method: str) -> tuple[np.ndarray, int]:
    """Output weights (N, m) or (1, m) with a point step, for Lagrangian Hessians; optional for
    a scalar f."""
    m = int(np.prod(out_shape, dtype=int))
    if W is None:
        if m != 1:
            raise ValueError(f"{method} of a function with outputs of shape {out_shape} needs weights W "
                             "(the Hessian of sum_i W_i f_i)")
        return np.ones((1, 1)), 0
    W = float_array(W, "W", f"(N, *{out_shape}) or {out_shape}")
    if batched and W.shape == (n_points, *out_shape):
        return W.reshape(n_points, m), 1
    if W.shape == out_shape:
        return contiguous(W.reshape(1, m)), 0
    raise ValueError(f"W must have shape (N, *{out_shape}) or {out_shape} (the outputs' shape), got {W.shape}")


def reduction(method: str, reduce, weights, n_points: int, batched: bool, out) -> tuple:
    """(reduce, per-point weights or None) checked: weights only weigh a reduction, whose
    result is returned, never written to ``out``."""
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be None, 'sum' or 'mean', got {reduce!r}")
    if reduce is not None and out is not None:
        raise ValueError(f"{method}: out= takes per-point results; with reduce= the result is returned")
    if weights is None:
        return reduce, None
    if reduce is None:
        raise ValueError("weights= weighs the terms of a reduction: pass reduce='sum' or reduce='mean' too")
    w = float_array(weights, "weights", f"({n_points},)")
    if w.shape != (n_points,) or not batched:
        raise ValueError(f"weights must have shape ({n_points},), one per point, got {w.shape}")
    return reduce, contiguous(w)


def scale(total, reduce, weights, n_points: int):
    """A sum as the caller asked: the sum, or the (weighted) mean."""
    if reduce == "mean":
        total = total / (n_points if weights is None else float(np.sum(weights)))
    return total


def checked_out(out, public: tuple[int, ...], internal: tuple[int, ...], name: str, inputs=()) -> np.ndarray | None:
    """The caller's ``out`` (None for a new array) viewed as ``internal``, once it is a writable
    C-contiguous float64 array of exactly the result's shape ``public`` sharing no memory with
    ``inputs`` (a numpy memmap works)."""
    if out is None:
        return None
    if not isinstance(out, np.ndarray) or out.dtype != np.float64 or not out.flags.c_contiguous \
            or not out.flags.writeable or out.shape != public:
        got = f"shape {out.shape}, dtype {out.dtype}" if isinstance(out, np.ndarray) else type(out).__name__
        raise ValueError(f"{name} must be a writable C-contiguous float64 array of shape {public} "
                         f"(a numpy memmap works), got {got}")
    if any(isinstance(a, np.ndarray) and np.may_share_memory(out, a) for a in inputs):
        raise ValueError(f"{name} shares memory with an input array: results would overwrite the points "
                         "being read; pass a separate array")
    return out.reshape(internal)


def checked_outs(out, method: str, shapes: list[tuple[tuple, tuple]], inputs: tuple) -> list:
    """``out=`` of a method returning several arrays: a tuple of arrays or None, each checked as
    by checked_out against its (public, internal) shape; each must not overlap the inputs or
    the others."""
    if out is None:
        return [None] * len(shapes)
    if not isinstance(out, (tuple, list)) or len(out) != len(shapes):
        kind = {2: "pair", 3: "triple"}.get(len(shapes), f"tuple of {len(shapes)}")
        raise TypeError(f"{method}: out must be a {kind} of arrays or None, one per result, got {type(out).__name__}")
    checked = []
    for j, (item, (public, internal)) in enumerate(zip(out, shapes)):
        checked.append(checked_out(item, public, internal, f"out[{j}]", (*inputs, *checked)))
    return checked


def shaped(Y: np.ndarray, out_shape: tuple, batched: bool, tail: tuple[int, ...] = ()) -> np.ndarray:
    """Per-point results (N, m, *tail) as (N, *out_shape, *tail), or one point's without N."""
    Y = Y.reshape((Y.shape[0], *out_shape, *tail))
    return Y if batched else Y[0]
