"""Recording: run a Python function once on traced variables and keep its evaluation trace.

Operator overloading in the style of ADOL-C's ``adouble`` (Griewank & Walther,
section 5.2): every arithmetic operation or elementary function applied to a
:class:`Var` appends one instruction to the recorder and returns a new
:class:`Var` naming the result's slot. Values are never computed while
recording, so control flow on traced values is an error (use ``where``).

numpy works on traced values: ufuncs on a :class:`Var` or on a
:class:`TracedArray` (the array ``f`` receives) dispatch here through
``__array_ufunc__``; plain object arrays of traced values call the methods
numpy's object loops look for (``Var.sin`` and so on).
"""

from __future__ import annotations

import inspect
import numbers
import os
import struct
import sys
from collections.abc import Callable

import numpy as np

from tapead.ops import BY_NAME, CONST, INPUT, PARAM, numpy_function
from tapead.tape import INDEX_DTYPE, OP_DTYPE, TapeData, validate

__all__ = ["Var", "TracedArray", "trace", "FUNCTIONS", "where", "maximum", "minimum"]

_TRUTH_ERROR = (
    "the truth value of a traced value is unknown while recording: tapead records the "
    "function once for all points. Use tapead.where(cond, a, b) instead of if/else, and "
    "tapead.maximum/tapead.minimum instead of max()/min() (or np.maximum on plain object arrays)"
)
_FLOAT_ERROR = (
    "a traced value cannot be converted to a Python number: math.sin(x) and friends need "
    "floats. Use tapead.sin(x) or np.sin(x) (and the other tapead./np. functions) instead"
)


_CODE = {name: spec.code for name, spec in BY_NAME.items()}


class Recorder:
    """The growing tape: one list per column (opcodes, operand slots, immediates, source lines)."""

    def __init__(self, n_in: int, n_params: int, source_lines: bool = True) -> None:
        lead = n_in + n_params
        self.op: list[int] = [INPUT] * n_in + [PARAM] * n_params
        self.arg0, self.arg1, self.arg2 = [-1] * lead, [-1] * lead, [-1] * lead
        self.const: list[float] = [0.0] * lead
        self._constants: dict[bytes, Var] = {}
        self.source_lines = source_lines
        self.where: list[tuple[str, int] | None] = [None] * lead
        self._user_line = _LineFinder()

    def emit(self, name: str, operands: tuple[Var, ...] = (), c: float = 0.0, depth: int = 3) -> Var:
        """Append instruction ``name`` on (at most three) ``operands`` with immediate ``c``.

        ``depth``: the first frame to search for the user's line, counting :class:`_LineFinder`
        as 0 and emit as 1. Only this module calls emit, so frame 2 is tapead's and need not be
        looked at; ``_record``, ``_power`` and ``_binary`` are called from this module only too,
        so they pass 4.
        """
        n = len(operands)
        self.op.append(_CODE[name])
        self.arg0.append(operands[0].slot if n > 0 else -1)
        self.arg1.append(operands[1].slot if n > 1 else -1)
        self.arg2.append(operands[2].slot if n > 2 else -1)
        self.const.append(float(c))
        self.where.append(self._user_line(depth) if self.source_lines else None)
        return Var(self, len(self.op) - 1)

    def constant(self, c: float) -> Var:
        """A slot holding ``c`` (one per distinct value and sign)."""
        key = float(c)
        key_bits = struct.pack("d", key)  # its IEEE bits: -0.0 and 0.0 differ, a NaN equals itself
        var = self._constants.get(key_bits)
        if var is None:
            var = self._constants[key_bits] = self.emit("const", (), key)
        return var

    def tape(self, outputs: list[int], out_shape: tuple[int, ...], n_in: int, n_params: int) -> TapeData:
        self._user_line.forget()  # its frames refer back to this recorder
        places = sorted({w for w in self.where if w is not None})
        number = {w: k for k, w in enumerate(places)}
        number[None] = -1
        return validate(
            TapeData(
                op=np.array(self.op, dtype=OP_DTYPE),
                arg0=np.array(self.arg0, dtype=INDEX_DTYPE),
                arg1=np.array(self.arg1, dtype=INDEX_DTYPE),
                arg2=np.array(self.arg2, dtype=INDEX_DTYPE),
                const=np.array(self.const, dtype=np.float64),
                outputs=np.array(outputs, dtype=INDEX_DTYPE),
                n_in=n_in,
                n_params=n_params,
                out_shape=out_shape,
                source=tuple(f"{file}:{line}" for file, line in places),
                source_index=np.array([number[w] for w in self.where], dtype=INDEX_DTYPE) if places else None,
            )
        )


