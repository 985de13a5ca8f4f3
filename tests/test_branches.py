"""Branch guards (tapead.branches): Python control flow on traced values, decided per point.

Every point's results must equal those of a tape recorded with plain code for the branch that
point takes (the branch is chosen here with numpy on the point itself), or finite differences.
"""

from __future__ import annotations

import doctest
import math
import pickle

import numpy as np
import pytest

import tapead
import tapead.branches
from tapead.branches import BranchError, GuardedTape


def _record(f, n, at, **kwargs):
    return tapead.record(f, n, branches="guard", at=np.asarray(at, dtype=float), **kwargs)


def _per_branch(branches: list, which: np.ndarray, method: str, X, *args, **kwargs) -> np.ndarray:
    """method's result at every point of X from the plain tape of the branch it takes (which[k])."""
    results = [getattr(tape, method)(X, *args, **kwargs) for tape in branches]
    first = np.asarray(results[0][1] if isinstance(results[0], tuple) else results[0])
    out = np.empty_like(first)
    for b, result in enumerate(results):
        result = np.asarray(result[1] if isinstance(result, tuple) else result)
        out[which == b] = result[which == b]
    return out


def _close(a, b, rtol=1e-13, atol=1e-14):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=rtol, atol=atol)


# ---- if / else ----


def _if_else(x):
    if x[0] * x[1] > 0.5:
        return np.exp(x[0]) * x[1] ** 2
    return np.sin(x[0] + 2.0 * x[1]) * x[0]


IF_BRANCHES = [lambda x: np.exp(x[0]) * x[1] ** 2, lambda x: np.sin(x[0] + 2.0 * x[1]) * x[0]]


def test_if_else_every_method_matches_the_plain_tape_of_each_points_branch():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1.5, 1.5, (300, 2))
    which = (X[:, 0] * X[:, 1] <= 0.5).astype(int)  # 0: the if branch, 1: the else branch
    assert 0 < which.sum() < len(which)
    tape = _record(_if_else, 2, at=[1.0, 1.0])
    plain = [tapead.record(g, 2) for g in IF_BRANCHES]
    V = rng.normal(size=(300, 2))
    _close(tape(X), _per_branch(plain, which, "__call__", X))
    y, g = tape.value_and_gradient(X)
    _close(y, _per_branch(plain, which, "__call__", X))
    _close(g, _per_branch(plain, which, "gradient", X))
    _close(tape.gradient(X), g)
    _close(tape.jvp(X, V)[1], _per_branch(plain, which, "jvp", X, V))
    _close(tape.vjp(X, np.ones(300))[1], _per_branch(plain, which, "vjp", X, np.ones(300)))
    for mode in ("forward", "reverse"):
        _close(tape.jacobian(X, mode=mode), _per_branch(plain, which, "jacobian", X, mode=mode))
    _close(tape.hessian(X), _per_branch(plain, which, "hessian", X))
    _close(tape.hvp(X, V), _per_branch(plain, which, "hvp", X, V))
    y, J = tape.value_and_jacobian(X)
    _close(y, tape(X))
    _close(J, _per_branch(plain, which, "jacobian", X))
    y, g, H = tape.value_gradient_and_hessian(X)
    _close(y, tape(X))
    _close(g, _per_branch(plain, which, "gradient", X))
    _close(H, _per_branch(plain, which, "hessian", X))
    assert len(tape.paths) == 2  # one re-recording, at the first point of the else branch
    assert [g.taken for g in tape.paths[0].guards] == [True] and [g.taken for g in tape.paths[1].guards] == [False]
    np.testing.assert_array_equal(tape.path_index(X), which)
    assert len(tape.paths) == 2  # the paths are cached: evaluating again records nothing


def test_points_that_all_take_the_first_branch_record_nothing_more():
    tape = _record(_if_else, 2, at=[1.0, 1.0])
    X = np.random.default_rng(1).uniform(1.0, 2.0, (50, 2))
    _close(tape.gradient(X), tapead.record(IF_BRANCHES[0], 2).gradient(X))
    assert len(tape.paths) == 1


