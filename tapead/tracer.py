"""Recording: run a Python function once on traced variables and keep its evaluation trace.

Operator overloading in the style of ADOL-C's ``adouble`` (Griewank & Walther,
section 5.2): every arithmetic operation or elementary function applied to a
:class:`Var` appends one instruction to the recorder and returns a new
:class:`Var` naming the result's slot. Values are never computed while
recording, so control flow on traced values is an error (use ``where``).

numpy works on traced values: ufuncs on a :class:`Var` or on a
:class:`TracedArray` (the array ``f`` receives, and what numpy makes of it)
dispatch here through ``__array_ufunc__``, numpy functions (``np.where``,
``np.linalg.det``, ...) through ``__array_function__`` (tapead.numpy_funcs
holds the ones composed from several ops); plain object arrays of traced
values (``np.array([x[0], x[1]])``) call the methods numpy's object loops look
for (``Var.sin`` and so on). A construct that cannot be recorded raises an
error naming it, the user's line and what to write instead.
"""

from __future__ import annotations

import dis
import inspect
import linecache
import numbers
import os
import random
import re
import struct
import sys
import traceback
import warnings
from collections.abc import Callable
from contextvars import ContextVar

import numpy as np

from tapead.ops import BY_NAME, CONDITIONS, CONST, INPUT, OPS, PARAM
from tapead.tape import INDEX_DTYPE, OP_DTYPE, TapeData, validate

try:
    from numpy.lib.array_utils import normalize_axis_tuple
except ImportError:  # numpy < 2
    from numpy.core.numeric import normalize_axis_tuple

__all__ = ["Var", "TracedArray", "trace", "inline", "holds_traced", "asarray", "FUNCTIONS", "where", "maximum",
           "minimum", "FrozenRandomWarning"]


class FrozenRandomWarning(UserWarning):
    """``f`` drew random numbers while it was recorded: the draws are constants of the tape."""


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
_NUMPY_DIR = os.path.dirname(np.__file__) + os.sep
_INTERNAL_DIRS = (os.path.dirname(os.path.abspath(__file__)) + os.sep, _NUMPY_DIR)
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


# ---- refusals: each names the construct, the user's line and what to write instead ----


def _internal(filename: str) -> bool:
    return filename.startswith(_INTERNAL_DIRS) or f"{os.sep}scipy{os.sep}" in filename