# Frames of tapead's and numpy's own code are skipped to find the user's line.
_INTERNAL_DIRS = (os.path.dirname(os.path.abspath(__file__)) + os.sep, os.path.dirname(np.__file__) + os.sep)
_RESUMABLE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR | inspect.CO_ITERABLE_COROUTINE


class _LineFinder:
    """(file, line) of the innermost frame outside tapead and numpy: where the user recorded an op.

    Walking the stack cost about a microsecond per op, so each walk remembers the tapead and
    numpy frames it passed and the line it found. A later walk that meets one of those frames
    (still running, since it is on the stack) has the same callers above it, each paused in the
    same call, so it stops there with the same answer: the ops of one elementwise ufunc walk up
    to its ``_dispatch_ufunc`` frame only. A generator's frame can be resumed by another caller,
    so the frames it called are not remembered, nor is it. The frames themselves are held (ids
    get reused) until :meth:`forget`, at the end of a recording.
    """

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        self.last: tuple[set, tuple[str, int] | None] = (set(), None)  # (frames passed, line found)

    def __call__(self, depth: int) -> tuple[str, int] | None:
        try:
            frame = sys._getframe(depth)  # 0: here, 1: Recorder.emit, 2: its caller (see emit)
        except ValueError:  # the stack is not that deep
            frame = None
        passed, line = self.last  # one read: another thread may replace it
        chain = []
        while frame is not None:
            if frame in passed:
                return line
            code = frame.f_code
            if not code.co_filename.startswith(_INTERNAL_DIRS):
                break
            if code.co_flags & _RESUMABLE:
                chain.clear()
            else:
                chain.append(frame)
            frame = frame.f_back
        line = None if frame is None else (code.co_filename, frame.f_lineno)
        self.last = (set(chain), line)
        return line


def _is_number(a: object) -> bool:
    return isinstance(a, numbers.Real) and not isinstance(a, Var)


def _as_float(a: object) -> float:
    if type(a) is float or type(a) is int:  # the common cases, without the slow isinstance(a, numbers.Real)
        return float(a)
    if isinstance(a, np.ndarray) and a.ndim == 0:
        a = a.item()
    if not _is_number(a):
        raise TypeError(f"tapead cannot trace a value of type {type(a).__name__}: expected a traced value or a real number")
    return float(a)


