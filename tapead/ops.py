"""The op table: every elementary function phi_i of tapead, declared once.

Each row gives, side by side, an op's primal z = phi(x, y, w; c), its local
partials d0 = dz/dx, d1 = dz/dy, d2 = dz/dw, and its second partials (for
Hessians), as scalar expressions in numpy syntax over the operands ``x``,
``y``, ``w``, the instruction's immediate constant ``c`` and the result ``z``.
Griewank & Walther, *Evaluating Derivatives*, ch. 2 (elementals and their
local partials c_ij = d phi_i / d v_j).

The facts other modules need (the pairs of the second partials, which partials are
identically zero or one, which operands each reads, the primal as a function, the numpy twin)
are derived from each row once, when it is built (``OpSpec``), and read from there.
Everything else derives from this table, so nothing can drift apart:

* ``kernels/generate.py`` (``tapead.kernels.generate``) writes the Numba sweeps in ``kernels/sweeps.py``;
* ``tapead.reference`` is the slow numpy interpreter the kernels are tested
  against, built from the same strings;
* the tracer's functions, the printer and the tests iterate over the rows.

Conventions at kinks (the ``note`` column says where a row has one): a
derivative at a kink is the mean of the one-sided derivatives, so abs'(0) = 0
and a tie in maximum/minimum splits the derivative 1/2 : 1/2. Step functions
(comparisons, ``where``'s condition) have zero derivative.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

__all__ = ["OpSpec", "OPS", "BY_NAME", "INPUT", "PARAM", "CONST", "CONDITIONS", "OPERANDS", "READS", "READS_SECOND",
           "op_table_hash", "numpy_function", "partial_kind", "second_pairs", "zero_skip_mul"]

OPERANDS = ("x", "y", "w")  # the operands' names in the table's expressions (``z`` is the result, ``c`` the immediate)


def _mentions(expr: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){name}(?!\w)", expr) is not None


def second_pairs(arity: int) -> tuple[tuple[int, int], ...]:
    """The operand pairs (j, k), j <= k, of an op's second partials, in the order of ``OpSpec.second``.

    Examples
    --------
    >>> second_pairs(2)
    ((0, 0), (0, 1), (1, 1))
    """
    return tuple((j, k) for j in range(arity) for k in range(j, arity))


def partial_kind(expr: str) -> str:
    """What a partial is: "zero" (identically 0), "one", "minus_one", "const" (the same at every
    point: a number or a formula of the immediate ``c``) or "point" (it reads an operand or ``z``).

    Examples
    --------
    >>> [partial_kind(e) for e in ("0.0", "1.0", "-1.0", "1.0 / c", "np.cos(x)")]
    ['zero', 'one', 'minus_one', 'const', 'point']
    """
    s = expr.strip()
    if s in _NUMBER_KINDS:
        return _NUMBER_KINDS[s]
    return "point" if any(_mentions(s, name) for name in (*OPERANDS, "z")) else "const"


_NUMBER_KINDS = {"0.0": "zero", "1.0": "one", "-1.0": "minus_one"}


def zero_skip_mul(a, b):
    """The sweeps' zero-skipping product: 0 when either factor is 0, even against inf or NaN, so
    that the unselected branch of a ``where`` never turns a derivative into NaN (docs/design.md,
    "Zero skipping"). The kernels' own is ``_zero_skip_mul`` in kernels/tiles.py."""
    return 0.0 if a == 0.0 or b == 0.0 else a * b


def numpy_function(expr: str):
    """The table's scalar expression ``expr`` as a Python function (x, y, w, c, z).

    Only the package's own table strings reach this, never user input.
    """
    return eval(f"lambda x, y, w, c, z: {expr}", {"np": np, "math": math})  # noqa: S307


def _derived():
    """A field derived from the others in OpSpec.__post_init__."""
    return field(default=(), init=False, repr=False, compare=False)


