"""Explanations (the worked example's traces, edge partials, path sums) and the DOT graph."""

from __future__ import annotations

import doctest
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tapead
import tapead.dot
from bench.problems import worked_example
from tapead import reference
from tapead.dot import GraphvizNotFound, quote, render, to_dot
from tapead.explain import MAX_PATHS, explain
from tapead.ops import BY_NAME
from tapead.tape import TapeData

from .helpers import WORKED_EXAMPLE_TRACES, one_op_tape, parse_dot, random_tapes

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def example():
    """The worked example's tape."""
    return tapead.record(worked_example, 2)





# ---- the worked example's explanation---------------------------------------------------


def test_worked_example_golden_text(example):
    e = example.explain(np.array([2.0, 5.0]), wrt=0)
    assert str(e) == WORKED_EXAMPLE_TRACES
    assert repr(e) == WORKED_EXAMPLE_TRACES  # a REPL shows the traces too


def test_worked_example_paths_sum_to_the_gradient(example):
    e = example.explain(np.array([2.0, 5.0]))
    # the worked example's paths by slot: v5 = 6, v4 = 5, v3 = 4, v2 = 3, v1 = 2, v_0 = 1, v_{-1} = 0
    assert e.paths(0, 0) == [([6, 4, 2, 0], [1.0, 1.0, 0.5], 0.5), ([6, 4, 3, 0], [1.0, 1.0, 5.0], 5.0)]
    (path1, factors1, product1), (path2, factors2, product2) = e.paths(0, 1)
    assert (path1, factors1, product1) == ([6, 4, 3, 1], [1.0, 1.0, 2.0], 2.0)
    assert path2 == [6, 5, 1] and factors2 == [-1.0, np.cos(5.0)] and product2 == -np.cos(5.0)
    assert e.path_total(0, 0) == (5.5, 2)
    total, n_paths = e.path_total(0, 1)
    assert n_paths == 2 and total == pytest.approx(2.0 - np.cos(5.0), rel=1e-15)


def test_tangent_trace_for_another_input_a_direction_and_names(example):
    by_name = explain(example, [2.0, 5.0], wrt="b", names=("a", "b"))
    text = str(by_name)
    assert "Forward tangent trace for b, seed x_dot = (0, 1)" in text
    assert "  v_{-1} = a " in text and "dy1/db" in text and "dy1/da" in text
    assert by_name.v_dot[-1] == pytest.approx(2.0 - np.cos(5.0), rel=1e-15)
    direction = example.explain(np.array([2.0, 5.0]), wrt=np.array([1.0, -2.0]))
    assert "Forward tangent trace in direction x_dot = (1, -2)" in str(direction)
    assert direction.v_dot[-1] == pytest.approx(5.5 - 2 * (2.0 - np.cos(5.0)), rel=1e-14)


@pytest.mark.parametrize("wrt", [2, -1, 1.0, True, "x1"])
def test_bad_wrt_is_a_clear_error(example, wrt):
    with pytest.raises(ValueError, match="wrt"):
        explain(example, [2.0, 5.0], wrt=wrt)


def test_parameters_appear_in_the_traces():
    tape = tapead.record(lambda x, p: (p[0] - x[0]) ** 2 * x[1], 2, n_params=1)
    text = str(tape.explain(np.array([1.0, 3.0]), np.array([4.0])))
    assert text.startswith("Evaluation trace at x1 = 1, x2 = 3, p1 = 4\n")
    assert re.search(r"  p1 = parameter +=  ?4\n", text)
    assert "p1_dot = 0 (parameter)" in text
    assert "dy1/dx1 " in text and "= -18  (1 path)" in text  # d/dx1 (p - x1)^2 x2 = -2 (p - x1) x2


