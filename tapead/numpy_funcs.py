"""numpy and scipy functions that tapead records by composing rows of the op table.

Importing this module (tapead.tracer does) fills the tracer's dispatch tables:

* ufuncs with no row of their own, as scalar formulas the tracer maps over arrays:
  numpy's ``trunc``, ``isnan``, ... and scipy.special's ``ndtr``, ``log_ndtr``, ``xlogy``, ...
  (found by name on the ufunc, so scipy stays a test dependency);
* numpy functions on traced arrays (``__array_function__``): ``np.where``, ``np.fix``, the
  nan-reductions, and small dense linear algebra (``det``, ``inv``, ``solve``, ``cholesky``,
  ``norm``), unrolled into arithmetic at record time;
* refusals, for functions whose result depends on an ordering of values (``np.sort``) or that
  have no op-table form (``scipy.special.gammaln``).

Linear algebra on a recorded tape (Griewank & Walther, section 3.4 on piecewise-defined
programs): the tape is recorded once and replayed at every point, so no decision may be taken
at record time from the values. ``det`` is the Laplace expansion over column subsets, a
polynomial: value and derivative are right everywhere, singular matrices included. ``inv`` and
``solve`` are Gauss-Jordan elimination with partial pivoting chosen *per point*: each candidate
row is swapped in with ``where`` on a recorded comparison, so every point runs elimination with
its own largest pivots, and the derivative (through the selected branch) is the derivative of
the inverse wherever the matrix is invertible (a tie picks either row; both are exact). Without
pivoting, a zero leading entry ([[0, 1], [1, 0]]) would give NaN at an invertible matrix; with
pivots fixed at record time, other points would get elimination with tiny or zero pivots.
``cholesky`` needs no pivoting on positive definite matrices (NaN elsewhere, where numpy raises).
The tapes grow like n**3 (inv, solve, cholesky) and n * 2**(n-1) (det): n <= MAX_N.
"""

from __future__ import annotations

import math

import numpy as np

from tapead import tracer
from tapead.tracer import FUNCTIONS as F
from tapead.tracer import Var, asarray

MAX_N = 8  # the largest matrix np.linalg's functions are unrolled for (det: 1,024 products at 8)

_NO = np._NoValue
SQRT1_2 = math.sqrt(0.5)
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


# ---- numpy ufuncs with no row of their own ----


def trunc(x):
    """Round toward zero: floor(|x|) with x's sign (trunc(-0.5) is -0.0, as numpy's)."""
    return F["copysign"](F["floor"](abs(x)), x)


def _same(x):
    return x


NUMPY_UFUNCS = {
    "trunc": trunc,
    "isnan": lambda x: x != x,
    "isinf": lambda x: abs(x) == math.inf,
    "isfinite": lambda x: abs(x) < math.inf,
    "deg2rad": lambda x: x * (math.pi / 180.0),
    "radians": lambda x: x * (math.pi / 180.0),
    "rad2deg": lambda x: x * (180.0 / math.pi),
    "degrees": lambda x: x * (180.0 / math.pi),
    "positive": _same,
    "conjugate": _same,  # real values: np.var and np.std call it
}


# ---- scipy.special's ufuncs ----


def ndtr(x):
    """The standard normal CDF, 0.5 erfc(-x / sqrt 2): full relative accuracy in the lower tail."""
    return 0.5 * F["erfc"](x * -SQRT1_2)


def log_ndtr(x):
    """log of the normal CDF, in three pieces as scipy: log1p(-ndtr(-x)) above 0, log(ndtr(x))
    down to -20 (erfc has not underflowed), the asymptotic series of Mills' ratio below
    (log ndtr(x) = -x^2/2 - log(-x) - log sqrt(2 pi) + log(1 - 1/x^2 + 3/x^4 - ...); ten terms
    leave a relative error under 1e-18 at x = -20)."""
    upper = F["log1p"](-0.5 * F["erfc"](x * SQRT1_2))
    middle = F["log"](0.5 * F["erfc"](x * -SQRT1_2))
    t = 1.0 / (x * x)
    series = 0.0
    for k in range(10, 0, -1):  # Horner in t: sum of (-1)^k (2k-1)!! t^k, k = 1..10
        series = (series + (-1) ** k * math.prod(range(1, 2 * k, 2))) * t
    lower = -0.5 * (x * x) - F["log"](-x) - LOG_SQRT_2PI + F["log1p"](series)
    return F["where"](x > 0.0, upper, F["where"](x > -20.0, middle, lower))