@dataclass(frozen=True)
class OpSpec:
    """One elementary operation.

    ``second`` lists the upper triangle of the local Hessian row by row:
    ``(d00,)`` for a unary op, ``(d00, d01, d11)`` for a binary op, six
    entries for a ternary op (``pairs``). ``domain`` gives, per operand, the interval the
    tests sample. ``fmt`` prints one instruction in the notation of docs/design.md, "Notation".

    ``twin`` is the numpy (or scipy) call a user would write for the op, over arrays ``x``,
    ``y``, ``w`` (default ``np.<name>(x, ...)`` where numpy has a function of that name; empty
    for the structural rows and the constant-operand forms); ``sympy`` its mathematical
    definition in sympy's syntax over ``x``, ``y``, ``c`` (every smooth op has one: the tests
    differentiate it), independent of the formulas. ``aliases`` are further names of its tapead
    function (numpy's and math's spellings), ``ufuncs`` further numpy ufuncs (by ``__name__``)
    recorded as this op. None of these enter ``op_table_hash``.

    The facts the passes, the generator and the reference read are derived from the formulas
    once, here: ``pairs``, the kinds of the partials and second partials (``partial_kind``),
    ``nonzero`` and ``nonzero_pairs``, which of x, y, w and z the partials read (``reads``) and
    what the Hessian sweep reads (``reads_second``), and ``primal_function``.
    """

    name: str
    arity: int
    primal: str
    partials: tuple[str, ...]
    second: tuple[str, ...]
    fmt: str
    domain: tuple[tuple[float, float], ...] = ()
    smooth: bool = True
    note: str = ""
    # the primal is IEEE-exact arithmetic (numpy and the kernels agree bit for bit), so the
    # optimizer may fold it on constants; transcendentals are not (libm and numpy differ)
    exact: bool = False
    commutative: bool = False  # op(x, y) == op(y, x) bit for bit, partials swapped
    # the partials are 0 by definition, not the primal's derivative (stop_gradient)
    stops_derivative: bool = False
    twin: str = ""
    sympy: str = ""
    aliases: tuple[str, ...] = ()
    ufuncs: tuple[str, ...] = ()
    code: int = field(default=-1, compare=False)
    # ---- derived in __post_init__ ----
    pairs: tuple[tuple[int, int], ...] = _derived()  # the operand pairs of ``second``
    kinds: tuple[str, ...] = _derived()  # partial_kind of each partial
    second_kinds: tuple[str, ...] = _derived()  # ... and of each second partial
    nonzero: tuple[bool, ...] = _derived()  # per operand: its partial is not identically zero
    nonzero_pairs: tuple[tuple[int, int], ...] = _derived()  # the pairs whose second partial is not
    reads: tuple[bool, ...] = _derived()  # x, y, w, z: read by the partials
    reads_second: tuple[bool, ...] = _derived()  # ... by the Hessian sweep (see READS_SECOND)
    primal_function: object = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        def set_(name, value):
            object.__setattr__(self, name, value)

        names = (*OPERANDS, "z")
        set_("pairs", second_pairs(self.arity))
        set_("kinds", tuple(partial_kind(e) for e in self.partials))
        set_("second_kinds", tuple(partial_kind(e) for e in self.second))
        set_("nonzero", tuple(kind != "zero" for kind in self.kinds))
        set_("nonzero_pairs", tuple(p for p, kind in zip(self.pairs, self.second_kinds) if kind != "zero"))
        set_("reads", tuple(any(_mentions(e, n) for e in self.partials) for n in names))
        # the Hessian sweep reads its second partials' operands too, and the tangent of every
        # operand that a nonzero second partial multiplies (values and tangents share rows)
        exprs = (*self.partials, *self.second)
        set_("reads_second", tuple(
            any(_mentions(e, n) for e in exprs) or any(k in pair for pair in self.nonzero_pairs)
            for k, n in enumerate(names)
        ))
        set_("primal_function", numpy_function(self.primal))
        if not self.twin and self.arity and not self.uses_const and callable(getattr(np, self.name, None)):
            set_("twin", f"np.{self.name}({', '.join(OPERANDS[:self.arity])})")  # np.sin for sin, ...

    @property
    def uses_const(self) -> bool:
        return _mentions(self.primal, "c")

    def twin_function(self):
        """``twin`` as a function of the operand arrays, returning float64 (a comparison's
        booleans as 0.0 and 1.0); None when the op has no twin. scipy is imported only for
        the twins that call it (sigmoid, erf, erfc)."""
        if not self.twin:
            return None
        names = {"np": np}
        if _mentions(self.twin, "scipy"):
            import scipy.special

            names["scipy"] = scipy
        # only the package's own table strings reach this, never user input
        f = eval(f"lambda {', '.join(OPERANDS[:self.arity])}: {self.twin}", names)  # noqa: S307

        def twin(*operands):
            return np.asarray(f(*operands), dtype=np.float64)

        twin.__name__ = twin.__qualname__ = f"{self.name}_twin"
        return twin

    def fold(self, operands, c: float = 0.0) -> float:
        """The op on numbers, in float64 as numpy computes it: the optimizer's constant folding
        and the tracer's ops on plain numbers."""
        values = [np.float64(v) for v in operands] + [None] * (3 - len(operands))
        with np.errstate(all="ignore"):
            return float(self.primal_function(*values, np.float64(c), None))