# ---- path sums are the derivatives ---------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(tape=random_tapes(max_ops=10), seed=st.integers(0, 2**32 - 1))
def test_path_sums_equal_the_jacobian(tape, seed):
    rng = np.random.default_rng(seed)
    x, p = rng.uniform(0.3, 1.5, tape.n_in), rng.uniform(0.3, 1.5, tape.n_params)
    e = explain(tape, x, p)
    assume(np.all(np.isfinite(e.v)) and all(np.isfinite(d) for edges in e.partials.values() for _, d in edges))
    _, J = reference.jvp(tape, x[None], p[None] if tape.n_params else None, np.eye(tape.n_in)[None])
    for j in range(tape.n_out):
        for k in range(tape.n_in):
            total, n_paths = e.path_total(j, k)
            np.testing.assert_allclose(total, J[0, j, k], rtol=1e-10, atol=1e-12)
            if n_paths <= MAX_PATHS:
                paths = e.paths(j, k)
                assert len(paths) == n_paths
                np.testing.assert_allclose(sum(product for _, _, product in paths), J[0, j, k], rtol=1e-10, atol=1e-12)


def test_an_operand_used_twice_gives_two_paths_with_their_own_partials():
    text = str(tapead.record(lambda x: x[0] / x[0], 1).explain(np.array([2.0])))
    assert "  v1 -> v_0: 0.5    = 0.5\n  v1 -> v_0: (-0.5) = -0.5\n  dy1/dx1           = 0  (2 paths)" in text


def test_exponentially_many_paths_are_counted_not_walked():
    def f(x):
        v = x[0]
        for _ in range(40):
            v = v * v  # two edges to the same operand: the paths double at every step
        return v + x[1]

    e = tapead.record(f, 2, optimize=False).explain(np.array([1.0, 3.0]))  # keep v * v: two edges
    assert e.path_total(0, 0) == (2.0**40, 2**40)
    text = str(e)
    assert f"dy1/dx1       = 1.09951e+12  ({2**40} paths, not listed)" in text
    assert "v41 -> v_0: 1 = 1" in text


# ---- large tapes are summarised --------------------------------------------------------


def test_large_tapes_are_summarised():
    def f(x):
        s = x[0]
        for i in range(3000):
            s = np.sin(s) * x[1] + x[i % 3]
        return [s * k for k in range(1, 201)]

    tape = tapead.record(f, 3)
    e = tape.explain(np.array([0.1, 0.2, 0.3]))
    text, page = str(e), e._repr_html_()
    assert len(text) < 20_000 and len(page) < 60_000
    assert "rows not shown" in text and "rows not shown" in page
    assert "140 more outputs not shown" in text
    assert "(not listed: the tape has" in text
    assert re.search(r"v_{-1}_bar = v\d+_bar\*\S+ .*\+ \.\.\. \(\d+ more\) = ", text)

    wide = tapead.record(lambda x: np.sum(x), 5000).explain(np.ones(5000))
    assert len(str(wide)) < 20_000
    assert str(wide).startswith("Evaluation trace at x1 = 1, x2 = 1, x3 = 1, x4 = 1, x5 = 1, x6 = 1, x7 = 1, "
                                "x8 = 1, ... (4992 more)\n")
    assert "seed x_dot = (1, 0, 0, 0, 0, 0, 0, 0, ... (4992 more))" in str(wide)


def test_explain_builds_no_identity_for_many_outputs():
    n_out = 300_000  # np.eye(n_out) would be 720 GB
    op = np.array([BY_NAME["input"].code, BY_NAME["sin"].code], dtype=np.int32)  # y_k = sin x for every k
    tape = TapeData(op=op, arg0=np.array([-1, 0], dtype=np.int32),
                    arg1=np.array([-1, -1], dtype=np.int32), arg2=np.array([-1, -1], dtype=np.int32),
                    const=np.zeros(2), outputs=np.ones(n_out, dtype=np.int32), n_in=1, out_shape=(n_out,))
    e = explain(tape, [0.5])
    assert e.y_bar[0] == 1.0 and e.y_bar.sum() == 1.0 and e.v_bar[0] == np.cos(0.5)
    assert f"{n_out - 60} more outputs not shown" in str(e)


