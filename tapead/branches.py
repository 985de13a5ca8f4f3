"""Branch guards: Python control flow on traced values, decided point by point.

``record(f, n, branches="guard", at=x0)`` runs ``f`` once on traced values, as every
recording does, but answers each question Python asks of a traced value (``bool()`` for
``if``, ``while``, ``and``/``or``, ``max()``/``min()``; ``float()`` of a condition; ``int()``)
with its value at the reference point ``x0``, computed as the recording goes. Each answer is
kept as a *guard*: the slot holding the tested value and the outcome taken. The result is one
*path*: the tape of the branch ``x0`` takes, the same with the guards' tested values as extra
outputs, and a small tape computing the tested values alone (the guard tape).

A point takes a path when every guard has the recorded outcome there. Values, JVPs and
gradients run the first path with its guards as extra outputs, so points that all agree cost
one ordinary sweep; the others (and Hessians, Jacobians and reductions, first) are sorted by
the guard tapes. The first point that fits no path becomes the reference point of a new
recording, the points left over are checked against that path's guards, and so on: every
point gets the values and derivatives of the branch it takes, from one tape per path, cached
on the :class:`GuardedTape` and bounded by ``max_paths``. See docs/design.md, "Branch guards".

Examples
--------
>>> import numpy as np, tapead
>>> def f(x):
...     return x[0] ** 2 if x[0] > 0 else -x[0]
>>> tape = tapead.record(f, 1, branches="guard", at=np.array([1.0]))
>>> tape.gradient(np.array([[3.0], [-2.0]])).ravel().tolist()
[6.0, -1.0]
>>> len(tape.paths)  # the point -2 took the other branch: one re-recording
2
"""

from __future__ import annotations

import inspect
import math
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from tapead import evaluate, passes, runtime, shapes
from tapead.api import Tape
from tapead.layout import frozen
from tapead.ops import CONDITIONS, CONST, INPUT, OPS, PARAM
from tapead.tape import INDEX_DTYPE, TapeData, format_const, format_tape, slot_name, validate
from tapead.tracer import GUARDS, Var, _user_frame, holds_traced, trace

__all__ = ["Guard", "Path", "GuardedTape", "BranchError", "record_guarded", "DEFAULT_MAX_PATHS"]

DEFAULT_MAX_PATHS = 32
MODES = (None, "guard")



class BranchError(ValueError):
    """The points take more paths than ``max_paths`` allows."""


@dataclass(frozen=True)
class Guard:
    """One question ``f`` asked of a traced value: is ``v[slot]`` true (nonzero)?

    ``slot`` is a slot of the path's tape, ``text`` the tested expression as printed
    (``v_0 > 0``), ``taken`` the outcome at the path's reference point, ``line`` the
    place in ``f`` that asked ("file:line", or "" if unknown).
    """

    slot: int
    text: str
    taken: bool
    line: str = ""

    def __str__(self) -> str:
        return f"guard {self.text} taken: {self.taken}" + (f"  ({self.line})" if self.line else "")