# Frequently used domains (intervals sampled by the tests).
_R = (-3.0, 3.0)
_POS = (0.2, 4.0)
_NZ = (0.5, 3.0)  # the tests also flip its sign at random: away from zero

ZERO2 = ("0.0", "0.0", "0.0")
LN2 = math.log(2.0)
LN10 = math.log(10.0)
TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)
_DTANH = (
    "(1.0 - z) * (1.0 + z) if np.abs(x) < 1.0 else "
    "4.0 * np.exp(-2.0 * np.abs(x)) / ((1.0 + np.exp(-2.0 * np.abs(x))) * (1.0 + np.exp(-2.0 * np.abs(x))))"
)
_SIGMOID = "1.0 / (1.0 + np.exp(-x)) if x >= 0.0 else np.exp(x) / (1.0 + np.exp(x))"
_DSIGMOID = "np.exp(-np.abs(x)) / ((1.0 + np.exp(-np.abs(x))) * (1.0 + np.exp(-np.abs(x))))"
ZERO6 = ("0.0",) * 6


def _rows() -> list[OpSpec]:
    S = OpSpec
    return [
        # ---- structure: loaded or filled, never differentiated through ----
        S("input", 0, "x", (), (), "x"),
        S("param", 0, "x", (), (), "p"),
        S("const", 0, "c", (), (), "{c}"),
        # ---- arithmetic ----
        S("add", 2, "x + y", ("1.0", "1.0"), ZERO2, "{x} + {y}", (_R, _R), exact=True, commutative=True, sympy="x + y"),
        S("sub", 2, "x - y", ("1.0", "-1.0"), ZERO2, "{x} - {y}", (_R, _R), exact=True,
          sympy="x - y", twin="np.subtract(x, y)", aliases=("subtract",)),
        S("mul", 2, "x * y", ("y", "x"), ("0.0", "1.0", "0.0"), "{x}*{y}", (_R, _R), exact=True, commutative=True,
          sympy="x*y", twin="np.multiply(x, y)", aliases=("multiply",)),
        S("div", 2, "x / y", ("1.0 / y", "-z / y"),
          ("0.0", "-1.0 / (y * y)", "2.0 * z / (y * y)"), "{x}/{y}", (_R, _NZ), exact=True,
          sympy="x/y", twin="np.divide(x, y)", aliases=("divide",), ufuncs=("true_divide",)),
        S("neg", 1, "-x", ("-1.0",), ("0.0",), "-{x}", (_R,), exact=True,
          sympy="-x", twin="np.negative(x)", aliases=("negative",)),
        S("addc", 1, "x + c", ("1.0",), ("0.0",), "{x} + {c}", (_R,), exact=True, sympy="x + c"),
        S("mulc", 1, "x * c", ("c",), ("0.0",), "{c}*{x}", (_R,), exact=True, sympy="x*c"),
        S("rsubc", 1, "c - x", ("-1.0",), ("0.0",), "{c} - {x}", (_R,), exact=True, sympy="c - x"),
        S("divc", 1, "x / c", ("1.0 / c",), ("0.0",), "{x}/{c}", (_R,), exact=True, sympy="x/c"),
        S("rdivc", 1, "c / x", ("-z / x",), ("2.0 * z / (x * x)",), "{c}/{x}", (_NZ,), exact=True, sympy="c/x"),
        # x + c*y: what the optimizer makes of an add (or sub) whose other operand is a mulc
        # read nowhere else. Two roundings, as the pair had (no FMA): the same values.
        S("addmulc", 2, "x + c * y", ("1.0", "c"), ZERO2, "{x} + {c}*{y}", (_R, _R), exact=True, sympy="x + c*y"),
        # ---- powers: cheap special cases first, pow(x, y) last ----
        S("square", 1, "x * x", ("2.0 * x",), ("2.0",), "{x}**2", (_R,), exact=True, sympy="x**2"),
        S("recip", 1, "1.0 / x", ("-z * z",), ("2.0 * z * z * z",), "1/{x}", (_NZ,), exact=True,
          sympy="1/x", twin="np.reciprocal(x)", aliases=("reciprocal",)),
        S("sqrt", 1, "np.sqrt(x)", ("0.5 / z",), ("-0.25 / (z * z * z)",), "sqrt {x}", (_POS,), exact=True,
          sympy="sqrt(x)"),
        S("powc", 1, "np.power(x, c)", ("c * np.power(x, c - 1.0)",),
          ("c * (c - 1.0) * np.power(x, c - 2.0)",), "{x}**{c}", (_POS,), sympy="x**c"),
        # d/dy x**y = z log x is taken as 0 where z == 0 (x = 0, y > 0), and
        # d/dx as 0 where y == 0, instead of the 0 * inf = NaN of the formula.
        S("pow", 2, "np.power(x, y)",
          ("0.0 if y == 0.0 else y * np.power(x, y - 1.0)",
           "0.0 if z == 0.0 else z * np.log(x)"),
          ("0.0 if y == 0.0 else y * (y - 1.0) * np.power(x, y - 2.0)",
           "0.0 if y == 0.0 else np.power(x, y - 1.0) * (1.0 + y * np.log(x))",
           "0.0 if z == 0.0 else z * np.log(x) * np.log(x)"),
          "{x}**{y}", (_POS, _R), sympy="x**y", twin="np.power(x, y)", aliases=("power",)),
        S("hypot", 2, "np.hypot(x, y)",
          ("0.0 if z == 0.0 else x / z", "0.0 if z == 0.0 else y / z"),
          ("0.0 if z == 0.0 else y * y / (z * z * z)", "0.0 if z == 0.0 else -x * y / (z * z * z)",
           "0.0 if z == 0.0 else x * x / (z * z * z)"),
          "hypot({x}, {y})", (_R, _R), note="partials taken as 0 at (0, 0)", sympy="sqrt(x**2 + y**2)"),
        # ---- exp and log ----
        S("exp", 1, "np.exp(x)", ("z",), ("z",), "exp {x}", (_R,), sympy="exp(x)"),
        S("exp2", 1, "np.exp2(x)", (f"z * {LN2!r}",), (f"z * {LN2 * LN2!r}",), "exp2 {x}", (_R,), sympy="2**x"),
        S("expm1", 1, "np.expm1(x)", ("np.exp(x)",), ("np.exp(x)",), "expm1 {x}", (_R,), sympy="exp(x) - 1"),
        S("log", 1, "np.log(x)", ("1.0 / x",), ("-1.0 / (x * x)",), "log {x}", (_POS,), sympy="log(x)"),
        S("log2", 1, "np.log2(x)", (f"1.0 / (x * {LN2!r})",), (f"-1.0 / (x * x * {LN2!r})",), "log2 {x}",
          (_POS,), sympy="log(x, 2)"),
        S("log10", 1, "np.log10(x)", (f"1.0 / (x * {LN10!r})",), (f"-1.0 / (x * x * {LN10!r})",),
          "log10 {x}", (_POS,), sympy="log(x, 10)"),
        S("log1p", 1, "np.log1p(x)", ("1.0 / (1.0 + x)",), ("-1.0 / ((1.0 + x) * (1.0 + x))",), "log1p {x}",
          ((-0.8, 3.0),), sympy="log(1 + x)"),
        S("logaddexp", 2,
          f"x + {LN2!r} if x == y else (x if x > y else y) + np.log1p(np.exp(-np.abs(x - y)))",
          ("np.exp(x - z)", "np.exp(y - z)"),
          ("np.exp(x - z) * np.exp(y - z)", "-np.exp(x - z) * np.exp(y - z)", "np.exp(x - z) * np.exp(y - z)"),
          "logaddexp({x}, {y})", (_R, _R), sympy="log(exp(x) + exp(y))"),
        # sigmoid and softplus in their overflow-free forms; sigma' = e / (1 + e)^2
        # with e = exp(-|x|) keeps full relative accuracy in both tails.
        S("sigmoid", 1, _SIGMOID, (_DSIGMOID,), (f"-np.tanh(0.5 * x) * {_DSIGMOID}",), "sigmoid {x}", (_R,),
          sympy="1/(1 + exp(-x))", twin="scipy.special.expit(x)"),
        S("softplus", 1, "(x if x > 0.0 else 0.0) + np.log1p(np.exp(-np.abs(x)))", (_SIGMOID,), (_DSIGMOID,),
          "softplus {x}", (_R,), sympy="log(1 + exp(x))", twin="np.logaddexp(0.0, x)"),
        # ---- trigonometric and hyperbolic ----
        S("sin", 1, "np.sin(x)", ("np.cos(x)",), ("-z",), "sin {x}", (_R,), sympy="sin(x)"),
        S("cos", 1, "np.cos(x)", ("-np.sin(x)",), ("-z",), "cos {x}", (_R,), sympy="cos(x)"),
        S("tan", 1, "np.tan(x)", ("1.0 + z * z",), ("2.0 * z * (1.0 + z * z)",), "tan {x}",
          ((-1.2, 1.2),), sympy="tan(x)"),
        # (1 - x)(1 + x) rather than 1 - x*x: no cancellation near |x| = 1
        S("arcsin", 1, "np.arcsin(x)", ("1.0 / np.sqrt((1.0 - x) * (1.0 + x))",),
          ("x / ((1.0 - x) * (1.0 + x) * np.sqrt((1.0 - x) * (1.0 + x)))",), "arcsin {x}", ((-0.9, 0.9),),
          sympy="asin(x)", aliases=("asin",)),
        S("arccos", 1, "np.arccos(x)", ("-1.0 / np.sqrt((1.0 - x) * (1.0 + x))",),
          ("-x / ((1.0 - x) * (1.0 + x) * np.sqrt((1.0 - x) * (1.0 + x)))",), "arccos {x}", ((-0.9, 0.9),),
          sympy="acos(x)", aliases=("acos",)),
        S("arctan", 1, "np.arctan(x)", ("1.0 / (1.0 + x * x)",),
          ("-2.0 * x / ((1.0 + x * x) * (1.0 + x * x))",), "arctan {x}", (_R,), sympy="atan(x)", aliases=("atan",)),
        S("arctan2", 2, "np.arctan2(x, y)", ("y / (x * x + y * y)", "-x / (x * x + y * y)"),
          ("-2.0 * x * y / ((x * x + y * y) * (x * x + y * y))",
           "(x * x - y * y) / ((x * x + y * y) * (x * x + y * y))",
           "2.0 * x * y / ((x * x + y * y) * (x * x + y * y))"),
          "arctan2({x}, {y})", (_NZ, _NZ), sympy="atan2(x, y)", aliases=("atan2",)),
        S("sinh", 1, "np.sinh(x)", ("np.cosh(x)",), ("z",), "sinh {x}", (_R,), sympy="sinh(x)"),
        S("cosh", 1, "np.cosh(x)", ("np.sinh(x)",), ("z",), "cosh {x}", (_R,), sympy="cosh(x)"),
        # tanh' = 1 - z^2 loses all accuracy as |z| -> 1 (it is 0 from x = 19 on);
        # 4e/(1+e)^2 with e = exp(-2|x|) does not, and costs an exp: used for |x| >= 1.
        S("tanh", 1, "np.tanh(x)", (_DTANH,), (f"-2.0 * z * ({_DTANH})",), "tanh {x}", (_R,), sympy="tanh(x)"),
        S("arcsinh", 1, "np.arcsinh(x)", ("1.0 / np.hypot(x, 1.0)",),
          ("-x / (np.hypot(x, 1.0) * np.hypot(x, 1.0) * np.hypot(x, 1.0))",), "arcsinh {x}", (_R,),
          sympy="asinh(x)", aliases=("asinh",)),
        S("arccosh", 1, "np.arccosh(x)", ("1.0 / np.sqrt((x - 1.0) * (x + 1.0))",),
          ("-x / ((x - 1.0) * (x + 1.0) * np.sqrt((x - 1.0) * (x + 1.0)))",), "arccosh {x}", ((1.2, 4.0),),
          sympy="acosh(x)", aliases=("acosh",)),
        S("arctanh", 1, "np.arctanh(x)", ("1.0 / ((1.0 - x) * (1.0 + x))",),
          ("2.0 * x / ((1.0 - x) * (1.0 + x) * (1.0 - x) * (1.0 + x))",), "arctanh {x}", ((-0.9, 0.9),),
          sympy="atanh(x)", aliases=("atanh",)),
        # ---- roots and special functions ----
        S("cbrt", 1, "np.cbrt(x)", ("1.0 / (3.0 * z * z)",), ("-2.0 / (9.0 * z * z * z * z * z)",), "cbrt {x}",
          (_NZ,), sympy="sign(x)*Abs(x)**Rational(1, 3)"),
        S("erf", 1, "math.erf(x)", (f"{TWO_OVER_SQRT_PI!r} * np.exp(-x * x)",),
          (f"{-2 * TWO_OVER_SQRT_PI!r} * x * np.exp(-x * x)",), "erf {x}", (_R,),
          sympy="erf(x)", twin="scipy.special.erf(x)"),
        S("erfc", 1, "math.erfc(x)", (f"{-TWO_OVER_SQRT_PI!r} * np.exp(-x * x)",),
          (f"{2 * TWO_OVER_SQRT_PI!r} * x * np.exp(-x * x)",), "erfc {x}", (_R,),
          sympy="erfc(x)", twin="scipy.special.erfc(x)"),
        # ---- non-smooth ----
        S("abs", 1, "np.abs(x)", ("np.sign(x)",), ("0.0",), "abs {x}", (_NZ,), False,
          "abs'(0) = 0", exact=True, aliases=("absolute",), ufuncs=("fabs",)),
        S("copysign", 2, "np.copysign(x, y)",
          ("0.0 if x == 0.0 else np.copysign(1.0, x) * np.copysign(1.0, y)", "0.0"), ZERO2,
          "copysign({x}, {y})", (_NZ, _NZ), False, "d/dx = 0 at x = 0 (as abs); d/dy = 0", exact=True),
        S("sign", 1, "np.sign(x)", ("0.0",), ("0.0",), "sign {x}", (_NZ,), False, "derivative 0", exact=True),
        S("floor", 1, "np.floor(x)", ("0.0",), ("0.0",), "floor {x}", (_R,), False, "derivative 0", exact=True),
        S("ceil", 1, "np.ceil(x)", ("0.0",), ("0.0",), "ceil {x}", (_R,), False, "derivative 0", exact=True),
        S("rint", 1, "np.rint(x)", ("0.0",), ("0.0",), "rint {x}", (_R,), False,
          "derivative 0; rounds half to even, as numpy", exact=True, aliases=("round",)),
        S("maximum", 2, "x if (x > y or x != x) else y",
          ("1.0 if x > y else (0.5 if x == y else 0.0)",
           "1.0 if y > x else (0.5 if x == y else 0.0)"),
          ZERO2, "maximum({x}, {y})", (_R, _R), False, "a tie splits the derivative 1/2 : 1/2", exact=True),
        S("minimum", 2, "x if (x < y or x != x) else y",
          ("1.0 if x < y else (0.5 if x == y else 0.0)",
           "1.0 if y < x else (0.5 if x == y else 0.0)"),
          ZERO2, "minimum({x}, {y})", (_R, _R), False, "a tie splits the derivative 1/2 : 1/2", exact=True),
        # ---- conditions: 1.0 for true, 0.0 for false; zero derivative ----
        S("lt", 2, "1.0 if x < y else 0.0", ("0.0", "0.0"), ZERO2, "{x} < {y}", (_R, _R), False, exact=True,
          twin="np.less(x, y)", ufuncs=("less",)),
        S("le", 2, "1.0 if x <= y else 0.0", ("0.0", "0.0"), ZERO2, "{x} <= {y}", (_R, _R), False, exact=True,
          twin="np.less_equal(x, y)", ufuncs=("less_equal",)),
        S("gt", 2, "1.0 if x > y else 0.0", ("0.0", "0.0"), ZERO2, "{x} > {y}", (_R, _R), False, exact=True,
          twin="np.greater(x, y)", ufuncs=("greater",)),
        S("ge", 2, "1.0 if x >= y else 0.0", ("0.0", "0.0"), ZERO2, "{x} >= {y}", (_R, _R), False, exact=True,
          twin="np.greater_equal(x, y)", ufuncs=("greater_equal",)),
        S("eq", 2, "1.0 if x == y else 0.0", ("0.0", "0.0"), ZERO2, "{x} == {y}", (_R, _R), False, exact=True,
          commutative=True, twin="np.equal(x, y)", ufuncs=("equal",)),
        S("ne", 2, "1.0 if x != y else 0.0", ("0.0", "0.0"), ZERO2, "{x} != {y}", (_R, _R), False, exact=True,
          commutative=True, twin="np.not_equal(x, y)", ufuncs=("not_equal",)),
        S("land", 2, "1.0 if (x != 0.0 and y != 0.0) else 0.0", ("0.0", "0.0"), ZERO2, "{x} and {y}",
          ((-1.0, 1.0), (-1.0, 1.0)), False, exact=True, commutative=True,
          twin="np.logical_and(x, y)", aliases=("logical_and",)),
        S("lor", 2, "1.0 if (x != 0.0 or y != 0.0) else 0.0", ("0.0", "0.0"), ZERO2, "{x} or {y}",
          ((-1.0, 1.0), (-1.0, 1.0)), False, exact=True, commutative=True,
          twin="np.logical_or(x, y)", aliases=("logical_or",)),
        S("lnot", 1, "1.0 if x == 0.0 else 0.0", ("0.0",), ("0.0",), "not {x}", ((-1.0, 1.0),), False, exact=True,
          twin="np.logical_not(x)", aliases=("logical_not",)),
        # where(x, y, w): y where x is true (nonzero or NaN, as numpy), else w.
        # A select, not x*y + (1-x)*w, so the unselected branch's inf/NaN never
        # leaks into the value; the sweeps' zero-skipping keeps it out of the
        # derivatives too.
        S("where", 3, "y if x != 0.0 else w",
          ("0.0", "1.0 if x != 0.0 else 0.0", "0.0 if x != 0.0 else 1.0"),
          ZERO6, "where({x}, {y}, {w})", ((-1.0, 1.0), _R, _R), False, exact=True),
        # stop_gradient(x): the value x with derivative 0 (what tapead.custom_derivative builds on)
        S("stop_gradient", 1, "x", ("0.0",), ("0.0",), "stop {x}", (_R,), False, "derivative 0", exact=True,
          stops_derivative=True, twin="np.positive(x)"),
        # x * y with 0 * inf = 0 * nan = 0: the reverse sweep's product of a partial and an
        # adjoint, as a tape of a gradient (tapead.transform) records it
        S("zero_skip_mul", 2, "0.0 if (x == 0.0 or y == 0.0) else x * y", ("y", "x"), ("0.0", "1.0", "0.0"),
          "zero_skip_mul({x}, {y})", (_R, _R), exact=True, commutative=True, sympy="x*y",
          twin="np.where((x == 0.0) | (y == 0.0), 0.0, x * y)"),
        # x * y + w and x * y + c: what the optimizer makes of an add (addc) whose operand is a
        # mul read nowhere else (Horner steps, dot products of two traced vectors). Two
        # roundings, as the pair had (no FMA): the same values.
        S("muladd", 3, "x * y + w", ("y", "x", "1.0"), ("0.0", "1.0", "0.0", "0.0", "0.0", "0.0"),
          "{x}*{y} + {w}", (_R, _R, _R), exact=True, sympy="x*y + w", twin="np.add(x * y, w)"),
        S("muladdc", 2, "x * y + c", ("y", "x"), ("0.0", "1.0", "0.0"), "{x}*{y} + {c}", (_R, _R), exact=True,
          sympy="x*y + c"),
    ]