def _user_frame(frame):
    """``frame`` or the innermost of its callers outside tapead, numpy and scipy: the user's code."""
    while frame is not None and _internal(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


def _at(frame) -> str:
    user = _user_frame(frame)
    return "at an unknown line" if user is None else f"at {user.f_code.co_filename}:{user.f_lineno}"


def _refuse(construct: str, why: str, instead: str, error: type = TypeError) -> Exception:
    """The error for a construct that cannot be recorded, located at the caller's user line."""
    return error(f"{construct} cannot be traced ({_at(sys._getframe(1))}): {why}. {instead}")


_BUILTIN_MIN_MAX = re.compile(r"(?<![\w.])(max|min|sorted)\(")
_UNKNOWN = "its value is unknown while recording: tapead records the function once for all points"


def _truth_error() -> TypeError:
    """bool() of a traced value, worded for whoever asked (frame 2: the caller of Var.__bool__)."""
    frame = sys._getframe(2)
    user = _user_frame(frame)
    line = linecache.getline(user.f_code.co_filename, user.f_lineno) if user else ""
    callers = []
    while frame is not None and frame is not user:
        callers.append(frame.f_code.co_filename)
        frame = frame.f_back
    if any(f"{os.sep}scipy{os.sep}stats{os.sep}" in name for name in callers):
        construct = "a scipy.stats distribution"
        instead = ("scipy.stats converts its arguments with np.asarray and branches on their values. Write "
                   "norm.cdf(x, loc, s) as scipy.special.ndtr((x - loc) / s), norm.logcdf as scipy.special."
                   "log_ndtr((x - loc) / s), norm.pdf as np.exp(-0.5 * z**2) / (s * np.sqrt(2 * np.pi)) and "
                   "norm.logpdf as -0.5 * z**2 - np.log(s) - 0.5 * np.log(2 * np.pi) with z = (x - loc) / s")
    elif callers and callers[0].startswith(_NUMPY_DIR):
        construct = "numpy comparing the elements of a plain object array (np.max, np.min, np.maximum, np.sort ...)"
        instead = ("An array built with np.array([...]) is not handed to tapead: build it with "
                   "tapead.asarray([...]) or np.stack([...]), or use tapead.maximum / tapead.minimum")
    elif _BUILTIN_MIN_MAX.search(line):
        construct = "Python's max(), min() or sorted() of traced values"
        instead = "Use np.max(a) / np.min(a) for an array, tapead.maximum(a, b) / tapead.minimum(a, b) for two values"
    else:
        construct = "if/else, while, and/or or assert on a traced value"
        instead = "Use tapead.where(cond, a, b) (or np.where) instead of if/else, & and | instead of and/or"
    if construct != "a scipy.stats distribution":
        instead += ", or record(f, n, branches='guard', at=x0) to record the branch each point takes"
    return TypeError(f"{construct} cannot be traced ({_at(user)}): {_UNKNOWN}. {instead}")


_STORES = {dis.opmap[name] for name in ("STORE_SUBSCR", "STORE_SLICE") if name in dis.opmap}


def _number_error(kind: str) -> TypeError:
    """float(), int() or an index of a traced value (frame 2: whoever converted it)."""
    frame = sys._getframe(2)
    if frame.f_lasti >= 0 and frame.f_code.co_code[frame.f_lasti] in _STORES:
        construct, instead = "writing a traced value into a float array", (
            "A float array holds numbers only: create it with dtype=object, e.g. a = np.zeros(3, dtype=object), "
            "or build it from traced values with np.stack([...]) / tapead.asarray([...])")
    elif kind == "index":
        construct, instead = "a traced value used as an integer or index (a[i], range(i))", (
            "Indices must be known while recording: select with tapead.where(cond, a, b)")
    else:
        construct, instead = "converting a traced value to a number (float(), math.sin(), dtype=float)", (
            "Use tapead.sin(x) or np.sin(x) (and the other tapead./np. functions) instead of math's, and "
            "arrays of dtype=object to hold traced values")
    return TypeError(f"{construct} cannot be traced ({_at(frame)}): {_UNKNOWN}. {instead}")


def _is_number(a: object) -> bool:
    return isinstance(a, numbers.Real) and not isinstance(a, Var)


def _as_float(a: object) -> float:
    if type(a) is float or type(a) is int:  # the common cases, without the slow isinstance(a, numbers.Real)
        return float(a)
    if isinstance(a, np.ndarray) and a.ndim == 0:
        a = a.item()
    if not _is_number(a):
        raise _refuse(f"a value of type {type(a).__name__}", "tapead traces real numbers and traced values",
                      "Pass numbers, traced values or arrays and lists of them")
    return float(a)


# The recording's branch guards (a tapead.branches object with truth(var) and integer(var)), or
# None: bool(), int() and float() of traced values then raise. A ContextVar, so that a recording
# in one thread never sees another's.
GUARDS: ContextVar = ContextVar("tapead_guards", default=None)


class Var:
    """A traced scalar: the slot of one value v_i on the tape being recorded."""

    __slots__ = ("rec", "slot")
    __hash__ = None  # == records a comparison, so a Var cannot be a dict key

    def __init__(self, rec: Recorder, slot: int) -> None:
        self.rec = rec
        self.slot = slot

    def __repr__(self) -> str:
        return f"<traced v at slot {self.slot}>"

    # Python needs a real bool, float or int here: an error, unless tapead.branches records
    # this recording's branches as guards (record(..., branches="guard"))
    def __bool__(self):
        guards = GUARDS.get()
        if guards is None:
            raise _truth_error()
        return guards.truth(self)

    def __float__(self):
        guards = GUARDS.get()
        if guards is None or self.rec.op[self.slot] not in CONDITIONS:
            raise _number_error("float")
        return float(guards.truth(self))  # float(x >= 0): 1.0 or 0.0 on this path

    def __index__(self):
        guards = GUARDS.get()
        if guards is None:
            raise _number_error("index")
        return guards.integer(self)

    def __int__(self):
        guards = GUARDS.get()
        if guards is None:
            raise _number_error("float")
        return guards.integer(self)

    def __complex__(self):  # complex(x >= 0) as float(): 1 or 0 on this path
        guards = GUARDS.get()
        if guards is None or self.rec.op[self.slot] not in CONDITIONS:
            raise _number_error("float")  # from here: _number_error reads the caller's frame
        return complex(guards.truth(self))

    def __trunc__(self):  # math.trunc(x): a traced value, zero derivative
        return NUMPY_UFUNCS["trunc"](self)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _dispatch_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return _dispatch_function(func, types, args, kwargs)

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
            raise _refuse("round(x, ndigits)", "there is no op for it", "Use tapead.rint(x * 10**k) / 10**k")
        return self.rec.emit("rint", (self,))
    def __floor__(self): return self.rec.emit("floor", (self,))
    def __ceil__(self): return self.rec.emit("ceil", (self,))


class TracedArray(np.ndarray):
    """An object array of traced values whose numpy ufuncs record instructions."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        return _dispatch_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        return _dispatch_function(func, types, args, kwargs)


# numpy functions tapead implements itself (np.where, np.linalg.det, ...): tapead.numpy_funcs fills it
ARRAY_FUNCTIONS: dict[Callable, Callable] = {}
_AN_ARRAY = np.empty(0)


def _dispatch_function(func, types, args, kwargs):
    """A numpy function with a traced argument: tapead's version, else numpy's code on object arrays."""
    own = ARRAY_FUNCTIONS.get(func)
    if own is not None:
        return own(*args, **kwargs)
    plain = tuple(t for t in types if issubclass(t, np.ndarray) and not issubclass(t, TracedArray))
    return _wrap(np.ndarray.__array_function__(_AN_ARRAY, func, plain + (np.ndarray,), args, kwargs))


def asarray(a) -> TracedArray:
    """``a`` (a list, tuple or array of traced values and numbers) as an object array numpy hands to tapead.

    ``np.array([x[0], 2.0])`` is a plain object array: numpy's ufuncs call methods on its
    elements (a float has no ``.exp``) and its functions (``np.max``, ``np.linalg.det``) do not
    reach tapead. ``tapead.asarray([x[0], 2.0])`` does, like the arrays numpy makes from ``x``.

    Examples
    --------
    >>> import numpy as np, tapead
    >>> tape = tapead.record(lambda x: np.max(np.exp(tapead.asarray([x[0], 1.0]))), 1)
    >>> float(tape(np.array([2.0])))  # doctest: +ELLIPSIS
    7.389...
    """
    if isinstance(a, Var):
        box = np.empty((), dtype=object)
        box[()] = a
        return box.view(TracedArray)
    return np.asarray(_plain(a), dtype=object).view(TracedArray)


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


_SEQUENCES = (np.ndarray, list, tuple)


def _binary(name: str, a, b):
    """a (op) b with at most one side a constant: constant operands become immediates. An array,
    list or tuple on either side maps it elementwise (a list broadcasts, as with numpy's scalars).
    The common cases are tested first: this runs once per recorded instruction."""
    if isinstance(a, Var):
        if isinstance(b, Var):
            return a.rec.emit(name, (a, b), depth=4) if a.rec is b.rec else _record(name, (a, b))
        if isinstance(b, _SEQUENCES):
            return _elementwise(name, (a, b))
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
        if isinstance(a, _SEQUENCES):
            return _elementwise(name, (a, b))
        c = _as_float(a)
        if name == "add":
            return b.rec.emit("addc", (b,), c, depth=4)
        if name == "mul":
            return b if c == 1.0 else b.rec.emit("mulc", (b,), c, depth=4)
        if name == "sub":
            return b.rec.emit("rsubc", (b,), c, depth=4)
        if name == "div":
            return b.rec.emit("recip", (b,), depth=4) if c == 1.0 else b.rec.emit("rdivc", (b,), c, depth=4)
    elif isinstance(a, _SEQUENCES) or isinstance(b, _SEQUENCES):
        return _elementwise(name, (a, b))
    else:
        return _numeric(name, (a, b))
    return _record(name, (a, b))


def _numeric(name: str, args: tuple) -> float:
    """An op on plain numbers: evaluated now with the table's own formula (as the optimizer folds)."""
    return BY_NAME[name].fold([_as_float(a) for a in args])


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
    """numpy's clip: minimum(maximum(x, lo), hi); a bound of None is left out. ``out``: an
    object array to write the result into (numpy's np.clip and x.clip pass one)."""
    if lo is not None:
        x = FUNCTIONS["maximum"](x, lo)
    if hi is not None:
        x = FUNCTIONS["minimum"](x, hi)
    if out is None:
        return x
    out[...] = x
    return out


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
# the other names of an op's function (asin for arcsin, ...): the op table's ``aliases`` column
ALIASES = {alias: spec.name for spec in OPS for alias in spec.aliases if spec.name in FUNCTIONS}
FUNCTIONS.update({alias: FUNCTIONS[name] for alias, name in ALIASES.items()})
# arguments per function, (fewest, most; None for any number): an op's arity; clip is (x, lo, hi)
ARITY: dict[str, tuple[int, int | None]] = {
    name: (BY_NAME[ALIASES.get(name, name)].arity,) * 2 for name in FUNCTIONS if ALIASES.get(name, name) in BY_NAME
} | {"clip": (3, 3), "logsumexp": (1, None)}
if set(ARITY) != set(FUNCTIONS):  # a table invariant: checked even under python -O
    raise ImportError(f"every tapead function needs an arity here: {sorted(set(ARITY) ^ set(FUNCTIONS))}")
where = FUNCTIONS["where"]
maximum = FUNCTIONS["maximum"]
minimum = FUNCTIONS["minimum"]

# numpy ufuncs (by __name__) that trace, and the tapead function each one becomes: the functions'
# own names and the op table's ``ufuncs`` column (np.less records lt, ...)
_NUMPY_NAMES = {name: name for name in FUNCTIONS} | {u: spec.name for spec in OPS for u in spec.ufuncs}
UFUNCS: dict[str, str] = {
    name: target for name, target in _NUMPY_NAMES.items() if isinstance(getattr(np, name, None), np.ufunc)
} | {"clip": "clip"}  # np.clip calls a ufunc named clip

# numpy's object loops call a method named after the ufunc on each element: np.sin(a) calls a.sin()
for _name, _target in UFUNCS.items():
    if not hasattr(Var, _name):
        setattr(Var, _name, FUNCTIONS[_target])


# numpy ufuncs with no row of their own and scipy.special's ufuncs (by name), composed from
# several ops; and hints for those refused. tapead.numpy_funcs fills them.
NUMPY_UFUNCS: dict[str, Callable] = {}
SCIPY_UFUNCS: dict[str, Callable] = {}
REFUSED_UFUNCS: dict[str, str] = {}
_NO_VALUE = np._NoValue


def _ufunc_function(ufunc) -> Callable:
    """The scalar function that records ``ufunc`` on traced values, or the error naming it."""
    name, target = ufunc.__name__, None
    if getattr(np, name, None) is ufunc:
        target = UFUNCS.get(name)
        fn = FUNCTIONS[target] if target else NUMPY_UFUNCS.get(name)
        construct = f"np.{name}"
    else:
        fn = SCIPY_UFUNCS.get(name)
        construct = f"the ufunc {name} (scipy.special.{name})"
    if fn is None:
        raise _refuse(construct, "the op table has no row for it",
                      REFUSED_UFUNCS.get(name, "Write it with the functions tapead traces (tapead.FUNCTIONS)"))
    if target:
        return fn

    def composed(*args):  # plain numbers (in an array with traced values) by the ufunc itself
        for a in args:
            if isinstance(a, Var):
                return fn(*args)
        return ufunc(*args)

    return composed


def _dispatch_ufunc(ufunc, method, inputs, kwargs):
    """A numpy ufunc on traced values: mapped over object arrays, reductions over any axes.

    ``out=`` (numpy passes it for ``v /= d``) receives the result, ``where=`` selects which
    elements of ``out`` do (a mask known while recording; tapead.where selects per point).
    """
    out = kwargs.pop("out", None)
    out = out[0] if isinstance(out, tuple) else out
    mask = kwargs.pop("where", True)
    for key in ("dtype", "casting", "order", "subok", "signature"):  # no meaning for traced values
        kwargs.pop(key, None)
    plain = [_plain(a) for a in inputs]
    if mask is not True and (holds_traced(mask) or (out is None and method == "__call__")):
        raise _refuse(f"np.{ufunc.__name__}(..., where=...)", "where= here needs out= and a mask known while "
                      "recording", "Use tapead.where(cond, a, b) to select per point")
    if ufunc is np.matmul and method == "__call__":
        result = np.matmul(*[np.asarray(a, dtype=object) for a in plain], **kwargs)
    else:
        fn = _ufunc_function(ufunc)
        if method == "reduce":
            result = _reduce(ufunc, fn, plain[0], where=mask, **kwargs)
        elif method == "at":  # in place, at indices: ufunc.at(a, indices, b)
            return np.frompyfunc(fn, ufunc.nin, 1).at(plain[0], plain[1], *map(_object_array, plain[2:]))
        elif method == "__call__" and out is None and not any(isinstance(a, np.ndarray) for a in plain):
            return fn(*plain)
        else:
            result = getattr(np.frompyfunc(fn, ufunc.nin, 1), method)(*map(_object_array, plain), **kwargs)
    if out is None:
        return _wrap(result)
    if method == "reduce":
        mask = True  # a reduction's where= picked its operands
    target = out.view(np.ndarray) if isinstance(out, np.ndarray) else out
    if mask is True:
        target[...] = result  # into a float array: Var.__float__ says to use dtype=object
    else:
        np.copyto(target, result, where=np.asarray(mask, dtype=bool))
    return out


def holds_traced(a) -> bool:
    """Whether ``a`` is a traced value or an array, list or tuple holding one (Tape.__call__ asks)."""
    if isinstance(a, Var):
        return True
    if isinstance(a, np.ndarray) and a.dtype != object:  # numbers only: the common case, at once
        return False
    if isinstance(a, (np.ndarray, list, tuple)):
        a = np.asarray(_plain(a) if isinstance(a, np.ndarray) else a, dtype=object)
        return any(isinstance(e, Var) for e in a.flat)
    return False


def _reduce(ufunc, fn, a, axis=0, keepdims=False, initial=_NO_VALUE, where=True):
    """``ufunc.reduce(a, axis, keepdims, initial, where)`` on an object array, for any axes.

    numpy's reduce of a frompyfunc ufunc takes one axis at a time (its ufuncs are not
    reorderable), and axis=None needs passing on: the reduced axes move to the end as one,
    reduced left to right, the kept ones in order.
    """
    a = _object_array(a)
    axes = tuple(range(a.ndim)) if axis is None else normalize_axis_tuple(axis, a.ndim)
    if where is not True:  # elements left out become the identity (or initial, for maximum/minimum)
        fill = ufunc.identity if ufunc.identity is not None else initial
        if fill is _NO_VALUE:
            raise ValueError(f"reduction operation '{ufunc.__name__}' does not have an identity, "
                             "so to use a where mask one has to specify 'initial'")
        a = np.where(np.broadcast_to(np.asarray(where, dtype=bool), a.shape), a, fill).astype(object)
    kept = [d for d in range(a.ndim) if d not in axes]
    shape = [a.shape[d] for d in kept]
    length = int(np.prod([a.shape[d] for d in axes]))
    rows = np.transpose(a, kept + list(axes)).reshape(shape + [length])
    if initial is not _NO_VALUE:
        rows = np.concatenate([np.full(shape + [1], initial, dtype=object), rows], axis=-1)
    if rows.shape[-1] == 0:
        if ufunc.identity is None:
            raise ValueError(f"zero-size array to reduction operation {ufunc.__name__} which has no identity")
        result = np.full(shape, ufunc.identity, dtype=object)
    else:
        result = _object_array(np.frompyfunc(fn, 2, 1).reduce(rows, axis=-1))
    if keepdims:
        result = result.reshape([1 if d in axes else n for d, n in enumerate(a.shape)])
    return result


def trace(f: Callable, n: int, n_params: int = 0, source_lines: bool = True) -> TapeData:
    """Run ``f`` once on ``n`` traced inputs (and ``n_params`` parameters) and return its tape.

    With ``source_lines``, each instruction remembers the file and line of ``f``
    that recorded it (for :meth:`Tape.find_nonfinite`). Draws from np.random's or
    random's global generators while ``f`` runs are frozen into the tape as
    constants: a :class:`FrozenRandomWarning` says so.
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
    random_before = _random_states()
    try:
        if n_params:
            p = np.empty(n_params, dtype=object).view(TracedArray)
            for j in range(n_params):
                p[j] = Var(rec, n + j)
            result = f(x, p)
        else:
            result = f(x)
    except TypeError as error:
        clearer = _numpy_refusal(error)
        if clearer is None:
            raise
        raise clearer from error
    if _random_states() != random_before:
        warnings.warn(
            "f drew random numbers while it was recorded (from np.random's or the random module's global "
            "generator): the draws are now constants of the tape, the same at every point and every call. "
            "Draw them outside f and pass them in as parameters (record(..., n_params=k), tape(X, P)).",
            FrozenRandomWarning, stacklevel=3)
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


def _random_states() -> tuple:
    """The global generators' states (numpy's legacy one, and random's): equal unless something drew.

    A np.random.Generator of f's own cannot be seen (tapead does not trace every call to
    find one); another thread drawing while f records is reported too.
    """
    np_state = np.random.get_state()
    return (np_state[0], np_state[1].tobytes(), *np_state[2:]), random.getstate()


_NUMPY_LOOP = re.compile(r"loop of ufunc does not support argument \d+ of type (\w+) which has no callable (\w+) "
                         "method")
_NUMPY_NO_LOOP = re.compile(r"ufunc '(\w+)' not supported for the input types")


def _numpy_refusal(error: TypeError) -> TypeError | None:
    """A clearer error for numpy's own on a plain object array of traced values (numpy raised it,
    in C, before tapead saw the call), located at the user's innermost line in the traceback."""
    text = str(error)
    frames = [frame for frame, _ in traceback.walk_tb(error.__traceback__) if not _internal(frame.f_code.co_filename)]
    where = _at(frames[-1]) if frames else "at an unknown line"
    loop, no_loop = _NUMPY_LOOP.search(text), _NUMPY_NO_LOOP.search(text)
    if loop:
        construct = f"np.{loop[2]} of a plain object array holding {loop[1]}s"
        why = f"numpy calls .{loop[2]}() on each element and a {loop[1]} has none"
        instead = f"Use tapead.{loop[2]}(a), or build the array with tapead.asarray([...]) or np.stack([...])"
    elif no_loop:
        construct = f"the ufunc {no_loop[1]} on a plain object array (np.array([...]) of traced values)"
        why = "numpy has no object loop for it and does not hand such an array to tapead"
        instead = "Build the array with tapead.asarray([...]) or np.stack([...]), or apply it to each element"
    elif "unsupported in linalg" in text or re.search(r"Cannot cast ufunc '\w+' input from dtype\('O'\)", text):
        construct = "np.linalg on a plain object array (np.array([...]) of traced values)"
        why = "numpy's linalg takes float arrays and does not hand this one to tapead"
        instead = "Build the matrix with tapead.asarray([...]) or np.stack([...]) (np.linalg.det, inv, solve, ...)"
    else:
        return None
    return TypeError(f"{construct} cannot be traced ({where}): {why}. {instead}")


