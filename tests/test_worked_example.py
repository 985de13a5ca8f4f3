"""The worked example (docs/design.md), exactly: y = log(x1) + x1*x2 - sin(x2) at (2, 5)."""

import math

import numpy as np

import tapead
from bench.problems import worked_example
from tapead import reference


def test_evaluation_trace_prints_in_the_design_notes_notation():
    text = str(tapead.record(worked_example, 2))
    assert text.splitlines()[1:] == [
        "  v_{-1} = x1",
        "  v_0 = x2",
        "  v1 = log v_{-1}",
        "  v2 = v_{-1}*v_0",
        "  v3 = v1 + v2",
        "  v4 = sin v_0",
        "  v5 = v3 - v4",
        "  y1 = v5",
    ]


def test_intermediate_values_at_2_5():
    v = reference.values(tapead.record(worked_example, 2), [2.0, 5.0])
    expected = [2.0, 5.0, math.log(2), 10.0, math.log(2) + 10, math.sin(5), math.log(2) + 10 - math.sin(5)]
    np.testing.assert_allclose(v, expected, rtol=1e-15, atol=0)


def test_gradient_to_1e_15():
    tape = tapead.record(worked_example, 2)
    g = tape.gradient(np.array([2.0, 5.0]))
    assert abs(g[0] - 5.5) <= 1e-15
    assert abs(g[1] - (2 - math.cos(5))) <= 1e-15
    assert abs(g[1] - 1.7163378145367738) <= 1e-15


def test_forward_tangent_gives_first_column():
    tape = tapead.record(worked_example, 2)
    y, y_dot = tape.jvp(np.array([2.0, 5.0]), np.array([1.0, 0.0]))
    assert abs(y_dot - 5.5) <= 1e-15
    assert abs(y - (math.log(2) + 10 - math.sin(5))) <= 1e-15


def test_edge_partials_of_the_reverse_graph():
    tape = tapead.record(worked_example, 2)
    v = reference.values(tape, [2.0, 5.0])
    partials = {i - 1: reference.local_partials(tape, v, i) for i in range(2, tape.n_slots)}
    assert partials[1] == [0.5]  # dv1/dv_{-1} = 1/x1
    assert partials[2] == [5.0, 2.0]  # dv2/dv_{-1} = v0, dv2/dv0 = v_{-1}
    assert partials[3] == [1.0, 1.0]
    assert abs(partials[4][0] - 0.28366218546322625) < 1e-15  # cos 5
    assert partials[5] == [1.0, -1.0]