def _number(rows: list[OpSpec]) -> tuple[OpSpec, ...]:
    out = []
    for code, row in enumerate(rows):
        object.__setattr__(row, "code", code)
        out.append(row)
    return tuple(out)


OPS: tuple[OpSpec, ...] = _number(_rows())
BY_NAME: dict[str, OpSpec] = {row.name: row for row in OPS}
INPUT, PARAM, CONST = BY_NAME["input"].code, BY_NAME["param"].code, BY_NAME["const"].code
# the conditions: ops whose value is 1.0 (true) or 0.0 (false), read off their primal formulas
CONDITIONS = frozenset(row.code for row in OPS if re.fullmatch(r"1\.0 if .+ else 0\.0", row.primal))
if len(BY_NAME) != len(OPS):  # a table invariant: checked even under python -O
    raise ImportError("duplicate op names in the op table")


def _check_rows() -> None:
    """Table invariants, raised (not asserted) so that python -O keeps them."""
    for row in OPS:
        if row.code <= CONST:
            continue
        if len(row.partials) != row.arity or len(row.second) != len(row.pairs) or len(row.domain) != row.arity:
            raise ImportError(f"op {row.name}: {row.arity} operand(s) need as many partials and domains, "
                              f"and {len(row.pairs)} second partials")
        if row.commutative and row.arity != 2:  # the optimizer's CSE swaps the two operands
            raise ImportError(f"op {row.name}: a commutative op must be binary")
        names = [row.name, *row.aliases, *row.ufuncs]
        if len(set(names)) != len(names):
            raise ImportError(f"op {row.name}: a name repeated among its aliases and ufuncs")


_check_rows()
_ALIASES = [a for row in OPS for a in (*row.aliases, *row.ufuncs)]
if len(set(_ALIASES)) != len(_ALIASES) or set(_ALIASES) & set(BY_NAME):
    raise ImportError("two ops claim the same alias or ufunc name, or an alias is an op's name")

# per op code, which of x, y, w and z the reverse sweep reads to compute the partials ...
READS = np.array([row.reads for row in OPS], dtype=bool)
# ... and what the Hessian sweep reads: the second partials' operands, and the tangents that
# a nonzero second partial multiplies (values and tangents share rows)
READS_SECOND = np.array([row.reads_second for row in OPS], dtype=bool)


def op_table_hash() -> str:
    """A short hash of the table's names and formulas: files record it."""
    import hashlib

    text = "\n".join(
        f"{r.code}|{r.name}|{r.arity}|{r.primal}|{r.partials}|{r.second}" for r in OPS
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]
