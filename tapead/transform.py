"""Derivatives of a tape as traced code: gradients of gradients.

Called on traced values inside another ``record`` (``g_tape.gradient(x)``, ``vjp``, ``jvp``,
``jacobian``, ``hessian`` ...), a tape's evaluation methods emit their sweeps into the recording
in progress instead of running the kernels: first the tape's instructions on the traced inputs
(as :func:`tapead.tracer.inline` replays them), then

* reverse mode (``vjp``, ``gradient``): the adjoint trace, instructions in reverse order, each
  contribution ``zero_skip_mul(partial, adjoint)``, the first one to an adjoint assigned and
  the later ones added, in the order of ``tapead.reference.adjoints``;
* forward mode (``jvp``): the tangent trace, each tangent the sum over the operands of
  ``zero_skip_mul(partial, tangent)``;
* Hessians: forward mode over the tape of the gradient (forward over reverse, as the kernels'
  Hessian sweep computes them): one tangent pass in n directions shares each partial.

The outer tape therefore differentiates the derivative like any other function, and evaluates
it with the same kernels. ``zero_skip_mul`` is the op of the sweeps' zero-skipping product, so a
recorded gradient keeps the kernels' rule that the unselected branch of a ``where`` never
leaks an inf or NaN into a derivative.

The partials are the op table's own expressions (``OpSpec.partials``): each is parsed once
with :mod:`ast` and turned into a function emitting the ops it names (:func:`compile_expression`).
Zero partials are skipped and partials of 1 or -1 applied without a product, as the kernels do
(``OpSpec.kinds``). See docs/design.md, "Derivatives as traced code".

Examples
--------
>>> import numpy as np, tapead
>>> f = tapead.record(lambda x: np.log(x[0]) + x[0] * x[1] - np.sin(x[1]), 2)
>>> g = tapead.record(lambda x: f.gradient(x), 2)  # the gradient as a tape of its own
>>> g(np.array([2.0, 5.0])).tolist()
[5.5, 1.7163378145367738]
>>> g.jacobian(np.array([2.0, 5.0])).tolist()  # its Jacobian: f's Hessian
[[-0.25, 1.0], [1.0, -0.9589242746631385]]
"""

from __future__ import annotations

import ast
import math
import sys
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from tapead.evaluate import jacobian_mode
from tapead.ops import CONDITIONS, CONST, OPERANDS, OPS, PARAM, zero_skip_mul
from tapead.shapes import split
from tapead.tape import TapeData
from tapead.tracer import FUNCTIONS, TracedArray, Var, _as_float, _plain, holds_traced, trace

__all__ = ["traced", "compile_expression", "value_and_gradient", "vjp", "jvp", "value_and_jacobian",
           "value_gradient_and_hessian", "hvp"]

OPERAND_NAMES = (*OPERANDS, "z", "c")  # the names of the table's expressions

# ---- the table's expressions as emitting functions ----------------------------------------