class Var:
    """A traced scalar: the slot of one value v_i on the tape being recorded."""

    __slots__ = ("rec", "slot")
    __hash__ = None  # == records a comparison, so a Var cannot be a dict key

    def __init__(self, rec: Recorder, slot: int) -> None:
        self.rec = rec
        self.slot = slot

    def __repr__(self) -> str:
        return f"<traced v at slot {self.slot}>"

    def __bool__(self):
        raise TypeError(_TRUTH_ERROR)

    def __float__(self):
        raise TypeError(_FLOAT_ERROR)

    __int__ = __complex__ = __index__ = __float__

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _dispatch_ufunc(ufunc, method, inputs, kwargs)

    # arithmetic
    def __add__(self, other): return _binary("add", self, other)
    def __radd__(self, other): return _binary("add", other, self)
    def __sub__(self, other): return _binary("sub", self, other)
    def __rsub__(self, other): return _binary("sub", other, self)
    def __mul__(self, other): return _binary("mul", self, other)
    def __rmul__(self, other): return _binary("mul", other, self)
    def __truediv__(self, other): return _binary("div", self, other)
    def __rtruediv__(self, other): return _binary("div", other, self)
    def __pow__(self, other): return _binary("pow", self, other)
    def __rpow__(self, other): return _binary("pow", other, self)
    def __neg__(self): return self.rec.emit("neg", (self,))
    def __pos__(self): return self
    def __abs__(self): return self.rec.emit("abs", (self,))

    # comparisons record conditions (1.0 true, 0.0 false) for tapead.where
    def __lt__(self, other): return _binary("lt", self, other)
    def __le__(self, other): return _binary("le", self, other)
    def __gt__(self, other): return _binary("gt", self, other)
    def __ge__(self, other): return _binary("ge", self, other)
    def __eq__(self, other): return _binary("eq", self, other)
    def __ne__(self, other): return _binary("ne", self, other)

    # logic on conditions (nonzero is true) and rounding
    def __and__(self, other): return _binary("land", self, other)
    def __rand__(self, other): return _binary("land", other, self)
    def __or__(self, other): return _binary("lor", self, other)
    def __ror__(self, other): return _binary("lor", other, self)
    def __invert__(self): return self.rec.emit("lnot", (self,))
    def __round__(self, ndigits=None):
        if ndigits is not None:
            raise TypeError("round(x, ndigits) cannot be traced: use tapead.rint(x * 10**k) / 10**k")
        return self.rec.emit("rint", (self,))
    def __floor__(self): return self.rec.emit("floor", (self,))
    def __ceil__(self): return self.rec.emit("ceil", (self,))


class TracedArray(np.ndarray):
    """An object array of traced values whose numpy ufuncs record instructions."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _dispatch_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        if func is np.where:
            raise TypeError("np.where cannot be traced: use tapead.where(cond, a, b)")
        plain = tuple(t for t in types if not issubclass(t, TracedArray))
        return _wrap(super().__array_function__(func, plain + (np.ndarray,), args, kwargs))


def _wrap(result):
    """Object arrays come back as TracedArray, 0-d results as their element."""
    if isinstance(result, np.ndarray):
        if result.ndim == 0:
            return result.item()
        if result.dtype == object and not isinstance(result, TracedArray):
            return result.view(TracedArray)
    return result


def _plain(a):
    if isinstance(a, np.ndarray):
        return a.view(np.ndarray)
    return a


def _record(name: str, args: tuple) -> Var:
    """Record op ``name`` on scalar operands, turning plain numbers into constant slots."""
    rec = None
    for a in args:
        if isinstance(a, Var):
            rec = a.rec
            break
    operands = []
    for a in args:
        if isinstance(a, Var):
            if a.rec is not rec:
                raise ValueError("traced values from two different recordings cannot be combined")
            operands.append(a)
        else:
            operands.append(rec.constant(_as_float(a)))
    return rec.emit(name, tuple(operands), depth=4)


_SPECIAL_POWERS = {2.0: "square", -1.0: "recip", 0.5: "sqrt"}


def _power(x: Var, c: float) -> Var:
    """x ** c for a constant c: cheap ops for the common exponents, powc otherwise."""
    if c == 1.0:
        return x
    if c == 0.0:
        return x.rec.constant(1.0)  # pow(x, 0) == 1 for every x, NaN included
    special = _SPECIAL_POWERS.get(c)
    return x.rec.emit(special, (x,), depth=4) if special else x.rec.emit("powc", (x,), c, depth=4)


def _binary(name: str, a, b):
    """a (op) b with at most one side a constant: constant operands become immediates."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return _elementwise(name, (a, b))
    if isinstance(a, Var) and isinstance(b, Var):
        return a.rec.emit(name, (a, b), depth=4) if a.rec is b.rec else _record(name, (a, b))
    if isinstance(a, Var):
        c = _as_float(b)
        if name == "add":
            return a.rec.emit("addc", (a,), c, depth=4)
        if name == "sub":
            return a.rec.emit("addc", (a,), -c, depth=4)  # x - c == x + (-c) in IEEE arithmetic
        if name in ("mul", "div") and c == 1.0:
            return a
        if name in ("mul", "div"):
            return a.rec.emit(name + "c", (a,), c, depth=4)
        if name == "pow":
            return _power(a, c)
    elif isinstance(b, Var):
        c = _as_float(a)
        if name == "add":
            return b.rec.emit("addc", (b,), c, depth=4)
        if name == "mul":
            return b if c == 1.0 else b.rec.emit("mulc", (b,), c, depth=4)
        if name == "sub":
            return b.rec.emit("rsubc", (b,), c, depth=4)
        if name == "div":
            return b.rec.emit("recip", (b,), depth=4) if c == 1.0 else b.rec.emit("rdivc", (b,), c, depth=4)
    else:
        return _numeric(name, (a, b))
    return _record(name, (a, b))


