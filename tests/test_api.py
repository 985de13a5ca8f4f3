"""The evaluation methods: shapes, broadcasting of seeds, one point vs many, and bad input."""

import numpy as np
import pytest

import tapead
from bench.problems import worked_example
from tapead import reference

from .helpers import assert_close


def two_out(x):
    return [x[0] * x[1], np.sin(x[0]) + x[2]]


@pytest.fixture(scope="module")
def tape():
    return tapead.record(worked_example, 2)


@pytest.fixture(scope="module")
def tape3():
    return tapead.record(two_out, 3)


def test_shapes_batched_and_single(tape, tape3, rng):
    X = rng.uniform(1, 3, (10, 2))
    assert tape(X).shape == (10,)
    assert np.ndim(tape(X[0])) == 0
    y, g = tape.value_and_gradient(X)
    assert y.shape == (10,) and g.shape == (10, 2)
    assert tape.gradient(X[0]).shape == (2,)
    X3 = rng.normal(size=(10, 3))
    assert tape3(X3).shape == (10, 2)
    assert tape3.jvp(X3, np.ones(3))[1].shape == (10, 2)
    assert tape3.jvp(X3, np.ones((10, 3)))[1].shape == (10, 2)
    assert tape3.jvp(X3, np.ones((3, 4)))[1].shape == (10, 2, 4)
    assert tape3.jvp(X3, np.ones((10, 3, 4)))[1].shape == (10, 2, 4)
    assert tape3.jvp(X3[0], np.ones((3, 4)))[1].shape == (2, 4)
    assert tape3.vjp(X3, np.ones(2))[1].shape == (10, 3)
    assert tape3.vjp(X3, np.ones((10, 2)))[1].shape == (10, 3)
    assert tape3.vjp(X3[0], np.ones(2))[1].shape == (3,)


def test_jvp_with_q_directions_is_the_jacobian(tape3, rng):
    X = rng.normal(size=(30, 3))
    _, J = tape3.jvp(X, np.eye(3))
    for k in range(2):
        _, x_bar = tape3.vjp(X, np.eye(2)[k])
        assert_close(J[:, k, :], x_bar)
    Y_ref, Yd_ref = reference.jvp(tape3, X, None, np.broadcast_to(np.eye(3), (30, 3, 3)))
    assert_close(J, Yd_ref)


def test_zero_points_give_empty_results(tape, tape3):
    assert tape(np.empty((0, 2))).shape == (0,)
    y, g = tape.value_and_gradient(np.empty((0, 2)))
    assert y.shape == (0,) and g.shape == (0, 2)
    assert tape3.jvp(np.empty((0, 3)), np.eye(3))[1].shape == (0, 2, 3)


def test_inputs_are_never_modified(tape3, rng):
    X = rng.normal(size=(20, 3))
    V = rng.normal(size=(20, 3, 2))
    W = rng.normal(size=(20, 2))
    copies = [a.copy() for a in (X, V, W)]
    tape3(X), tape3.jvp(X, V), tape3.vjp(X, W)
    for a, b in zip((X, V, W), copies):
        np.testing.assert_array_equal(a, b)


def test_other_layouts_and_dtypes_give_the_same_result(tape, rng):
    X = rng.uniform(1, 3, (50, 2))
    expected = tape.gradient(X)
    assert_close(tape.gradient(np.asfortranarray(X)), expected)
    assert_close(tape.gradient(X.astype(np.float32)), tape.gradient(X.astype(np.float32).astype(float)))
    ro = X.copy()
    ro.flags.writeable = False
    assert_close(tape.gradient(ro), expected)
    assert_close(tape.gradient(np.ascontiguousarray(np.hstack([X, X])[:, :2])), expected)
    assert tape.gradient(np.array([[2, 5]])).tolist() == [[5.5, 2 - np.cos(5)]]


@pytest.mark.parametrize("bad", [np.ones((4, 3)), np.ones(3), np.ones((2, 2, 2)), np.ones(())])
def test_wrong_shape_names_the_expected_shape(tape, bad):
    with pytest.raises(ValueError, match=r"X must have shape \(N, 2\) or \(2,\)"):
        tape(bad)


@pytest.mark.parametrize("bad", [np.array([["a", "b"]]), np.array([[1 + 1j, 2]]), [[None, 1.0]]])
def test_non_numeric_input_is_a_type_error(tape, bad):
    with pytest.raises(TypeError, match="real numeric array"):
        tape.gradient(bad)


def test_bad_seeds_and_arguments(tape, tape3):
    X = np.ones((4, 3))
    with pytest.raises(ValueError, match="V must have shape"):
        tape3.jvp(X, np.ones(2))
    with pytest.raises(ValueError, match="W must have shape"):
        tape3.vjp(X, np.ones(3))
    with pytest.raises(ValueError, match="scalar function"):
        tape3.gradient(X)
    with pytest.raises(TypeError, match=r"takes \(X, V\)"):
        tape3.jvp(X)
    with pytest.raises(TypeError, match=r"takes \(X\)"):
        tape(np.ones(2), np.ones(2))


def test_parameter_shapes_are_checked(rng):
    tape = tapead.record(lambda x, p: x[0] * p[0] + p[1], 1, n_params=2)
    with pytest.raises(TypeError, match=r"takes \(X, P\)"):
        tape(np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"P must have shape \(3, 2\) or \(2,\)"):
        tape(np.ones((3, 1)), np.ones((4, 2)))
    assert_close(tape(np.ones((3, 1)), np.array([2.0, 1.0])), np.full(3, 3.0))
