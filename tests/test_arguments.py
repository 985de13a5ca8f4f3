"""Argument rules of the evaluation methods: frozen tapes, unambiguous directions, exact out=
shapes, bounded memory per call (issue: nothing lost, nothing silently wrong)."""

import subprocess
import sys
import textwrap
import tracemalloc

import numpy as np
import pytest

import tapead


@pytest.fixture(scope="module")
def tape3():
    return tapead.record(lambda x: [x[0] * x[1], np.sin(x[0]) + x[2] ** 2], 3)


def test_a_tapes_arrays_are_read_only_after_validation(tape3):
    for name in ("op", "arg0", "arg1", "arg2", "const", "outputs"):
        with pytest.raises(ValueError, match="read-only"):
            getattr(tape3, name)[-1] = 10**8


def test_recording_never_freezes_the_callers_arrays():
    op = np.array([0, 0, 5], dtype=np.int32)
    data = tapead.tape.TapeData(op=op, arg0=np.array([-1, -1, 0], np.int32), arg1=np.array([-1, -1, 1], np.int32),
                                arg2=np.full(3, -1, np.int32), const=np.zeros(3), outputs=np.array([2], np.int32),
                                n_in=2)
    tape = tapead.api.Tape.from_data(data)
    op[2] = 3  # the caller's array is theirs: the tape holds a copy
    assert tape(np.array([2.0, 3.0])) == 6.0


def test_a_square_direction_matrix_with_as_many_points_is_refused_not_guessed(tape3):
    X = np.ones((3, 3))
    with pytest.raises(ValueError, match="ambiguous"):
        tape3.jvp(X, np.eye(3))
    with pytest.raises(ValueError, match="ambiguous"):
        tapead.record(lambda x: x[0] * x[1] * x[2], 3).hvp(X, np.eye(3))
    # both spellings the message offers work, and mean different things
    _, shared = tape3.jvp(X, np.eye(3)[None])
    J = tape3.jacobian(X)
    np.testing.assert_allclose(shared, J)
    V = np.arange(9.0).reshape(3, 3)
    _, per_point = tape3.jvp(X, V[:, :, None])
    np.testing.assert_allclose(per_point[:, :, 0], np.einsum("kmn,kn->km", J, V))
    # with another number of points the README idiom stays as it was
    _, J4 = tape3.jvp(np.ones((4, 3)), np.eye(3))
    assert J4.shape == (4, 2, 3)


@pytest.mark.parametrize("call", [
    lambda t, X: t(X, out=np.empty((2, 5))),                          # (2, N) for (N, 2)
    lambda t, X: t.jvp(X, np.ones(3), out=(None, np.empty((2, 5)))),
    lambda t, X: t.jacobian(X, out=np.empty((5, 3, 2))),
    lambda t, X: t.vjp(X, np.ones(2), out=(np.empty(10), None)),
])
def test_out_of_the_right_size_but_the_wrong_shape_is_refused(tape3, call):
    with pytest.raises(ValueError, match="shape"):
        call(tape3, np.ones((5, 3)))


def test_out_that_is_not_a_pair_is_refused_not_ignored(tape3):
    with pytest.raises(TypeError, match="pair"):
        tape3.jvp(np.ones((5, 3)), np.ones(3), out=np.zeros(1))


def test_out_overlapping_the_points_is_refused():
    tape = tapead.record(lambda x: x[0] * x[1], 2)
    X = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match="shares memory"):
        tape.gradient(X, out=X)
    g = np.empty((10, 2))
    assert tape.gradient(X, out=g) is not None
    np.testing.assert_array_equal(g, X[:, ::-1])


def test_out_is_filled_in_place():
    tape = tapead.record(lambda x: [x[0] * x[1], x[0] - x[1]], 2)
    X = np.random.default_rng(1).normal(size=(7, 2))
    J = np.empty((7, 2, 2))
    assert tape.jacobian(X, out=J) is not None
    np.testing.assert_array_equal(J, tape.jacobian(X))