_BINARY = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}
_COMPARE = {ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge", ast.Eq: "eq", ast.NotEq: "ne"}
_BOOL = {ast.And: "land", ast.Or: "lor"}
_MODULES = ("np", "math")


def _where(condition, a: Callable, b: Callable, env: dict):
    """``a if condition else b``: the branch itself when the condition is a number (known while
    recording), the condition itself for ``1.0 if cond else 0.0`` (a condition is 1.0 or 0.0),
    else the op ``where``."""
    if not isinstance(condition, Var):
        return a(env) if condition != 0.0 else b(env)  # NaN is true, as for where
    yes, no = a(env), b(env)
    if not isinstance(yes, Var) and not isinstance(no, Var) and yes == 1.0 and no == 0.0 \
            and condition.rec.op[condition.slot] in CONDITIONS:
        return condition
    return FUNCTIONS["where"](condition, yes, no)


def _node(node: ast.AST, expr: str) -> Callable[[dict], object]:
    """The emitting function of one node of ``expr``'s syntax tree: env (name -> Var or float)
    -> Var or float. Numbers stay numbers (computed in float64, as the kernels compute them)."""

    def refuse(what: str) -> ValueError:
        return ValueError(f"op table expression {expr!r}: {what} has no traced form in tapead.transform "
                          "(it turns numbers, x, y, w, z, c, + - * / **, unary -, comparisons, and/or/not, "
                          "'a if cond else b' and np.<op>(...) calls into ops)")

    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        value = float(node.value)
        return lambda env: value
    if isinstance(node, ast.Name):
        if node.id not in OPERAND_NAMES:
            raise refuse(f"the name {node.id!r}")
        name = node.id
        return lambda env: env[name]
    if isinstance(node, ast.UnaryOp):
        operand = _node(node.operand, expr)
        if isinstance(node.op, ast.USub):
            neg = FUNCTIONS["neg"]
            return lambda env: neg(operand(env))
        if isinstance(node.op, ast.UAdd):
            return operand
        if isinstance(node.op, ast.Not):
            lnot = FUNCTIONS["lnot"]
            return lambda env: lnot(operand(env))
        raise refuse(f"the unary operator {type(node.op).__name__}")
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY:
            raise refuse(f"the operator {type(node.op).__name__}")
        f, left, right = FUNCTIONS[_BINARY[type(node.op)]], _node(node.left, expr), _node(node.right, expr)
        return lambda env: f(left(env), right(env))
    if isinstance(node, ast.Call):
        func = node.func
        if not (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in _MODULES
                and func.attr in FUNCTIONS) or node.keywords:
            raise refuse(f"the call {ast.unparse(node)}")
        f, args = FUNCTIONS[func.attr], [_node(a, expr) for a in node.args]
        return lambda env: f(*[a(env) for a in args])
    if isinstance(node, ast.IfExp):
        test, body, orelse = _node(node.test, expr), _node(node.body, expr), _node(node.orelse, expr)
        return lambda env: _where(test(env), body, orelse, env)
    if isinstance(node, ast.Compare):
        if any(type(op) not in _COMPARE for op in node.ops):
            raise refuse(f"the comparison {ast.unparse(node)}")
        terms = [_node(t, expr) for t in (node.left, *node.comparators)]
        fs = [FUNCTIONS[_COMPARE[type(op)]] for op in node.ops]
        land = FUNCTIONS["land"]

        def compare(env):  # a < b < c is (a < b) and (b < c)
            values = [t(env) for t in terms]
            result = fs[0](values[0], values[1])
            for k in range(1, len(fs)):
                result = land(result, fs[k](values[k], values[k + 1]))
            return result

        return compare
    if isinstance(node, ast.BoolOp):
        f, terms = FUNCTIONS[_BOOL[type(node.op)]], [_node(t, expr) for t in node.values]

        def logic(env):
            result = terms[0](env)
            for t in terms[1:]:
                result = f(result, t(env))
            return result

        return logic
    raise refuse(f"the construct {type(node).__name__} ({ast.unparse(node)})")


@lru_cache(maxsize=None)
def compile_expression(expr: str) -> Callable[[dict], object]:
    """The op table's expression ``expr`` (numpy syntax over x, y, w, z, c) as a function of
    ``env`` (each name a traced value or a number) that emits its ops into the recording of the
    traced values and returns the result: a traced value, or a float when every name it reads
    is a number. Only the table's own strings reach this; nothing is evaluated, the syntax
    tree is walked (a construct without a traced form raises ValueError naming it).

    Examples
    --------
    >>> import tapead
    >>> from tapead.transform import compile_expression
    >>> d = compile_expression("1.0 / (1.0 + x * x)")  # arctan's partial
    >>> print(tapead.record(lambda x: d({"x": x[0]}), 1, optimize=False))
    Tape: 1 inputs, 0 parameters, 3 instructions, 1 outputs
      v_0 = x1
      v1 = v_0*v_0
      v2 = v1 + 1
      v3 = 1/v2
      y1 = v3
    >>> compile_expression("1.0 / c")({"c": 4.0})
    0.25
    """
    return _node(ast.parse(expr.strip(), mode="eval").body, expr)


# ---- sums and products of derivatives: None is a derivative known to be zero ------------------


def _times(d, a):
    """zero_skip_mul(d, a) of a partial and an adjoint (or tangent): a traced value, a number,
    or None when it is zero. No product where a factor is a number 1 or -1; a finite number
    factor becomes an immediate (mulc)."""
    if not isinstance(d, Var):
        d, a = a, d  # the product is commutative: a traced factor first, if any
    if not isinstance(d, Var):
        return _none_if_zero(zero_skip_mul(np.float64(d), np.float64(a)))
    if isinstance(a, Var):
        return d.rec.emit("zero_skip_mul", (d, a))
    if a == 0.0:
        return None
    if a == 1.0:
        return d
    if a == -1.0:
        return d.rec.emit("neg", (d,))
    if math.isfinite(a):
        return d.rec.emit("mulc", (d,), a)
    return d.rec.emit("zero_skip_mul", (d, d.rec.constant(a)))


def _add(a, b):
    """a + b, None being zero."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, Var) or isinstance(b, Var):
        return FUNCTIONS["add"](a, b)
    return _none_if_zero(float(np.float64(a) + np.float64(b)))


def _none_if_zero(a: float):
    return None if a == 0.0 else float(a)


# ---- the sweeps ------------------------------------------------------------------------------


_UNIT_PARTIALS = {"one": 1.0, "minus_one": -1.0}  # partial kinds applied without a product


class _Trace:
    """A tape replayed inside a recording: every slot's traced value ``v``, and the partials of
    each instruction, emitted the first time a sweep asks for them."""

    def __init__(self, tape: TapeData, xs: list, ps: list, rec) -> None:
        self.tape, self.rec = tape, rec
        self.op, self.const = tape.op.tolist(), tape.const.tolist()
        self.args = list(zip(tape.arg0.tolist(), tape.arg1.tolist(), tape.arg2.tolist()))
        self.lead = tape.n_in + tape.n_params
        v = [a if isinstance(a, Var) else rec.constant(a) for a in xs + ps]
        for i in range(self.lead, tape.n_slots):  # the primal, as tracer.inline replays it
            spec = OPS[self.op[i]]
            if spec.code == CONST:
                v.append(rec.constant(self.const[i]))
            else:
                v.append(rec.emit(spec.name, tuple(v[a] for a in self.args[i][: spec.arity]), self.const[i], depth=2))
        self.v = v
        self._partials: dict[int, list] = {}
        # slots whose derivative nobody asks for: parameters and constants
        self.underived = {i for i, o in enumerate(self.op) if o in (PARAM, CONST)}

    def partials(self, i: int) -> list[tuple[int, object]]:
        """(operand slot, partial) of instruction ``i`` for each operand whose partial is not
        zero and whose derivative is wanted: 1.0 and -1.0 for the kinds "one" and "minus_one",
        a number for "const", else a traced value."""
        found = self._partials.get(i)
        if found is None:
            spec, v = OPS[self.op[i]], self.v
            slots = self.args[i][: spec.arity]
            env = {"x": None, "y": None, "w": None, "z": v[i], "c": self.const[i]}
            env.update({name: v[a] for name, a in zip(("x", "y", "w"), slots)})
            found = []
            for a, kind, expr in zip(slots, spec.kinds, spec.partials):
                if kind == "zero" or a in self.underived:
                    continue
                found.append((a, _UNIT_PARTIALS[kind] if kind in _UNIT_PARTIALS else compile_expression(expr)(env)))
            self._partials[i] = found
        return found

    def adjoints(self, seeds: list[list]) -> list[list]:
        """Per direction, the inputs' adjoints (x_bar) for the output weights ``seeds[d]`` (one
        per output): reverse mode, in the order of tapead.reference.adjoints."""
        tape = self.tape
        bars = [[None] * tape.n_slots for _ in seeds]
        for bar, seed in zip(bars, seeds):
            for s, w in zip(tape.outputs.tolist(), seed):
                bar[s] = _add(bar[s], w if isinstance(w, Var) else _none_if_zero(w))
        for i in range(tape.n_slots - 1, self.lead - 1, -1):
            z_bars = [bar[i] for bar in bars]
            if all(z is None for z in z_bars):  # nothing reads it, or only with zero partials
                continue
            for a, d in self.partials(i):
                for bar, z_bar in zip(bars, z_bars):
                    if z_bar is not None:
                        bar[a] = _add(bar[a], _times(d, z_bar))
        return [bar[: tape.n_in] for bar in bars]

    def tangents(self, seeds: list[list]) -> list[list]:
        """Per direction, the outputs' tangents (y_dot) for the input tangents ``seeds[d]`` (one
        per input): forward mode."""
        tape = self.tape
        dots = [[None if isinstance(s, float) and s == 0.0 else s for s in seed] + [None] * (tape.n_slots - tape.n_in)
                for seed in seeds]
        for i in range(self.lead, tape.n_slots):
            if self.op[i] == CONST:
                continue
            operands = self.args[i][: OPS[self.op[i]].arity]
            if all(dot[a] is None for dot in dots for a in operands):
                continue
            for dot in dots:
                total = None
                for a, d in self.partials(i):
                    if dot[a] is not None:
                        total = _add(total, _times(d, dot[a]))
                dot[i] = total
        return [[dot[s] for s in tape.outputs.tolist()] for dot in dots]

    def outputs(self) -> list[Var]:
        return [self.v[s] for s in self.tape.outputs.tolist()]


# ---- arguments -------------------------------------------------------------------------------


def traced(*arrays) -> bool:
    """Whether any argument holds a traced value: the evaluation methods then emit traced code."""
    return any(holds_traced(a) for a in arrays)


def _values(a, shape: tuple, name: str, method: str) -> list:
    """``a`` of exactly ``shape`` as a flat list of traced values and floats."""
    if isinstance(a, Var):
        array = np.empty((), dtype=object)
        array[()] = a
    else:
        array = np.asarray(_plain(a), dtype=object)
    if array.shape != shape:
        raise ValueError(f"{method} on traced values (inside another record) takes one point: {name} of shape "
                         f"{shape}, got {array.shape}. Record the function of one point; the outer tape "
                         "evaluates it at many")
    return [e if isinstance(e, Var) else _as_float(e) for e in array.ravel()]


def _seeds(S, shape: tuple, several: tuple[tuple, ...], name: str, method: str) -> tuple[list[list], bool]:
    """Seeds as the numeric method takes them at one point: ``shape`` for one direction, or
    one of ``several`` followed by q for q directions. (One list per direction, several?)"""
    got = () if isinstance(S, Var) else np.shape(_plain(S))
    if got != shape and got[:-1] in several:
        q, flat = got[-1], _values(S, got, name, method)
        return [flat[d::q] for d in range(q)], True
    return [_values(S, shape, name, method)], False


def _start(tape, method: str, X, args: tuple, extra: list[str], also=(), **numeric_only) -> tuple:
    """(x, p, the recording, the extra arguments) for ``method`` on traced values: a guarded tape,
    ``out=``, ``reduce=`` and ``weights=`` are refused."""
    branches = sys.modules.get("tapead.branches")  # imported whenever a guarded tape exists
    if branches is not None and isinstance(tape, branches.GuardedTape):
        raise TypeError(f"{method}: a tape recorded with branches='guard' cannot be differentiated inside another "
                        "recording: call its function inside the outer one instead (and record that with "
                        "branches='guard')")
    for key, value in numeric_only.items():
        if value is not None:
            raise ValueError(f"{method} on traced values (inside another record) returns one point's traced "
                             f"result: {key}= applies to numeric points only")
    p, *rest = split(args, tape.n_params, extra, method)
    xs = _values(X, (tape.n_in,), "X", method)
    ps = _values(p, (tape.n_params,), "P", method) if tape.n_params else []
    found = [e for a in (X, *args, *also) if a is not None
             for e in ([a] if isinstance(a, Var) else np.asarray(_plain(a), dtype=object).ravel())
             if isinstance(e, Var)]
    for e in found:
        if e.rec is not found[0].rec:
            raise ValueError("traced values from two different recordings cannot be combined")
    return xs, ps, found[0].rec, tuple(rest)


def _shaped(rec, values: list, shape: tuple):
    """Traced results as the numeric method returns one point's: an object array of ``shape``
    (a traced value for ``()``); numbers (zero derivatives) become constant slots."""
    values = [a if isinstance(a, Var) else rec.constant(0.0 if a is None else a) for a in values]
    if shape == ():
        return values[0]
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out.reshape(shape).view(TracedArray)


def _unit(k: int, n: int) -> list[float]:
    return [1.0 if j == k else 0.0 for j in range(n)]


def _direction_last(per_direction: list[list]) -> list:
    """q lists of length l as one list of l * q entries, the direction varying fastest."""
    return [entry for row in zip(*per_direction) for entry in row]


# ---- the methods, as Tape's for one point ----------------------------------------------------


def value_and_gradient(tape, X, args: tuple, out=None, reduce=None, weights=None):
    """(f(x), grad f(x)) of a scalar f (Tape.value_and_gradient has checked that), traced."""
    xs, ps, rec, _ = _start(tape, "value_and_gradient", X, args, [], out=out, reduce=reduce, weights=weights)
    t = _Trace(tape, xs, ps, rec)
    (x_bar,) = t.adjoints([[1.0]])
    return _shaped(rec, t.outputs(), ()), _shaped(rec, x_bar, (tape.n_in,))


def vjp(tape, X, args: tuple, out=None, reduce=None, weights=None):
    """(f(x), J(x).T @ w), traced: W of the outputs' shape, or (1, *out_shape, r) for r directions."""
    xs, ps, rec, (W,) = _start(tape, "vjp", X, args, ["W"], out=out, reduce=reduce, weights=weights)
    shape, n = tape.out_shape, tape.n_in
    seeds, several = _seeds(W, shape, ((1, *shape),), "W", "vjp")
    t = _Trace(tape, xs, ps, rec)
    x_bar = _direction_last(t.adjoints(seeds))
    return _shaped(rec, t.outputs(), shape), _shaped(rec, x_bar, (n, len(seeds)) if several else (n,))


