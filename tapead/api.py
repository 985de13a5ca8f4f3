"""The public API: record a function once, evaluate it and its derivatives at many points.

``Tape`` adds the evaluation methods to the tape's arrays. Every method checks
its arguments and runs one sweep of ``tapead.kernels.sweeps`` over the points,
block by block, bringing each block to the kernels' layout (C-contiguous
float64, points first) without modifying the caller's arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

import numpy as np

from tapead import io as tape_io
from tapead import passes, runtime, sparsity
from tapead.diagnose import NonFinite, diagnose_point
from tapead.explain import Explanation, explain
from tapead.minimize import ScipyFunctions
from tapead.runtime import BLOCK, tile_size
from tapead.tape import TapeData, validate
from tapead.tracer import holds_traced, inline, trace

__all__ = ["Tape", "record", "load", "optimize"]

# Directions per sweep for Jacobians and Hessians: more are split over several sweeps,
# which keeps scratch (slots x directions x tile) bounded.
_MAX_DIRECTIONS = 32


def _chunks(q: int, size: int = _MAX_DIRECTIONS) -> list[slice]:
    return [slice(k, min(q, k + size)) for k in range(0, q, size)]


def _empty(out, shape: tuple[int, ...]) -> np.ndarray:
    return np.empty(shape) if out is None else out


def _checked_out(out, public: tuple[int, ...], internal: tuple[int, ...], name: str, inputs=()) -> np.ndarray | None:
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


def _pair(out, method: str) -> tuple:
    """``out=(a, b)`` of the methods that return two arrays (either may be None)."""
    if out is None:
        return None, None
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise TypeError(f"{method}: out must be a pair (values, {'gradients' if 'grad' in method else 'derivatives'})"
                        f" of arrays or None, got {type(out).__name__}")
    return tuple(out)


def _blocks(n_points: int, progress=None):
    """Slices of BLOCK points; ``progress(done, n_points)`` after each."""
    for start in range(0, n_points, BLOCK):
        block = slice(start, min(n_points, start + BLOCK))
        yield block
        if progress is not None:
            progress(block.stop, n_points)


def _rows(A, step: int, block: slice):
    """A block's rows of a per-point array (step 1); a shared one (step 0) as it is."""
    return A[block] if step else A


def _pairwise(S: np.ndarray) -> np.ndarray:
    """The sum over axis 0 in a fixed tree (adjacent pairs, level by level): the same bits
    whatever the thread count, and rounding that grows with log2 of the number of terms."""
    while S.shape[0] > 1:
        half = S.shape[0] // 2
        paired = S[0:2 * half:2] + S[1:2 * half:2]
        S = np.concatenate([paired, S[2 * half:]]) if S.shape[0] % 2 else paired
    return S[0]


def _weighted_sum(Y: np.ndarray, w) -> np.ndarray:
    """sum_k w_k Y[k] over axis 0 (w None: all 1), column by column with numpy's pairwise sum."""
    Y = Y.reshape(Y.shape[0], -1)
    return np.array([np.sum(Y[:, j] if w is None else w * Y[:, j]) for j in range(Y.shape[1])])


_REDUCTIONS = (None, "sum", "mean")


def _block_params(P, block: slice):
    """The parameters of a block of points: P's rows there, or the one row all points share."""
    P = np.asarray(P)
    return P[block] if P.ndim == 2 and P.shape[0] > 1 else P


def _unit(n: int, cols: slice) -> np.ndarray:
    """Seeds (1, n, q): the unit vectors of coordinates ``cols`` (a chunk of the identity)."""
    q = cols.stop - cols.start
    S = np.zeros((1, n, q))
    S[0, np.arange(cols.start, cols.stop), np.arange(q)] = 1.0
    return S


def jacobian_mode(n: int, m: int) -> str:
    """The cheaper Jacobian sweep: forward costs about 1 + n tangent passes, reverse about
    2 + 1.5 m (one primal, then m adjoint passes that each cost ~1.5 tangent passes;
    measured in bench/jacobian_mode.py)."""
    return "reverse" if 2 + 1.5 * m < 1 + n else "forward"