# ---- HTML -------------------------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.open: list[str] = []
        self.tables = 0

    def handle_starttag(self, tag, attrs):
        self.tables += tag == "table"
        self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()


def test_html_is_escaped_well_formed_tables(example):
    tape = tapead.record(lambda x: tapead.where(x[0] < x[1], x[0] * x[1], x[1]), 2)
    page = tape.explain(np.array([1.0, 2.0]))._repr_html_()
    assert "v_{-1} &lt; v_0" in page and "v_{-1} < v_0" not in page
    tags = _Tags()
    tags.feed(page)
    tags.close()
    assert tags.open == [] and tags.tables == 5
    example_page = example.explain(np.array([2.0, 5.0]))._repr_html_()
    assert "v5 -&gt; v3 -&gt; v1 -&gt; v_{-1}" in example_page and "5.5" in example_page


# ---- DOT --------------------------------------------------------------------------------



def test_worked_example_dot_parses_into_its_picture(example):
    nodes, edges = parse_dot(example.to_dot(np.array([2.0, 5.0])))
    assert len(nodes) == 7
    assert nodes["n0"]["label"] == "v_{-1}\\nx1\\n= 2"
    assert nodes["n6"]["label"] == "v5 = y1\\nv3 - v4\\n= 11.6521" and nodes["n6"]["peripheries"] == "2"
    labels = {(a, b): e["label"] for a, b, e in edges}
    assert labels == {("n0", "n2"): "0.5", ("n0", "n3"): "5", ("n1", "n3"): "2", ("n2", "n4"): "1",
                      ("n3", "n4"): "1", ("n1", "n5"): "0.283662", ("n4", "n6"): "1", ("n5", "n6"): "-1"}


def test_dot_without_a_point_is_structure_only(example):
    nodes, edges = parse_dot(example.to_dot())
    assert nodes["n2"]["label"] == "v1\\nlog v_{-1}"
    assert len(edges) == 8 and all(e == {} for _, _, e in edges)


@settings(max_examples=25, deadline=None)
@given(tape=random_tapes(max_ops=10))
def test_dot_of_random_tapes_parses(tape):
    nodes, edges = parse_dot(to_dot(tape, np.full(tape.n_in, 0.7), np.full(tape.n_params, 0.4)))
    assert len(nodes) == tape.n_slots
    arity = sum(tapead.ops.OPS[o].arity for o in tape.op)
    assert len(edges) == arity


def test_dot_takes_exactly_one_point(example):
    assert to_dot(example, [[2.0, 5.0]]) == to_dot(example, [2.0, 5.0])
    for bad in (np.ones((2, 2)), np.ones((0, 2)), np.ones(3), np.ones((2, 1))):
        with pytest.raises(ValueError, match=r"one point, of shape \(2,\) or \(1, 2\), got"):
            to_dot(example, bad)


def test_tape_to_dot_refuses_a_batch(example):
    with pytest.raises(ValueError, match="one point"):
        example.to_dot(np.ones((2, 2)))


def test_dot_quotes_and_escapes_labels():
    assert quote('a "b" \\ c\nd') == '"a \\"b\\" \\\\ c\\nd"'
    nodes, _ = parse_dot(to_dot(tapead.record(lambda x: x[0] + 1.0, 1), [1.0], names=["q"]))
    assert nodes["n0"]["label"] == "v_0\\nq\\n= 1"


def test_dot_refuses_huge_tapes_with_a_reason():
    tape = tapead.record(lambda x: np.sum(x), 50)
    with pytest.raises(ValueError, match="max_nodes"):
        to_dot(tape, max_nodes=20)
    assert to_dot(tape, max_nodes=200).startswith("digraph tape {")


