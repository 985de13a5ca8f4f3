"""Expressions as text (the command line's ``"log(x1) + x1*x2 - sin(x2)"``): a whitelist parser that records a tape.

The text is never given to ``eval``, ``exec`` or ``compile``: a small
tokenizer and a recursive-descent parser accept only this grammar (Python's
precedence and associativity for the operators it keeps) and record each
operation on the tape as it is parsed, through tapead's own functions:

    expression := term (('+' | '-') term)*
    term       := unary (('*' | '/') unary)*
    unary      := ('-' | '+') unary | power
    power      := atom ('**' unary)?            so -x**2 = -(x**2), 2**3**2 = 2**9
    atom       := NUMBER | NAME | NAME '(' expression (',' expression)* ')' | '(' expression ')'

* NUMBER: decimal literals (``2``, ``0.5``, ``.5``, ``1e-3``), at most
  :data:`MAX_LITERAL` characters and finite.
* NAME: ASCII identifiers not starting with an underscore. A name followed by
  ``(`` is a call of one of tapead's functions (:data:`ARITY` lists them and
  their argument counts, checked here); any other name is a variable. Python
  keywords and function names cannot be variables.
* The variables of the tape are, in order, the ones given to :func:`parse`,
  else those of the expression in order of first appearance.
* Limits that keep hostile text from costing more than its length:
  :data:`MAX_LENGTH` characters, :data:`MAX_DEPTH` levels of nesting
  (parentheses, calls, unary signs and ``**`` chains all count), constant
  exponents of magnitude at most :data:`MAX_EXPONENT`, and constant
  subexpressions (folded as they are parsed) must stay finite.

Every error is an :class:`ExpressionError` that points at the offending position.
"""

from __future__ import annotations

import difflib
import keyword
import math
import re
from dataclasses import dataclass
from typing import NamedTuple

from tapead.tracer import ARITY, FUNCTIONS

__all__ = ["ExpressionError", "Expression", "parse", "check_variable_names", "ARITY"]

MAX_LENGTH = 100_000  # characters of expression text
MAX_DEPTH = 64  # nesting levels; each costs a handful of Python frames, far below the recursion limit
MAX_LITERAL = 100  # characters of one number or name
MAX_EXPONENT = 1e6  # |c| of a constant exponent: x**c over- or underflows float64 for every |x| off 1 by > 0.001
WINDOW = 72  # characters of text shown around an error


