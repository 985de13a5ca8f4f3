"""The op table: every elementary function phi_i of tapead, declared once.

Each row gives, side by side, an op's primal z = phi(x, y, w; c), its local
partials d0 = dz/dx, d1 = dz/dy, d2 = dz/dw, and its second partials (for
Hessians), as scalar expressions in numpy syntax over the operands ``x``,
``y``, ``w``, the instruction's immediate constant ``c`` and the result ``z``.
Griewank & Walther, *Evaluating Derivatives*, ch. 2 (elementals and their
local partials c_ij = d phi_i / d v_j).

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
from dataclasses import dataclass, field

import numpy as np

__all__ = ["OpSpec", "OPS", "BY_NAME", "INPUT", "PARAM", "CONST", "op_table_hash"]


@dataclass(frozen=True)
class OpSpec:
    """One elementary operation.

    ``second`` lists the upper triangle of the local Hessian row by row:
    ``(d00,)`` for a unary op, ``(d00, d01, d11)`` for a binary op, six
    entries for a ternary op. ``domain`` gives, per operand, the interval the
    tests sample. ``fmt`` prints one instruction in the notation of docs/design.md, "Notation".
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
    code: int = field(default=-1, compare=False)

    @property
    def uses_const(self) -> bool:
        return _mentions(self.primal, "c")