def xlogy(x, y):
    """x log y, and 0 where x == 0 unless y is NaN (scipy's). ``x * log(y)`` keeps the derivative
    log y in x at x == 0; only where that product would be 0 * inf or 0 * NaN (y <= 0 or y == inf)
    is y replaced by 1."""
    bad = (x == 0.0) & ((y <= 0.0) | (y == math.inf))
    return x * F["log"](F["where"](bad, 1.0, y))


def xlog1py(x, y):
    """x log1p(y), and 0 where x == 0 unless y is NaN (as xlogy)."""
    bad = (x == 0.0) & ((y <= -1.0) | (y == math.inf))
    return x * F["log1p"](F["where"](bad, 0.0, y))


SCIPY_UFUNCS = {
    "erf": F["erf"], "erfc": F["erfc"], "expit": F["sigmoid"], "exp2": F["exp2"], "expm1": F["expm1"],
    "log1p": F["log1p"], "cbrt": F["cbrt"],
    "log_expit": lambda x: -F["softplus"](-x),
    "logit": lambda p: F["log"](p) - F["log1p"](-p),
    "ndtr": ndtr, "log_ndtr": log_ndtr, "xlogy": xlogy, "xlog1py": xlog1py,
}

_NO_ROW = "it would need a row of its own in the op table (tapead/ops.py)"
REFUSED_UFUNCS = {
    "floor_divide": "Use np.floor(a / b)",
    "remainder": "Use a - b * np.floor(a / b)",
    "fmod": "Use a - b * np.trunc(a / b)",
    "modf": "Use np.trunc(x) and x - np.trunc(x)",
    **{name: f"tapead has no substitute: {_NO_ROW}"
       for name in ("gammaln", "psi", "gamma", "loggamma", "rgamma", "beta", "betaln", "polygamma",
                    "ndtri", "erfinv", "erfcinv", "i0", "i1", "kv", "iv", "lambertw", "zeta")},
}


# ---- numpy functions on traced arrays ----


def _refuse_all(construct: str, why: str, instead: str):
    def refuse(*args, **kwargs):
        raise tracer._refuse(construct, why, instead)

    return refuse


def where(condition, x=_NO, y=_NO):
    """np.where(cond, x, y): a recorded select where the condition is traced, numpy's own where not."""
    if x is _NO and y is _NO:
        raise tracer._refuse("np.where(cond) with one argument", "the indices it returns depend on the values",
                             "Use np.where(cond, a, b) or tapead.where(cond, a, b) to select per point")
    if x is _NO or y is _NO:
        raise ValueError("either both or neither of x and y should be given")
    if tracer.holds_traced(condition):
        return F["where"](condition, x, y)
    obj = tracer._object_array
    return tracer._wrap(np.where(np.asarray(tracer._plain(condition)), obj(x), obj(y)))


def fix(x, out=None):
    """np.fix: trunc, elementwise."""
    return tracer._dispatch_ufunc(np.trunc, "__call__", (x,), {"out": out})


def _no_nan(a, fill):
    a = asarray(a)
    return F["where"](a != a, fill, a), a


def _nan_reduction(reduce, fill, empty_is_nan=False):
    def nan_reduce(a, axis=None, dtype=None, out=None, keepdims=False, **rest):
        if out is not None or any(v is not _NO for v in rest.values()):
            raise tracer._refuse(f"np.nan{reduce.__name__}(..., out= or {', '.join(rest)}=)", "not supported",
                                 f"Use np.nan{reduce.__name__}(a, axis, keepdims=...)")
        keepdims = False if keepdims is _NO else keepdims
        b, a = _no_nan(a, fill)
        result = reduce(b, axis=axis, keepdims=keepdims)
        if empty_is_nan:  # every element NaN: NaN, not the fill value
            count = np.sum(a == a, axis=axis, keepdims=keepdims)
            result = F["where"](count == 0.0, math.nan, result)
        return result

    nan_reduce.__name__ = f"nan{reduce.__name__}"
    return nan_reduce


def nanmean(a, axis=None, dtype=None, out=None, keepdims=False, **rest):
    total = _nan_reduction(np.sum, 0.0)(a, axis, dtype, out, keepdims, **rest)
    a = asarray(a)
    return total / np.sum(a == a, axis=axis, keepdims=False if keepdims is _NO else keepdims)


# ---- linear algebra, unrolled (see the module docstring for the methods) ----


def _square(a, name: str, cost: str):
    """``a`` as an object array of square matrices of order n <= MAX_N, and n (``cost``: the
    instructions one takes, for the error)."""
    a = np.asarray(tracer._plain(a), dtype=object)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise np.linalg.LinAlgError(f"np.linalg.{name}: last 2 dimensions of the array must be square")
    n = a.shape[-1]
    if n > MAX_N:
        raise tracer._refuse(f"np.linalg.{name} of a {n}x{n} matrix",
                             f"tapead unrolls it at record time ({cost} instructions), for n <= {MAX_N} only",
                             "Write the elimination for your matrix's structure (banded, triangular) with traced "
                             "arithmetic, or reduce the size", error=ValueError)
    return a, n