def inline(tape: TapeData, x, p=None):
    """Replay ``tape``'s instructions on ``x`` (and ``p``) inside the recording in progress.

    The composed tape holds the inner one's instructions, so its values and derivatives
    are those of recording the composed function directly. ``x`` holds ``tape.n_in``
    traced values or numbers (any shape, read flat), ``p`` ``tape.n_params``; the result
    has ``tape.out_shape`` (a traced value for ``()``).

    Examples
    --------
    >>> import numpy as np, tapead
    >>> from tapead.tracer import inline
    >>> inner = tapead.record(lambda x: x[0] * x[1], 2)
    >>> outer = tapead.record(lambda x: inline(inner, x[::-1]) + x[0], 2)
    >>> outer.gradient(np.array([2.0, 3.0])).tolist()
    [4.0, 2.0]
    """
    xs = _flat(x, tape.n_in, "x")
    ps = _flat(p, tape.n_params, "p") if tape.n_params or p is not None else []
    rec = next((a.rec for a in xs + ps if isinstance(a, Var)), None)
    if rec is None:
        raise _refuse("inlining a tape on numbers only", "inline replays a tape inside a recording",
                      "Evaluate it with tape(X) instead", error=ValueError)
    v: list = []
    for a in xs + ps:
        if isinstance(a, Var) and a.rec is not rec:
            raise ValueError("traced values from two different recordings cannot be combined")
        v.append(a if isinstance(a, Var) else rec.constant(_as_float(a)))
    op, arg0, arg1, arg2, const = (tape.op.tolist(), tape.arg0.tolist(), tape.arg1.tolist(),
                                   tape.arg2.tolist(), tape.const.tolist())
    for i in range(tape.n_in + tape.n_params, tape.n_slots):
        spec = OPS[op[i]]
        if op[i] == CONST:
            v.append(rec.constant(const[i]))
        else:
            operands = (v[arg0[i]], v[arg1[i]], v[arg2[i]])[: spec.arity]
            v.append(rec.emit(spec.name, operands, const[i], depth=2))
    y = [v[s] for s in tape.outputs.tolist()]
    if tape.out_shape == ():
        return y[0]
    out = np.empty(len(y), dtype=object)
    for j, yj in enumerate(y):
        out[j] = yj
    return out.reshape(tape.out_shape).view(TracedArray)


def _flat(a, n: int, name: str) -> list:
    if a is None:
        raise TypeError(f"inline needs {name} with {n} values")
    values = list(np.asarray(_plain(a), dtype=object).ravel()) if not isinstance(a, Var) else [a]
    if len(values) != n:
        raise ValueError(f"inline: the tape takes {n} values in {name}, got {len(values)}")
    return values


from tapead import numpy_funcs  # noqa: E402,F401  (fills ARRAY_FUNCTIONS and the ufunc tables above)