def test_results_stay_right_as_calls_alternate_between_mixed_and_one_branch_points():
    # a call with many points off the first path makes the next ones sort the points first;
    # a call with all of them on it goes back to one sweep with the guards as extra outputs
    rng = np.random.default_rng(7)
    mixed, first = rng.uniform(-1.5, 1.5, (200, 2)), rng.uniform(1.0, 2.0, (200, 2))
    tape = _record(_if_else, 2, at=[1.0, 1.0])
    plain = [tapead.record(g, 2) for g in IF_BRANCHES]
    for X in (mixed, first, first, mixed, mixed, first):
        which = (X[:, 0] * X[:, 1] <= 0.5).astype(int)
        _close(tape.gradient(X), _per_branch(plain, which, "gradient", X))
        _close(tape(X), _per_branch(plain, which, "__call__", X))
        _close(tape.jvp(X, np.ones(2))[1], _per_branch(plain, which, "jvp", X, np.ones(2)))
    assert len(tape.paths) == 2


def test_several_outputs_jacobians_and_weighted_hessians_per_branch():
    def f(x):
        if x[0] < x[1]:
            return [x[0] * x[1], np.exp(x[1])]
        return [x[0] + x[1] ** 3, np.sin(x[0] * x[1])]

    plain = [tapead.record(lambda x: [x[0] * x[1], np.exp(x[1])], 2),
             tapead.record(lambda x: [x[0] + x[1] ** 3, np.sin(x[0] * x[1])], 2)]
    rng = np.random.default_rng(8)
    X, W = rng.uniform(-1.0, 1.0, (120, 2)), rng.normal(size=(120, 2))
    which = (X[:, 0] >= X[:, 1]).astype(int)
    tape = _record(f, 2, at=[0.0, 1.0])
    _close(tape(X), _per_branch(plain, which, "__call__", X))
    _close(tape.jacobian(X), _per_branch(plain, which, "jacobian", X))
    _close(tape.vjp(X, W)[1], _per_branch(plain, which, "vjp", X, W))
    _close(tape.hessian(X, W=W), _per_branch(plain, which, "hessian", X, W=W))
    _close(tape.hessian(X, W=np.array([1.0, -2.0])), _per_branch(plain, which, "hessian", X, W=np.array([1.0, -2.0])))


def test_gradients_match_finite_differences():
    tape = _record(_if_else, 2, at=[-1.0, 1.0])
    X = np.array([[1.2, 0.9], [-0.7, 0.3], [0.4, -1.1], [1.5, 1.4]])
    h = 1e-6
    fd = np.stack([(tape(X + h * e) - tape(X - h * e)) / (2 * h) for e in np.eye(2)], axis=1)
    _close(tape.gradient(X), fd, rtol=1e-7, atol=1e-8)


# ---- nested ifs, while, max()/min(), abs by if ----


def _nested(x):
    if x[0] > 0:
        if x[1] > x[0]:
            return x[0] * x[1] ** 3
        return np.log1p(x[0] ** 2) + x[1]
    elif x[1] < -0.5 or x[0] < -1.0:
        return np.cos(x[0] * x[1])
    return x[0] ** 2 - x[1]


NESTED_BRANCHES = [lambda x: x[0] * x[1] ** 3, lambda x: np.log1p(x[0] ** 2) + x[1],
                   lambda x: np.cos(x[0] * x[1]), lambda x: x[0] ** 2 - x[1]]


def _nested_branch(X):
    a, b = X[:, 0], X[:, 1]
    return np.select([(a > 0) & (b > a), a > 0, (b < -0.5) | (a < -1.0)], [0, 1, 2], 3)


def test_nested_ifs_with_or_record_one_path_per_branch_taken():
    X = np.random.default_rng(2).uniform(-2.0, 2.0, (400, 2))
    which = _nested_branch(X)
    assert set(which.tolist()) == {0, 1, 2, 3}
    tape = _record(_nested, 2, at=[1.0, 2.0])
    plain = [tapead.record(g, 2) for g in NESTED_BRANCHES]
    _close(tape(X), _per_branch(plain, which, "__call__", X))
    _close(tape.gradient(X), _per_branch(plain, which, "gradient", X))
    _close(tape.hessian(X), _per_branch(plain, which, "hessian", X))
    # x0 <= 0 with x1 < -0.5 and with x1 >= -0.5, x0 < -1: two paths (different guards) for branch 2
    assert len(tape.paths) == 5
    assert tape.path_index(X).max() == 4