def _stacked(fn, a, out_shape):
    """fn over the matrices of a stack a (..., n, n), each giving out_shape."""
    out = np.empty(a.shape[:-2] + out_shape, dtype=object)
    for index in np.ndindex(a.shape[:-2]):
        out[index] = fn(a[index].tolist())
    return tracer._wrap(out)


def _zero(v) -> bool:
    return not isinstance(v, Var) and v == 0


def _signed_sum(terms):
    terms = sorted(terms, key=lambda t: t[0])  # even-signed terms first, so the sum starts without a negation
    total = terms[0][1] if terms[0][0] == 0 else -terms[0][1]
    for odd, t in terms[1:]:
        total = total - t if odd else total + t
    return total


def _det(m):
    """Laplace expansion along rows over column subsets: D[S] is the determinant of the first |S|
    rows and the columns in bitmask S; D[S + j] collects (-1)^(columns of S above j) m[k][j] D[S]."""
    n = len(m)
    d = {0: 1.0}
    for k in range(n):
        terms: dict[int, list] = {}
        for s, d_s in d.items():
            for j in range(n):
                if not s >> j & 1 and not _zero(m[k][j]):
                    terms.setdefault(s | 1 << j, []).append((bin(s >> j).count("1") % 2, m[k][j] * d_s))
        d = {s: _signed_sum(ts) for s, ts in terms.items()}
    return d.get((1 << n) - 1, 0.0)


def _eliminate(m, b):
    """A^-1 B by Gauss-Jordan elimination, partial pivoting chosen per point with where."""
    n = len(m)
    rows = [list(m[i]) + list(b[i]) for i in range(n)]
    for k in range(n):
        for i in range(k + 1, n):  # bring the largest |entry| of column k (rows k..) to row k
            if _zero(rows[i][k]):
                continue
            swap = abs(rows[i][k]) > abs(rows[k][k])
            if not isinstance(swap, Var):
                if swap:
                    rows[k], rows[i] = rows[i], rows[k]
                continue
            for j in range(k, len(rows[k])):
                a, c = rows[k][j], rows[i][j]
                if a is not c and not (_zero(a) and _zero(c)):
                    rows[k][j], rows[i][j] = F["where"](swap, c, a), F["where"](swap, a, c)
        pivot = rows[k][k]
        rows[k] = rows[k][: k + 1] + [r / pivot for r in rows[k][k + 1 :]]
        for i in range(n):
            f = rows[i][k]
            if i != k and not _zero(f):
                rows[i] = rows[i][: k + 1] + [r - f * q for r, q in zip(rows[i][k + 1 :], rows[k][k + 1 :])]
    return [row[n:] for row in rows]


def det(a):
    """np.linalg.det on traced matrices (n <= MAX_N): exact polynomial, right at singular matrices too."""
    a, n = _square(a, "det", "about n * 2**n")
    return _stacked(_det, a, ())


def slogdet(a):
    """np.linalg.slogdet: (sign, log |det|) of det's polynomial."""
    d = det(a)
    return F["sign"](d), F["log"](abs(d))


def inv(a):
    """np.linalg.inv on traced matrices (n <= MAX_N); inf or NaN where singular."""
    a, n = _square(a, "inv", "about 4 n**3")
    identity = np.eye(n).tolist()
    return _stacked(lambda m: np.array(_eliminate(m, identity), dtype=object), a, (n, n))


def solve(a, b):
    """np.linalg.solve(a, b) for one matrix a (n <= MAX_N) and b of shape (n,) or (n, k)."""
    a, n = _square(a, "solve", "about 2 n**2 (n + k)")
    b = np.asarray(tracer._plain(b), dtype=object)
    if a.ndim != 2 or b.ndim not in (1, 2) or b.shape[0] != n:
        raise tracer._refuse(f"np.linalg.solve of shapes {a.shape} and {b.shape}", "tapead solves one system "
                             "a (n, n), b (n,) or (n, k)", "Loop over the stack", error=ValueError)
    x = np.array(_eliminate(a.tolist(), b.reshape(n, -1).tolist()), dtype=object)
    return tracer._wrap(x.reshape(b.shape))


def _cholesky(m):
    n = len(m)
    low = [[0.0] * n for _ in range(n)]
    for j in range(n):
        for i in range(j, n):
            s = m[i][j]
            for k in range(j):
                s = s - low[i][k] * low[j][k]
            low[i][j] = F["sqrt"](s) if i == j else s / low[j][j]
    return np.array(low, dtype=object)


