"""The expression parser: the grammar, its error positions, and hostile input rejected cleanly."""

from __future__ import annotations

import builtins
import doctest
from unittest import mock

import numpy as np
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

import tapead
import tapead.expr
from bench.problems import worked_example
from tapead import reference
from tapead.api import Tape
from tapead.expr import MAX_DEPTH, ExpressionError, parse

WORKED_EXAMPLE = "log(x1) + x1*x2 - sin(x2)"


def value(text: str, *x: float, variables=None) -> float:
    """The expression's value by the reference interpreter (no kernels)."""
    tape = parse(text, variables).tape
    return float(reference.evaluate(tape, np.array([x]))[0, 0])


# ---- the grammar ------------------------------------------------------------------


def test_the_worked_example_records_its_tape():
    e = parse(WORKED_EXAMPLE)
    assert e.variables == ("x1", "x2")
    assert isinstance(e.tape, Tape)
    expected = tapead.record(worked_example, 2)
    assert str(e.tape) == str(expected)
    assert e.tape.gradient(np.array([2.0, 5.0])).tolist() == [5.5, 2.0 - np.cos(5.0)]


@pytest.mark.parametrize(
    "text, x, expected",
    [
        ("-x**2", 3.0, -9.0),  # ** binds tighter than unary minus, as in Python
        ("x**-1", 4.0, 0.25),
        ("2**3**2 + 0*x", 1.0, 512.0),  # ** is right-associative
        ("x/2/4", 8.0, 1.0),  # / and - are left-associative
        ("x - 1 - 2", 8.0, 5.0),
        ("2*x**2", 3.0, 18.0),
        ("-(x + 1)*2", 1.0, -4.0),
        ("+x - -x", 2.0, 4.0),
        (" 1.5e1 * x + .5 + 2. ", 1.0, 17.5),
        ("hypot(x, 4)", 3.0, 5.0),
        ("where(lt(x, 0), -x, x)", -2.5, 2.5),
        ("clip(x, 0, 1) + maximum(x, 2)", 3.0, 4.0),
        ("logsumexp(x, x)", 1.0, 1.0 + np.log(2.0)),
        ("atan2(x, 1) - arctan2(x, 1)", 0.3, 0.0),  # aliases
        ("x\n  *\t2", 2.0, 4.0),
    ],
)
def test_precedence_and_functions(text, x, expected):
    assert value(text, x) == pytest.approx(expected, rel=1e-15)


def test_variable_order_is_first_appearance_or_as_given():
    assert parse("b*a + c + a").variables == ("b", "a", "c")
    e = parse("b*a", variables=["a", "b", "unused"])
    assert e.variables == ("a", "b", "unused")
    assert e.tape.gradient(np.array([2.0, 3.0, 4.0])).tolist() == [3.0, 2.0, 0.0]
    assert value("3", 1.0, variables=["x"]) == 3.0  # a constant with explicit variables is a tape


@pytest.mark.parametrize("names, match", [
    (["x", "x"], "distinct"), (["_x"], "invalid variable name"), (["sin"], "function"),
    (["lambda"], "keyword"), (["a b"], "invalid variable name"), ([""], "invalid variable name"),
])
def test_explicit_variables_are_checked(names, match):
    with pytest.raises(ExpressionError, match=match):
        parse("x", variables=names)


# ---- errors point at the offending position -------------------------------------------


def test_error_display_has_a_caret_under_the_position():
    with pytest.raises(ExpressionError) as info:
        parse("log(x1 +* x2)")
    assert str(info.value) == "log(x1 +* x2)\n        ^ expected an operand"
    assert (info.value.position, info.value.message) == (8, "expected an operand")


@pytest.mark.parametrize(
    "text, position, message",
    [
        ("", 0, "empty expression"),
        ("x +", 3, "expected an operand"),
        ("2x", 1, "expected an operator"),
        ("x)", 1, "unmatched ')'"),
        ("(x", 2, "expected ')' to close the '(' at position 0"),
        ("sin(x", 5, "expected ',' or ')'"),
        ("sin(x,)", 6, "expected an operand"),
        ("sin(x, x)", 0, "sin takes 1 argument, got 2"),
        ("hypot(x)", 0, "hypot takes 2 arguments, got 1"),
        ("logsumexp()", 0, "logsumexp takes at least 1 argument, got 0"),
        ("x + foo(x)", 4, "unknown function 'foo'"),
        ("x + exp", 4, "'exp' is a function"),
        ("x + y", 4, "unknown variable 'y'"),
        ("x ^ 2", 2, "write powers as **"),
        ("x if x else 1", 2, "'if' is a Python keyword"),
        ("x + é", 4, "unexpected character 'é'"),
        ("1 + 2", 0, "no variables"),
        ("x * 1e999", 4, "number too large"),
        ("x + 1/0", 5, "not finite"),
        ("x + exp(1000)", 4, "not finite"),
    ],
)
def test_error_positions(text, position, message):
    with pytest.raises(ExpressionError) as info:
        parse(text, variables=["x"] if "y" in text else None)
    assert message in info.value.message
    assert info.value.position == position


def test_long_text_is_shown_as_a_window_around_the_error():
    text = "x + " * 5000 + "* x"
    with pytest.raises(ExpressionError) as info:
        parse(text)
    shown, caret = str(info.value).split("\n")
    assert len(shown) < 100 and shown.startswith("...")
    assert shown[caret.index("^")] == "*"


# ---- hostile input ------------------------------------------------------------------------