def jvp(tape, X, args: tuple, out=None):
    """(f(x), J(x) @ v), traced: V (n,), or (n, q) or (1, n, q) for q directions."""
    xs, ps, rec, (V,) = _start(tape, "jvp", X, args, ["V"], out=out)
    shape, n = tape.out_shape, tape.n_in
    seeds, several = _seeds(V, (n,), ((n,), (1, n)), "V", "jvp")
    t = _Trace(tape, xs, ps, rec)
    y_dot = _direction_last(t.tangents(seeds))
    return _shaped(rec, t.outputs(), shape), _shaped(rec, y_dot, (*shape, len(seeds)) if several else shape)


def value_and_jacobian(tape, X, args: tuple, mode: str, out=None, reduce=None, weights=None):
    """(f(x), its Jacobian (*out_shape, n)), traced, by forward or reverse mode as ``mode`` (checked
    by Tape.value_and_jacobian) says."""
    xs, ps, rec, _ = _start(tape, "value_and_jacobian", X, args, [], out=out, reduce=reduce, weights=weights)
    n, m = tape.n_in, tape.n_out
    t = _Trace(tape, xs, ps, rec)
    if (jacobian_mode(n, m) if mode == "auto" else mode) == "forward":
        J = _direction_last(t.tangents([_unit(j, n) for j in range(n)]))  # (m, n), one column per direction
    else:
        J = [entry for row in t.adjoints([_unit(i, m) for i in range(m)]) for entry in row]  # row i per direction
    return _shaped(rec, t.outputs(), tape.out_shape), _shaped(rec, J, (*tape.out_shape, n))