def _numeric(name: str, args: tuple) -> float:
    """An op on plain numbers: evaluated now with the table's own formula."""
    values = [np.float64(_as_float(a)) for a in args] + [None] * (3 - len(args))
    with np.errstate(all="ignore"):
        return float(_NUMPY[name](*values, 0.0, None))


_NUMPY = {spec.name: numpy_function(spec.primal) for spec in BY_NAME.values() if spec.code > CONST}


def _object_array(a) -> np.ndarray:
    """``a`` as a plain object array: a Var inside one is not asked to handle the ufunc."""
    if isinstance(a, np.ndarray):
        return a.view(np.ndarray)
    if isinstance(a, (list, tuple)):
        return np.asarray(a, dtype=object)
    box = np.empty((), dtype=object)
    box[()] = a
    return box


def _elementwise(name: str, args: tuple):
    """FUNCTIONS[name] mapped over arrays (and lists) with numpy broadcasting."""
    return _wrap(np.frompyfunc(FUNCTIONS[name], len(args), 1)(*map(_object_array, args)))


def _function(name: str) -> Callable:
    """tapead.NAME: records on traced values, maps over arrays, evaluates numbers."""
    arity = BY_NAME[name].arity

    def fn(*args):
        if len(args) != arity:
            raise TypeError(f"tapead.{name} takes {arity} argument(s), got {len(args)}")
        traced = False
        for a in args:  # a loop, not any(...): this runs once per recorded instruction
            if isinstance(a, Var):
                traced = True
            elif isinstance(a, (np.ndarray, list, tuple)):
                return _elementwise(name, args)
        if not traced:
            return _numeric(name, args)
        return _binary(name, *args) if arity == 2 else _record(name, args)

    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = f"Elementwise {name} of traced values, arrays of them, or numbers (op table row {name!r})."
    return fn


# every op but the structural ones and the constant-operand forms (addc, powc, ...)
FUNCTIONS: dict[str, Callable] = {
    spec.name: _function(spec.name) for spec in BY_NAME.values() if spec.code > CONST and not spec.uses_const
}


def clip(x, lo=None, hi=None, out=None):
    """numpy's clip: minimum(maximum(x, lo), hi); a bound of None is left out."""
    if out is not None:
        raise TypeError("clip(..., out=...) cannot be traced: drop out=")
    if lo is not None:
        x = FUNCTIONS["maximum"](x, lo)
    return x if hi is None else FUNCTIONS["minimum"](x, hi)


def logsumexp(xs):
    """log(sum(exp(xs))) over a sequence, stable: the maximum is subtracted first.

    Its derivative through the maximum cancels exactly, leaving softmax(xs).
    """
    xs = list(np.asarray(xs, dtype=object).ravel())
    if not xs:
        raise ValueError("logsumexp of an empty sequence")
    m = xs[0]
    for x in xs[1:]:
        m = FUNCTIONS["maximum"](m, x)
    total = FUNCTIONS["exp"](xs[0] - m)
    for x in xs[1:]:
        total = total + FUNCTIONS["exp"](x - m)
    return FUNCTIONS["log"](total) + m


FUNCTIONS.update(clip=clip, logsumexp=logsumexp)
ALIASES = {
    "asin": "arcsin", "acos": "arccos", "atan": "arctan", "atan2": "arctan2", "asinh": "arcsinh",
    "acosh": "arccosh", "atanh": "arctanh", "power": "pow", "reciprocal": "recip", "absolute": "abs",
    "round": "rint", "logical_and": "land", "logical_or": "lor", "logical_not": "lnot",
    "subtract": "sub", "multiply": "mul", "divide": "div", "negative": "neg",
}
FUNCTIONS.update({alias: FUNCTIONS[name] for alias, name in ALIASES.items()})
where = FUNCTIONS["where"]
maximum = FUNCTIONS["maximum"]
minimum = FUNCTIONS["minimum"]