def _float_array(a, name: str, shape_text: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array of shape {shape_text}, got dtype {a.dtype}")
    return a


def _frozen(a: np.ndarray) -> np.ndarray:
    """A read-only copy of ``a``."""
    a = np.array(a)
    a.setflags(write=False)
    return a


def _frozen_all(items: tuple) -> tuple:
    return tuple(_frozen(a) if isinstance(a, np.ndarray) else a for a in items)


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
        """A tape of ``data``'s arrays once validated: copied and read-only, so that nothing can
        change them after the check (the kernels trust them)."""
        validate(data)
        fields = {k: getattr(data, k) for k in data.__dataclass_fields__}
        return cls(**{k: _frozen(v) if isinstance(v, np.ndarray) else v for k, v in fields.items()})

    def save(self, path) -> None:
        """Write the tape to ``path`` in tapead's pickle-free format (see tapead.io); read it with
        :func:`tapead.load`."""
        tape_io.save(self, path)

    def __reduce__(self):
        # pickling (multiprocessing, Dask) goes through the same arrays-only bytes as files
        return _from_bytes, (tape_io.to_bytes(self),)

    # ---- argument handling ----

    def _points(self, X, P=None) -> tuple[np.ndarray, bool]:
        """(X as (N, n), whether results keep a point axis). One x (n,) with parameters P of
        (N, k), N > 1, is N points: x repeated as a stride-0 view, never copied N times (with
        P of (1, k), one point, as before)."""
        n = self.n_in
        X = _float_array(X, "X", f"(N, {n}) or ({n},)")
        if X.ndim == 1 and X.shape[0] == n:
            if P is not None and np.ndim(P) == 2 and np.shape(P)[1:] == (self.n_params,) and np.shape(P)[0] != 1:
                return np.broadcast_to(X.astype(np.float64, copy=False), (np.shape(P)[0], n)), True
            return X.reshape(1, n), False
        if X.ndim == 2 and X.shape[1] == n:
            return X, True  # converted block by block in _launch
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
        if (P.ndim == 1 and P.shape[0] == k) or P.shape == (1, k):  # one row for every point
            return _contiguous(P.reshape(1, k)), 0
        if P.ndim == 2 and P.shape == (n_points, k):
            return P, 1
        raise ValueError(f"P must have shape ({n_points}, {k}) or ({k},) for this tape's {k} parameters, got {P.shape}")

    def _seeds(self, S, name: str, width: int, n_points: int, batched: bool) -> tuple[np.ndarray, int, bool]:
        """Seed directions as (N or 1, width, q) with a point step of 1 or 0, and whether q was given."""
        S = _float_array(S, name, f"(N, {width}), ({width},), (N, {width}, q) or ({width}, q)")
        shape = S.shape
        if batched and S.ndim == 2 and shape == (n_points, width) == (width, n_points):
            raise ValueError(
                f"{name} of shape {shape} with {n_points} points is ambiguous: pass {name}[None] (shape "
                f"(1, {width}, {width})) for the same {width} directions at every point, or {name}[:, :, None] "
                "for one direction per point")
        if S.ndim == 3 and shape[:2] == (1, width):  # q directions shared by every point
            return _contiguous(S), 0, True
        if batched and S.ndim == 2 and shape == (n_points, width):
            return S[:, :, None], 1, False
        if batched and S.ndim == 3 and shape[:2] == (n_points, width):
            return S, 1, True
        if S.ndim == 1 and shape[0] == width:
            return _contiguous(S.reshape(1, width, 1)), 0, False
        if S.ndim == 2 and shape[0] == width:
            return _contiguous(S[None]), 0, True
        expected = f"(N, {width}), ({width},), (N, {width}, q), ({width}, q) or (1, {width}, q) with N = {n_points}"
        raise ValueError(f"{name} must have shape {expected}, got {shape}")

    def _shape_out(self, Y: np.ndarray, batched: bool, tail: tuple[int, ...] = ()) -> np.ndarray:
        shape = (Y.shape[0], *self.out_shape, *tail)
        Y = Y.reshape(shape)
        return Y if batched else Y[0]

    def _launch(self, kernel, layout: tuple, tile: int, X, P, p_step: int, *middle, outputs: tuple,
                tail: tuple = (), progress=None, op=None) -> None:
        """Run ``kernel`` with slot ``layout`` (see _compact, _reverse) over all points, in blocks
        of BLOCK points so that converted inputs and temporaries stay bounded; ``middle`` holds
        per-kernel arguments, a (seeds, step) pair for seed arrays (sliced per block when step
        is 1); ``outputs`` are (N, ...) arrays, ``tail`` the arguments after them; ``op``: the op
        codes, if not the tape's. An X whose rows are one row repeated (a stride-0 view, see
        _points) goes to the kernels as that row."""
        n_points = X.shape[0]
        op = self.op if op is None else op
        run = runtime.kernel(kernel, op)
        for start in range(0, n_points, BLOCK):
            block = slice(start, min(n_points, start + BLOCK))
            m = block.stop - block.start
            x_step = int(X.strides[0] != 0)
            args = [op, *layout, self.const, self.n_in, self.n_params, self.outputs,
                    _contiguous(X[block] if x_step else X[:1]), x_step,
                    _contiguous(P[block]) if p_step else P, p_step]
            for item in middle:
                if isinstance(item, tuple):
                    seeds, step = item
                    args += [_contiguous(seeds[block]) if step else seeds, step]
                else:
                    args.append(item)
            args += [out[block] for out in outputs]
            args += tail
            runtime.launch(run, args, min(tile, m), m)  # one point: a one-point tile's scratch
            del args  # before the next block is converted: one block of temporaries at a time
            if progress is not None:
                progress(block.stop, n_points)

    # ---- sweeps ----

    @cached_property
    def _compact(self) -> tuple:
        """Layout of the forward sweeps: value rows reused (tapead.passes.compact_slots)."""
        return _frozen_all(passes.compact_slots(self))

    @cached_property
    def _chained(self) -> np.ndarray:
        """Op codes of the value and gradient sweeps: dot-product chains marked (passes.chain_ops)."""
        return _frozen(passes.chain_ops(self))

    @cached_property
    def _reverse(self) -> tuple:
        """Layout of the reverse sweep: value rows reused except those of the values it reads
        again (pinned), adjoints in the forward layout's rows (see compact_slots), and the
        per-instruction zeroing and dead flags (passes.reverse_flags)."""
        values = _frozen_all(passes.compact_slots(self, keep=passes.reverse_reads(self)))
        return values, (*self._compact, _frozen(passes.reverse_flags(self)))

    @cached_property
    def _hessian_layout(self) -> tuple:
        """As _reverse, with the values and tangents the Hessian sweep reads pinned."""
        values = _frozen_all(passes.compact_slots(self, keep=passes.reverse_reads(self, second=True)))
        return values, self._reverse[1]

    def _primal(self, X, P, Y=None, progress=None) -> np.ndarray:
        Y = _empty(Y, (X.shape[0], self.n_out))
        self._launch("forward_primal", self._compact, tile_size(self._compact[-1]), X,
                     *self._params(P, X.shape[0]),
                     outputs=(Y,), progress=progress, op=self._chained)
        return Y

    def _tangent(self, X, P, V, v_step, Y=None, Y_dot=None, progress=None) -> tuple[np.ndarray, np.ndarray]:
        q = V.shape[2]
        Y = _empty(Y, (X.shape[0], self.n_out))
        Y_dot = _empty(Y_dot, (X.shape[0], self.n_out, q))
        self._launch("forward_tangent", self._compact, tile_size(self._compact[-1], q), X,
                     *self._params(P, X.shape[0]),
                     (V, v_step), outputs=(Y, Y_dot), progress=progress)
        return Y, Y_dot

    def _adjoint(self, X, P, W, w_step, Y=None, X_bar=None, progress=None) -> tuple[np.ndarray, np.ndarray]:
        r = W.shape[2]
        Y = _empty(Y, (X.shape[0], self.n_out))
        X_bar = _empty(X_bar, (X.shape[0], self.n_in, r))
        values, adjoints = self._reverse
        self._launch("reverse_adjoint", values, tile_size(values[-1] + r * adjoints[-2]), X,
                     *self._params(P, X.shape[0]),
                     *adjoints, (W, w_step), outputs=(Y, X_bar), tail=(0,), progress=progress, op=self._chained)
        return Y, X_bar

    def _hessian(self, X, P, W, w_step, V, v_step, HV=None, progress=None, reduce=False, weights=None) -> np.ndarray:
        """H_L @ V for L = W . y (V None: the identity), forward over reverse, BLOCK points and 32
        directions at a time, so that memory beyond X and the result is bounded. With ``reduce``:
        sum_k weights_k H_L(X[k]) @ V[k] (n, q), summed per tile in the sweep, then in a fixed tree."""
        n, n_points = self.n_in, X.shape[0]
        q = n if V is None else V.shape[2]
        HV = None if reduce else _empty(HV, (n_points, n, q))
        P, p_step = self._params(P, n_points)
        values, adjoints = self._hessian_layout
        sums = []
        for block in _blocks(n_points, progress):
            Xb, Pb = X[block], _rows(P, p_step, block)
            m = Xb.shape[0]
            Wb, ws = _rows(W, w_step, block), w_step
            if weights is not None:  # L_k = w_k W[k] . y
                Wb, ws = np.ascontiguousarray(weights[block, None] * Wb), 1
            Y = np.empty((m, self.n_out))
            if reduce:
                sums.append(np.empty((n, q)))
            for cols in _chunks(q):
                if V is None:
                    Vc, step = _unit(n, cols), 0
                else:
                    Vc, step = np.ascontiguousarray(_rows(V, v_step, block)[:, :, cols]), v_step
                rows = (values[-1] + adjoints[-2]) * (1 + Vc.shape[2])  # values, adjoints and their tangents
                tile = min(tile_size(rows, minimum=16), m)
                whole = cols == slice(0, q)
                if reduce:  # one row of sums per tile
                    n_tiles = -(-m // tile)
                    G, H = np.empty((n_tiles, n)), np.empty((n_tiles, n, Vc.shape[2]))
                    outputs, tail = (Y,), (G, H, 1)
                else:
                    G, H = np.empty((m, n)), HV[block] if whole else np.empty((m, n, Vc.shape[2]))
                    outputs, tail = (Y, G, H), (0,)
                self._launch("reverse_hessian", values, tile, Xb, Pb, p_step, *adjoints, (Wb, ws), (Vc, step),
                             outputs=outputs, tail=tail)
                if reduce:
                    sums[-1][:, cols] = _pairwise(H)
                elif not whole:
                    HV[block, :, cols] = H
        return _pairwise(np.array(sums)) if reduce else HV

    def _reduction(self, reduce, weights, n_points: int, batched: bool):
        """(reduce, per-point weights or None) checked; weights only weigh a reduction."""
        if reduce not in _REDUCTIONS:
            raise ValueError(f"reduce must be None, 'sum' or 'mean', got {reduce!r}")
        if weights is None:
            return reduce, None
        if reduce is None:
            raise ValueError("weights= weighs the terms of a reduction: pass reduce='sum' or reduce='mean' too")
        w = _float_array(weights, "weights", f"({n_points},)")
        if w.shape != (n_points,) or not batched:
            raise ValueError(f"weights must have shape ({n_points},), one per point, got {w.shape}")
        return reduce, _contiguous(w)

    @staticmethod
    def _scale(total, reduce, weights, n_points: int):
        """A sum as the caller asked: the sum, or the (weighted) mean."""
        if reduce == "mean":
            total = total / (n_points if weights is None else float(np.sum(weights)))
        return total

    def _adjoint_sum(self, X, P, W, w_step, weights, progress=None) -> tuple[np.ndarray, np.ndarray]:
        """(sum_k w_k y(X[k]), sum_k w_k J(X[k]).T @ W[k]): the reverse sweep sums the adjoints
        of each tile's points (kernels/tiles.py, _row_sum); tiles and blocks are summed here in
        a fixed tree. Memory: one block's values and one sum per tile."""
        N, r = X.shape[0], W.shape[2]
        values, adjoints = self._reverse
        tile = tile_size(values[-1] + r * adjoints[-2])
        P, p_step = self._params(P, N)
        ys, gs = [], []
        for block in _blocks(N, progress):
            m = block.stop - block.start
            Wb, step = _rows(W, w_step, block), w_step
            if weights is not None:  # the seed of point k is w_k W[k]
                Wb, step = np.ascontiguousarray(weights[block, None, None] * Wb), 1
            t = min(tile, m)
            Y, S = np.empty((m, self.n_out)), np.empty((-(-m // t), self.n_in, r))
            self._launch("reverse_adjoint", values, t, X[block], _rows(P, p_step, block), p_step, *adjoints,
                         (Wb, step), outputs=(Y,), tail=(S, 1), op=self._chained)
            ys.append(_weighted_sum(Y, None if weights is None else weights[block]))
            gs.append(_pairwise(S))
        return _pairwise(np.array(ys)), _pairwise(np.array(gs))

    def _weights(self, W, n_points: int, batched: bool, method: str) -> tuple[np.ndarray, int]:
        """Output weights (N, m) or (m,) for Lagrangian Hessians; optional for a scalar f."""
        shape = self.out_shape
        if W is None:
            if self.n_out != 1:
                raise ValueError(f"{method} of a function with outputs of shape {shape} needs weights W "
                                 "(the Hessian of sum_i W_i f_i)")
            return np.ones((1, 1)), 0
        W = _float_array(W, "W", f"(N, *{shape}) or {shape}")
        if batched and W.shape == (n_points, *shape):
            return W.reshape(n_points, self.n_out), 1
        if W.shape == shape:
            return _contiguous(W.reshape(1, self.n_out)), 0
        raise ValueError(f"W must have shape (N, *{shape}) or {shape} (the outputs' shape), got {W.shape}")

    # ---- public methods ----

    # Every evaluation method takes ``progress=`` (called as progress(points_done, n_points)
    # after each block of BLOCK points), and all but the sparse ones (whose (N, nnz) values are
    # new arrays) ``out=``: arrays to fill of exactly the result's shape, float64 C-contiguous,
    # sharing no memory with the inputs (a numpy memmap works). With both, any number of
    # points runs in bounded extra memory. Those that
    # return per-point results also take ``reduce="sum"`` or ``"mean"`` (with optional
    # per-point ``weights=``): the (weighted) sum or mean over the points instead, computed
    # in bounded memory, in the same bits whatever the thread count.

    def _reduced(self, method: str, X, P, batched, reduce, weights, out):
        reduce, w = self._reduction(reduce, weights, X.shape[0], batched)
        if reduce is not None and out is not None:
            raise ValueError(f"{method}: out= takes per-point results; with reduce= the result is returned")
        return reduce, w

    def __call__(self, X, *args, out=None, progress=None, reduce=None, weights=None) -> np.ndarray:
        """Values y = f(x) at every point: (N, *out_shape), or out_shape for one point (or their
        sum or mean with ``reduce=``)."""
        (P,) = self._split(args, [], "tape()")
        if holds_traced(X) or holds_traced(P):  # called inside another record: inline this tape
            return inline(self, X, P)
        X, batched = self._points(X, P)
        reduce, w = self._reduced("tape()", X, P, batched, reduce, weights, out)
        if reduce is not None:
            N = X.shape[0]
            params, p_step = self._params(P, N)
            parts = [_weighted_sum(self._primal(X[b], _rows(params, p_step, b)), None if w is None else w[b])
                     for b in _blocks(N, progress)]
            total = self._scale(_pairwise(np.array(parts)), reduce, w, N).reshape(self.out_shape)
            return total if self.out_shape else float(total)
        lead = (X.shape[0],) if batched else ()
        out = _checked_out(out, (*lead, *self.out_shape), (X.shape[0], self.n_out), "out", (X, P))
        return self._shape_out(self._primal(X, P, out, progress), batched)

    def value_and_gradient(self, X, *args, out=None, progress=None, reduce=None,
                           weights=None) -> tuple[np.ndarray, np.ndarray]:
        """(f(x), grad f(x)) of a scalar f at every point: shapes (N,) and (N, n); ``out=(y, g)``.

        With ``reduce="sum"`` (or ``"mean"``, optional ``weights`` (N,)): the sum of f over the
        points and its gradient (n,), summed inside the reverse sweep. One x (n,) with
        parameters P (N, k) evaluates x at every row of P: a likelihood over N observations."""
        (P,) = self._split(args, [], "value_and_gradient")
        if self.n_out != 1:
            raise ValueError(
                f"gradient needs a scalar function; this tape has outputs of shape {self.out_shape}: "
                "use vjp (or jacobian) instead"
            )
        X, batched = self._points(X, P)
        N, n = X.shape[0], self.n_in
        reduce, w = self._reduced("value_and_gradient", X, P, batched, reduce, weights, out)
        if reduce is not None:
            y, g = self._adjoint_sum(X, P, np.ones((1, 1, 1)), 0, w, progress)
            return float(self._scale(y[0], reduce, w, N)), self._scale(g[:, 0], reduce, w, N)
        lead = (N,) if batched else ()
        y_out, g_out = _pair(out, "value_and_gradient")
        y_out = _checked_out(y_out, lead, (N, 1), "out[0]", (X, P))
        g_out = _checked_out(g_out, (*lead, n), (N, n, 1), "out[1]", (X, P, y_out))
        Y, X_bar = self._adjoint(X, P, np.ones((1, 1, 1)), 0, y_out, g_out, progress)
        y, g = Y[:, 0], X_bar[:, :, 0]
        return (y, g) if batched else (y[0], g[0])

    def gradient(self, X, *args, out=None, progress=None, reduce=None, weights=None) -> np.ndarray:
        """grad f(x) of a scalar f at every point: (N, n), or (n,) for one point (or of the sum
        or mean over the points with ``reduce=``)."""
        out = None if out is None and reduce is not None else (None, out)
        return self.value_and_gradient(X, *args, out=out, progress=progress, reduce=reduce, weights=weights)[1]

    def jvp(self, X, *args, out=None, progress=None) -> tuple[np.ndarray, np.ndarray]:
        """(f(x), J(x) @ v): V of shape (N, n) or (n,) gives (N, *out_shape); (N, n, q), (n, q) or
        (1, n, q) gives q directions (N, *out_shape, q) in one sweep. With exactly n points, an
        (n, n) V is refused as ambiguous: say V[None] or V[:, :, None]."""
        P, V = self._split(args, ["V"], "jvp")
        X, batched = self._points(X, P)
        V, v_step, multi = self._seeds(V, "V", self.n_in, X.shape[0], batched)
        N, q = X.shape[0], V.shape[2]
        lead = (N,) if batched else ()
        y_out, d_out = _pair(out, "jvp")
        y_out = _checked_out(y_out, (*lead, *self.out_shape), (N, self.n_out), "out[0]", (X, P, V))
        d_out = _checked_out(d_out, (*lead, *self.out_shape, *((q,) if multi else ())), (N, self.n_out, q), "out[1]",
                             (X, P, V, y_out))
        Y, Y_dot = self._tangent(X, P, V, v_step, y_out, d_out, progress)
        y_dot, tail = (Y_dot, Y_dot.shape[2:]) if multi else (Y_dot[:, :, 0], ())
        return self._shape_out(Y, batched), self._shape_out(y_dot, batched, tail)

    def vjp(self, X, *args, out=None, progress=None, reduce=None, weights=None) -> tuple[np.ndarray, np.ndarray]:
        """(f(x), J(x).T @ w): W of shape (N, *out_shape) or out_shape gives (N, n); r directions in
        one sweep: W of shape (N, *out_shape, r), or (1, *out_shape, r) for the same r at every
        point, gives (N, n, r). With ``reduce=``: the sum or mean over the points of both."""
        P, W = self._split(args, ["W"], "vjp")
        X, batched = self._points(X, P)
        W, w_step, multi = self._output_weights(W, X.shape[0], batched)
        N, m, shape, r = X.shape[0], self.n_out, self.out_shape, W.shape[2]
        reduce, w = self._reduced("vjp", X, P, batched, reduce, weights, out)
        if reduce is not None:
            y, x_bar = self._adjoint_sum(X, P, W, w_step, w, progress)
            x_bar = x_bar if multi else x_bar[:, 0]
            return self._scale(y, reduce, w, N).reshape(shape), self._scale(x_bar, reduce, w, N)
        lead = (N,) if batched else ()
        y_out, b_out = _pair(out, "vjp")
        y_out = _checked_out(y_out, (*lead, *shape), (N, m), "out[0]", (X, P, W))
        b_out = _checked_out(b_out, (*lead, self.n_in, *((r,) if multi else ())), (N, self.n_in, r), "out[1]",
                             (X, P, W, y_out))
        Y, X_bar = self._adjoint(X, P, W, w_step, y_out, b_out, progress)
        x_bar = X_bar if multi else X_bar[:, :, 0]
        return self._shape_out(Y, batched), (x_bar if batched else x_bar[0])

    def _output_weights(self, W, n_points: int, batched: bool) -> tuple[np.ndarray, int, bool]:
        """vjp's W as (N or 1, m, r) with a point step, and whether r directions were given. Several
        directions always carry both a point axis and a last axis, (N, *out_shape, r) or
        (1, *out_shape, r): (N, *out_shape) keeps its one meaning, a direction per point."""
        shape, m = self.out_shape, self.n_out
        W = _float_array(W, "W", f"(N, *{shape}), {shape}, (N, *{shape}, r) or (1, *{shape}, r)")
        if batched and W.shape == (n_points, *shape):
            return W.reshape(n_points, m, 1), 1, False
        if W.shape == shape:
            return _contiguous(W.reshape(1, m, 1)), 0, False
        if W.ndim == len(shape) + 2 and W.shape[1:-1] == shape:
            if W.shape[0] == 1:
                return _contiguous(W.reshape(1, m, W.shape[-1])), 0, True
            if batched and W.shape[0] == n_points:
                return W.reshape(n_points, m, W.shape[-1]), 1, True
        raise ValueError(f"W must have shape (N, *{shape}) or {shape} (the outputs' shape), or (N, *{shape}, r) or "
                         f"(1, *{shape}, r) for r directions, with N = {n_points}; got {W.shape}")

    def jacobian(self, X, *args, mode: str = "auto", out=None, progress=None, reduce=None, weights=None) -> np.ndarray:
        """The Jacobian (N, *out_shape, n) at every point (out_shape + (n,) for one point).

        ``mode="forward"`` runs tangent sweeps with all n unit directions at once,
        ``"reverse"`` adjoint sweeps with all m unit output weights at once, and
        ``"auto"`` picks the cheaper by :func:`jacobian_mode` (forward unless
        n > 1.5 m + 1). Directions beyond 32 are split over several sweeps.
        """
        (P,) = self._split(args, [], "jacobian")
        if mode not in ("auto", "forward", "reverse"):
            raise ValueError(f"mode must be 'auto', 'forward' or 'reverse', got {mode!r}")
        X, batched = self._points(X, P)
        n, m, N = self.n_in, self.n_out, X.shape[0]
        if mode == "auto":
            mode = jacobian_mode(n, m)
        reduce, w = self._reduced("jacobian", X, P, batched, reduce, weights, out)
        if reduce is not None:  # block by block: the sum of each block's Jacobians
            parts = [_weighted_sum(self.jacobian(X[b], *([] if P is None else [_block_params(P, b)]), mode=mode), None if w is None else w[b])
                     for b in _blocks(N, progress)]
            return self._scale(_pairwise(np.array(parts)), reduce, w, N).reshape(*self.out_shape, n)
        lead = (N,) if batched else ()
        J = _empty(_checked_out(out, (*lead, *self.out_shape, n), (N, m, n), "out", (X, P)), (N, m, n))
        P, p_step = self._params(P, N)
        for block in _blocks(N, progress):
            Xb, Pb = X[block], _rows(P, p_step, block)
            if mode == "forward":
                for cols in _chunks(n):
                    J[block, :, cols] = self._tangent(Xb, Pb, _unit(n, cols), 0)[1]
            else:
                for rows in _chunks(m):
                    J[block, rows, :] = self._adjoint(Xb, Pb, _unit(m, rows), 0)[1].transpose(0, 2, 1)
        return self._shape_out(J, batched, (n,))

    def hessian(self, X, *args, W=None, out=None, progress=None, reduce=None, weights=None) -> np.ndarray:
        """Hessians (N, n, n) of a scalar f, or of sum_i W_i f_i for m outputs (W: (N, m) or (m,)).

        Forward over reverse with all n directions at once (in sweeps of 32).
        """
        (P,) = self._split(args, [], "hessian")
        X, batched = self._points(X, P)
        N, n = X.shape[0], self.n_in
        W, w_step = self._weights(W, N, batched, "hessian")
        reduce, w = self._reduced("hessian", X, P, batched, reduce, weights, out)
        if reduce is not None:
            return self._scale(self._hessian(X, P, W, w_step, None, 0, None, progress, True, w), reduce, w, N)
        out = _checked_out(out, ((N,) if batched else ()) + (n, n), (N, n, n), "out", (X, P, W))
        H = self._hessian(X, P, W, w_step, None, 0, out, progress)
        return H if batched else H[0]

    def hvp(self, X, *args, W=None, out=None, progress=None, reduce=None, weights=None) -> np.ndarray:
        """Hessian-vector products H(x) @ v: V (N, n) or (n,) gives (N, n); (N, n, q), (n, q) or
        (1, n, q) gives (N, n, q). With exactly n points an (n, n) V is ambiguous, as for jvp."""
        P, V = self._split(args, ["V"], "hvp")
        X, batched = self._points(X, P)
        V, v_step, multi = self._seeds(V, "V", self.n_in, X.shape[0], batched)
        N, n, q = X.shape[0], self.n_in, V.shape[2]
        W, w_step = self._weights(W, N, batched, "hvp")
        reduce, w = self._reduced("hvp", X, P, batched, reduce, weights, out)
        if reduce is not None:
            HV = self._scale(self._hessian(X, P, W, w_step, V, v_step, None, progress, True, w), reduce, w, N)
            return HV if multi else HV[:, 0]
        public = ((N,) if batched else ()) + (n,) + ((q,) if multi else ())
        HV = self._hessian(X, P, W, w_step, V, v_step, _checked_out(out, public, (N, n, q), "out", (X, P, V, W)),
                           progress)
        HV = HV if multi else HV[:, :, 0]
        return HV if batched else HV[0]

    # ---- sparsity: patterns and colorings from the tape alone, cached on it ----

    @cached_property
    def _jacobian_coloring(self) -> sparsity.Coloring:
        return sparsity.color_columns(sparsity.jacobian_pattern(self), self.n_in)

    @cached_property
    def _hessian_coloring(self) -> sparsity.Coloring:
        return sparsity.star_color(sparsity.hessian_pattern(self), self.n_in)

    def jacobian_sparsity(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the Jacobian's structural nonzeros, rows indexing the flattened outputs."""
        return self._jacobian_coloring.rows, self._jacobian_coloring.cols

    def hessian_sparsity(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the structural nonzeros of the Hessian of sum_i w_i f_i (both triangles)."""
        return self._hessian_coloring.rows, self._hessian_coloring.cols

    def sparse_jacobian(self, X, *args, progress=None) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        """((rows, cols), values (N, nnz)): the Jacobian from one forward sweep per color.

        ``sparsity.to_scipy((rows, cols), values[k], shape)`` gives point k's scipy.sparse matrix.
        """
        (P,) = self._split(args, [], "sparse_jacobian")
        X, batched = self._points(X, P)
        coloring = self._jacobian_coloring
        N = X.shape[0]
        P, p_step = self._params(P, N)
        values = np.empty((N, coloring.rows.size))
        for block in _blocks(N, progress):
            B = np.empty((block.stop - block.start, self.n_out, coloring.n_colors))
            for cols in _chunks(coloring.n_colors):
                seeds = coloring.seed_columns(cols)[None]
                B[:, :, cols] = self._tangent(X[block], _rows(P, p_step, block), seeds, 0)[1]
            values[block] = B[:, coloring.source_row, coloring.source_col]
        return (coloring.rows, coloring.cols), (values if batched else values[0])

    def sparse_hessian(self, X, *args, W=None, progress=None) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        """((rows, cols), values (N, nnz)): the Hessian from star-colored forward-over-reverse sweeps."""
        (P,) = self._split(args, [], "sparse_hessian")
        X, batched = self._points(X, P)
        N = X.shape[0]
        W, w_step = self._weights(W, N, batched, "sparse_hessian")
        coloring = self._hessian_coloring
        P, p_step = self._params(P, N)
        values = np.empty((N, coloring.rows.size))
        for block in _blocks(N, progress):
            seeds = None if coloring.dense else coloring.seeds[None]  # None: the identity, a chunk at a time
            B = self._hessian(X[block], _rows(P, p_step, block), _rows(W, w_step, block), w_step, seeds, 0)
            values[block] = B[:, coloring.source_row, coloring.source_col]
        return (coloring.rows, coloring.cols), (values if batched else values[0])

    def to_scipy(self, *args, reduce=None, weights=None) -> ScipyFunctions:
        """fun, jac, hess, hessp (and fun_and_jac for jac=True) for scipy.optimize.minimize
        on this scalar f; with parameters, pass P (k,) once here, or P (N, k) with
        ``reduce="sum"`` (or ``"mean"``, optional ``weights``) for the sum over its rows."""
        (P,) = self._split(args, [], "to_scipy")
        return ScipyFunctions(self, P, reduce, weights)

    def stats(self) -> dict:
        """Sizes: instructions recorded and after optimisation, slots, the values the reverse sweep
        reads, scratch rows and bytes per point of each sweep (q directions: JVP, Hessian), the
        dot-product chains the value and gradient sweeps run as one instruction each, and the
        colorings of the sparse Jacobian and Hessian (nonzeros, colors = sweeps' directions).

        Examples
        --------
        >>> import numpy as np, tapead
        >>> s = tapead.record(lambda x: np.sin(x[0]) * np.sin(x[0]) + 0.0 * 2.0, 1).stats()
        >>> s["recorded_ops"], s["ops"], s["values_read_by_reverse"]
        (4, 3, 2)
        """
        n = self.n_slots
        rows = self._compact[-1]  # values of the forward sweeps, adjoints of the reverse one
        reverse_values = self._reverse[0][-1]  # rows reused, but the values read again pinned
        hessian_values = self._hessian_layout[0][-1]
        chained = self._chained
        return {
            "recorded_ops": self.n_recorded or self.n_ops, "ops": self.n_ops, "slots": n,
            "values_read_by_reverse": int(passes.reverse_reads(self).sum()),
            "rows": {"values": rows, "gradient": reverse_values + rows, "hessian": hessian_values + rows},
            "bytes_per_point": {"values": 8 * rows, "gradient": 8 * (reverse_values + rows),
                                "jvp": f"8 * {rows} * (1 + q)", "hessian": f"8 * {hessian_values + rows} * (1 + q)"},
            "tile": {"values": tile_size(rows), "gradient": tile_size(reverse_values + rows)},
            "chains": {"count": int(np.sum(chained >= passes.CHAIN_END)),
                       "ops": int(np.sum(chained >= passes.CHAIN_MULC))},
            "colors": self._coloring_stats(),
        }

    def _coloring_stats(self) -> dict:
        """Nonzeros and colors of the sparse Jacobian's and Hessian's colorings: those computed
        already, or computed now for tapes of up to 4,096 inputs (a coloring's bitsets take
        O(n^2) bits; sparse_jacobian and sparse_hessian compute them at any size)."""
        found = {}
        for name in ("jacobian", "hessian"):
            attribute = f"_{name}_coloring"
            if attribute in self.__dict__ or self.n_in <= 4096:
                found[name] = getattr(self, attribute).stats()
            else:
                found[name] = None
        return found

    def explain(self, x, *args, wrt=0, y_bar=None) -> Explanation:
        """The seed's three traces at one point: evaluation, tangent (for input ``wrt`` or a
        direction) and adjoint (of output weights ``y_bar``) with edge partials and path sums.

        Prints as text and renders as HTML in Jupyter; large tapes are summarised.
        """
        (p,) = self._split(args, [], "explain")
        x, batched = self._points(x)
        if batched:
            raise ValueError(f"explain takes one point of shape ({self.n_in},), got {x.shape}")
        p = () if p is None else self._params(p, 1)[0][0]
        return explain(self, x[0], p, wrt=wrt, y_bar=y_bar)

    def to_dot(self, x=None, *args) -> str:
        """Graphviz DOT text of the computational graph; with a point ``x``, nodes carry values
        and edges their local partials at ``x``."""
        from tapead.dot import to_dot

        (p,) = self._split(args, [], "to_dot")
        p = () if p is None else self._params(p, 1)[0][0]
        return to_dot(self, x, p)

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
        if not isinstance(limit, (int, np.integer)) or isinstance(limit, bool) or limit < 0:
            raise ValueError(f"limit must be a whole number >= 0 (the most points to report), got {limit!r}")
        X, _ = self._points(X, P)
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


def _from_bytes(data: bytes) -> Tape:
    return Tape.from_data(tape_io.from_bytes(data))


def load(path) -> Tape:
    """Read a tape file written by :meth:`Tape.save`; it is validated before use.

    Examples
    --------
    >>> import os, tempfile, numpy as np, tapead
    >>> path = os.path.join(tempfile.mkdtemp(), "seed.tape")
    >>> tapead.record(lambda x: np.log(x[0]) + x[0] * x[1] - np.sin(x[1]), 2).save(path)
    >>> tapead.load(path).gradient(np.array([2.0, 5.0])).tolist()
    [5.5, 1.7163378145367738]
    """
    return Tape.from_data(tape_io.load(path))


def optimize(tape: TapeData) -> Tape:
    """The tape after identities, constant folding, CSE and dead code elimination (tapead.passes)."""
    return Tape.from_data(passes.optimize(tape))


def record(f: Callable, n: int, n_params: int = 0, source_lines: bool = True, optimize: bool = True) -> Tape:
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
    optimize : bool, optional
        Apply :func:`tapead.optimize` (values unchanged bit for bit, derivatives to rounding).

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
    data = trace(f, n, n_params, source_lines)
    return Tape.from_data(passes.optimize(data) if optimize else data)