HOSTILE = [
    "x.__class__",
    "x.__class__.__mro__[1].__subclasses__()",
    "__import__('os').system('echo pwned')",
    "__builtins__",
    "lambda: x",
    "lambda x: x",
    "[x for x in y]",
    "(x for x in y)",
    "{x: x}",
    "x if x else x",
    "x; import os",
    "exec('1')",
    "eval('x')",
    "open('/etc/passwd')",
    "getattr(x, 'real')",
    "x.real",
    "x[0]",
    "f'{x}'",
    "b'x'",
    "x @ x",
    "x // 2",
    "x % 2",
    "2**99999999 * x",
    "x**99999999",
    "x**1e308",
    "x**-1e308",
    "(10**300) * (10**300) * x",
    "1e999 * x",
    "1" * 10_000 + " * x",
    "0." + "0" * 10_000 + "1 * x",
    "x" * 10_000,
    "(" * 10_000 + "x" + ")" * 10_000,
    "-" * 10_000 + "x",
    "x" + "**x" * 10_000,
    "sin(" * 10_000 + "x" + ")" * 10_000,
    "x + " * 30_000 + "x",
    "\x00x",
    "x\u2028+ 1",
    "\N{MATHEMATICAL ITALIC SMALL X}",
]


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:30]))
def test_hostile_input_is_rejected_by_the_parser(text, tmp_path):
    with pytest.raises(ExpressionError):
        parse(text)


def test_nesting_limit_is_exact():
    assert value("(" * MAX_DEPTH + "x" + ")" * MAX_DEPTH, 2.0) == 2.0
    with pytest.raises(ExpressionError, match="nested more than"):
        parse("(" * (MAX_DEPTH + 1) + "x" + ")" * (MAX_DEPTH + 1))


def test_nothing_is_executed(tmp_path):
    marker = tmp_path / "pwned"
    for text in (f"__import__('os').system('touch {marker}')", f"open('{marker}', 'w')"):
        with pytest.raises(ExpressionError):
            parse(text)
    assert not marker.exists()


def _forbidden(*args, **kwargs):
    raise AssertionError("the parser must never eval, exec or compile")


FRAGMENTS = st.sampled_from([
    "x", "y1", "sigma", "2", "0.5", "1e308", "1e-308", "9" * 120, "+", "-", "*", "/", "**", "(", ")", ",", " ",
    "sin(", "log(", "hypot(", "where(", "clip(", "logsumexp(", "foo(", "__import__", "__class__", ".", "_",
    "lambda", "for", "in", "if", "else", "[", "]", "{", "}", ":", "'os'", '"', "=", "==", "<", "@", "%", "\\",
    "\n", "\x00", "é", "exp", "e", "inf", "nan", "True", "None", "**-", "(" * 70, ")" * 70,
])


def _parses_or_rejects(text: str) -> None:
    with mock.patch.object(builtins, "eval", _forbidden), mock.patch.object(builtins, "exec", _forbidden), \
            mock.patch.object(builtins, "compile", _forbidden):
        try:
            e = parse(text)
        except ExpressionError:
            event("rejected")
            return
    event("parsed")
    assert isinstance(e.tape, Tape) and e.tape.n_in == len(e.variables) >= 1 and e.tape.n_out == 1


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_random_text_parses_or_fails_with_the_parsers_error(text):
    _parses_or_rejects(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(FRAGMENTS, max_size=30).map("".join))
def test_hostile_fragments_parse_or_fail_with_the_parsers_error(text):
    _parses_or_rejects(text)


# ---- random valid expressions agree with numpy ------------------------------------------

_UNARY = {"sin": np.sin, "cos": np.cos, "tanh": np.tanh, "arctan": np.arctan, "exp": np.exp}


@st.composite
def expressions(draw, depth: int = 4):
    """(text, f) pairs: an expression and the same function written with numpy, over a and b."""
    if depth == 0 or draw(st.integers(0, 3)) == 0:
        leaf = draw(st.sampled_from(["a", "b", "2", "0.5", "3"]))
        if leaf in ("a", "b"):
            return leaf, (lambda a, b: a) if leaf == "a" else (lambda a, b: b)
        return leaf, lambda a, b: np.float64(leaf)
    kind = draw(st.sampled_from(["+", "-", "*", "/", "neg", "pow", "call"]))
    left, f = draw(expressions(depth - 1))
    if kind == "neg":
        return f"-({left})", lambda a, b: -f(a, b)
    if kind == "pow":
        k = draw(st.sampled_from([2, 3, -1, 0.5]))
        return f"abs({left})**{k}", lambda a, b: np.abs(f(a, b)) ** k
    if kind == "call":
        name = draw(st.sampled_from(sorted(_UNARY)))
        return f"{name}({left})", lambda a, b: _UNARY[name](f(a, b))
    right, g = draw(expressions(depth - 1))
    ops = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide}
    return f"({left}) {kind} ({right})", lambda a, b: ops[kind](f(a, b), g(a, b))


@settings(max_examples=60, deadline=None)
@given(expressions(), st.floats(0.2, 2.0), st.floats(-2.0, 2.0))
def test_random_expressions_agree_with_numpy(pair, a, b):
    text, f = pair
    try:
        e = parse(text, variables=["a", "b"])
    except ExpressionError as err:
        assume("not finite" not in err.message)  # a constant subexpression such as 1/(2-2)
        raise
    with np.errstate(all="ignore"):
        expected = f(np.float64(a), np.float64(b))
    got = reference.evaluate(e.tape, np.array([[a, b]]))[0, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-300, equal_nan=True)


def test_expr_docstring_examples_run():
    result = doctest.testmod(tapead.expr, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
