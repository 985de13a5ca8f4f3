"""The computational graph of a tape as Graphviz DOT text, drawn as the worked example's graph
(docs/design.md, "The worked example").

Griewank & Walther, section 2.2: the evaluation procedure as a directed
acyclic graph. Nodes are the slots v_i (inputs, parameters, intermediates;
outputs drawn with a double border), an edge runs from each operand v_j to
the result v_i of the instruction that reads it and, at a point x, carries
the local partial c_ij = d phi_i / d v_j. The sum over all paths from y to
x_k of the product of these labels is dy/dx_k (see :mod:`tapead.explain`).

:func:`render` turns DOT text into SVG, PNG or PDF with Graphviz's ``dot``
program; tapead itself needs no Graphviz to write DOT.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np

from tapead import reference
from tapead.ops import CONST, INPUT, PARAM
from tapead.tape import TapeData, format_instruction, output_name, slot_name

__all__ = ["to_dot", "render", "GraphvizNotFound", "MAX_NODES"]

MAX_NODES = 2000  # graphviz takes minutes to lay out much larger graphs, and nobody can read them
FORMATS = ("svg", "png", "pdf")

INSTALL_HINT = "graphviz's dot program is not installed (apt-get install graphviz)"


class GraphvizNotFound(RuntimeError):
    """Graphviz's ``dot`` program is not on the PATH."""


def quote(text: str) -> str:
    """``text`` as a DOT double-quoted string; a newline becomes DOT's centred line break ``\\n``.

    Examples
    --------
    >>> print(quote('say "hi"\\\\ok\\nnext'))
    "say \\"hi\\"\\\\ok\\nnext"
    """
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "\\n")
    return f'"{escaped}"'


def _num(value: float) -> str:
    return f"{value:.6g}"


def to_dot(tape: TapeData, x=None, p=(), names=None, max_nodes: int = MAX_NODES) -> str:
    """Graphviz DOT text of ``tape``'s computational graph; at a point ``x``, with values and edge partials.

    Parameters
    ----------
    tape : TapeData
        The recorded function.
    x : array_like or None
        One point, shape ``(n_in,)`` or ``(1, n_in)``. Without it the graph shows only structure.
    p : array_like, optional
        The parameters at that point (``n_params`` numbers).
    names : sequence of str, optional
        Names of the inputs, printed instead of x1, x2, ...
    max_nodes : int, optional
        Refuse (ValueError) tapes with more slots than this.

    Returns
    -------
    str
        A ``digraph``: node ``n<i>`` is slot i, labelled ``v_i``, its instruction
        and (at ``x``) its value; each edge is labelled with its local partial.

    Examples
    --------
    >>> import tapead
    >>> print(to_dot(tapead.record(lambda x: x[0] * x[1], 2), [2.0, 3.0]))
    digraph tape {
      rankdir=LR;
      node [shape=ellipse, fontname="Helvetica", fontsize=11];
      edge [fontname="Helvetica", fontsize=10];
      n0 [label="v_{-1}\\nx1\\n= 2", shape=box, style=filled, fillcolor="#dbe9f6"];
      n1 [label="v_0\\nx2\\n= 3", shape=box, style=filled, fillcolor="#dbe9f6"];
      n2 [label="v1 = y1\\nv_{-1}*v_0\\n= 6", peripheries=2, style=filled, fillcolor="#fde4c8"];
      n0 -> n2 [label="3"];
      n1 -> n2 [label="2"];
    }
    """
    if tape.n_slots > max_nodes:
        raise ValueError(
            f"the tape has {tape.n_slots} slots, more than max_nodes={max_nodes}: graphviz would take very long "
            "to lay it out; call tapead.dot.to_dot(tape, x, max_nodes=...) to draw it anyway"
        )
    names = tuple(names) if names is not None else tuple(f"x{k + 1}" for k in range(tape.n_in))
    if len(names) != tape.n_in:
        raise ValueError(f"names must name the tape's {tape.n_in} inputs, got {len(names)}")
    v = None
    if x is not None:
        x = np.asarray(x, dtype=float)
        if x.shape not in ((tape.n_in,), (1, tape.n_in)):
            raise ValueError(f"to_dot draws one point, of shape ({tape.n_in},) or (1, {tape.n_in}), got {x.shape}")
        x = x.reshape(tape.n_in)
        v = reference.values(tape, x, np.asarray(p, dtype=float).reshape(tape.n_params))
    outputs: dict[int, list[str]] = {}
    for j, s in enumerate(tape.outputs):
        outputs.setdefault(int(s), []).append(output_name(j))

    lines = [
        "digraph tape {",
        "  rankdir=LR;",
        '  node [shape=ellipse, fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for i in range(tape.n_slots):
        op = int(tape.op[i])
        head = slot_name(tape, i)
        if i in outputs:
            head += " = " + ", ".join(outputs[i])
        if op == INPUT:
            what, style = names[i], 'shape=box, style=filled, fillcolor="#dbe9f6"'
        elif op == PARAM:
            what, style = "parameter", 'shape=box, style=filled, fillcolor="#eeeeee"'
        elif op == CONST:
            what, style = "constant " + format_instruction(tape, i), 'shape=box, style=dashed'
        else:
            what, style = format_instruction(tape, i), ""
        if i in outputs:
            style = 'peripheries=2, style=filled, fillcolor="#fde4c8"' + (", shape=box" if op <= CONST else "")
        label = head + "\n" + what + ("" if v is None or op == CONST else f"\n= {_num(v[i])}")
        lines.append(f"  n{i} [label={quote(label)}" + (f", {style}" if style else "") + "];")
    for i in range(tape.n_in + tape.n_params, tape.n_slots):
        if tape.op[i] <= CONST:
            continue
        args = reference.operand_slots(tape, i)
        partials = reference.local_partials(tape, v, i) if v is not None else [None] * len(args)
        for a, d in zip(args, partials):
            attrs = "" if d is None else f" [label={quote(_num(d))}" + (", style=dashed" if d == 0.0 else "") + "]"
            lines.append(f"  n{a} -> n{i}{attrs};")
    lines.append("}")
    return "\n".join(lines)


def render(dot_text: str, path: str | os.PathLike, fmt: str | None = None, timeout: float = 120.0) -> None:
    """Write ``dot_text`` drawn by Graphviz's ``dot`` to ``path`` as SVG, PNG or PDF (``fmt``, else the suffix).

    Raises :class:`GraphvizNotFound` when ``dot`` is not installed, RuntimeError when it fails.
    """
    fmt = (fmt or os.path.splitext(os.fspath(path))[1].lstrip(".")).lower()
    if fmt not in FORMATS:
        raise ValueError(f"cannot render to {fmt!r}: choose one of {', '.join(FORMATS)}")
    exe = shutil.which("dot")
    if exe is None:
        raise GraphvizNotFound(INSTALL_HINT)
    # the DOT goes through stdin and the argument list is fixed: no shell, no user text on the command line
    done = subprocess.run([exe, f"-T{fmt}", "-o", os.fspath(path)], input=dot_text.encode(),
                          capture_output=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"graphviz's dot failed ({done.returncode}): {done.stderr.decode(errors='replace').strip()}")