def _mentions(expr: str, name: str) -> bool:
    import re

    return re.search(rf"(?<![\w.]){name}(?!\w)", expr) is not None


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
        S("add", 2, "x + y", ("1.0", "1.0"), ZERO2, "{x} + {y}", (_R, _R), exact=True, commutative=True),
        S("sub", 2, "x - y", ("1.0", "-1.0"), ZERO2, "{x} - {y}", (_R, _R), exact=True),
        S("mul", 2, "x * y", ("y", "x"), ("0.0", "1.0", "0.0"), "{x}*{y}", (_R, _R), exact=True, commutative=True),
        S("div", 2, "x / y", ("1.0 / y", "-z / y"),
          ("0.0", "-1.0 / (y * y)", "2.0 * z / (y * y)"), "{x}/{y}", (_R, _NZ), exact=True),
        S("neg", 1, "-x", ("-1.0",), ("0.0",), "-{x}", (_R,), exact=True),
        S("addc", 1, "x + c", ("1.0",), ("0.0",), "{x} + {c}", (_R,), exact=True),
        S("mulc", 1, "x * c", ("c",), ("0.0",), "{c}*{x}", (_R,), exact=True),
        S("rsubc", 1, "c - x", ("-1.0",), ("0.0",), "{c} - {x}", (_R,), exact=True),
        S("divc", 1, "x / c", ("1.0 / c",), ("0.0",), "{x}/{c}", (_R,), exact=True),
        S("rdivc", 1, "c / x", ("-z / x",), ("2.0 * z / (x * x)",), "{c}/{x}", (_NZ,), exact=True),
        # x + c*y: what the optimizer makes of an add (or sub) whose other operand is a mulc
        # read nowhere else. Two roundings, as the pair had (no FMA): the same values.
        S("addmulc", 2, "x + c * y", ("1.0", "c"), ZERO2, "{x} + {c}*{y}", (_R, _R), exact=True),
        # ---- powers: cheap special cases first, pow(x, y) last ----
        S("square", 1, "x * x", ("2.0 * x",), ("2.0",), "{x}**2", (_R,), exact=True),
        S("recip", 1, "1.0 / x", ("-z * z",), ("2.0 * z * z * z",), "1/{x}", (_NZ,), exact=True),
        S("sqrt", 1, "np.sqrt(x)", ("0.5 / z",), ("-0.25 / (z * z * z)",), "sqrt {x}", (_POS,), exact=True),
        S("powc", 1, "np.power(x, c)", ("c * np.power(x, c - 1.0)",),
          ("c * (c - 1.0) * np.power(x, c - 2.0)",), "{x}**{c}", (_POS,)),
        # d/dy x**y = z log x is taken as 0 where z == 0 (x = 0, y > 0), and
        # d/dx as 0 where y == 0, instead of the 0 * inf = NaN of the formula.
        S("pow", 2, "np.power(x, y)",
          ("0.0 if y == 0.0 else y * np.power(x, y - 1.0)",
           "0.0 if z == 0.0 else z * np.log(x)"),
          ("0.0 if y == 0.0 else y * (y - 1.0) * np.power(x, y - 2.0)",
           "0.0 if y == 0.0 else np.power(x, y - 1.0) * (1.0 + y * np.log(x))",
           "0.0 if z == 0.0 else z * np.log(x) * np.log(x)"),
          "{x}**{y}", (_POS, _R)),
        S("hypot", 2, "np.hypot(x, y)",
          ("0.0 if z == 0.0 else x / z", "0.0 if z == 0.0 else y / z"),
          ("0.0 if z == 0.0 else y * y / (z * z * z)", "0.0 if z == 0.0 else -x * y / (z * z * z)",
           "0.0 if z == 0.0 else x * x / (z * z * z)"),
          "hypot({x}, {y})", (_R, _R), note="partials taken as 0 at (0, 0)"),
        # ---- exp and log ----
        S("exp", 1, "np.exp(x)", ("z",), ("z",), "exp {x}", (_R,)),
        S("exp2", 1, "np.exp2(x)", (f"z * {LN2!r}",), (f"z * {LN2 * LN2!r}",), "exp2 {x}", (_R,)),
        S("expm1", 1, "np.expm1(x)", ("np.exp(x)",), ("np.exp(x)",), "expm1 {x}", (_R,)),
        S("log", 1, "np.log(x)", ("1.0 / x",), ("-1.0 / (x * x)",), "log {x}", (_POS,)),
        S("log2", 1, "np.log2(x)", (f"1.0 / (x * {LN2!r})",), (f"-1.0 / (x * x * {LN2!r})",), "log2 {x}",
          (_POS,)),
        S("log10", 1, "np.log10(x)", (f"1.0 / (x * {LN10!r})",), (f"-1.0 / (x * x * {LN10!r})",),
          "log10 {x}", (_POS,)),
        S("log1p", 1, "np.log1p(x)", ("1.0 / (1.0 + x)",), ("-1.0 / ((1.0 + x) * (1.0 + x))",), "log1p {x}",
          ((-0.8, 3.0),)),
        S("logaddexp", 2,
          f"x + {LN2!r} if x == y else (x if x > y else y) + np.log1p(np.exp(-np.abs(x - y)))",
          ("np.exp(x - z)", "np.exp(y - z)"),
          ("np.exp(x - z) * np.exp(y - z)", "-np.exp(x - z) * np.exp(y - z)", "np.exp(x - z) * np.exp(y - z)"),
          "logaddexp({x}, {y})", (_R, _R)),
        # sigmoid and softplus in their overflow-free forms; sigma' = e / (1 + e)^2
        # with e = exp(-|x|) keeps full relative accuracy in both tails.
        S("sigmoid", 1, _SIGMOID, (_DSIGMOID,), (f"-np.tanh(0.5 * x) * {_DSIGMOID}",), "sigmoid {x}", (_R,)),
        S("softplus", 1, "(x if x > 0.0 else 0.0) + np.log1p(np.exp(-np.abs(x)))", (_SIGMOID,), (_DSIGMOID,),
          "softplus {x}", (_R,)),
        # ---- trigonometric and hyperbolic ----
        S("sin", 1, "np.sin(x)", ("np.cos(x)",), ("-z",), "sin {x}", (_R,)),
        S("cos", 1, "np.cos(x)", ("-np.sin(x)",), ("-z",), "cos {x}", (_R,)),
        S("tan", 1, "np.tan(x)", ("1.0 + z * z",), ("2.0 * z * (1.0 + z * z)",), "tan {x}",
          ((-1.2, 1.2),)),
        # (1 - x)(1 + x) rather than 1 - x*x: no cancellation near |x| = 1
        S("arcsin", 1, "np.arcsin(x)", ("1.0 / np.sqrt((1.0 - x) * (1.0 + x))",),
          ("x / ((1.0 - x) * (1.0 + x) * np.sqrt((1.0 - x) * (1.0 + x)))",), "arcsin {x}", ((-0.9, 0.9),)),
        S("arccos", 1, "np.arccos(x)", ("-1.0 / np.sqrt((1.0 - x) * (1.0 + x))",),
          ("-x / ((1.0 - x) * (1.0 + x) * np.sqrt((1.0 - x) * (1.0 + x)))",), "arccos {x}", ((-0.9, 0.9),)),
        S("arctan", 1, "np.arctan(x)", ("1.0 / (1.0 + x * x)",),
          ("-2.0 * x / ((1.0 + x * x) * (1.0 + x * x))",), "arctan {x}", (_R,)),
        S("arctan2", 2, "np.arctan2(x, y)", ("y / (x * x + y * y)", "-x / (x * x + y * y)"),
          ("-2.0 * x * y / ((x * x + y * y) * (x * x + y * y))",
           "(x * x - y * y) / ((x * x + y * y) * (x * x + y * y))",
           "2.0 * x * y / ((x * x + y * y) * (x * x + y * y))"),
          "arctan2({x}, {y})", (_NZ, _NZ)),
        S("sinh", 1, "np.sinh(x)", ("np.cosh(x)",), ("z",), "sinh {x}", (_R,)),
        S("cosh", 1, "np.cosh(x)", ("np.sinh(x)",), ("z",), "cosh {x}", (_R,)),
        # tanh' = 1 - z^2 loses all accuracy as |z| -> 1 (it is 0 from x = 19 on);
        # 4e/(1+e)^2 with e = exp(-2|x|) does not, and costs an exp: used for |x| >= 1.
        S("tanh", 1, "np.tanh(x)", (_DTANH,), (f"-2.0 * z * ({_DTANH})",), "tanh {x}", (_R,)),
        S("arcsinh", 1, "np.arcsinh(x)", ("1.0 / np.hypot(x, 1.0)",),
          ("-x / (np.hypot(x, 1.0) * np.hypot(x, 1.0) * np.hypot(x, 1.0))",), "arcsinh {x}", (_R,)),
        S("arccosh", 1, "np.arccosh(x)", ("1.0 / np.sqrt((x - 1.0) * (x + 1.0))",),
          ("-x / ((x - 1.0) * (x + 1.0) * np.sqrt((x - 1.0) * (x + 1.0)))",), "arccosh {x}", ((1.2, 4.0),)),
        S("arctanh", 1, "np.arctanh(x)", ("1.0 / ((1.0 - x) * (1.0 + x))",),
          ("2.0 * x / ((1.0 - x) * (1.0 + x) * (1.0 - x) * (1.0 + x))",), "arctanh {x}", ((-0.9, 0.9),)),
        # ---- roots and special functions ----
        S("cbrt", 1, "np.cbrt(x)", ("1.0 / (3.0 * z * z)",), ("-2.0 / (9.0 * z * z * z * z * z)",), "cbrt {x}",
          (_NZ,)),
        S("erf", 1, "math.erf(x)", (f"{TWO_OVER_SQRT_PI!r} * np.exp(-x * x)",),
          (f"{-2 * TWO_OVER_SQRT_PI!r} * x * np.exp(-x * x)",), "erf {x}", (_R,)),
        S("erfc", 1, "math.erfc(x)", (f"{-TWO_OVER_SQRT_PI!r} * np.exp(-x * x)",),
          (f"{2 * TWO_OVER_SQRT_PI!r} * x * np.exp(-x * x)",), "erfc {x}", (_R,)),
        # ---- non-smooth ----
        S("abs", 1, "np.abs(x)", ("np.sign(x)",), ("0.0",), "abs {x}", (_NZ,), False,
          "abs'(0) = 0", exact=True),
        S("copysign", 2, "np.copysign(x, y)",
          ("0.0 if x == 0.0 else np.copysign(1.0, x) * np.copysign(1.0, y)", "0.0"), ZERO2,
          "copysign({x}, {y})", (_NZ, _NZ), False, "d/dx = 0 at x = 0 (as abs); d/dy = 0", exact=True),
        S("sign", 1, "np.sign(x)", ("0.0",), ("0.0",), "sign {x}", (_NZ,), False, "derivative 0", exact=True),
        S("floor", 1, "np.floor(x)", ("0.0",), ("0.0",), "floor {x}", (_R,), False, "derivative 0", exact=True),
        S("ceil", 1, "np.ceil(x)", ("0.0",), ("0.0",), "ceil {x}", (_R,), False, "derivative 0", exact=True),
        S("rint", 1, "np.rint(x)", ("0.0",), ("0.0",), "rint {x}", (_R,), False,
          "derivative 0; rounds half to even, as numpy", exact=True),
        S("maximum", 2, "x if (x > y or x != x) else y",
          ("1.0 if x > y else (0.5 if x == y else 0.0)",
           "1.0 if y > x else (0.5 if x == y else 0.0)"),
          ZERO2, "maximum({x}, {y})", (_R, _R), False, "a tie splits the derivative 1/2 : 1/2", exact=True),
        S("minimum", 2, "x if (x < y or x != x) else y",
          ("1.0 if x < y else (0.5 if x == y else 0.0)",
           "1.0 if y < x else (0.5 if x == y else 0.0)"),
          ZERO2, "minimum({x}, {y})", (_R, _R), False, "a tie splits the derivative 1/2 : 1/2", exact=True),
        # ---- conditions: 1.0 for true, 0.0 for false; zero derivative ----
        S("lt", 2, "1.0 if x < y else 0.0", ("0.0", "0.0"), ZERO2, "{x} < {y}", (_R, _R), False, exact=True),
        S("le", 2, "1.0 if x <= y else 0.0", ("0.0", "0.0"), ZERO2, "{x} <= {y}", (_R, _R), False, exact=True),
        S("gt", 2, "1.0 if x > y else 0.0", ("0.0", "0.0"), ZERO2, "{x} > {y}", (_R, _R), False, exact=True),
        S("ge", 2, "1.0 if x >= y else 0.0", ("0.0", "0.0"), ZERO2, "{x} >= {y}", (_R, _R), False, exact=True),
        S("eq", 2, "1.0 if x == y else 0.0", ("0.0", "0.0"), ZERO2, "{x} == {y}", (_R, _R), False, exact=True, commutative=True),
        S("ne", 2, "1.0 if x != y else 0.0", ("0.0", "0.0"), ZERO2, "{x} != {y}", (_R, _R), False, exact=True, commutative=True),
        S("land", 2, "1.0 if (x != 0.0 and y != 0.0) else 0.0", ("0.0", "0.0"), ZERO2, "{x} and {y}",
          ((-1.0, 1.0), (-1.0, 1.0)), False, exact=True, commutative=True),
        S("lor", 2, "1.0 if (x != 0.0 or y != 0.0) else 0.0", ("0.0", "0.0"), ZERO2, "{x} or {y}",
          ((-1.0, 1.0), (-1.0, 1.0)), False, exact=True, commutative=True),
        S("lnot", 1, "1.0 if x == 0.0 else 0.0", ("0.0",), ("0.0",), "not {x}", ((-1.0, 1.0),), False, exact=True),
        # where(x, y, w): y where x is true (nonzero or NaN, as numpy), else w.
        # A select, not x*y + (1-x)*w, so the unselected branch's inf/NaN never
        # leaks into the value; the sweeps' zero-skipping keeps it out of the
        # derivatives too.
        S("where", 3, "y if x != 0.0 else w",
          ("0.0", "1.0 if x != 0.0 else 0.0", "0.0 if x != 0.0 else 1.0"),
          ZERO6, "where({x}, {y}, {w})", ((-1.0, 1.0), _R, _R), False, exact=True),
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
if len(BY_NAME) != len(OPS):  # a table invariant: checked even under python -O
    raise ImportError("duplicate op names in the op table")


def _check_rows() -> None:
    for row in OPS:
        n_second = {0: 0, 1: 1, 2: 3, 3: 6}[row.arity]
        if row.code > CONST:
            assert len(row.partials) == row.arity, row.name
            assert len(row.second) == n_second, row.name
            assert len(row.domain) == row.arity, row.name


_check_rows()


def op_table_hash() -> str:
    """A short hash of the table's names and formulas: files record it."""
    import hashlib

    text = "\n".join(
        f"{r.code}|{r.name}|{r.arity}|{r.primal}|{r.partials}|{r.second}" for r in OPS
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def numpy_function(expr: str):
    """The table's scalar expression ``expr`` as a Python function (x, y, w, c, z).

    Only the package's own table strings reach this, never user input.
    """
    return eval(f"lambda x, y, w, c, z: {expr}", {"np": np, "math": math})  # noqa: S307
