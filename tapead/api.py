"""The public API: record a function once, evaluate it and its derivatives at many points.

``Tape`` adds the evaluation methods to the tape's arrays. Every method checks
its arguments, brings them to the kernels' layout (C-contiguous float64,
points first) without modifying them, and calls one sweep of
``tapead.kernels.sweeps`` over all points at once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import cached_property

import numba
import numpy as np

from tapead.diagnose import NonFinite, diagnose_point
from tapead.tape import TapeData, validate
from tapead.tracer import trace

__all__ = ["Tape", "record"]

# Tile of points per sweep: keep the hot scratch (slots x directions x tile x 8 B)
# near L2 (DESIGN.md section 6: P = 128 .. 512; measured here, 64 lost 10-25% to per-op overhead).
_SCRATCH_BUDGET = 256 * 1024
_TILE_MIN, _TILE_MAX = 128, 512


def tile_size(n_slots: int, n_dirs: int = 0) -> int:
    """Points per tile: the largest power of two whose scratch fits the budget, within [128, 512]."""
    per_point = 8 * n_slots * (1 + n_dirs)
    tile = _TILE_MAX
    while tile > _TILE_MIN and tile * per_point > _SCRATCH_BUDGET:
        tile //= 2
    return tile


_kernels = None


def _sweeps():
    """The compiled sweeps, imported on first use; say so when they must be compiled."""
    global _kernels
    if _kernels is None:
        from tapead.kernels import sweeps

        cache_dir = os.path.join(os.path.dirname(sweeps.__file__), "__pycache__")
        cached = os.path.isdir(cache_dir) and any(
            name.startswith("sweeps.reverse_adjoint") and name.endswith(".nbi") for name in os.listdir(cache_dir)
        )
        if not cached:
            print("compiling tapead kernels, once (about a minute; later runs load them from the cache) ...",
                  file=sys.stderr, flush=True)
        _kernels = sweeps
    return _kernels


def _float_array(a, name: str, shape_text: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array of shape {shape_text}, got dtype {a.dtype}")
    return a


def _contiguous(a: np.ndarray) -> np.ndarray:
    """C-contiguous writable float64 (a copy when needed; the caller's array is never written)."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    return a if a.flags.writeable else a.copy()


class Tape(TapeData):
    """A recorded function y = f(x) (or f(x, p)): evaluate values and derivatives at many points.

    Points ``X`` are (N, n) or one point (n,); results then lose their point
    axis. With parameters, every method takes ``P`` of shape (N, k) or (k,)
    right after ``X``. Outputs have the shape ``f`` returned: (N,) for a
    scalar f, (N, m) for m outputs.

    Examples
    --------
    >>> import numpy as np, tapead
    >>> tape = tapead.record(lambda x: np.log(x[0]) + x[0] * x[1] - np.sin(x[1]), 2)
    >>> tape.gradient(np.array([2.0, 5.0])).tolist()
    [5.5, 1.7163378145367738]
    """

    @classmethod
    def from_data(cls, data: TapeData) -> Tape:
        validate(data)
        return cls(**{k: getattr(data, k) for k in data.__dataclass_fields__})

    # ---- argument handling ----

    def _points(self, X) -> tuple[np.ndarray, bool]:
        n = self.n_in
        X = _float_array(X, "X", f"(N, {n}) or ({n},)")
        if X.ndim == 1 and X.shape[0] == n:
            return _contiguous(X.reshape(1, n)), False
        if X.ndim == 2 and X.shape[1] == n:
            return _contiguous(X), True
        raise ValueError(f"X must have shape (N, {n}) or ({n},) for this tape's {n} inputs, got {X.shape}")

    def _split(self, args: tuple, extra: list[str], method: str) -> tuple:
        names = ["X"] + (["P"] if self.n_params else []) + extra
        if len(args) != len(names) - 1:
            raise TypeError(
                f"{method} takes ({', '.join(names)}) for a tape with {self.n_params} parameters, "
                f"got {1 + len(args)} arguments"
            )
        if self.n_params:
            return args
        return (None, *args)

    def _params(self, P, n_points: int) -> tuple[np.ndarray, int]:
        k = self.n_params
        if k == 0:
            return np.zeros((1, 0)), 0
        P = _float_array(P, "P", f"(N, {k}) or ({k},)")
        if P.ndim == 1 and P.shape[0] == k:
            return _contiguous(P.reshape(1, k)), 0
        if P.ndim == 2 and P.shape == (n_points, k):
            return _contiguous(P), 1
        raise ValueError(f"P must have shape ({n_points}, {k}) or ({k},) for this tape's {k} parameters, got {P.shape}")

    def _seeds(self, S, name: str, width: int, n_points: int, batched: bool) -> tuple[np.ndarray, int, bool]:
        """Seed directions as (N or 1, width, q) with a point step of 1 or 0, and whether q was given."""
        S = _float_array(S, name, f"(N, {width}), ({width},), (N, {width}, q) or ({width}, q)")
        shape = S.shape
        if batched and S.ndim == 2 and shape == (n_points, width):
            return _contiguous(S[:, :, None]), 1, False
        if batched and S.ndim == 3 and shape[:2] == (n_points, width):
            return _contiguous(S), 1, True
        if S.ndim == 1 and shape[0] == width:
            return _contiguous(S.reshape(1, width, 1)), 0, False
        if S.ndim == 2 and shape[0] == width:
            return _contiguous(S[None]), 0, True
        expected = f"(N, {width}), ({width},), (N, {width}, q) or ({width}, q) with N = {n_points}"
        raise ValueError(f"{name} must have shape {expected}, got {shape}")

    def _shape_out(self, Y: np.ndarray, batched: bool, tail: tuple[int, ...] = ()) -> np.ndarray:
        shape = (Y.shape[0], *self.out_shape, *tail)
        Y = Y.reshape(shape)
        return Y if batched else Y[0]

    def _launch(self, kernel, X, P, p_step, *rest, tile):
        n_points = X.shape[0]
        if n_points == 0:
            return
        n_tiles = -(-n_points // tile)
        n_threads = max(1, min(numba.get_num_threads(), n_tiles))
        kernel(self.op, self.arg0, self.arg1, self.arg2, self.const, self.n_in, self.n_params,
               self.outputs, X, P, p_step, *rest, tile, n_threads)

    # ---- sweeps ----

    @cached_property
    def _last_use(self) -> np.ndarray:
        """Per slot, the last instruction that reads it; -1 if none, n_slots for outputs."""
        last = np.full(self.n_slots, -1, dtype=np.int32)
        index = np.arange(self.n_slots, dtype=np.int32)
        for arg in (self.arg0, self.arg1, self.arg2):
            used = arg >= 0
            np.maximum.at(last, arg[used], index[used])
        last[self.outputs] = self.n_slots
        return last

    def _primal(self, X, P) -> np.ndarray:
        Y = np.empty((X.shape[0], self.n_out))
        self._launch(_sweeps().forward_primal, X, *self._params(P, X.shape[0]), Y, tile=tile_size(self.n_slots))
        return Y

    def _tangent(self, X, P, V, v_step) -> tuple[np.ndarray, np.ndarray]:
        q = V.shape[2]
        Y = np.empty((X.shape[0], self.n_out))
        Y_dot = np.empty((X.shape[0], self.n_out, q))
        self._launch(_sweeps().forward_tangent, X, *self._params(P, X.shape[0]), V, v_step, Y, Y_dot,
                     tile=tile_size(self.n_slots, q))
        return Y, Y_dot

    def _adjoint(self, X, P, W, w_step) -> tuple[np.ndarray, np.ndarray]:
        r = W.shape[2]
        Y = np.empty((X.shape[0], self.n_out))
        X_bar = np.empty((X.shape[0], self.n_in, r))
        self._launch(_sweeps().reverse_adjoint, X, *self._params(P, X.shape[0]), self._last_use, W, w_step, Y, X_bar,
                     tile=tile_size(self.n_slots, r))
        return Y, X_bar

    # ---- public methods ----

    def __call__(self, X, *args) -> np.ndarray:
        """Values y = f(x) at every point: (N, *out_shape), or out_shape for one point."""
        (P,) = self._split(args, [], "tape()")
        X, batched = self._points(X)
        return self._shape_out(self._primal(X, P), batched)

    def value_and_gradient(self, X, *args) -> tuple[np.ndarray, np.ndarray]:
        """(f(x), grad f(x)) of a scalar f at every point: shapes (N,) and (N, n)."""
        (P,) = self._split(args, [], "value_and_gradient")
        if self.n_out != 1:
            raise ValueError(
                f"gradient needs a scalar function; this tape has outputs of shape {self.out_shape}: "
                "use vjp (or jacobian) instead"
            )
        X, batched = self._points(X)
        Y, X_bar = self._adjoint(X, P, np.ones((1, 1, 1)), 0)
        y, g = Y[:, 0], X_bar[:, :, 0]
        return (y, g) if batched else (y[0], g[0])

    def gradient(self, X, *args) -> np.ndarray:
        """grad f(x) of a scalar f at every point: (N, n), or (n,) for one point."""
        return self.value_and_gradient(X, *args)[1]

    def jvp(self, X, *args) -> tuple[np.ndarray, np.ndarray]:
        """(f(x), J(x) @ v): V of shape (N, n) or (n,) gives (N, m); (N, n, q) or (n, q) gives q directions (N, m, q)."""
        P, V = self._split(args, ["V"], "jvp")
        X, batched = self._points(X)
        V, v_step, multi = self._seeds(V, "V", self.n_in, X.shape[0], batched)
        Y, Y_dot = self._tangent(X, P, V, v_step)
        y_dot, tail = (Y_dot, Y_dot.shape[2:]) if multi else (Y_dot[:, :, 0], ())
        return self._shape_out(Y, batched), self._shape_out(y_dot, batched, tail)

    def vjp(self, X, *args) -> tuple[np.ndarray, np.ndarray]:
        """(f(x), J(x).T @ w): W of shape (N, m) or (m,) (the output's shape after N) gives (N, n)."""
        P, W = self._split(args, ["W"], "vjp")
        X, batched = self._points(X)
        W = _float_array(W, "W", f"(N, *{self.out_shape}) or {self.out_shape}")
        m, shape = self.n_out, self.out_shape
        if batched and W.shape == (X.shape[0], *shape):
            W, w_step = _contiguous(W.reshape(-1, m, 1)), 1
        elif W.shape == shape:
            W, w_step = _contiguous(W.reshape(1, m, 1)), 0
        else:
            raise ValueError(f"W must have shape (N, *{shape}) or {shape} (the outputs' shape), got {W.shape}")
        Y, X_bar = self._adjoint(X, P, W, w_step)
        x_bar = X_bar[:, :, 0]
        return self._shape_out(Y, batched), (x_bar if batched else x_bar[0])

    def find_nonfinite(self, X, *args, limit: int = 100) -> list[NonFinite]:
        """For each point whose outputs or gradient are not finite: where it went wrong.

        The gradient is that of the sum of the outputs (one reverse sweep). Each
        :class:`~tapead.diagnose.NonFinite` names the point's index, the first
        instruction that produced a non-finite value (or, if all values are finite,
        the first non-finite contribution of the reverse sweep), its op and operand
        values, and the line of ``f`` that recorded it. At most ``limit`` points.

        Examples
        --------
        >>> import numpy as np, tapead
        >>> tape = tapead.record(lambda x: np.sqrt(x[0]) * np.log(x[1]), 2)
        >>> [(r.point, r.op, r.stage) for r in tape.find_nonfinite(np.array([[1.0, 2.0], [4.0, -1.0], [0.0, 2.0]]))]
        [(1, 'log', 'value'), (2, 'sqrt', 'derivative')]
        """
        (P,) = self._split(args, [], "find_nonfinite")
        X, _ = self._points(X)
        params, step = self._params(P, X.shape[0])
        y_bar = np.ones(self.n_out)
        Y, X_bar = self._adjoint(X, P, y_bar.reshape(1, -1, 1), 0)
        finite = np.isfinite(Y).all(axis=1) & np.isfinite(X_bar).all(axis=(1, 2))
        found = []
        for k in np.flatnonzero(~finite)[:limit]:
            report = diagnose_point(self, int(k), X[k], params[k * step], y_bar)
            if report is not None:
                found.append(report)
        return found


def record(f: Callable, n: int, n_params: int = 0, source_lines: bool = True) -> Tape:
    """Record ``f`` once into a :class:`Tape`.

    Parameters
    ----------
    f : callable
        ``f(x)`` (or ``f(x, p)`` with ``n_params > 0``) where ``x`` is a length-n
        object array of traced variables. It returns a traced value, a number,
        or a sequence/array of them.
    n : int
        Number of inputs.
    n_params : int, optional
        Number of parameters: per-point constants that are never differentiated.
    source_lines : bool, optional
        Remember which line of ``f`` recorded each instruction, for
        :meth:`Tape.find_nonfinite` (costs about a microsecond per op while recording).

    Examples
    --------
    >>> import numpy as np, tapead
    >>> tape = tapead.record(lambda x: x[0] * x[1], 2)
    >>> print(tape)
    Tape: 2 inputs, 0 parameters, 1 instructions, 1 outputs
      v_{-1} = x1
      v_0 = x2
      v1 = v_{-1}*v_0
      y1 = v1
    >>> tape(np.array([[2.0, 3.0], [4.0, 5.0]])).tolist()
    [6.0, 20.0]
    """
    return Tape.from_data(trace(f, n, n_params, source_lines))