def test_every_point_equals_the_first_path_of_a_tape_recorded_at_that_point():
    X = np.random.default_rng(9).uniform(-2.0, 2.0, (40, 2))
    tape = _record(_nested, 2, at=[1.0, 2.0])
    values, gradients, hessians = tape(X), tape.gradient(X), tape.hessian(X)
    for k, x in enumerate(X):
        here = _record(_nested, 2, at=x).paths[0].tape  # the branch x takes, recorded at x
        _close(values[k], here(x))
        _close(gradients[k], here.gradient(x))
        _close(hessians[k], here.hessian(x))


def test_threads_share_the_paths_of_one_tape():
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(10)
    blocks = [rng.uniform(-2.0, 2.0, (100, 2)) for _ in range(8)]
    tape = _record(_nested, 2, at=[1.0, 2.0])
    plain = [tapead.record(g, 2) for g in NESTED_BRANCHES]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(tape.gradient, blocks))
    for X, g in zip(blocks, results):
        _close(g, _per_branch(plain, _nested_branch(X), "gradient", X))
    assert len(tape.paths) == 5  # a thread about to record first looks at the paths other threads added


def test_a_while_loop_on_a_traced_value():
    def halve_until_small(x):
        y = x[0]
        while y > 1.0:
            y = y / 2.0
        return y * x[1]

    tape = _record(halve_until_small, 2, at=[0.5, 1.0])
    X = np.array([[0.5, 2.0], [3.0, 1.0], [7.0, 3.0], [1.5, -1.0]])
    halvings = np.array([0, 2, 3, 1])
    _close(tape(X), X[:, 0] / 2.0 ** halvings * X[:, 1])
    _close(tape.gradient(X), np.stack([X[:, 1] / 2.0 ** halvings, X[:, 0] / 2.0 ** halvings], axis=1))
    assert len(tape.paths) == 4


def test_python_max_and_min_match_tapead_maximum_away_from_ties():
    def f(x):
        return max(x[0], x[1] ** 2, 0.5) * min(x[2], np.sin(x[0]))

    def g(x):
        return tapead.maximum(tapead.maximum(x[0], x[1] ** 2), 0.5) * tapead.minimum(x[2], np.sin(x[0]))

    X = np.random.default_rng(3).uniform(-1.5, 1.5, (300, 3))
    tape, smooth = _record(f, 3, at=[1.0, 0.1, 0.2]), tapead.record(g, 3)
    _close(tape(X), smooth(X))
    _close(tape.gradient(X), smooth.gradient(X))
    _close(tape.hessian(X), smooth.hessian(X))
    # Python's max(a, b, c) asks b > a, then c > the larger: 4 outcomes; min(d, e) asks e < d: 2
    a, b, d, e = X[:, 0], X[:, 1] ** 2, X[:, 2], np.sin(X[:, 0])
    signatures = {(p, q, r) for p, q, r in zip(b > a, 0.5 > np.maximum(a, b), e < d)}
    assert len(tape.paths) == len(signatures) == 8


def test_abs_by_if_and_a_point_on_the_boundary_follows_python():
    tape = _record(lambda x: x[0] if x[0] >= 0 else -x[0], 1, at=[2.0])
    X = np.array([[-3.0], [0.0], [-0.0], [4.0]])
    _close(tape(X), np.abs(X[:, 0]))
    # 0.0 >= 0 and -0.0 >= 0 are true in Python: the first branch, derivative 1 (np.abs has 0 there)
    _close(tape.gradient(X)[:, 0], [-1.0, 1.0, 1.0, 1.0])
    _close(tape.gradient(X[[0, 3]]), tapead.record(lambda x: np.abs(x[0]), 1).gradient(X[[0, 3]]))


def test_nan_points_take_the_branch_python_would():
    tape = _record(lambda x: x[0] * 2.0 if x[0] > 0 else x[0] * 3.0, 1, at=[1.0])
    y, g = tape.value_and_gradient(np.array([[np.nan], [1.0]]))
    assert np.isnan(y[0]) and g[0, 0] == 3.0 and g[1, 0] == 2.0  # nan > 0 is False