def _gradient_tape(tape: TapeData, weights: list | None) -> TapeData:
    """The tape of (f(x, p), grad_x sum_i w_i f_i(x, p)): inputs x, parameters p, then the
    weights w if ``weights`` is None, else the numbers ``weights`` built in."""
    n, k, m = tape.n_in, tape.n_params, tape.n_out

    def gradient(x, q=()):
        t = _Trace(tape, list(x), list(q[:k]), x[0].rec)
        (x_bar,) = t.adjoints([list(q[k:]) if weights is None else weights])
        return _shaped(t.rec, t.outputs() + x_bar, (m + n,))

    return trace(gradient, n, k + (m if weights is None else 0), source_lines=False)


def _over_gradient(tape, method: str, X, args: tuple, W, V, numeric_only: dict) -> tuple:
    """(values, gradient of W . f, per direction of ``V`` (None: the n unit directions) the
    tangent of that gradient, the recording): forward mode over the tape of the gradient."""
    xs, ps, rec, _ = _start(tape, method, X, args, [], also=(W, *([] if V is None else [V])), **numeric_only)
    n, m = tape.n_in, tape.n_out
    if W is None:
        if m != 1:
            raise ValueError(f"{method} of a function with outputs of shape {tape.out_shape} needs weights W "
                             "(the Hessian of sum_i W_i f_i)")
        weights = [1.0]
    else:
        weights = _values(W, tape.out_shape, "W", method)
    numbers = not any(isinstance(w, Var) for w in weights)
    g = _Trace(_gradient_tape(tape, weights if numbers else None), xs, ps + ([] if numbers else weights), rec)
    seeds = [_unit(j, n) for j in range(n)] if V is None else V
    outputs = g.outputs()
    return outputs[:m], outputs[m:], [dot[m:] for dot in g.tangents(seeds)], rec


