"""The public API: record a function once, evaluate it and its derivatives at many points.

``Tape`` adds the evaluation methods to the tape's arrays. Each method checks its arguments
(tapead.shapes) and runs sweeps over the points (tapead.evaluate), block by block, bringing
each block to the kernels' layout without modifying the caller's arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property

import numpy as np

from tapead import evaluate, passes, shapes, sparsity, transform
from tapead import io as tape_io
from tapead.diagnose import NonFinite, find_nonfinite
from tapead.evaluate import jacobian_mode
from tapead.explain import Explanation, explain
from tapead.layout import Layouts, frozen
from tapead.minimize import ScipyFunctions
from tapead.tape import TapeData, validate
from tapead.tracer import holds_traced, inline, trace

__all__ = ["Tape", "record", "load", "optimize", "jacobian_mode"]


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
        return cls(**{k: frozen(v) if isinstance(v, np.ndarray) else v for k, v in fields.items()})

    def save(self, path) -> None:
        """Write the tape to ``path`` in tapead's pickle-free format (see tapead.io); read it with
        :func:`tapead.load`."""
        tape_io.save(self, path)

    def __reduce__(self):
        # pickling (multiprocessing, Dask) goes through the same arrays-only bytes as files
        return _from_bytes, (tape_io.to_bytes(self),)

    @cached_property
    def layouts(self) -> Layouts:
        """The sweeps' scratch layouts (tapead.layout), computed once per tape."""
        return Layouts.of(self)

    # ---- arguments, as tapead.shapes checks them ----

    def _args(self, X, args: tuple, extra: list[str], method: str) -> tuple:
        """(X (N, n), batched, P (N or 1, k), its point step, *extra) for ``method(X, *args)``."""
        P, *rest = shapes.split(args, self.n_params, extra, method)
        X, batched = shapes.points(X, P, self.n_in, self.n_params)
        return (X, batched, *shapes.params(P, self.n_params, X.shape[0]), *rest)

    def _lead(self, X, batched: bool) -> tuple[int, ...]:
        return (X.shape[0],) if batched else ()

    def _scalar(self, method: str) -> None:
        if self.n_out != 1:
            raise ValueError(f"{method} needs a scalar function; this tape has outputs of shape {self.out_shape}: "
                             "use vjp (or jacobian) instead")

    # ---- public methods ----

    # Every evaluation method takes ``progress=`` (called as progress(points_done, n_points)
    # after each block of points), and all but the sparse ones (whose (N, nnz) values are new
    # arrays) ``out=``: arrays to fill of exactly the result's shape, float64 C-contiguous,
    # sharing no memory with the inputs (a numpy memmap works); a pair or triple for methods
    # that return several. With both, any number of points runs in bounded extra memory.
    # tape(), the gradient, vjp, Jacobian and Hessian methods also take ``reduce="sum"`` or
    # ``"mean"`` (with optional per-point ``weights=``): the (weighted) sum or mean over the
    # points instead, computed in bounded memory, in the same bits whatever the thread count.

    def __call__(self, X, *args, out=None, progress=None, reduce=None, weights=None) -> np.ndarray:
        """Values y = f(x) at every point: (N, *out_shape), or out_shape for one point (or their
        sum or mean with ``reduce=``)."""
        if holds_traced(X) or any(holds_traced(a) for a in args):  # inside another record: inline this tape
            if out is not None or progress is not None or reduce is not None or weights is not None:
                raise TypeError("tape() on traced values (inside another record) records its instructions: "
                                "out=, progress=, reduce= and weights= apply to numbers only")
            return inline(self, X, *shapes.split(args, self.n_params, [], "tape()"))
        X, batched, P, p_step = self._args(X, args, [], "tape()")
        N = X.shape[0]
        reduce, w = shapes.reduction("tape()", reduce, weights, N, batched, out)
        if reduce is not None:
            total = shapes.scale(evaluate.primal_sum(self, X, P, p_step, w, progress), reduce, w, N)
            return total.reshape(self.out_shape) if self.out_shape else float(total[0])
        out = shapes.checked_out(out, (*self._lead(X, batched), *self.out_shape), (N, self.n_out), "out", (X, P))
        return shapes.shaped(evaluate.primal(self, X, P, p_step, out, progress), self.out_shape, batched)

    def value_and_gradient(self, X, *args, out=None, progress=None, reduce=None,
                           weights=None) -> tuple[np.ndarray, np.ndarray]:
        """(f(x), grad f(x)) of a scalar f at every point: shapes (N,) and (N, n); ``out=(y, g)``.

        With ``reduce="sum"`` (or ``"mean"``, optional ``weights`` (N,)): the sum of f over the
        points and its gradient (n,), summed inside the reverse sweep. One x (n,) with
        parameters P (N, k) evaluates x at every row of P: a likelihood over N observations."""
        self._scalar("gradient")
        if transform.traced(X, *args):  # inside another record: the gradient as traced code
            return transform.value_and_gradient(self, X, args, out=out, reduce=reduce, weights=weights)
        X, batched, P, p_step = self._args(X, args, [], "value_and_gradient")
        N, n, ones = X.shape[0], self.n_in, np.ones((1, 1, 1))
        reduce, w = shapes.reduction("value_and_gradient", reduce, weights, N, batched, out)
        if reduce is not None:
            y, g = evaluate.adjoint_sum(self, X, P, p_step, ones, 0, w, progress)
            return float(shapes.scale(y[0], reduce, w, N)), shapes.scale(g[:, 0], reduce, w, N)
        lead = self._lead(X, batched)
        y_out, g_out = shapes.checked_outs(out, "value_and_gradient", [(lead, (N, 1)), ((*lead, n), (N, n, 1))],
                                           (X, P))
        Y, X_bar = evaluate.adjoint(self, X, P, p_step, ones, 0, y_out, g_out, progress)
        y, g = Y[:, 0], X_bar[:, :, 0]
        return (y, g) if batched else (y[0], g[0])

    def gradient(self, X, *args, out=None, progress=None, reduce=None, weights=None) -> np.ndarray:
        """grad f(x) of a scalar f at every point: (N, n), or (n,) for one point (or of the sum
        or mean over the points with ``reduce=``)."""
        out = None if out is None else (None, out)
        return self.value_and_gradient(X, *args, out=out, progress=progress, reduce=reduce, weights=weights)[1]

    def jvp(self, X, *args, out=None, progress=None) -> tuple[np.ndarray, np.ndarray]:
        """(f(x), J(x) @ v): V of shape (N, n) or (n,) gives (N, *out_shape); (N, n, q), (n, q) or
        (1, n, q) gives q directions (N, *out_shape, q) in one sweep. With exactly n points, an
        (n, n) V is refused as ambiguous: say V[None] or V[:, :, None]."""
        if transform.traced(X, *args):  # inside another record: forward mode as traced code
            return transform.jvp(self, X, args, out=out)
        X, batched, P, p_step, V = self._args(X, args, ["V"], "jvp")
        V, v_step, multi = shapes.directions(V, "V", self.n_in, X.shape[0], batched)
        N, q, lead, tail = X.shape[0], V.shape[2], self._lead(X, batched), (V.shape[2],) if multi else ()
        y_out, d_out = shapes.checked_outs(out, "jvp", [((*lead, *self.out_shape), (N, self.n_out)),
                                                        ((*lead, *self.out_shape, *tail), (N, self.n_out, q))],
                                           (X, P, V))
        Y, Y_dot = evaluate.tangent(self, X, P, p_step, V, v_step, y_out, d_out, progress)
        y_dot = shapes.shaped(Y_dot, self.out_shape, batched, (q,))
        return shapes.shaped(Y, self.out_shape, batched), y_dot[..., slice(None) if multi else 0]

    def vjp(self, X, *args, out=None, progress=None, reduce=None, weights=None) -> tuple[np.ndarray, np.ndarray]:
        """(f(x), J(x).T @ w): W of shape (N, *out_shape) or out_shape gives (N, n); r directions in
        one sweep: W of shape (N, *out_shape, r), or (1, *out_shape, r) for the same r at every
        point, gives (N, n, r). With ``reduce=``: the sum or mean over the points of both."""
        if transform.traced(X, *args):  # inside another record: reverse mode as traced code
            return transform.vjp(self, X, args, out=out, reduce=reduce, weights=weights)
        X, batched, P, p_step, W = self._args(X, args, ["W"], "vjp")
        N, n, shape = X.shape[0], self.n_in, self.out_shape
        W, w_step, multi = shapes.output_directions(W, shape, N, batched)
        r, pick = W.shape[2], slice(None) if multi else 0
        reduce, w = shapes.reduction("vjp", reduce, weights, N, batched, out)
        if reduce is not None:
            y, x_bar = evaluate.adjoint_sum(self, X, P, p_step, W, w_step, w, progress)
            return shapes.scale(y, reduce, w, N).reshape(shape), shapes.scale(x_bar[:, pick], reduce, w, N)
        lead = self._lead(X, batched)
        y_out, b_out = shapes.checked_outs(out, "vjp", [((*lead, *shape), (N, self.n_out)),
                                                        ((*lead, n, *((r,) if multi else ())), (N, n, r))], (X, P, W))
        Y, X_bar = evaluate.adjoint(self, X, P, p_step, W, w_step, y_out, b_out, progress)
        x_bar = X_bar[..., pick]
        return shapes.shaped(Y, shape, batched), (x_bar if batched else x_bar[0])

    def jacobian(self, X, *args, mode: str = "auto", out=None, progress=None, reduce=None, weights=None) -> np.ndarray:
        """The Jacobian (N, *out_shape, n) at every point (out_shape + (n,) for one point).

        ``mode="forward"`` runs tangent sweeps with all n unit directions at once,
        ``"reverse"`` adjoint sweeps with all m unit output weights at once, and
        ``"auto"`` picks the cheaper by :func:`jacobian_mode` (reverse when there are fewer
        outputs than inputs, m < n). Directions beyond 32 are split over several sweeps.
        """
        out = None if out is None else (None, out)
        return self._value_and_jacobian(X, args, mode, out, progress, reduce, weights, values=False)[1]

    def value_and_jacobian(self, X, *args, mode: str = "auto", out=None, progress=None, reduce=None,
                           weights=None) -> tuple[np.ndarray, np.ndarray]:
        """(f(x), its Jacobian) from the same sweeps: (N, *out_shape) and (N, *out_shape, n);
        ``out=(y, J)``; ``mode`` as for :meth:`jacobian`."""
        return self._value_and_jacobian(X, args, mode, out, progress, reduce, weights)

    def _value_and_jacobian(self, X, args, mode, out, progress, reduce, weights, values=True):
        if mode not in ("auto", "forward", "reverse"):
            raise ValueError(f"mode must be 'auto', 'forward' or 'reverse', got {mode!r}")
        if transform.traced(X, *args):  # inside another record: the Jacobian as traced code
            return transform.value_and_jacobian(self, X, args, mode, out=out, reduce=reduce, weights=weights)
        X, batched, P, p_step = self._args(X, args, [], "value_and_jacobian")
        n, m, N, shape = self.n_in, self.n_out, X.shape[0], self.out_shape
        mode = jacobian_mode(n, m) if mode == "auto" else mode
        reduce, w = shapes.reduction("value_and_jacobian", reduce, weights, N, batched, out)
        if reduce is not None:
            y, J = evaluate.jacobian_sum(self, X, P, p_step, mode, w, progress)
            return shapes.scale(y, reduce, w, N).reshape(shape), shapes.scale(J, reduce, w, N).reshape(*shape, n)
        lead = self._lead(X, batched)
        y_out, j_out = shapes.checked_outs(out, "value_and_jacobian", [((*lead, *shape), (N, m)),
                                                                       ((*lead, *shape, n), (N, m, n))], (X, P))
        Y, J = evaluate.jacobian(self, X, P, p_step, mode, y_out, j_out, progress, values)
        return Y if Y is None else shapes.shaped(Y, shape, batched), shapes.shaped(J, shape, batched, (n,))

    def hessian(self, X, *args, W=None, out=None, progress=None, reduce=None, weights=None) -> np.ndarray:
        """Hessians (N, n, n) of a scalar f, or of sum_i W_i f_i for m outputs (W: (N, m) or (m,)).

        Forward over reverse with all n directions at once (in sweeps of 32).
        """
        out = None if out is None else (None, None, out)
        return self._value_gradient_and_hessian(X, args, W, out, progress, reduce, weights, values=False)[2]

    def value_gradient_and_hessian(self, X, *args, W=None, out=None, progress=None, reduce=None,
                                   weights=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(f(x), grad f(x), Hessian of f) from the same sweeps: (N,), (N, n), (N, n, n) for a
        scalar f; for m outputs, the values (N, *out_shape) and the gradient and Hessian of
        sum_i W_i f_i. ``out=(y, g, H)``."""
        return self._value_gradient_and_hessian(X, args, W, out, progress, reduce, weights)

    def _value_gradient_and_hessian(self, X, args, W, out, progress, reduce, weights, values=True):
        if transform.traced(X, *args, W):  # inside another record: forward over reverse as traced code
            return transform.value_gradient_and_hessian(self, X, args, W, out=out, reduce=reduce, weights=weights)
        X, batched, P, p_step = self._args(X, args, [], "hessian")
        N, n = X.shape[0], self.n_in
        W, w_step = shapes.output_weights(W, self.out_shape, N, batched, "hessian")
        reduce, w = shapes.reduction("hessian", reduce, weights, N, batched, out)
        if reduce is not None:
            y, g, H = (shapes.scale(s, reduce, w, N) for s in evaluate.hessian(
                self, X, P, p_step, W, w_step, None, 0, progress=progress, reduce=True, weights=w))
            return (y.reshape(self.out_shape) if self.out_shape else float(y[0])), g, H
        lead = self._lead(X, batched)
        outs = shapes.checked_outs(out, "value_gradient_and_hessian",
                                   [((*lead, *self.out_shape), (N, self.n_out)), ((*lead, n), (N, n)),
                                    ((*lead, n, n), (N, n, n))], (X, P, W))
        Y, G, H = evaluate.hessian(self, X, P, p_step, W, w_step, None, 0, *outs, progress, values=values)
        if not values:
            return None, None, H if batched else H[0]
        return shapes.shaped(Y, self.out_shape, batched), *((A if batched else A[0]) for A in (G, H))

    def hvp(self, X, *args, W=None, out=None, progress=None, reduce=None, weights=None) -> np.ndarray:
        """Hessian-vector products H(x) @ v: V (N, n) or (n,) gives (N, n); (N, n, q), (n, q) or
        (1, n, q) gives (N, n, q). With exactly n points an (n, n) V is ambiguous, as for jvp."""
        if transform.traced(X, *args, W):  # inside another record: Hessian products as traced code
            return transform.hvp(self, X, args, W, out=out, reduce=reduce, weights=weights)
        X, batched, P, p_step, V = self._args(X, args, ["V"], "hvp")
        N, n = X.shape[0], self.n_in
        V, v_step, multi = shapes.directions(V, "V", n, N, batched)
        q, pick = V.shape[2], slice(None) if multi else 0
        W, w_step = shapes.output_weights(W, self.out_shape, N, batched, "hvp")
        reduce, w = shapes.reduction("hvp", reduce, weights, N, batched, out)
        if reduce is not None:
            HV = evaluate.hessian(self, X, P, p_step, W, w_step, V, v_step, progress=progress, reduce=True,
                                  weights=w)[2]
            return shapes.scale(HV, reduce, w, N)[:, pick]
        public = (*self._lead(X, batched), n, *((q,) if multi else ()))
        HV = shapes.checked_out(out, public, (N, n, q), "out", (X, P, V, W))
        HV = evaluate.hessian(self, X, P, p_step, W, w_step, V, v_step, HV=HV, progress=progress,
                              values=False)[2][..., pick]
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
        X, batched, P, p_step = self._args(X, args, [], "sparse_jacobian")
        coloring = self._jacobian_coloring
        values = evaluate.sparse_jacobian(self, coloring, X, P, p_step, progress)
        return (coloring.rows, coloring.cols), (values if batched else values[0])

    def sparse_hessian(self, X, *args, W=None, progress=None) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        """((rows, cols), values (N, nnz)): the Hessian from star-colored forward-over-reverse sweeps."""
        X, batched, P, p_step = self._args(X, args, [], "sparse_hessian")
        W, w_step = shapes.output_weights(W, self.out_shape, X.shape[0], batched, "sparse_hessian")
        coloring = self._hessian_coloring
        values = evaluate.sparse_hessian(self, coloring, X, P, p_step, W, w_step, progress)
        return (coloring.rows, coloring.cols), (values if batched else values[0])

    def to_scipy(self, *args, reduce=None, weights=None) -> ScipyFunctions:
        """fun, jac, hess, hessp (and fun_and_jac for jac=True) for scipy.optimize.minimize
        on this scalar f; with parameters, pass P (k,) once here, or P (N, k) with
        ``reduce="sum"`` (or ``"mean"``, optional ``weights``) for the sum over its rows."""
        (P,) = shapes.split(args, self.n_params, [], "to_scipy")
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
        return {**self.layouts.sizes(self), "colors": self._coloring_stats()}

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

    def _one_row(self, args: tuple, method: str):
        """The parameters of one point: (k,), or () without parameters."""
        (p,) = shapes.split(args, self.n_params, [], method)
        return () if p is None else shapes.params(p, self.n_params, 1)[0][0]

    def explain(self, x, *args, wrt=0, y_bar=None) -> Explanation:
        """The three traces of the worked example at one point: evaluation, tangent (for input
        ``wrt`` or a direction) and adjoint (of output weights ``y_bar``) with edge partials
        and path sums.

        Prints as text and renders as HTML in Jupyter; large tapes are summarised.
        """
        p = self._one_row(args, "explain")
        X, batched = shapes.points(x, None, self.n_in, self.n_params)
        if batched:
            raise ValueError(f"explain takes one point of shape ({self.n_in},), got {X.shape}")
        return explain(self, X[0], p, wrt=wrt, y_bar=y_bar)

    def to_dot(self, x=None, *args) -> str:
        """Graphviz DOT text of the computational graph; with a point ``x``, nodes carry values
        and edges their local partials at ``x``."""
        from tapead.dot import to_dot

        return to_dot(self, x, self._one_row(args, "to_dot"))

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
        if not isinstance(limit, (int, np.integer)) or isinstance(limit, bool) or limit < 0:
            raise ValueError(f"limit must be a whole number >= 0 (the most points to report), got {limit!r}")
        X, _, P, p_step = self._args(X, args, [], "find_nonfinite")
        y_bar = np.ones(self.n_out)
        Y, X_bar = evaluate.adjoint(self, X, P, p_step, y_bar.reshape(1, -1, 1), 0)
        bad = np.flatnonzero(~(np.isfinite(Y).all(axis=1) & np.isfinite(X_bar).all(axis=(1, 2))))
        return find_nonfinite(self, bad[:limit], X, P, p_step, y_bar)


def _from_bytes(data: bytes) -> Tape:
    return Tape.from_data(tape_io.from_bytes(data))


def load(path) -> Tape:
    """Read a tape file written by :meth:`Tape.save`; it is validated before use.

    Examples
    --------
    >>> import os, tempfile, numpy as np, tapead
    >>> path = os.path.join(tempfile.mkdtemp(), "example.tape")
    >>> tapead.record(lambda x: np.log(x[0]) + x[0] * x[1] - np.sin(x[1]), 2).save(path)
    >>> tapead.load(path).gradient(np.array([2.0, 5.0])).tolist()
    [5.5, 1.7163378145367738]
    """
    return Tape.from_data(tape_io.load(path))


def optimize(tape: TapeData) -> Tape:
    """The tape after identities, constant folding, CSE and dead code elimination (tapead.passes)."""
    if hasattr(tape, "paths"):  # a tapead.branches.GuardedTape: one tape per path, not one tape
        raise TypeError("optimize takes one tape; a tape with branch guards has one per path, each optimised "
                        "when recorded (record(..., optimize=True)): optimize a path's, tape.paths[k].tape")
    return Tape.from_data(passes.optimize(tape))


def record(f: Callable, n: int, n_params: int = 0, source_lines: bool = True, optimize: bool = True, *,
           branches: str | None = None, at=None, at_params=None, max_paths: int | None = None) -> Tape:
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
    branches : None or "guard", optional
        None: ``if``/``while``/``max()`` on a traced value is an error. ``"guard"``: record the
        branch that the point ``at`` (and parameters ``at_params``) takes, keep every test as a
        guard, and at evaluation give each point the branch it takes, recording one tape per
        path (at most ``max_paths``, default 32): see :mod:`tapead.branches`.

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
    if branches is not None or at is not None or at_params is not None or max_paths is not None:
        from tapead.branches import record_guarded

        return record_guarded(f, n, n_params, source_lines, optimize, branches, at, at_params, max_paths)
    data = trace(f, n, n_params, source_lines)
    return Tape.from_data(passes.optimize(data) if optimize else data)