# ---- float(), int(), math.trunc ----


def test_float_of_a_condition_is_a_guarded_step():
    tape = _record(lambda x: float(x[0] >= 0) * x[0] ** 2 + x[1], 2, at=[1.0, 0.0])
    X = np.array([[1.5, 1.0], [-2.0, 1.0], [0.0, 0.0]])
    _close(tape(X), [3.25, 1.0, 0.0])
    _close(tape.gradient(X), [[3.0, 1.0], [0.0, 1.0], [0.0, 1.0]])
    assert len(tape.paths) == 2


def test_complex_of_a_condition_is_the_same_step():
    tape = _record(lambda x: complex(x[0] >= 0).real * x[0] ** 2 + x[1], 2, at=[1.0, 0.0])
    _close(tape(np.array([[1.5, 1.0], [-2.0, 1.0]])), [3.25, 1.0])
    with pytest.raises(TypeError, match="converting a traced value"):
        tapead.record(lambda x: complex(x[0] > 0), 1)

    def store(x):
        a = np.zeros(2, dtype=complex)
        a[0] = x[0] > 0
        return x[0]

    with pytest.raises(TypeError, match="dtype=object"):  # the hint for a store into a number array
        tapead.record(store, 1)


def test_int_is_guarded_to_its_integer_part_and_math_trunc_is_traced():
    def table(x):
        k = int(x[0])  # an index: known per path
        return [1.0, 2.0, 5.0, 7.0][k] * x[1] + (x[0] - math.trunc(x[0])) ** 2

    tape = _record(table, 2, at=[0.5, 1.0])
    X = np.array([[0.25, 2.0], [1.5, 1.0], [2.75, 3.0], [3.5, 1.0], [1.25, 2.0]])
    k = np.trunc(X[:, 0]).astype(int)
    frac = X[:, 0] - k
    _close(tape(X), np.array([1.0, 2.0, 5.0, 7.0])[k] * X[:, 1] + frac ** 2)
    _close(tape.gradient(X), np.stack([2 * frac, np.array([1.0, 2.0, 5.0, 7.0])[k]], axis=1))
    assert len(tape.paths) == 4 and tape.path_index(X).tolist() == [0, 1, 2, 3, 1]
    # math.trunc alone records no guard: one plain tape, derivative 0 through the rounding
    plain = tapead.record(lambda x: math.trunc(x[0]) * x[1], 2)
    _close(plain(np.array([[-2.5, 2.0], [3.7, 1.0]])), [-4.0, 3.0])
    _close(plain.gradient(np.array([[-2.5, 2.0]])), [[0.0, -2.0]])


def test_max_paths_bounds_the_recordings():
    tape = _record(lambda x: int(x[0]) * x[0], 1, at=[0.5], max_paths=3)
    X = np.arange(6.0).reshape(-1, 1) + 0.5
    with pytest.raises(BranchError, match=r"max_paths=3.*tapead.where"):
        tape.gradient(X)
    assert len(tape.paths) == 3
    _close(tape.gradient(X[:3]), np.array([[0.0 + 0.0], [1.0], [2.0]]))  # the recorded paths still serve


# ---- reductions, one point, out= and progress=, parameters ----