@dataclass(frozen=True, eq=False)
class Path:
    """One branch of ``f``: its tape, its guards and the point it was recorded at.

    ``with_guards`` is ``tape`` with the guards' tested values as extra outputs after its own:
    a sweep of it evaluates the points and checks them in one go. ``checks`` computes the
    tested values alone (dead code removed, on the inputs ``columns`` it reads; None: all).
    Both are None when the path has no guards.
    """

    tape: Tape
    guards: tuple[Guard, ...]
    at: np.ndarray
    at_params: np.ndarray
    with_guards: Tape | None
    checks: Tape | None
    columns: np.ndarray | None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_taken", np.array([g.taken for g in self.guards], dtype=bool))

    def takes(self, G: np.ndarray) -> np.ndarray:
        """Per row of tested values G (N, guards): whether every guard has its outcome."""
        if G.shape[1] == 1:  # the common case, without a reduction over the guards
            return (G[:, 0] != 0.0) == self._taken[0]
        return ((G != 0.0) == self._taken).all(axis=1)  # NaN counts as true, as in Python

    def agrees(self, X: np.ndarray, P: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Per point of X (N, n) (and P (N, k) or (1, k)), or of its ``rows`` only: whether every
        guard has its outcome. Only the columns the guards read are gathered."""
        if self.checks is None:
            return np.ones(X.shape[0] if rows is None else rows.size, dtype=bool)
        if rows is not None:
            X = X[rows] if self.columns is None else X[np.ix_(rows, self.columns)]
        elif self.columns is not None:
            X = X[:, self.columns]
        return self.takes(_values(self.checks, X, P))

    def first_disagreement(self, x: np.ndarray, p: np.ndarray) -> Guard | None:
        """The first guard whose outcome at the one point x differs, or None."""
        if self.checks is None:
            return None
        x = x.reshape(1, -1)
        tested = _values(self.checks, x if self.columns is None else x[:, self.columns], p.reshape(1, -1))[0] != 0.0
        return next((g for g, t in zip(self.guards, tested) if t != g.taken), None)

    def describe(self) -> str:
        lines = [f"recorded at x = {_vector(self.at)}" + (f", p = {_vector(self.at_params)}" if self.at_params.size
                                                           else "")]
        lines += [f"  {g}" for g in self.guards]
        return "\n".join(lines)


def _values(tape: Tape, X: np.ndarray, P: np.ndarray) -> np.ndarray:
    """tape's values at X (N, n) with P (N, k) or one row (1, k) for all points."""
    return evaluate.primal(tape, X, P, int(P.shape[0] != 1))


def _vector(a: np.ndarray, limit: int = 6) -> str:
    shown = [format_const(v) for v in a[:limit]] + ([f"... ({a.size - limit} more)"] if a.size > limit else [])
    return "(" + ", ".join(shown) + ")"


class _Recording:
    """The guards of one recording in progress: ``tapead.tracer.GUARDS`` while ``f`` runs.

    Values of the slots recorded so far at the reference point are computed incrementally
    with the op table's formulas, so a guard costs the instructions since the last one.
    """

    def __init__(self, x0: np.ndarray, p0: np.ndarray) -> None:
        self.x0, self.p0 = x0, p0
        self.rec = None  # the recorder of this recording (set from f's first argument)
        self.values: list[np.float64] = []
        self.guards: list[tuple[int, bool, str]] = []  # (recorded slot, outcome, line)

    def value(self, var: Var) -> np.float64:
        rec = var.rec
        if rec is not self.rec:
            raise TypeError("a traced value of another recording was tested inside a function recorded with "
                            "branches='guard': only the recording's own values can be guarded")
        v, n_in = self.values, len(self.x0)
        with np.errstate(all="ignore"):
            for i in range(len(v), len(rec.op)):
                code = rec.op[i]
                if code == INPUT:
                    v.append(np.float64(self.x0[i]))
                elif code == PARAM:
                    v.append(np.float64(self.p0[i - n_in]))
                elif code == CONST:
                    v.append(np.float64(rec.const[i]))
                else:
                    spec = OPS[code]  # the op table's primal, as the optimizer folds constants
                    operands = [v[a] for a in (rec.arg0[i], rec.arg1[i], rec.arg2[i])[:spec.arity]]
                    v.append(np.float64(spec.fold(operands, rec.const[i])))
        return v[var.slot]

    def truth(self, var: Var) -> bool:
        """bool(var) at the reference point, kept as a guard."""
        taken = bool(self.value(var) != 0.0)  # NaN is true, as bool(float("nan"))
        user = _user_frame(sys._getframe(1))
        self.guards.append((var.slot, taken, "" if user is None else f"{user.f_code.co_filename}:{user.f_lineno}"))
        return taken

    def integer(self, var: Var) -> int:
        """int(var): a condition's 0 or 1; else trunc(var) at the reference point, guarded to stay that integer."""
        if var.rec is self.rec and var.rec.op[var.slot] in CONDITIONS:
            return int(self.truth(var))
        t = math.trunc(var)  # traced, derivative 0
        k = float(self.value(t))
        if not math.isfinite(k):
            raise ValueError(f"int() of a traced value that is {k} at the reference point {_vector(self.x0)}")
        self.truth(t == k)
        return int(k)


def _guard_text(tape: TapeData, slot: int) -> str:
    """The tested expression with constant operands written as numbers: ``v_0 > 0``; ``v5 != 0``
    for a value that is not a condition (bool(v5))."""
    spec = OPS[tape.op[slot]]
    if slot < tape.n_in + tape.n_params or spec.code not in CONDITIONS:
        name = format_const(tape.const[slot]) if spec.code == CONST else slot_name(tape, slot)
        return f"{name} != 0"
    names = {"c": format_const(tape.const[slot])}
    for key, args in list(zip("xyw", (tape.arg0, tape.arg1, tape.arg2)))[: spec.arity]:
        a = int(args[slot])
        names[key] = format_const(tape.const[a]) if tape.op[a] == CONST else slot_name(tape, a)
    return spec.fmt.format(**names)


def _record_path(f: Callable, n: int, n_params: int, source_lines: bool, optimize: bool,
                 x0: np.ndarray, p0: np.ndarray) -> Path:
    """Record ``f`` along the branch that x0 (and p0) takes."""
    recording = _Recording(x0, p0)

    def at_x0(x, *p):
        recording.rec = x[0].rec  # this recording's recorder: f's first traced input belongs to it
        return f(x, *p)

    token = GUARDS.set(recording)
    try:
        data = trace(at_x0, n, n_params, source_lines)
    finally:
        GUARDS.reset(token)
    seen: dict[int, tuple[bool, str]] = {}
    for slot, taken, line in recording.guards:  # a slot tested twice is one guard
        seen.setdefault(slot, (taken, line))
    m, tested = data.n_out, list(seen)
    # the tested values stay on the path's tape (printed, explained), unread by its outputs
    both = replace(data, outputs=np.array([*data.outputs.tolist(), *tested], dtype=INDEX_DTYPE),
                   out_shape=(m + len(tested),))
    if optimize:
        both = passes.optimize(both)
    tape = Tape.from_data(replace(both, outputs=both.outputs[:m].copy(), out_shape=data.out_shape))
    slots = both.outputs[m:].tolist()
    guards = tuple(Guard(s, _guard_text(tape, s), *seen[t]) for s, t in zip(slots, tested))
    x0, p0 = (frozen(np.asarray(a, dtype=np.float64)) for a in (x0, p0))
    if not guards:
        return Path(tape, guards, x0, p0, None, None, None)
    checks, columns = _on_inputs_read(passes.optimize(replace(both, outputs=np.array(slots, dtype=INDEX_DTYPE),
                                                              out_shape=(len(slots),))))
    return Path(tape, guards, x0, p0, Tape.from_data(both), Tape.from_data(checks), columns)


def _on_inputs_read(tape: TapeData) -> tuple[TapeData, np.ndarray | None]:
    """``tape`` over only the inputs it reads (at least one), and their columns (None: all).

    A guard on x[0] of a 50-input function then reads one column of X, not the whole of it.
    """
    n, n_slots = tape.n_in, tape.n_slots
    arity = np.array([spec.arity for spec in OPS])[tape.op]
    read = np.zeros(n_slots, dtype=bool)
    for k, arg in enumerate((tape.arg0, tape.arg1, tape.arg2)):
        read[arg[arity > k]] = True
    read[tape.outputs] = True
    columns = np.flatnonzero(read[:n])
    if columns.size == n:
        return tape, None
    columns = columns if columns.size else np.array([0])
    k = columns.size
    new = np.full(n_slots + 1, -1, dtype=INDEX_DTYPE)  # entry -1 (the last) maps an unused operand to -1
    new[columns] = np.arange(k)
    new[n:n_slots] = np.arange(k, k + n_slots - n)
    keep = np.concatenate([columns, np.arange(n, n_slots)])
    return validate(TapeData(
        op=tape.op[keep], arg0=new[tape.arg0[keep]], arg1=new[tape.arg1[keep]], arg2=new[tape.arg2[keep]],
        const=tape.const[keep], outputs=new[tape.outputs], n_in=k, n_params=tape.n_params,
        out_shape=tape.out_shape)), columns


def _point(a, length: int, name: str) -> np.ndarray:
    if holds_traced(a):
        raise TypeError(f"{name} must hold numbers (the reference point), not traced values")
    a = np.asarray(a)
    if a.dtype.kind not in "biuf" or a.shape != (length,):
        raise ValueError(f"{name} must be a real array of shape ({length},), got shape {a.shape}, dtype {a.dtype}")
    return a.astype(np.float64)


class _Branches:
    """What a GuardedTape needs to record more paths, and the paths so far."""

    def __init__(self, f, n, n_params, source_lines, optimize, max_paths, root: Path) -> None:
        self.record = (f, n, n_params, source_lines, optimize)
        self.max_paths = max_paths
        self.paths: list[Path] = [root]
        self.lock = threading.Lock()
        self.optimistic = True  # whether most points took the first path last time (see _first_path)

    def add(self, x: np.ndarray, p: np.ndarray, known: int) -> Path:
        """The path of point x (p): one added by another thread since ``known`` paths, or a new recording."""
        with self.lock:
            for path in self.paths[known:]:
                if path.agrees(x.reshape(1, -1), p.reshape(1, -1))[0]:
                    return path
            if len(self.paths) >= self.max_paths:
                root = self.paths[0]
                guard = root.first_disagreement(x, p)
                differs = f" (it fails the first path's {guard})" if guard else ""
                raise BranchError(
                    f"the points take more than max_paths={self.max_paths} paths through f: point x = "
                    f"{_vector(x)}{differs} agrees with none of the {len(self.paths)} recorded. Pass a larger "
                    "max_paths= to record(), or select with tapead.where(cond, a, b) / np.where (and np.floor "
                    "instead of int()) so that one tape serves every point")
            path = _record_path(*self.record, x, p)
            self.paths.append(path)
            return path


def _route(tape: GuardedTape, X: np.ndarray, P: np.ndarray, p_step: int, progress=None) -> list[tuple]:
    """[(path, idx, X_g, P_g, progress_g)] for the groups of points taking each path, recording
    paths as needed; idx None (and X, P as given) when all of them take one."""
    b, N = tape._branches, X.shape[0]
    known = list(b.paths)
    groups: list[tuple[Path, np.ndarray]] = []
    rest = None  # None: every point
    for path in known:
        ok = path.agrees(X, P if rest is None else _rows(P, p_step, rest), rest)
        if rest is None and ok.all():
            return [(path, None, X, P, progress)]
        rest = np.arange(N) if rest is None else rest
        if ok.any():
            groups.append((path, rest[ok]))
        rest = rest[~ok]
        if rest.size == 0:
            break
    while rest is not None and rest.size:
        k = int(rest[0])
        path = b.add(X[k], P[k * p_step], len(known))
        ok = path.agrees(X, _rows(P, p_step, rest), rest)
        ok[0] = True  # recorded at this point: it takes this path (whatever the last bit of its guards)
        groups.append((path, rest[ok]))
        rest = rest[~ok]
    parts, done = [], 0
    for path, idx in sorted(groups, key=lambda g: g[1][0]):
        step = None if progress is None else (lambda d, _n, before=done: progress(before + d, N))
        parts.append((path, idx, np.take(X, idx, axis=0), _rows(P, p_step, idx), step))
        done += idx.size
    return parts


def _first_path(tape: GuardedTape, sweep: Callable, X, P, p_step: int, Y, progress, fill: Callable):
    """Evaluate every point on its path; returns Y, f's outputs (N, m), filled.

    Optimistic while most points take the first path: ``sweep(tape, X, P, progress)`` runs the
    first path's tape with its guards as extra outputs (returning all outputs' values), then
    ``fill(path, rows, X_g, P_g, progress)`` redoes the points whose guards disagree on the
    paths they take: one sweep and a comparison when all agree. Once a quarter of the points or
    more took other paths, the next calls sort the points first (the guard tapes, cheap) and
    run each path once on its own points, until most take the first path again.
    """
    b, N, m = tape._branches, X.shape[0], tape.n_out
    root = b.paths[0]
    if b.optimistic:
        report = None if progress is None else (lambda done, n: progress(done, n) if done < n else None)
        Y_all = sweep(root.with_guards, X, P, report)
        Y[...] = Y_all[:, :m]
        redo = np.flatnonzero(~root.takes(Y_all[:, m:]))
        if redo.size:
            for path, idx, Xg, Pg, _ in _route(tape, np.take(X, redo, axis=0), _rows(P, p_step, redo), p_step):
                fill(path, redo if idx is None else redo[idx], Xg, Pg, None)
        if progress is not None:
            progress(N, N)
        on_root = N - redo.size
    else:
        parts = _route(tape, X, P, p_step, progress)
        for path, idx, Xg, Pg, step in parts:
            fill(path, slice(None) if idx is None else idx, Xg, Pg, step)
        on_root = sum(N if idx is None else idx.size for path, idx, *_ in parts if path is root)
    b.optimistic = 4 * on_root >= 3 * N
    return Y


def _rows(A, step: int, idx):
    """The rows ``idx`` of a per-point array (step 1); a shared one (step 0), None, or all rows
    (``idx`` None: every point on one path), as it is."""
    return A[idx] if step and A is not None and idx is not None else A


def _new(out, shape: tuple[int, ...]) -> np.ndarray:
    return np.empty(shape) if out is None else out


def _summed(parts: list) -> tuple:
    """The groups' sums added in their order (fixed by the points), component by component."""
    return tuple(sum(items[1:], items[0]) for items in zip(*parts))


# the per-point arguments of tapead.evaluate's functions (each with the argument holding its
# point step, or None: always per point), and their per-point results
_PER_POINT = {"X": None, "P": "p_step", "V": "v_step", "W": "w_step", "weights": None}
_RESULTS = ("Y", "Y_dot", "X_bar", "J", "G", "HV")


def _blockwise(fn: Callable) -> Callable:
    """``fn`` (one of :class:`_Sweeps`' functions) over blocks of tapead.runtime.BLOCK points, as
    tapead.evaluate runs its sweeps: routing points to paths copies them and their guards'
    values, so memory beyond the inputs and results stays bounded whatever N is. Reductions
    add the blocks' sums in order; per-point results are filled block by block."""
    signature = inspect.signature(fn)
    results = [name for name in signature.parameters if name in _RESULTS]

    def blocked(*args, **kwargs):
        if (args[1] if len(args) > 1 else kwargs["X"]).shape[0] <= runtime.BLOCK:  # (tape, X, ...)
            return fn(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        given = bound.arguments
        n_points = given["X"].shape[0]
        reduce = fn.__name__.endswith("_sum") or given.get("reduce", False)
        sums, full = [], {name: given[name] for name in results}
        for block in runtime.blocks(n_points, given["progress"]):
            part = dict(given, progress=None)
            for name, step in _PER_POINT.items():
                if part.get(name) is not None and (step is None or part[step]):
                    part[name] = part[name][block]
            if reduce:
                sums.append(fn(**part))
                continue
            part.update({name: a[block] for name, a in full.items() if a is not None})
            got = fn(**part)
            for name, g in zip(results, got if isinstance(got, tuple) else (got,)):
                if full[name] is None and g is not None:  # the first block's result: the full array
                    full[name] = np.empty((n_points, *g.shape[1:]))
                    full[name][block] = g
        if reduce:
            return _summed(sums) if isinstance(sums[0], tuple) else _summed([(s,) for s in sums])[0]
        return tuple(full.values()) if len(results) > 1 else full[results[0]]

    blocked.__name__, blocked.__doc__ = fn.__name__, fn.__doc__
    return blocked


class _Sweeps:
    """``tapead.evaluate``'s functions with every point on the path it takes: what the methods of
    :class:`GuardedTape` (Tape's own, see :func:`_on_paths`) call as ``evaluate``. Same
    signatures; ``tape`` is the GuardedTape. A function of evaluate not routed here is an
    AttributeError, never the first path's result for every point."""

    @staticmethod
    @_blockwise
    def primal(tape, X, P, p_step, Y=None, progress=None):
        Y = _new(Y, (X.shape[0], tape.n_out))

        def fill(path, rows, Xg, Pg, step):
            Y[rows] = evaluate.primal(path.tape, Xg, Pg, p_step, None, step)

        sweep = lambda t, X, P, report: evaluate.primal(t, X, P, p_step, None, report)  # noqa: E731
        return _first_path(tape, sweep, X, P, p_step, Y, progress, fill)

    @staticmethod
    @_blockwise
    def tangent(tape, X, P, p_step, V, v_step, Y=None, Y_dot=None, progress=None):
        N, m = X.shape[0], tape.n_out
        Y, Y_dot = _new(Y, (N, m)), _new(Y_dot, (N, m, V.shape[2]))

        def sweep(t, X, P, report):
            Y_all, Y_dot_all = evaluate.tangent(t, X, P, p_step, V, v_step, progress=report)
            Y_dot[...] = Y_dot_all[:, :m]
            return Y_all

        def fill(path, rows, Xg, Pg, step):
            Y[rows], Y_dot[rows] = evaluate.tangent(path.tape, Xg, Pg, p_step, _rows(V, v_step, rows), v_step,
                                                    progress=step)

        return _first_path(tape, sweep, X, P, p_step, Y, progress, fill), Y_dot

    @staticmethod
    @_blockwise
    def adjoint(tape, X, P, p_step, W, w_step, Y=None, X_bar=None, progress=None):
        N, m = X.shape[0], tape.n_out
        Y, X_bar = _new(Y, (N, m)), _new(X_bar, (N, tape.n_in, W.shape[2]))
        padded = np.zeros((W.shape[0], m + len(tape._branches.paths[0].guards), W.shape[2]))
        padded[:, :m] = W  # the guards' outputs get adjoint 0: the gradient is that of f's outputs

        def sweep(t, X, P, report):
            return evaluate.adjoint(t, X, P, p_step, padded, w_step, None, X_bar, report)[0]

        def fill(path, rows, Xg, Pg, step):
            Y[rows], X_bar[rows] = evaluate.adjoint(path.tape, Xg, Pg, p_step, _rows(W, w_step, rows), w_step,
                                                    progress=step)

        return _first_path(tape, sweep, X, P, p_step, Y, progress, fill), X_bar

    @staticmethod
    @_blockwise
    def primal_sum(tape, X, P, p_step, weights, progress=None):
        return _summed([(evaluate.primal_sum(path.tape, Xg, Pg, p_step, _rows(weights, 1, idx), step),)
                        for path, idx, Xg, Pg, step in _route(tape, X, P, p_step, progress)])[0]

    @staticmethod
    @_blockwise
    def adjoint_sum(tape, X, P, p_step, W, w_step, weights, progress=None):
        return _summed([evaluate.adjoint_sum(path.tape, Xg, Pg, p_step, _rows(W, w_step, idx), w_step,
                                             _rows(weights, 1, idx), step)
                        for path, idx, Xg, Pg, step in _route(tape, X, P, p_step, progress)])

    @staticmethod
    @_blockwise
    def jacobian_sum(tape, X, P, p_step, mode, weights, progress=None):
        return _summed([evaluate.jacobian_sum(path.tape, Xg, Pg, p_step, mode, _rows(weights, 1, idx), step)
                        for path, idx, Xg, Pg, step in _route(tape, X, P, p_step, progress)])

    @staticmethod
    @_blockwise
    def jacobian(tape, X, P, p_step, mode, Y=None, J=None, progress=None, values=True):
        parts = _route(tape, X, P, p_step, progress)
        if parts[0][1] is None:
            path, _, X, P, progress = parts[0]
            return evaluate.jacobian(path.tape, X, P, p_step, mode, Y, J, progress, values)
        N, m = X.shape[0], tape.n_out
        Y, J = _new(Y, (N, m)) if values else None, _new(J, (N, m, tape.n_in))
        for path, idx, Xg, Pg, step in parts:
            Yg, J[idx] = evaluate.jacobian(path.tape, Xg, Pg, p_step, mode, progress=step, values=values)
            if values:
                Y[idx] = Yg
        return Y, J

    @staticmethod
    @_blockwise
    def hessian(tape, X, P, p_step, W, w_step, V, v_step, Y=None, G=None, HV=None, progress=None, reduce=False,
                weights=None, values=True):
        parts = _route(tape, X, P, p_step, progress)
        if parts[0][1] is None:
            path, _, X, P, progress = parts[0]
            return evaluate.hessian(path.tape, X, P, p_step, W, w_step, V, v_step, Y, G, HV, progress, reduce,
                                    weights, values)
        if reduce:
            return _summed([evaluate.hessian(path.tape, Xg, Pg, p_step, _rows(W, w_step, idx), w_step,
                                             _rows(V, v_step, idx), v_step, progress=step, reduce=True,
                                             weights=_rows(weights, 1, idx))
                            for path, idx, Xg, Pg, step in parts])
        N, n = X.shape[0], tape.n_in
        q = n if V is None else V.shape[2]
        Y, G = (_new(Y, (N, tape.n_out)), _new(G, (N, n))) if values else (None, None)
        HV = _new(HV, (N, n, q))
        for path, idx, Xg, Pg, step in parts:
            Yg, Gg, HV[idx] = evaluate.hessian(path.tape, Xg, Pg, p_step, _rows(W, w_step, idx), w_step,
                                               _rows(V, v_step, idx), v_step, progress=step, values=values)
            if values:
                Y[idx], G[idx] = Yg, Gg
        return Y, G, HV


_SWEEPS = _Sweeps()


def _on_paths(method: Callable) -> Callable:
    """Tape's ``method`` itself, run with ``evaluate`` meaning the routed sweeps of :class:`_Sweeps`
    (as tapead.reference runs the op table's formulas with another ``np``): every argument
    check, shape and reduction stays Tape's own."""
    routed = types.FunctionType(method.__code__, {**method.__globals__, "evaluate": _SWEEPS}, method.__name__,
                                method.__defaults__, method.__closure__)
    routed.__kwdefaults__, routed.__doc__, routed.__qualname__ = method.__kwdefaults__, method.__doc__, \
        method.__qualname__
    return routed


class GuardedTape(Tape):
    """A tape recorded with ``branches="guard"``: one path per branch that the points take.

    Its own arrays (printed, ``stats()``) are those of the first path, recorded at ``at``.
    Every evaluation method evaluates each point on the path it takes, recording a path when
    none fits (see :func:`_first_path` and :func:`_route`). ``paths`` lists the paths so far
    (``len(tape.paths) - 1`` re-recordings); ``path_index(X)`` says which each point takes.
    """

    @classmethod
    def of(cls, root: Path, branches: _Branches) -> GuardedTape:
        tape = cls.from_data(root.tape)
        object.__setattr__(tape, "_branches", branches)
        return tape

    @property
    def paths(self) -> tuple[Path, ...]:
        """The paths recorded so far, the first one at ``at``."""
        return tuple(self._branches.paths)

    @property
    def max_paths(self) -> int:
        return self._branches.max_paths

    def path_index(self, X, *args) -> np.ndarray:
        """Per point, the index in ``paths`` of the path it takes (recording new paths as needed)."""
        X, batched, P, p_step = self._args(X, args, [], "path_index")
        index = np.empty(X.shape[0], dtype=np.intp)
        groups = _route(self, X, P, p_step)
        paths = self.paths  # after routing: with any path it recorded
        for path, idx, *_ in groups:
            index[slice(None) if idx is None else idx] = paths.index(path)
        return index if batched else index[0]

    def _path_of_point(self, x, args: tuple, method: str) -> Path:
        (p,) = shapes.split(args, self.n_params, [], method)
        X, batched = shapes.points(x, None, self.n_in, self.n_params)
        if batched:
            raise ValueError(f"{method} takes one point of shape ({self.n_in},), got {np.shape(x)}")
        P, p_step = shapes.params(p, self.n_params, 1)
        return _route(self, X, P, p_step)[0][0]

    # ---- Tape's evaluation methods, every point on its path ----

    _call = _on_paths(Tape.__call__)
    value_and_gradient = _on_paths(Tape.value_and_gradient)
    jvp = _on_paths(Tape.jvp)
    vjp = _on_paths(Tape.vjp)
    _value_and_jacobian = _on_paths(Tape._value_and_jacobian)
    _value_gradient_and_hessian = _on_paths(Tape._value_gradient_and_hessian)
    hvp = _on_paths(Tape.hvp)

    def __call__(self, X, *args, **kwargs):
        if holds_traced(X) or any(holds_traced(a) for a in args):
            raise TypeError("a tape recorded with branches='guard' cannot be inlined into another recording: call "
                            "its function inside the outer one instead (and record that with branches='guard')")
        return self._call(X, *args, **kwargs)

    __call__.__doc__ = Tape.__call__.__doc__

    # ---- the rest of Tape's methods ----

    def explain(self, x, *args, wrt=0, y_bar=None) -> GuardedExplanation:
        """The traces at one point on the path it takes, then that path's guards and their values there."""
        path = self._path_of_point(x, args, "explain")
        return GuardedExplanation(path.tape.explain(x, *args, wrt=wrt, y_bar=y_bar), path, self.paths.index(path))

    def to_dot(self, x=None, *args) -> str:
        """DOT text of the first path's graph; with a point ``x``, of the path x takes, with its values."""
        if x is None:
            return super().to_dot(x, *args)
        return self._path_of_point(x, args, "to_dot").tape.to_dot(x, *args)

    def find_nonfinite(self, X, *args, limit: int = 100) -> list:
        """As :meth:`Tape.find_nonfinite`, each point diagnosed on the path it takes."""
        X, _, P, p_step = self._args(X, args, [], "find_nonfinite")
        found = []
        for path, idx, Xg, Pg, _step in _route(self, X, P, p_step):
            for report in path.tape.find_nonfinite(Xg, *([Pg] if self.n_params else []), limit=limit):
                found.append(report if idx is None else replace(report, point=int(idx[report.point])))
        return sorted(found, key=lambda r: r.point)[:limit]

    def _refuse(self, what: str, instead: str):
        raise TypeError(f"{what} of a tape recorded with branches='guard' is not supported: {instead}")

    def sparse_jacobian(self, *args, **kwargs):
        self._refuse("sparse_jacobian", "each path has its own sparsity pattern. Use jacobian(), or "
                     "tape.paths[k].tape.sparse_jacobian on the points with path_index(X) == k")

    def sparse_hessian(self, *args, **kwargs):
        self._refuse("sparse_hessian", "each path has its own sparsity pattern. Use hessian(), or "
                     "tape.paths[k].tape.sparse_hessian on the points with path_index(X) == k")

    def save(self, path) -> None:
        self._refuse("save", "a file holds one tape, and other paths need f to be recorded. Save a path's tape, "
                     "tape.paths[k].tape.save(...), or record again with branches='guard' where f is available")

    def __reduce__(self):
        self._refuse("pickling", "other paths need f to be recorded. Pickle a path's tape, tape.paths[k].tape")

    # ---- printing ----

    def __str__(self) -> str:
        paths = self.paths
        lines = [format_tape(self), f"Branch guards: path 1 of {len(paths)}, {paths[0].describe()}"]
        for k, path in enumerate(paths[1:], 2):
            lines.append(f"Path {k}: {path.describe()}")
        again = len(paths) - 1
        lines.append(f"{len(paths)} path{'s' * (again > 0)} recorded ({again} re-recording{'s' * (again != 1)}; "
                     f"at most {self.max_paths}): see tape.paths")
        return "\n".join(lines)

    def __repr__(self) -> str:
        guards, paths = len(self.paths[0].guards), len(self.paths)
        return f"{super().__repr__()[:-1]}, {guards} guard{'s' * (guards != 1)}, {paths} path{'s' * (paths != 1)}>"


# Every Tape method that evaluates (it names ``evaluate``) must run on the paths or be overridden above.
_unrouted = [name for name, f in vars(Tape).items() if callable(f) and "evaluate" in getattr(f, "__code__", types.
             SimpleNamespace(co_names=())).co_names and getattr(GuardedTape, name) is f]
if _unrouted:
    raise ImportError(f"tapead.branches: Tape.{', Tape.'.join(_unrouted)} evaluate(s) without routing points to paths")


class GuardedExplanation:
    """A :class:`~tapead.explain.Explanation` on one path, followed by the path's guards at the point."""

    def __init__(self, explanation, path: Path, index: int) -> None:
        self.explanation, self.path, self.index = explanation, path, index

    def __getattr__(self, name):
        return getattr(self.explanation, name)

    def guard_lines(self) -> list[str]:
        """One line per guard: as printed, then the tested value at this point."""
        v, tape = self.explanation.v, self.path.tape
        return [f"  {g}; here {slot_name(tape, g.slot)} = {format_const(v[g.slot])}" for g in self.path.guards]

    def __str__(self) -> str:
        head = f"Branch guards of path {self.index + 1} (recorded at x = {_vector(self.path.at)}), all taken here"
        return "\n".join([str(self.explanation), "", head, *self.guard_lines()])

    def _repr_html_(self) -> str:
        import html

        text = "\n".join([f"Branch guards of path {self.index + 1}", *self.guard_lines()])
        return self.explanation._repr_html_() + f"<pre>{html.escape(text)}</pre>"


def record_guarded(f: Callable, n: int, n_params: int, source_lines: bool, optimize: bool, branches, at,
                   at_params, max_paths) -> Tape:
    """:func:`tapead.record` with ``branches="guard"``: see the module docstring.

    A function that tests no traced value at ``at`` has one path for every point: the result
    is then a plain :class:`Tape`.
    """
    if branches not in MODES:
        raise ValueError(f"branches must be None (control flow on traced values is an error) or 'guard' (record "
                         f"the branch each point takes), got {branches!r}")
    if branches is None:
        raise TypeError("at=, at_params= and max_paths= go with branches='guard'")
    if at is None:
        raise TypeError(f"branches='guard' needs at=x0, a reference point of shape ({n},) whose branch is "
                        "recorded first")
    x0 = _point(at, n, "at")
    if n_params:
        if at_params is None:
            raise TypeError(f"branches='guard' with parameters needs at_params=p0 of shape ({n_params},) too")
        p0 = _point(at_params, n_params, "at_params")
    elif at_params is not None:
        raise TypeError("at_params= is given, but the function has no parameters (n_params=0)")
    else:
        p0 = np.zeros(0)
    max_paths = DEFAULT_MAX_PATHS if max_paths is None else max_paths
    if not isinstance(max_paths, (int, np.integer)) or isinstance(max_paths, bool) or max_paths < 1:
        raise ValueError(f"max_paths must be a whole number >= 1, got {max_paths!r}")
    root = _record_path(f, n, n_params, source_lines, optimize, x0, p0)
    if not root.guards:
        return root.tape
    return GuardedTape.of(root, _Branches(f, n, n_params, source_lines, optimize, int(max_paths), root))