def test_one_point_allocates_one_points_scratch_not_a_tiles():
    # the sweeps' scratch is allocated inside Numba (tracemalloc does not see it): measure the
    # peak resident memory of a process around a one-point gradient of a 400,000-row tape,
    # whose 128-point tile's scratch would be 400 MB
    script = textwrap.dedent("""
        import resource, numpy as np, tapead
        tape = tapead.record(lambda x: np.sum(x * x), 200_000, source_lines=False)
        rows = tape.stats()["rows"]["gradient"]
        tapead.record(lambda x: x[0] * x[0], 1).gradient(np.ones(1))  # kernels loaded (or compiled)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        g = tape.gradient(np.ones(200_000))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(rows, (after - before) // 1024, g[:2].tolist())
        """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=600)
    rows, grown_mib, first = out.stdout.split(maxsplit=2)
    assert int(rows) * 128 * 8 > 300 << 20  # what a full tile would take
    assert int(grown_mib) < 100, out.stdout
    assert first.strip() == "[2.0, 2.0]"


def test_jacobian_and_hessian_into_out_use_memory_bounded_by_a_block():
    tape = tapead.record(lambda x: [np.sin(x[0]) * x[1], x[0] * x[1] ** 2], 2)
    N = 8 * tapead.runtime.BLOCK
    X = np.random.default_rng(2).normal(size=(N, 2))
    J, H = np.empty((N, 2, 2)), np.empty((N, 2, 2))
    W = np.array([1.0, 0.5])
    tape.jacobian(X[:4096]), tape.hessian(X[:4096], W=W)  # compiled, threaded drivers included: not measured
    for call in (lambda: tape.jacobian(X, out=J), lambda: tape.hessian(X, W=W, out=H)):
        tracemalloc.start()
        call()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        # a few block-sized temporaries (4 MiB each), never arrays of all N points (32 MiB each)
        assert peak < 24 << 20, peak
    np.testing.assert_allclose(J[:5], np.stack([tape.jacobian(x) for x in X[:5]]))
    np.testing.assert_allclose(H[-5:], np.stack([tape.hessian(x, W=W) for x in X[-5:]]))


def test_jacobian_and_sparse_methods_report_progress():
    tape = tapead.record(lambda x: [x[0] * x[1], x[1] * x[2]], 3)
    X = np.ones((tapead.runtime.BLOCK + 5, 3))
    for method in (tape.jacobian, tape.sparse_jacobian,
                   lambda X, progress: tapead.record(lambda x: x[0] * x[1] * x[2], 3).sparse_hessian(X, progress=progress)):
        seen = []
        method(X, progress=lambda done, total: seen.append((done, total)))
        assert seen == [(tapead.runtime.BLOCK, X.shape[0]), (X.shape[0], X.shape[0])]


def test_vjp_takes_r_directions_in_one_sweep(tape3):
    X = np.random.default_rng(4).normal(size=(5, 3))
    J = tape3.jacobian(X)
    W = np.random.default_rng(5).normal(size=(5, 2, 4))
    _, per_point = tape3.vjp(X, W)
    np.testing.assert_allclose(per_point, np.einsum("kmn,kmr->knr", J, W), rtol=1e-13, atol=1e-15)
    _, shared = tape3.vjp(X, np.eye(2)[None])  # the same two directions at every point: J's rows
    np.testing.assert_allclose(shared, J.transpose(0, 2, 1), rtol=1e-13)
    _, one = tape3.vjp(X[:2], np.eye(2))  # (N, m) keeps its meaning: one direction per point
    np.testing.assert_allclose(one, np.einsum("kmn,km->kn", J[:2], np.eye(2)), rtol=1e-13)
    with pytest.raises(ValueError, match="r directions"):
        tape3.vjp(X, np.ones((2, 4)))