def test_reductions_sum_over_all_paths():
    rng = np.random.default_rng(4)
    X = rng.uniform(-2.0, 2.0, (200, 2))
    w = rng.uniform(0.5, 2.0, 200)
    V = rng.normal(size=(200, 2))
    tape = _record(_nested, 2, at=[1.0, 2.0])
    for reduce, weights in (("sum", None), ("mean", None), ("sum", w), ("mean", w)):
        scale = (1.0 if reduce == "sum" else 1.0 / (200 if weights is None else w.sum())) * \
            (np.ones(200) if weights is None else weights)
        kw = {"reduce": reduce, "weights": weights}
        _close(tape(X, **kw), scale @ tape(X), rtol=1e-12)
        y, g = tape.value_and_gradient(X, **kw)
        _close(y, scale @ tape(X), rtol=1e-12)
        _close(g, scale @ tape.gradient(X), rtol=1e-12)
        _close(tape.gradient(X, **kw), g, rtol=1e-12)
        _close(tape.vjp(X, np.ones(200), **kw)[1], g, rtol=1e-12)
        _close(tape.jacobian(X, **kw), np.einsum("k,kj->j", scale, tape.jacobian(X)), rtol=1e-12)
        _close(tape.hessian(X, **kw), np.einsum("k,kij->ij", scale, tape.hessian(X)), rtol=1e-12, atol=1e-12)
        _close(tape.hvp(X, V, **kw), np.einsum("k,ki->i", scale, tape.hvp(X, V)), rtol=1e-12, atol=1e-12)
        y, g, H = tape.value_gradient_and_hessian(X, **kw)
        _close(y, scale @ tape(X), rtol=1e-12)
        _close(g, scale @ tape.gradient(X), rtol=1e-12, atol=1e-12)
        _close(H, np.einsum("k,kij->ij", scale, tape.hessian(X)), rtol=1e-12, atol=1e-12)


def test_one_point_has_no_point_axis_and_can_be_on_another_path():
    tape = _record(_if_else, 2, at=[1.0, 1.0])
    x = np.array([-1.0, 0.5])
    other = tapead.record(IF_BRANCHES[1], 2)
    assert np.shape(tape(x)) == ()
    _close(tape(x), other(x))
    _close(tape.gradient(x), other.gradient(x))
    _close(tape.hessian(x), other.hessian(x))
    _close(tape.jvp(x, np.array([1.0, 2.0]))[1], other.jvp(x, np.array([1.0, 2.0]))[1])
    assert tape.gradient(x).shape == (2,) and tape.hessian(x).shape == (2, 2) and tape.path_index(x) == 1


def test_out_and_progress_are_honoured_across_paths():
    X = np.random.default_rng(5).uniform(-2.0, 2.0, (100, 2))
    tape = _record(_nested, 2, at=[1.0, 2.0])
    calls = []
    y, g = np.empty(100), np.empty((100, 2))
    H = np.empty((100, 2, 2))
    result = tape.value_and_gradient(X, out=(y, g), progress=lambda done, total: calls.append((done, total)))
    _close(y, tape(X))
    _close(g, tape.gradient(X))
    _close(result[1], g)
    assert calls[-1] == (100, 100) and all(a[0] <= b[0] for a, b in zip(calls, calls[1:]))
    _close(tape.hessian(X, out=H), H)
    _close(H, tape.hessian(X))
    with pytest.raises(ValueError, match="out"):
        tape.gradient(X, out=np.empty((3, 2)))


def test_parameters_take_part_in_guards():
    def huber(x, p):  # a piecewise model: Huber loss of a residual, threshold p[1]
        r = x[0] * p[0] - x[1]
        if abs(r) <= p[1]:
            return 0.5 * r * r
        return p[1] * (abs(r) - 0.5 * p[1])

    rng = np.random.default_rng(6)
    X, P = rng.normal(size=(200, 2)), np.column_stack([rng.normal(size=200), rng.uniform(0.2, 1.0, 200)])
    tape = tapead.record(huber, 2, 2, branches="guard", at=np.zeros(2), at_params=np.array([1.0, 1.0]))
    quadratic = tapead.record(lambda x, p: 0.5 * (x[0] * p[0] - x[1]) ** 2, 2, 2)
    linear = tapead.record(lambda x, p: p[1] * (abs(x[0] * p[0] - x[1]) - 0.5 * p[1]), 2, 2)
    which = (np.abs(X[:, 0] * P[:, 0] - X[:, 1]) > P[:, 1]).astype(int)
    assert 0 < which.sum() < 200
    _close(tape(X, P), _per_branch([quadratic, linear], which, "__call__", X, P))
    _close(tape.gradient(X, P), _per_branch([quadratic, linear], which, "gradient", X, P))
    _close(tape.hessian(X, P), _per_branch([quadratic, linear], which, "hessian", X, P))
    # a guard on a parameter alone
    signed = tapead.record(lambda x, p: x[0] * x[1] if p[0] > 0 else -x[0], 2, 2, branches="guard",
                           at=np.zeros(2), at_params=np.ones(2))
    _close(signed.gradient(X, P), np.where(P[:, :1] > 0, X[:, ::-1], [-1.0, 0.0]))
    # one x with N rows of P: a likelihood over observations, summed
    x = np.array([0.3, -0.2])
    _close(tape.gradient(x, P, reduce="sum"), tape.gradient(np.tile(x, (200, 1)), P).sum(axis=0), rtol=1e-12)


