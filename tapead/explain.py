"""The worked example's pictures of one point: evaluation, tangent and adjoint traces, edge partials, paths
(docs/design.md, "The worked example").

Griewank & Walther, section 2.2 (evaluation trace), 3.1 (tangent trace) and
3.2 (adjoint trace); the path form of the chain rule (each dy_j/dx_k is the
sum over all paths from y_j to x_k of the product of the edge partials) is
their section 9.1 (Bauer's formula). Values come from the reference
interpreter, so an explanation is an independent view of what the kernels
compute.

An :class:`Explanation` prints as text and renders as HTML tables in Jupyter,
from the same rows. Large tapes are summarised: traces show their first and
last rows, sums their first terms, and paths are listed for small tapes only.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from tapead import reference
from tapead.ops import CONST, zero_skip_mul
from tapead.tape import TapeData, format_instruction, output_name, slot_name

__all__ = ["Explanation", "explain"]

MAX_ROWS = 60  # longer traces (and tapes with more slots) show their first and last rows only
MAX_PATHS = 32  # paths listed per (output, input) pair; more are counted, not listed
MAX_PATH_ROWS = 200  # paths listed in all
MAX_TERMS = 8  # terms shown of one sum in the adjoint trace
MAX_VECTOR = 8  # entries shown of a seed vector or of the point
PAD = 48  # text columns wider than this are not padded


def _num(value: float) -> str:
    return f"{value:.6g}"


def _factor(value: float) -> str:
    return f"({value:.6g})" if value < 0 else f"{value:.6g}"


def _shorten(items: list[str], limit: int) -> list[str]:
    return items if len(items) <= limit else [*items[:limit], f"... ({len(items) - limit} more)"]


class Row(NamedTuple):
    """One line of a section: ``lhs<sep>rhs = value  note``."""

    lhs: str
    rhs: str
    value: str
    note: str = ""


class Section(NamedTuple):
    title: str
    sep: str  # between lhs and rhs in text
    rows: list  # of Row, or str for a note spanning the line


@dataclass(frozen=True, repr=False)
class Explanation:
    """The traces of one tape at one point (see :func:`explain`).

    ``str(e)`` is the text form, ``e._repr_html_()`` the HTML tables Jupyter shows.
    """

    tape: TapeData
    v: np.ndarray
    x_dot: np.ndarray
    v_dot: np.ndarray
    y_bar: np.ndarray
    v_bar: np.ndarray
    partials: dict[int, list[tuple[int, float]]]
    names: tuple[str, ...] = ()

    # ---- helpers ----

    def input_name(self, k: int) -> str:
        """The name of input k: x1, x2, ... or the names given to :func:`explain`."""
        return self.names[k] if self.names else f"x{k + 1}"

    def _slot_rows(self) -> list[int | None]:
        t = self.tape
        if t.n_slots <= MAX_ROWS:
            return list(range(t.n_slots))
        half = MAX_ROWS // 2
        return [*range(half), None, *range(t.n_slots - half, t.n_slots)]

    def _hidden(self) -> str:
        return f"... {self.tape.n_slots - MAX_ROWS} rows not shown ..."

    def _point(self) -> str:
        t = self.tape
        items = [f"{self.input_name(k)} = {_num(self.v[k])}" for k in range(min(t.n_in, MAX_VECTOR))]
        items += [f"p{j + 1} = {_num(self.v[t.n_in + j])}" for j in range(min(t.n_params, MAX_VECTOR))]
        hidden = t.n_in + t.n_params - len(items)
        return ", ".join(items) + (f", ... ({hidden} more)" if hidden > 0 else "")

    @staticmethod
    def _vector(values: np.ndarray) -> str:
        shown = [_num(s) for s in values[:MAX_VECTOR]]
        if len(values) > MAX_VECTOR:
            shown.append(f"... ({len(values) - MAX_VECTOR} more)")
        return "(" + ", ".join(shown) + ")"

    # ---- the sections ----

    def evaluation_trace(self) -> Section:
        t = self.tape
        rows: list = []
        for i in self._slot_rows():
            if i is None:
                rows.append(self._hidden())
            elif i < t.n_in:
                rows.append(Row(slot_name(t, i), self.input_name(i), _num(self.v[i])))
            elif i < t.n_in + t.n_params:
                rows.append(Row(slot_name(t, i), "parameter", _num(self.v[i])))
            else:
                rows.append(Row(slot_name(t, i), format_instruction(t, i), _num(self.v[i])))
        for j, s in enumerate(t.outputs[:MAX_ROWS]):
            rows.append(Row(output_name(j), slot_name(t, s), _num(self.v[s])))
        if t.n_out > MAX_ROWS:
            rows.append(f"... {t.n_out - MAX_ROWS} more outputs not shown ...")
        return Section(f"Evaluation trace at {self._point()}", " = ", rows)

    def tangent_trace(self) -> Section:
        t = self.tape
        rows: list = []
        for i in self._slot_rows():
            if i is None:
                rows.append(self._hidden())
                continue
            name = slot_name(t, i) + "_dot"
            if i < t.n_in:
                rhs = "seed"
            elif i < t.n_in + t.n_params:
                rhs = "0 (parameter)"
            else:
                terms = [f"{_factor(d)}*{slot_name(t, a)}_dot" for a, d in self.partials.get(i, [])]
                rhs = " + ".join(terms) or "0"
            rows.append(Row(name, rhs, _num(self.v_dot[i])))
        unit = np.flatnonzero(self.x_dot)
        if unit.size == 1 and self.x_dot[unit[0]] == 1.0:
            name = self.input_name(int(unit[0]))
            title = f"Forward tangent trace for {name}, seed x_dot = {self._vector(self.x_dot)}"
        else:
            title = f"Forward tangent trace in direction x_dot = {self._vector(self.x_dot)}"
        return Section(title, " = ", rows)

    def adjoint_trace(self) -> Section:
        t = self.tape
        users: dict[int, list[tuple[int, float]]] = {}
        for i, edges in self.partials.items():
            for a, d in edges:
                users.setdefault(a, []).append((i, d))
        seeds: dict[int, list[str]] = {}
        for j, s in enumerate(t.outputs):
            if len(seeds.setdefault(int(s), [])) <= MAX_TERMS:
                seeds[int(s)].append(f"{_num(self.y_bar[j])} (seed of {output_name(j)})")
        rows: list = []
        for i in reversed(self._slot_rows()):
            if i is None:
                rows.append(self._hidden())
                continue
            terms = seeds.get(i, []) + [f"{slot_name(t, u)}_bar*{_factor(d)}" for u, d in users.get(i, [])]
            rhs = " + ".join(_shorten(terms, MAX_TERMS)) or "0"
            rows.append(Row(slot_name(t, i) + "_bar", rhs, _num(self.v_bar[i])))
        return Section(f"Reverse adjoint trace, seed y_bar = {self._vector(self.y_bar)}", " = ", rows)

    def edges(self) -> Section:
        t = self.tape
        title = "Edge partials (local partial dv_i/dv_j of each edge at this point)"
        if t.n_slots > MAX_ROWS:
            return Section(title, " = ", [f"(not listed: the tape has {t.n_slots} slots, more than {MAX_ROWS})"])
        rows = [
            Row(f"d{slot_name(t, i)}/d{slot_name(t, a)}", "", _num(d))
            for i in sorted(self.partials, reverse=True)
            for a, d in self.partials[i]
        ]
        return Section(title, " = ", rows)

    def _path_counts(self, k: int) -> tuple[list[int], list[float]]:
        """Per slot s: the number of paths from s down to input k, and the sum of their products."""
        t = self.tape
        count = [0] * t.n_slots
        total = [0.0] * t.n_slots
        count[k], total[k] = 1, 1.0
        for i, edges in sorted(self.partials.items()):
            count[i] = sum(count[a] for a, _ in edges)
            total[i] = sum((zero_skip_mul(d, total[a]) for a, d in edges), 0.0)
        return count, total

    def path_total(self, output: int, wrt: int) -> tuple[float, int]:
        """(dy_output/dx_wrt as the sum over paths of the products of edge partials, the number of paths).

        Counted and summed by dynamic programming over the graph, so a tape with
        exponentially many paths costs no more than one with a few.
        """
        count, total = self._path_counts(wrt)
        s = int(self.tape.outputs[output])
        return total[s], count[s]

    def paths(self, output: int, wrt: int,
              count: list[int] | None = None) -> list[tuple[list[int], list[float], float]]:
        """Every path from output ``output`` down to input ``wrt``: (slots, edge partials, their product).

        ``count`` (per slot, the number of paths down to ``wrt``) prunes the walk; computed when not given.
        The list can be exponentially long: check :meth:`path_total`'s count first on a large graph.
        """
        count = self._path_counts(wrt)[0] if count is None else count
        found: list[tuple[list[int], list[float], float]] = []

        def walk(slot: int, path: list[int], factors: list[float], product: float) -> None:
            if slot == wrt:
                found.append((path, factors, product))
                return
            for a, d in self.partials.get(slot, []):
                if count[a]:  # only edges that lead to x_wrt: the walk never explores dead ends
                    walk(a, path + [a], factors + [d], zero_skip_mul(product, d))

        start = int(self.tape.outputs[output])
        walk(start, [start], [], 1.0)
        return found

    def path_sums(self) -> Section:
        t = self.tape
        title = "Paths: each derivative is the sum over paths of the products of edge partials"
        if t.n_slots > MAX_ROWS:
            return Section(title, ": ", [f"(not listed: the tape has {t.n_slots} slots, more than {MAX_ROWS})"])
        rows: list = []
        listed = 0
        for k in range(t.n_in):
            count, total = self._path_counts(k)
            for j in range(t.n_out):
                s = int(t.outputs[j])
                target = f"d{output_name(j)}/d{self.input_name(k)}"
                n_paths = count[s]
                if n_paths == 0:
                    rows.append(Row(target, "", "0", "(no paths)"))
                elif n_paths > MAX_PATHS or listed + n_paths > MAX_PATH_ROWS:
                    rows.append(Row(target, "", _num(total[s]), f"({n_paths} paths, not listed)"))
                else:
                    paths = self.paths(j, k, count)
                    for path, factors, product in paths:
                        route = " -> ".join(slot_name(t, q) for q in path)
                        rows.append(Row(route, " * ".join(_factor(d) for d in factors), _num(product)))
                    listed += n_paths
                    s_total = sum(product for _, _, product in paths)
                    rows.append(Row(target, "", _num(s_total), f"({n_paths} path{'s' * (n_paths != 1)})"))
        return Section(title, ": ", rows)

    def sections(self) -> list[Section]:
        return [self.evaluation_trace(), self.tangent_trace(), self.adjoint_trace(), self.edges(), self.path_sums()]

    # ---- rendering ----

    def __str__(self) -> str:
        blocks = []
        for title, sep, rows in self.sections():
            lefts = [r.lhs + (sep + r.rhs if r.rhs else "") for r in rows if isinstance(r, Row)]
            width = min(PAD, max(map(len, lefts), default=0))
            lines = [title]
            for r in rows:
                if isinstance(r, str):
                    lines.append("  " + r)
                    continue
                left = r.lhs + (sep + r.rhs if r.rhs else "")
                lines.append(f"  {left:<{width}} = {r.value}" + (f"  {r.note}" if r.note else ""))
            blocks.append("\n".join(lines))
        return "\n\n".join(blocks)

    __repr__ = __str__  # a REPL shows the traces, not the arrays

    def _repr_html_(self) -> str:
        e = html.escape
        parts = ['<div class="tapead-explanation" style="font-family: monospace">']
        for title, sep, rows in self.sections():
            parts.append(f"<h4>{e(title)}</h4>")
            parts.append("<table>")
            for r in rows:
                if isinstance(r, str):
                    parts.append(f'<tr><td colspan="4" style="text-align:left"><i>{e(r)}</i></td></tr>')
                    continue
                rhs = e(sep.strip() + " " + r.rhs) if r.rhs else ""
                parts.append(
                    f'<tr><td style="text-align:left">{e(r.lhs)}</td><td style="text-align:left">{rhs}</td>'
                    f'<td style="text-align:right">= {e(r.value)}</td><td style="text-align:left">{e(r.note)}</td></tr>'
                )
            parts.append("</table>")
        parts.append("</div>")
        return "\n".join(parts)


def explain(tape: TapeData, x, p=(), wrt: int | str | np.ndarray = 0, y_bar=None,
            names: tuple[str, ...] | list[str] | None = None) -> Explanation:
    """Trace ``tape`` at one point ``x``: values, tangents in direction ``wrt``, adjoints of ``y_bar``.

    Parameters
    ----------
    tape : TapeData
        The recorded function.
    x : array_like
        The point, ``n_in`` numbers.
    p : array_like, optional
        The parameters, ``n_params`` numbers.
    wrt : int, str or array_like, optional
        The tangent trace's seed: an input's index (0-based), its name (with
        ``names``) or a direction vector of ``n_in`` numbers. Default: x1.
    y_bar : array_like, optional
        The adjoint trace's output weights, one per output. Default: the
        first output's unit weight.
    names : sequence of str, optional
        Names of the inputs to print instead of x1, x2, ...

    Returns
    -------
    Explanation
        Prints as text, renders as HTML tables in Jupyter.

    Examples
    --------
    >>> import tapead
    >>> tape = tapead.record(lambda x: x[0] * x[1], 2)
    >>> print(explain(tape, [2.0, 3.0], wrt=1))
    Evaluation trace at x1 = 2, x2 = 3
      v_{-1} = x1     = 2
      v_0 = x2        = 3
      v1 = v_{-1}*v_0 = 6
      y1 = v1         = 6
    <BLANKLINE>
    Forward tangent trace for x2, seed x_dot = (0, 1)
      v_{-1}_dot = seed                 = 0
      v_0_dot = seed                    = 1
      v1_dot = 3*v_{-1}_dot + 2*v_0_dot = 2
    <BLANKLINE>
    Reverse adjoint trace, seed y_bar = (1)
      v1_bar = 1 (seed of y1) = 1
      v_0_bar = v1_bar*2      = 2
      v_{-1}_bar = v1_bar*3   = 3
    <BLANKLINE>
    Edge partials (local partial dv_i/dv_j of each edge at this point)
      dv1/dv_{-1} = 3
      dv1/dv_0    = 2
    <BLANKLINE>
    Paths: each derivative is the sum over paths of the products of edge partials
      v1 -> v_{-1}: 3 = 3
      dy1/dx1         = 3  (1 path)
      v1 -> v_0: 2    = 2
      dy1/dx2         = 2  (1 path)
    """
    x = np.asarray(x, dtype=float).reshape(tape.n_in)
    p = np.asarray(p, dtype=float).reshape(tape.n_params)
    names = tuple(names) if names is not None else ()
    if names and len(names) != tape.n_in:
        raise ValueError(f"names must name the tape's {tape.n_in} inputs, got {len(names)}")
    if isinstance(wrt, str):
        if wrt not in names:
            raise ValueError(f"wrt={wrt!r} is not one of the input names {names}")
        wrt = names.index(wrt)
    if np.ndim(wrt) == 0:
        if not isinstance(wrt, (int, np.integer)) or isinstance(wrt, bool) or not 0 <= wrt < tape.n_in:
            raise ValueError(f"wrt must be an input index in [0, {tape.n_in}), a name or a direction, got {wrt!r}")
        x_dot = np.zeros(tape.n_in)
        x_dot[int(wrt)] = 1.0
    else:
        x_dot = np.asarray(wrt, dtype=float).reshape(tape.n_in)
    if y_bar is None:
        y_bar = np.zeros(tape.n_out)  # the first output's unit weight
        y_bar[:1] = 1.0
    else:
        y_bar = np.asarray(y_bar, dtype=float).reshape(tape.n_out)
    v, v_dot = reference.tangents(tape, x, p, x_dot)
    _, v_bar = reference.adjoints(tape, x, p, y_bar)
    partials = {}
    for i in range(tape.n_in + tape.n_params, tape.n_slots):
        if tape.op[i] > CONST:
            partials[i] = list(zip(reference.operand_slots(tape, i), reference.local_partials(tape, v, i)))
    return Explanation(tape, v, x_dot, v_dot, y_bar, v_bar, partials, names)