# numpy ufuncs (by __name__) that trace, and the tapead function each one becomes
_NUMPY_NAMES = {name: name for name in FUNCTIONS} | {
    "true_divide": "div", "fabs": "abs", "less": "lt", "less_equal": "le", "greater": "gt",
    "greater_equal": "ge", "equal": "eq", "not_equal": "ne",
}
UFUNCS: dict[str, str] = {
    name: target for name, target in _NUMPY_NAMES.items() if isinstance(getattr(np, name, None), np.ufunc)
} | {"clip": "clip"}  # np.clip calls a ufunc named clip

# numpy's object loops call a method named after the ufunc on each element: np.sin(a) calls a.sin()
for _name, _target in UFUNCS.items():
    if not hasattr(Var, _name):
        setattr(Var, _name, FUNCTIONS[_target])


def _dispatch_ufunc(ufunc, method, inputs, kwargs):
    if kwargs.get("out") is not None:
        raise TypeError(f"np.{ufunc.__name__}(..., out=...) cannot be traced: drop out=")
    kwargs = {k: v for k, v in kwargs.items() if v is not None and k != "out"}
    plain = [_plain(a) for a in inputs]
    if ufunc is np.matmul and method == "__call__":
        return _wrap(np.matmul(*[np.asarray(a, dtype=object) for a in plain], **kwargs))
    if ufunc.__name__ == "positive":
        return _wrap(np.asarray(plain[0], dtype=object).copy()) if isinstance(plain[0], np.ndarray) else plain[0]
    name = UFUNCS.get(ufunc.__name__)
    if name is None:
        raise TypeError(f"np.{ufunc.__name__} cannot be traced by tapead (no op for it)")
    fn = FUNCTIONS[name]
    if method == "__call__" and not any(isinstance(a, np.ndarray) for a in plain):
        return fn(*plain)
    kwargs.pop("dtype", None)
    vec = np.frompyfunc(fn, ufunc.nin, 1)
    return _wrap(getattr(vec, method)(*map(_object_array, plain), **kwargs))


def trace(f: Callable, n: int, n_params: int = 0, source_lines: bool = True) -> TapeData:
    """Run ``f`` once on ``n`` traced inputs (and ``n_params`` parameters) and return its tape.

    With ``source_lines``, each instruction remembers the file and line of ``f``
    that recorded it (for :meth:`Tape.find_nonfinite`).
    """
    for name, value in (("n", n), ("n_params", n_params)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
            raise TypeError(f"{name} must be a non-negative int, got {value!r}")
    if n < 1:
        raise ValueError("n must be at least 1: the function needs an input")
    rec = Recorder(n, n_params, source_lines)
    x = np.empty(n, dtype=object).view(TracedArray)
    for i in range(n):
        x[i] = Var(rec, i)
    if n_params:
        p = np.empty(n_params, dtype=object).view(TracedArray)
        for j in range(n_params):
            p[j] = Var(rec, n + j)
        result = f(x, p)
    else:
        result = f(x)
    if isinstance(result, Var) or _is_number(result):
        flat, out_shape = [result], ()
    else:
        array = np.asarray(_plain(result) if isinstance(result, np.ndarray) else result, dtype=object)
        flat, out_shape = list(array.ravel()), tuple(int(s) for s in array.shape)
    if not flat:
        raise ValueError("the function returned no outputs")
    outputs = []
    for y in flat:
        if isinstance(y, Var):
            if y.rec is not rec:
                raise ValueError("the function returned a traced value from another recording")
            outputs.append(y.slot)
        elif _is_number(y):
            outputs.append(rec.constant(float(y)).slot)
        else:
            raise TypeError(f"the function must return traced values or numbers, got {type(y).__name__}")
    return rec.tape(outputs, out_shape, n, n_params)