# ---- printing, explain, refusals ----


def test_print_and_explain_show_the_guards():
    tape = _record(_if_else, 2, at=[1.0, 1.0])
    text = str(tape)
    assert "guard v1 > 0.5 taken: True" in text and "1 path recorded (0 re-recordings" in text
    tape(np.array([[-1.0, 1.0]]))
    assert "guard v1 > 0.5 taken: False" in str(tape) and "2 paths recorded (1 re-recording;" in str(tape)
    explained = str(tape.explain(np.array([-1.0, 1.0])))
    assert "Branch guards of path 2" in explained and "taken: False" in explained
    assert explained.rstrip().endswith("= 0")  # the tested value at this point: the condition is false
    assert "<pre>" in tape.explain(np.array([2.0, 1.0]))._repr_html_()


def test_without_branches_the_old_error_remains():
    with pytest.raises(TypeError, match=r"if/else.*tapead\.where.*branches='guard'"):
        tapead.record(_if_else, 2)
    with pytest.raises(TypeError, match=r"max\(\)"):
        tapead.record(lambda x: max(x[0], x[1]), 2)
    with pytest.raises(TypeError, match="converting a traced value"):
        tapead.record(lambda x: float(x[0] > 0), 1)


def test_a_function_without_branches_gives_a_plain_tape():
    tape = _record(lambda x: x[0] * x[1], 2, at=[1.0, 2.0])
    assert type(tape) is tapead.Tape


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(TypeError, match="needs at=x0"):
        tapead.record(_if_else, 2, branches="guard")
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        _record(_if_else, 2, at=[1.0])
    with pytest.raises(ValueError, match="branches must be None"):
        tapead.record(_if_else, 2, branches="yes", at=np.ones(2))
    with pytest.raises(TypeError, match="go with branches='guard'"):
        tapead.record(_if_else, 2, at=np.ones(2))
    with pytest.raises(ValueError, match="max_paths"):
        _record(_if_else, 2, at=[1.0, 1.0], max_paths=0)
    with pytest.raises(TypeError, match="at_params"):
        tapead.record(lambda x, p: x[0] if p[0] > 0 else -x[0], 1, 1, branches="guard", at=np.ones(1))


def test_what_a_guarded_tape_cannot_do_says_so():
    tape = _record(_if_else, 2, at=[1.0, 1.0])
    assert isinstance(tape, GuardedTape)
    X = np.ones((2, 2))
    for call in (lambda: tape.sparse_jacobian(X), lambda: tape.sparse_hessian(X), lambda: tape.save("t.tape"),
                 lambda: pickle.dumps(tape), lambda: tapead.record(lambda x: tape(x), 2)):
        with pytest.raises(TypeError, match="branches='guard'"):
            call()
    with pytest.raises(TypeError, match="one per path"):
        tapead.optimize(tape)
    tape.paths[0].tape.sparse_jacobian(X)  # a path's own tape is a plain Tape
    tapead.optimize(tape.paths[0].tape)


def test_find_nonfinite_reports_points_on_every_path():
    tape = _record(lambda x: np.log(x[0]) if x[1] > 0 else np.sqrt(x[0]), 2, at=[1.0, 1.0])
    X = np.array([[1.0, 1.0], [-1.0, 1.0], [2.0, -1.0], [-2.0, -1.0]])
    found = tape.find_nonfinite(X)
    assert [(r.point, r.op) for r in found] == [(1, "log"), (3, "sqrt")]