def value_gradient_and_hessian(tape, X, args: tuple, W=None, out=None, reduce=None, weights=None):
    """(f(x), grad (W . f)(x), Hessian of W . f), traced: forward over reverse."""
    numeric_only = {"out": out, "reduce": reduce, "weights": weights}
    y, g, columns, rec = _over_gradient(tape, "value_gradient_and_hessian", X, args, W, None, numeric_only)
    n = tape.n_in
    return _shaped(rec, y, tape.out_shape), _shaped(rec, g, (n,)), _shaped(rec, _direction_last(columns), (n, n))


def hvp(tape, X, args: tuple, W=None, out=None, reduce=None, weights=None):
    """H(x) @ v of W . f, traced: V (n,), or (n, q) or (1, n, q) for q directions."""
    n, names = tape.n_in, ["X"] + (["P"] if tape.n_params else []) + ["V"]
    if len(args) != len(names) - 1:
        raise TypeError(f"hvp takes ({', '.join(names)}) for a tape with {tape.n_params} parameters, "
                        f"got {1 + len(args)} arguments")
    seeds, several = _seeds(args[-1], (n,), ((n,), (1, n)), "V", "hvp")
    numeric_only = {"out": out, "reduce": reduce, "weights": weights}
    _, _, columns, rec = _over_gradient(tape, "hvp", X, args[:-1], W, seeds, numeric_only)
    return _shaped(rec, _direction_last(columns), (n, len(seeds)) if several else (n,))