_BINARY = {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow"}
_TOKEN = re.compile(
    r"(?P<space>[ \t\r\n]+)"
    r"|(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z][A-Za-z0-9_]*)"
    r"|(?P<op>\*\*|[-+*/(),])"
)
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_UNEXPECTED = {
    ".": "attribute access is not allowed",
    "_": "names may not start with an underscore",
    "'": "strings are not allowed",
    '"': "strings are not allowed",
    "[": "brackets are not allowed (no lists, indexing or comprehensions)",
    "]": "brackets are not allowed (no lists, indexing or comprehensions)",
    "{": "braces are not allowed",
    "}": "braces are not allowed",
    "^": "unexpected '^': write powers as **",
    "=": "unexpected '=': comparisons are functions here, e.g. lt(x, y), where(c, a, b)",
    "<": "unexpected '<': comparisons are functions here, e.g. lt(x, y), where(c, a, b)",
    ">": "unexpected '>': comparisons are functions here, e.g. gt(x, y), where(c, a, b)",
    ":": "unexpected ':' (no lambdas or slices)",
}


class ExpressionError(ValueError):
    """An expression the parser rejects; ``str(e)`` shows the text with a caret under ``position``.

    Examples
    --------
    >>> print(ExpressionError("expected an operand", "log(x1 +* x2)", 8))
    log(x1 +* x2)
            ^ expected an operand
    """

    def __init__(self, message: str, text: str = "", position: int | None = None) -> None:
        self.message, self.text, self.position = message, text, position
        super().__init__(self._display())

    def _display(self) -> str:
        if self.position is None:
            return self.message
        text, pos = self.text, self.position
        lo = max(0, min(pos - WINDOW // 2, len(text) - WINDOW))
        hi = min(len(text), lo + WINDOW)
        shown = ("..." if lo else "") + text[lo:hi] + ("..." if hi < len(text) else "")
        # one display column per character keeps the caret aligned
        shown = "".join(" " if c in "\t\r\n" else c if c.isascii() and c.isprintable() else "?" for c in shown)
        column = pos - lo + (3 if lo else 0)
        return f"{shown}\n{' ' * column}^ {self.message}"


class Token(NamedTuple):
    kind: str  # "number", "name", "op" or "end"
    text: str
    pos: int


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``, ending with an "end" token; raises :class:`ExpressionError`."""
    if not isinstance(text, str):
        raise TypeError(f"an expression must be a str, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"expression longer than {MAX_LENGTH} characters", text, MAX_LENGTH)
    tokens = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            c = text[pos]
            message = _UNEXPECTED.get(c) or (
                f"unexpected character {c!r}" + ("" if c.isascii() else " (expressions are ASCII)")
            )
            raise ExpressionError(message, text, pos)
        kind = m.lastgroup
        if kind != "space":
            if kind in ("number", "name") and len(m.group()) > MAX_LITERAL:
                raise ExpressionError(f"{kind} longer than {MAX_LITERAL} characters", text, pos)
            tokens.append(Token(kind, m.group(), pos))
        pos = m.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def check_variable_names(names) -> tuple[str, ...]:
    """``names`` as a tuple if each is a valid, distinct variable name; else :class:`ExpressionError`."""
    names = tuple(names)
    for name in names:
        if not isinstance(name, str) or not _NAME.fullmatch(name) or len(name) > MAX_LITERAL:
            raise ExpressionError(f"invalid variable name {name!r}: use letters, digits and _, starting with a letter")
        if keyword.iskeyword(name):
            raise ExpressionError(f"invalid variable name {name!r}: it is a Python keyword")
        if name in FUNCTIONS:
            raise ExpressionError(f"invalid variable name {name!r}: it is the name of a function")
    if len(set(names)) != len(names):
        raise ExpressionError(f"variable names must be distinct, got {', '.join(names)}")
    return names


def _first_appearance(tokens: list[Token]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for tok, after in zip(tokens, tokens[1:]):
        if tok.kind == "name" and after.text != "(" and not keyword.iskeyword(tok.text) and tok.text not in FUNCTIONS:
            seen.setdefault(tok.text)
    return tuple(seen)


class _Parser:
    """Recursive descent over the tokens; each rule returns (value, start position).

    A value is a traced variable (tapead.Var) or, for a constant subexpression,
    a finite Python float. Operations go through tapead's functions, which
    record on traced values and fold constants with the op table's formulas.
    """

    def __init__(self, text: str, tokens: list[Token], values: dict) -> None:
        self.text, self.tokens, self.values = text, tokens, values
        self.k = 0
        self.depth = -1  # the top level is depth 0: "(" * MAX_DEPTH + "x" + ")" * MAX_DEPTH is the deepest allowed

    def peek(self) -> Token:
        return self.tokens[self.k]

    def take(self) -> Token:
        tok = self.tokens[self.k]
        self.k += 1
        return tok

    def error(self, message: str, pos: int) -> ExpressionError:
        return ExpressionError(message, self.text, pos)

    def apply(self, name: str, args: tuple, pos: int):
        result = FUNCTIONS[name](*args)
        if isinstance(result, float) and not math.isfinite(result):
            raise self.error(f"this constant subexpression is {result} (not finite)", pos)
        return result

    def parse(self):
        if self.peek().kind == "end":
            raise self.error("empty expression", 0)
        value, _ = self.expression()
        tok = self.peek()
        if tok.text == ")":
            raise self.error("unmatched ')'", tok.pos)
        if tok.kind == "name" and keyword.iskeyword(tok.text):
            raise self.error(f"{tok.text!r} is a Python keyword: expressions have no conditionals or loops "
                             "(use where(c, a, b))", tok.pos)
        if tok.kind != "end":
            raise self.error("expected an operator (+ - * / **)", tok.pos)
        return value

    def expression(self):
        value, start = self.term()
        while self.peek().text in ("+", "-") and self.peek().kind == "op":
            op = self.take()
            right, _ = self.term()
            value = self.apply(_BINARY[op.text], (value, right), op.pos)
        return value, start

    def term(self):
        value, start = self.unary()
        while self.peek().text in ("*", "/"):
            op = self.take()
            right, _ = self.unary()
            value = self.apply(_BINARY[op.text], (value, right), op.pos)
        return value, start

    def unary(self):
        # every nesting (parentheses, call arguments, signs, ** chains) passes through here
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise self.error(f"nested more than {MAX_DEPTH} levels deep", self.peek().pos)
            tok = self.peek()
            if tok.kind == "op" and tok.text in ("+", "-"):
                self.take()
                value, _ = self.unary()
                return (self.apply("neg", (value,), tok.pos) if tok.text == "-" else value), tok.pos
            return self.power()
        finally:
            self.depth -= 1

    def power(self):
        base, start = self.atom()
        if self.peek().text == "**":
            op = self.take()
            exponent_pos = self.peek().pos
            exponent, _ = self.unary()
            if isinstance(exponent, float) and abs(exponent) > MAX_EXPONENT:
                raise self.error(f"exponent {exponent:g} is too large (at most {MAX_EXPONENT:g} in magnitude)",
                                 exponent_pos)
            base = self.apply("pow", (base, exponent), op.pos)
        return base, start

    def atom(self):
        tok = self.take()
        if tok.kind == "number":
            value = float(tok.text)
            if not math.isfinite(value):
                raise self.error("number too large for float64", tok.pos)
            return value, tok.pos
        if tok.kind == "name":
            if keyword.iskeyword(tok.text):
                raise self.error(f"{tok.text!r} is a Python keyword: only numbers, variables, + - * / ** and "
                                 "calls of tapead's functions are allowed", tok.pos)
            if self.peek().text == "(":
                return self.call(tok), tok.pos
            return self.variable(tok), tok.pos
        if tok.text == "(":
            value, _ = self.expression()
            self.close(tok, "')'")
            return value, tok.pos
        raise self.error("expected an operand", tok.pos)

    def close(self, opened: Token, expected: str) -> None:
        tok = self.take()
        if tok.text != ")":
            raise self.error(f"expected {expected} to close the '(' at position {opened.pos}", tok.pos)

    def call(self, name_tok: Token):
        name = name_tok.text
        if name not in FUNCTIONS:
            close = difflib.get_close_matches(name, FUNCTIONS, n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise self.error(f"unknown function {name!r}{hint}", name_tok.pos)
        opened = self.take()
        args = []
        if self.peek().text != ")":
            while True:
                args.append(self.expression()[0])
                if self.peek().text != ",":
                    break
                self.take()
        self.close(opened, "',' or ')'")
        low, high = ARITY[name]
        if len(args) < low or (high is not None and len(args) > high):
            wanted = f"{low}" if low == high else f"at least {low}"
            raise self.error(f"{name} takes {wanted} argument{'s' * (low != 1)}, got {len(args)}", name_tok.pos)
        if name == "logsumexp":
            return self.apply(name, (args,), name_tok.pos)
        return self.apply(name, tuple(args), name_tok.pos)

    def variable(self, tok: Token):
        name = tok.text
        if name in FUNCTIONS:
            raise self.error(f"{name!r} is a function: call it as {name}(...)", tok.pos)
        if name not in self.values:
            known = ", ".join(self.values) or "none"
            raise self.error(f"unknown variable {name!r} (the variables are: {known})", tok.pos)
        return self.values[name]


@dataclass(frozen=True)
class Expression:
    """A parsed expression: its text, its variables (the tape's inputs, in order) and its tape."""

    text: str
    variables: tuple[str, ...]
    tape: object  # tapead.Tape


def parse(text: str, variables=None) -> Expression:
    """Parse ``text`` and record it into a tape whose inputs are ``variables``.

    Parameters
    ----------
    text : str
        The expression (see the module docstring for the grammar).
    variables : sequence of str, optional
        The tape's inputs, in order. Every variable of ``text`` must be among
        them; extra ones are inputs with zero derivative. Default: the
        expression's variables in order of first appearance.

    Returns
    -------
    Expression
        With ``.tape`` (a :class:`tapead.Tape` with one output) and ``.variables``.

    Raises
    ------
    ExpressionError
        For anything outside the grammar or the limits, pointing at the position.

    Examples
    --------
    >>> import numpy as np
    >>> e = parse("log(x1) + x1*x2 - sin(x2)")
    >>> e.variables
    ('x1', 'x2')
    >>> e.tape.gradient(np.array([2.0, 5.0])).tolist()
    [5.5, 1.7163378145367738]
    >>> parse("x1 * x2", variables=["x2", "x1"]).tape.gradient(np.array([2.0, 5.0])).tolist()
    [5.0, 2.0]
    >>> try:
    ...     parse("log(x1 +* x2)")
    ... except ExpressionError as e:
    ...     print(e)
    log(x1 +* x2)
            ^ expected an operand
    """
    from tapead.api import record  # here: tapead.api imports numba, which the tokenizer does not need

    tokens = tokenize(text)
    names = _first_appearance(tokens) if variables is None else check_variable_names(variables)
    try:
        if not names:
            _Parser(text, tokens, {}).parse()  # syntax errors first, then the missing variables
            raise ExpressionError("the expression has no variables: nothing to differentiate", text, 0)
        tape = record(lambda x: _Parser(text, tokens, dict(zip(names, x))).parse(), len(names), source_lines=False)
    except RecursionError:  # only if the caller was already deep in the stack: MAX_DEPTH keeps this one shallow
        raise ExpressionError(f"nested too deeply (at most {MAX_DEPTH} levels)", text, None) from None
    return Expression(text, names, tape)