def test_the_modules_examples_run():
    result = doctest.testmod(tapead.branches, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 2 and result.failed == 0


def test_weighted_reductions_with_every_point_on_one_path():
    tape = _record(_if_else, 2, at=[1.0, 1.0])
    plain = tapead.record(IF_BRANCHES[0], 2)
    rng = np.random.default_rng(11)
    N = tapead.runtime.BLOCK + 1000  # more than one block
    X = rng.uniform(1.0, 2.0, (N, 2))  # x0 * x1 > 0.5 everywhere: the first path only
    w, W = rng.uniform(0, 1, N), rng.normal(size=(N,))
    np.testing.assert_allclose(tape(X, reduce="sum", weights=w), plain(X, reduce="sum", weights=w), rtol=1e-13)
    for got, want in zip(tape.value_and_gradient(X, reduce="mean", weights=w),
                         plain.value_and_gradient(X, reduce="mean", weights=w)):
        np.testing.assert_allclose(got, want, rtol=1e-13)
    for got, want in zip(tape.vjp(X, W, reduce="sum"), plain.vjp(X, W, reduce="sum")):
        np.testing.assert_allclose(got, want, rtol=1e-13)
    np.testing.assert_allclose(tape.jacobian(X, reduce="sum", weights=w), plain.jacobian(X, reduce="sum", weights=w),
                               rtol=1e-13)
    assert len(tape.paths) == 1


# ---- blocks of points ----


def _data_term(th, obs):
    r = th[0] * obs[0] + th[1]
    return r * r if r > 0 else -th[2] * r  # the branch depends on the observation


def test_evaluations_run_in_blocks_with_the_same_results(monkeypatch):
    """Every method and reduction over several blocks (runtime.BLOCK made small) equals the same
    call in one block: per-point results exactly, sums to rounding; progress once per block."""
    tape = _record(_data_term, 3, at=[1.0, 0.5, 2.0], n_params=1, at_params=np.array([0.3]))
    rng = np.random.default_rng(7)
    theta, obs = np.array([1.0, -0.2, 2.0]), rng.uniform(-1, 1, (2500, 1))
    X = np.tile(theta, (2500, 1)) + rng.normal(0, 0.1, (2500, 3))
    V, W = rng.normal(size=(2500, 3)), rng.normal(size=2500)
    calls = {
        "values": lambda: tape(X, obs),
        "value_and_gradient": lambda: tape.value_and_gradient(X, obs),
        "jvp": lambda: tape.jvp(X, obs, V),
        "vjp": lambda: tape.vjp(X, obs, W),
        "jacobian": lambda: tape.jacobian(X, obs),
        "hvp": lambda: tape.hvp(X, obs, V),
        "sum": lambda: tape(theta, obs, reduce="sum"),
        "gradient sum": lambda: tape.value_and_gradient(theta, obs, reduce="sum", weights=np.abs(W)),
        "hvp sum": lambda: tape.hvp(theta, obs, V[0], reduce="mean"),
    }
    whole = {name: call() for name, call in calls.items()}
    monkeypatch.setattr(tapead.runtime, "BLOCK", 1000)
    for name, call in calls.items():
        got, want = call(), whole[name]
        for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            if "sum" in name:
                _close(g, w, rtol=1e-12, atol=1e-12)
            else:
                np.testing.assert_array_equal(g, w, err_msg=name)
    Y, G = np.empty(2500), np.empty((2500, 3))
    done = []
    tape.value_and_gradient(X, obs, out=(Y, G), progress=lambda k, n: done.append((k, n)))
    np.testing.assert_array_equal(G, whole["value_and_gradient"][1])
    assert done == [(1000, 2500), (2000, 2500), (2500, 2500)]


def test_memory_of_a_reduction_does_not_grow_with_the_points(monkeypatch):
    import tracemalloc

    monkeypatch.setattr(tapead.runtime, "BLOCK", 2000)
    tape = _record(_data_term, 3, at=[1.0, 0.5, 2.0], n_params=1, at_params=np.array([0.3]))
    theta = np.array([1.0, -0.2, 2.0])
    peaks = []
    for n in (8000, 32000):
        obs = np.random.default_rng(n).uniform(-1, 1, (n, 1))
        tape.value_and_gradient(theta, obs, reduce="sum")  # paths recorded, kernels compiled
        tracemalloc.start()
        tape.value_and_gradient(theta, obs, reduce="sum")
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0] + 100_000, peaks
