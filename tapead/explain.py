"""The seed document's three pictures of one point, as text: evaluation, tangent and adjoint traces.

Griewank & Walther, section 2.2 (evaluation trace), 3.1 (tangent trace) and
3.2 (adjoint trace); the path form of the chain rule (each dy/dx_i is the sum
over all paths from y to x_i of the product of the edge partials) is their
section 9.1 (Bauer's formula). Values come from the reference interpreter,
so an explanation is an independent view of what the kernels compute.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tapead import reference
from tapead.ops import CONST, OPS
from tapead.tape import TapeData, format_instruction, output_name, slot_name

__all__ = ["Explanation", "explain"]

MAX_ROWS = 60  # longer traces show their first and last rows only
MAX_PATHS = 32  # per (output, input) pair


def _num(value: float) -> str:
    return f"{value:.6g}"


def _factor(value: float) -> str:
    return f"({value:.6g})" if value < 0 else f"{value:.6g}"


@dataclass(frozen=True)
class Explanation:
    """The traces of one tape at one point (see :func:`explain`)."""

    tape: TapeData
    v: np.ndarray
    x_dot: np.ndarray
    v_dot: np.ndarray
    y_bar: np.ndarray
    v_bar: np.ndarray
    partials: dict[int, list[tuple[int, float]]]

    def _rows(self) -> list[int | None]:
        t = self.tape
        if t.n_slots <= MAX_ROWS:
            return list(range(t.n_slots))
        half = MAX_ROWS // 2
        return [*range(half), None, *range(t.n_slots - half, t.n_slots)]

    def _hidden(self) -> str:
        return f"  ... {self.tape.n_slots - MAX_ROWS} rows not shown ..."

    def evaluation_trace(self) -> list[str]:
        t = self.tape
        lines = []
        for i in self._rows():
            if i is None:
                lines.append(self._hidden())
                continue
            lhs = f"{slot_name(t, i)} = {format_instruction(t, i)}"
            lines.append(f"  {lhs:<34} = {_num(self.v[i])}")
        lines += [f"  {output_name(j)} = {slot_name(t, s):<29} = {_num(self.v[s])}" for j, s in enumerate(t.outputs)]
        return lines

    def tangent_trace(self) -> list[str]:
        t = self.tape
        lines = []
        for i in self._rows():
            if i is None:
                lines.append(self._hidden())
                continue
            name = slot_name(t, i) + "_dot"
            if i < t.n_in + t.n_params:
                rhs = "seed" if i < t.n_in else "parameter"
            else:
                terms = [f"{_factor(d)}*{slot_name(t, a)}_dot" for a, d in self.partials.get(i, [])]
                rhs = " + ".join(terms) or "0"
            lines.append(f"  {name + ' = ' + rhs:<46} = {_num(self.v_dot[i])}")
        return lines

    def adjoint_trace(self) -> list[str]:
        t = self.tape
        users: dict[int, list[tuple[int, float]]] = {}
        for i, edges in self.partials.items():
            for a, d in edges:
                users.setdefault(a, []).append((i, d))
        lines = []
        for i in reversed(self._rows()):
            if i is None:
                lines.append(self._hidden())
                continue
            terms = [f"{slot_name(t, u)}_bar*{_factor(d)}" for u, d in users.get(i, [])]
            seeds = [f"{_num(self.y_bar[j])} (seed of {output_name(j)})" for j, s in enumerate(t.outputs) if s == i]
            rhs = " + ".join(seeds + terms) or "0"
            lines.append(f"  {slot_name(t, i) + '_bar = ' + rhs:<46} = {_num(self.v_bar[i])}")
        return lines

    def edges(self) -> list[str]:
        t = self.tape
        return [
            f"  d{slot_name(t, i)}/d{slot_name(t, a)} = {_num(d)}"
            for i in sorted(self.partials, reverse=True)
            for a, d in self.partials[i]
        ]

    def paths(self, output: int, wrt: int) -> list[tuple[list[int], float]] | None:
        """Every path from output ``output`` down to input ``wrt`` with its product of edge partials.

        None when there are more than MAX_PATHS of them.
        """
        found: list[tuple[list[int], float]] = []

        def walk(slot: int, path: list[int], product: float) -> bool:
            if slot == wrt:
                found.append((path, product))
                return len(found) <= MAX_PATHS
            return all(walk(a, path + [a], product * d) for a, d in self.partials.get(slot, []))

        start = int(self.tape.outputs[output])
        return found if walk(start, [start], 1.0) else None

    def path_sums(self) -> list[str]:
        t = self.tape
        lines = []
        for j in range(t.n_out):
            for k in range(t.n_in):
                paths = self.paths(j, k)
                target = f"d{output_name(j)}/dx{k + 1}"
                if paths is None:
                    lines.append(f"  {target}: more than {MAX_PATHS} paths, not listed")
                    continue
                for path, product in paths:
                    route = " -> ".join(slot_name(t, s) for s in path)
                    factors = " * ".join(_factor(d) for d in self._path_partials(path))
                    lines.append(f"  {route}: {factors} = {_num(product)}")
                total = sum(product for _, product in paths)
                lines.append(f"  {target} = {_num(total)}  ({len(paths)} paths)")
        return lines

    def _path_partials(self, path: list[int]) -> list[float]:
        return [dict(self.partials[u])[a] for u, a in zip(path, path[1:])]

    def __str__(self) -> str:
        t = self.tape
        seed = ", ".join(_num(s) for s in self.x_dot)
        sections = [
            ("Evaluation trace", self.evaluation_trace()),
            (f"Forward tangent trace, seed x_dot = ({seed})", self.tangent_trace()),
            ("Reverse adjoint trace, seed y_bar = (" + ", ".join(_num(s) for s in self.y_bar) + ")",
             self.adjoint_trace()),
            ("Edge partials", self.edges() if t.n_ops <= MAX_ROWS else ["  (too many to list)"]),
            ("Paths: each derivative is the sum over paths of the products of edge partials",
             self.path_sums() if t.n_ops <= MAX_ROWS else ["  (tape too large to list paths)"]),
        ]
        return "\n\n".join(title + "\n" + "\n".join(lines) for title, lines in sections)


def explain(tape: TapeData, x, p=(), wrt: int | np.ndarray = 0, y_bar=None) -> Explanation:
    """Trace ``tape`` at one point ``x``: values, tangents in direction ``wrt``, adjoints of ``y_bar``.

    ``wrt`` is an input index (the tangent of x_{wrt+1}) or a direction vector;
    ``y_bar`` defaults to the first output's unit weight.
    """
    x = np.asarray(x, dtype=float).reshape(tape.n_in)
    p = np.asarray(p, dtype=float).reshape(tape.n_params)
    if np.ndim(wrt) == 0:
        x_dot = np.zeros(tape.n_in)
        x_dot[int(wrt)] = 1.0
    else:
        x_dot = np.asarray(wrt, dtype=float).reshape(tape.n_in)
    y_bar = np.eye(tape.n_out)[0] if y_bar is None else np.asarray(y_bar, dtype=float).reshape(tape.n_out)
    v, v_dot = reference.tangents(tape, x, p, x_dot)
    _, v_bar = reference.adjoints(tape, x, p, y_bar)
    partials = {}
    for i in range(tape.n_in + tape.n_params, tape.n_slots):
        if tape.op[i] > CONST:
            args = [tape.arg0[i], tape.arg1[i], tape.arg2[i]][: OPS[tape.op[i]].arity]
            partials[i] = [(int(a), d) for a, d in zip(args, reference.local_partials(tape, v, i))]
    return Explanation(tape, v, x_dot, v_dot, y_bar, v_bar, partials)