def test_readme_image_is_the_worked_example_graph(example):
    # docs/worked_example_graph.dot is what the README's image was drawn from (see README.md)
    assert (ROOT / "docs" / "worked_example_graph.dot").read_text() == example.to_dot(np.array([2.0, 5.0])) + "\n"
    svg = (ROOT / "docs" / "worked_example_graph.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "0.283662" in svg and "v5 = y1" in svg


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot program is not installed")
def test_graphviz_renders_the_dot(example, tmp_path):
    text = example.to_dot(np.array([2.0, 5.0]))
    done = subprocess.run(["dot", "-Tsvg"], input=text.encode(), capture_output=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert b"<svg" in done.stdout and b"0.283662" in done.stdout
    render(text, tmp_path / "g.png")
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_render_without_graphviz_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(tapead.dot.shutil, "which", lambda name: None)
    with pytest.raises(GraphvizNotFound, match=r"apt-get install graphviz"):
        render("digraph tape {}", tmp_path / "g.svg")
    with pytest.raises(ValueError, match="svg, png, pdf"):
        render("digraph tape {}", tmp_path / "g.gif")


def test_dot_docstring_examples_run():
    result = doctest.testmod(tapead.dot, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


# ---- the reference interpreter's pow is C99's, as the kernels' is --------------------------------

SPECIAL = [-math.inf, -3.0, -2.5, -1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 2.5, 3.0, math.inf, math.nan]


def _same(a, b) -> bool:
    """Equal as IEEE values: NaN to NaN, and a zero's sign counts."""
    return bool(np.isnan(a) and np.isnan(b)) or (a == b and np.signbit(a) == np.signbit(b))


def _same_or_ulps(a, b, ulps: int = 4) -> bool:
    """_same, or both finite and nonzero within ``ulps`` units of the last place: the kernels
    take pow's log from kernels/vmath.py (within 2 ulp), the reference from libm."""
    close = np.isfinite(a) and np.isfinite(b) and a != 0.0 and abs(a - b) <= ulps * np.spacing(abs(a))
    return _same(a, b) or bool(close)


def test_reference_pow_at_minus_inf_and_minus_zero_is_c99():
    # C99 F.9.4.4: pow(-inf, y) = +inf and pow(-0, y) = +0 for y > 0 not an odd integer
    # (numpy's scalar np.power takes y = 0.5 as sqrt: NaN and -0)
    for name, y in (("powc", 0.5), ("powc", 2.5), ("pow", 0.5)):
        tape = one_op_tape(BY_NAME[name], y)
        point = (lambda x: [x]) if name == "powc" else (lambda x: [x, y])
        assert reference.values(tape, point(-math.inf))[-1] == math.inf
        zero = reference.values(tape, point(-0.0))[-1]
        assert zero == 0.0 and not np.signbit(zero)
    assert reference.local_partials(one_op_tape(BY_NAME["powc"], 1.5), np.array([-math.inf, math.inf]), 1) == [math.inf]


def test_reference_pow_matches_the_kernels_and_c_at_special_values():
    exponents = SPECIAL + [2.0, -2.0, 1.5, -1.5]
    cases = [(one_op_tape(BY_NAME["pow"]), np.array([(x, y) for x in SPECIAL for y in exponents]))]
    cases += [(one_op_tape(BY_NAME["powc"], c), np.array(SPECIAL)[:, None]) for c in exponents]
    for tape, points in cases:
        kernel_y, kernel_g = tape.value_and_gradient(points)
        for x, y, g in zip(points.tolist(), kernel_y, kernel_g):
            v = reference.values(tape, x)
            x_bar = reference.adjoints(tape, x, (), [1.0])[1][: tape.n_in]
            assert _same(v[-1], y) and all(map(_same_or_ulps, x_bar, g)), (tape.op[-1], x, tape.const[-1], v[-1], y,
                                                                            x_bar, g)
            base, exponent = x[0], (x[1] if tape.n_in == 2 else tape.const[-1])
            try:
                c_pow = math.pow(base, exponent)  # C's pow, where it signals no error
            except (ValueError, OverflowError):
                continue
            assert _same(v[-1], c_pow), (base, exponent)