def cholesky(a, /, *, upper=False):
    """np.linalg.cholesky (n <= MAX_N): reads the lower triangle (upper=True: the upper one),
    NaN where the matrix is not positive definite (numpy raises LinAlgError)."""
    a, n = _square(a, "cholesky", "about n**3 / 3")
    if upper:
        return np.swapaxes(_stacked(_cholesky, np.swapaxes(a, -1, -2), (n, n)), -1, -2)
    return _stacked(_cholesky, a, (n, n))


def norm(x, ord=None, axis=None, keepdims=False):
    """np.linalg.norm: vector norms of every order; matrix norms 'fro', 1, -1, inf, -inf."""
    x = asarray(x)
    if axis is None and ord is None:
        return F["sqrt"](np.sum(x * x, keepdims=keepdims))
    axes = tuple(range(x.ndim)) if axis is None else tracer.normalize_axis_tuple(axis, x.ndim)
    if len(axes) == 1:
        return _vector_norm(x, ord, axes[0], keepdims)
    if len(axes) != 2:
        raise ValueError("Improper number of dimensions to norm.")
    r, c = axes
    if ord in (None, "fro"):
        return F["sqrt"](np.sum(x * x, axis=axes, keepdims=keepdims))
    if ord not in (1, -1, math.inf, -math.inf):
        raise tracer._refuse(f"np.linalg.norm(A, ord={ord!r})", "it needs singular values and tapead has no SVD",
                             "Use ord='fro', 1, -1, np.inf or -np.inf", error=ValueError)
    inner, outer = (r, c) if ord in (1, -1) else (c, r)  # 1: largest column sum, inf: largest row sum
    sums = np.sum(abs(x), axis=inner, keepdims=True)
    result = (np.max if ord > 0 else np.min)(sums, axis=outer, keepdims=True)
    return result if keepdims else tracer._wrap(np.squeeze(tracer._plain(result), axis=axes))


def _vector_norm(x, ord, axis, keepdims):
    if ord is None or ord == 2:
        return F["sqrt"](np.sum(x * x, axis=axis, keepdims=keepdims))
    if isinstance(ord, str):
        raise ValueError(f"Invalid norm order '{ord}' for vectors")
    if ord == math.inf or ord == -math.inf:
        return (np.max if ord > 0 else np.min)(abs(x), axis=axis, keepdims=keepdims)
    if ord == 0:
        return np.sum(x != 0.0, axis=axis, keepdims=keepdims)
    if ord == 1:
        return np.sum(abs(x), axis=axis, keepdims=keepdims)
    return np.sum(abs(x) ** ord, axis=axis, keepdims=keepdims) ** (1.0 / ord)


_ORDERING = "the result depends on an ordering of the values, unknown while recording"
ARRAY_FUNCTIONS = {
    np.where: where,
    np.fix: fix,
    np.nansum: _nan_reduction(np.sum, 0.0),
    np.nanprod: _nan_reduction(np.prod, 1.0),
    np.nanmax: _nan_reduction(np.max, -math.inf, empty_is_nan=True),
    np.nanmin: _nan_reduction(np.min, math.inf, empty_is_nan=True),
    np.nanmean: nanmean,
    np.linalg.det: det,
    np.linalg.slogdet: slogdet,
    np.linalg.inv: inv,
    np.linalg.solve: solve,
    np.linalg.cholesky: cholesky,
    np.linalg.norm: norm,
    **{getattr(np, name): _refuse_all(f"np.{name}", _ORDERING,
                                      "Use np.max / np.min (tapead.maximum / tapead.minimum) or tapead.where, "
                                      "or sort numbers outside the recorded function")
       for name in ("sort", "argsort", "argmax", "argmin", "median", "percentile", "quantile", "partition",
                    "argpartition", "unique", "nonzero", "argwhere", "flatnonzero", "nanmedian")},
    **{getattr(np.linalg, name): _refuse_all(f"np.linalg.{name}", "tapead has no eigen- or singular value "
                                             "decomposition", "Use det, inv, solve, cholesky or norm")
       for name in ("eig", "eigh", "eigvals", "eigvalsh", "svd", "pinv", "lstsq", "matrix_rank", "qr")},
}

tracer.ARRAY_FUNCTIONS.update(ARRAY_FUNCTIONS)
tracer.NUMPY_UFUNCS.update(NUMPY_UFUNCS)
tracer.SCIPY_UFUNCS.update(SCIPY_UFUNCS)
tracer.REFUSED_UFUNCS.update(REFUSED_UFUNCS)
