"""Hand-written tile helpers of the sweeps: moving points in and out of tile rows, zeroing
adjoint rows, and the dot-product chains. None depends on the op table; the generated
``sweeps`` module calls them.

A tile is ``m`` points (``m <= tile``) held structure-of-arrays: value ``v[row, p]``, tangent
``v_dot[row, d, p]``, adjoint ``v_bar[row, d, p]``, the point index ``p`` innermost so that
every loop over a row runs over contiguous memory and vectorises (docs/design.md, "Kernels").
"""

import numpy as np
from numba import njit

FLAGS = dict(cache=True, nogil=True, error_model="numpy")
# functions called only from other kernels: no Python or C entry point to compile
INNER = dict(FLAGS, no_cpython_wrapper=True, no_cfunc_wrapper=True)
# ... and inlined by LLVM into their caller: an op of a few IEEE operations per point, where a
# call per instruction and tile (some 40 argument words) would cost as much as the op itself
CHEAP = dict(INNER, forceinline=True)

# Op codes of the dot-product chains that tapead.passes.chain_ops marks (above every op code
# of the table): a chain starts with a mulc or an addmulc, continues with addmulcs (links)
# and ends at the one whose sum the tape reads.
CHAIN_MULC, CHAIN_ADDMULC, CHAIN_LINK, CHAIN_END = 1000, 1001, 1002, 1003

# 0 and 1 as arguments of a call: a literal there would make Numba compile the callee once more,
# for that literal's own type (Literal[int](0)), beside the int64 version
ZERO, ONE = np.int64(0), np.int64(1)


@njit(inline="always", **FLAGS)
def _zero_skip_mul(a, b):
    # a * b with 0 * inf = 0 * nan = 0: the zero-skipping product
    # one select on both tests (a short-circuit `and` made a branch per product: 15-25% slower)
    return 0.0 if (a == 0.0) | (b == 0.0) else a * b


@njit(**INNER)
def _columns(src, step, n, res, first, v, start, m):
    """Columns 0 .. n of src's rows (start + p) * step into value rows res[first + j]."""
    j = 0
    while j + 8 <= n:
        r0, r1, r2, r3 = res[first + j], res[first + j + 1], res[first + j + 2], res[first + j + 3]
        r4, r5, r6, r7 = res[first + j + 4], res[first + j + 5], res[first + j + 6], res[first + j + 7]
        for p in range(m):
            q = (start + p) * step
            v[r0, p] = src[q, j]
            v[r1, p] = src[q, j + 1]
            v[r2, p] = src[q, j + 2]
            v[r3, p] = src[q, j + 3]
            v[r4, p] = src[q, j + 4]
            v[r5, p] = src[q, j + 5]
            v[r6, p] = src[q, j + 6]
            v[r7, p] = src[q, j + 7]
        j += 8
    for k in range(j, n):
        r = res[first + k]
        for p in range(m):
            v[r, p] = src[(start + p) * step, k]


@njit(**INNER)
def _load(src, step, res, first, v, start, m, buf):
    """src's columns into value rows res[first + j]: the tile's block of rows copied into
    ``buf`` first (one sequential read from memory, measured 1.5x faster), then transposed."""
    n = src.shape[1]
    if step == 1 and n >= 8:
        for p in range(m):
            for k in range(n):
                buf[p, k] = src[start + p, k]
        _columns(buf, ONE, n, res, first, v, ZERO, m)
    else:
        _columns(src, step, n, res, first, v, start, m)


@njit(**INNER)
def _store_gradient(X_bar, v_bar, bres, flags, start, m, buf):
    """X_bar[start + p, j, d] = the adjoint of input j (0 where nothing reads it); with one
    direction through ``buf``, eight columns per pass, then one sequential write."""
    n = X_bar.shape[1]
    r = X_bar.shape[2]
    if r == 1 and n >= 8:
        j = 0
        while j + 8 <= n:
            if flags[j] & 8 or flags[j + 1] & 8 or flags[j + 2] & 8 or flags[j + 3] & 8 or \
                    flags[j + 4] & 8 or flags[j + 5] & 8 or flags[j + 6] & 8 or flags[j + 7] & 8:
                break  # an unread input among them: one at a time from here
            b0, b1, b2, b3 = bres[j], bres[j + 1], bres[j + 2], bres[j + 3]
            b4, b5, b6, b7 = bres[j + 4], bres[j + 5], bres[j + 6], bres[j + 7]
            for p in range(m):
                buf[p, j] = v_bar[b0, 0, p]
                buf[p, j + 1] = v_bar[b1, 0, p]
                buf[p, j + 2] = v_bar[b2, 0, p]
                buf[p, j + 3] = v_bar[b3, 0, p]
                buf[p, j + 4] = v_bar[b4, 0, p]
                buf[p, j + 5] = v_bar[b5, 0, p]
                buf[p, j + 6] = v_bar[b6, 0, p]
                buf[p, j + 7] = v_bar[b7, 0, p]
            j += 8
        for k in range(j, n):
            if flags[k] & 8:
                for p in range(m):
                    buf[p, k] = 0.0
                continue
            b = bres[k]
            for p in range(m):
                buf[p, k] = v_bar[b, 0, p]
        for p in range(m):
            for k in range(n):
                X_bar[start + p, k, 0] = buf[p, k]
        return
    for k in range(n):
        if flags[k] & 8:
            for d in range(r):
                for p in range(m):
                    X_bar[start + p, k, d] = 0.0
            continue
        b = bres[k]
        for d in range(r):
            for p in range(m):
                X_bar[start + p, k, d] = v_bar[b, d, p]


@njit(inline="always", **FLAGS)
def _zero(v_bar, b, r, m):
    for d in range(r):
        for p in range(m):
            v_bar[b, d, p] = 0.0


@njit(inline="always", **FLAGS)
def _prior(first, old):
    # an adjoint row's value before a contribution: 0.0 at its first one (see _before)
    return 0.0 if first else old


@njit(**INNER)
def _zero_flagged(v_bar, barg0, barg1, barg2, f, i, r, m):
    """Zero the adjoint rows that instruction i's flags say start here (an instruction that
    adds nothing to them: dead, or with only zero partials)."""
    if f & 1:
        _zero(v_bar, barg0[i], r, m)
    if f & 2:
        _zero(v_bar, barg1[i], r, m)
    if f & 4:
        _zero(v_bar, barg2[i], r, m)


@njit(**INNER)
def _chain_values(op, arg0, arg1, const, res, v, acc, i, m):
    """The sum of the chain (tapead.passes.chain_ops) that starts at i, written to the row
    of its last instruction: x * c or x + c * y, then + c_k * x_k per member, four members
    per pass over the tile, rounded as the instructions are."""
    a0 = arg0[i]
    c = const[i]
    if op[i] == CHAIN_MULC:
        for p in range(m):
            acc[p] = v[a0, p] * c
    else:
        a1 = arg1[i]
        for p in range(m):
            acc[p] = v[a0, p] + c * v[a1, p]
    e = i + 1
    while op[e] != CHAIN_END:
        e += 1
    j = i + 1
    while j + 3 <= e:
        r0, r1, r2, r3 = arg1[j], arg1[j + 1], arg1[j + 2], arg1[j + 3]
        c0, c1, c2, c3 = const[j], const[j + 1], const[j + 2], const[j + 3]
        for p in range(m):
            s = acc[p] + c0 * v[r0, p]
            s = s + c1 * v[r1, p]
            s = s + c2 * v[r2, p]
            acc[p] = s + c3 * v[r3, p]
        j += 4
    for k in range(j, e + 1):
        r0 = arg1[k]
        c0 = const[k]
        for p in range(m):
            acc[p] = acc[p] + c0 * v[r0, p]
    row = res[e]
    for p in range(m):
        v[row, p] = acc[p]


@njit(**INNER)
def _chain_adjoints(op, barg0, barg1, bres, const, flags, v_bar, z_bar, e, r, m):
    """The adjoints of the chain that ends at e: c_k * (the sum's adjoint) into each x_k's
    adjoint, last member first as the instructions run, with their zero flags; the running
    sum's adjoint is the same all along (0.0 + it once a zeroed row took it), so its copies
    are skipped. The sum's adjoint goes to ``z_bar`` first: x_k's adjoint may reuse its row."""
    zb = bres[e]
    for d in range(r):
        for p in range(m):
            z_bar[d, p] = v_bar[zb, d, p]
    h = e - 1
    while op[h] == CHAIN_LINK:
        h -= 1
    j = e
    while j - 3 > h:
        for k in range(j - 3, j + 1):
            if flags[k] & 2:
                _zero(v_bar, barg1[k], r, m)
        b0, b1, b2, b3 = barg1[j], barg1[j - 1], barg1[j - 2], barg1[j - 3]
        c0, c1, c2, c3 = const[j], const[j - 1], const[j - 2], const[j - 3]
        for d in range(r):
            for p in range(m):
                z = z_bar[d, p]
                v_bar[b0, d, p] += _zero_skip_mul(c0, z)
                v_bar[b1, d, p] += _zero_skip_mul(c1, z)
                v_bar[b2, d, p] += _zero_skip_mul(c2, z)
                v_bar[b3, d, p] += _zero_skip_mul(c3, z)
        j -= 4
    for k in range(j, h, -1):
        if flags[k] & 2:
            _zero(v_bar, barg1[k], r, m)
        b0 = barg1[k]
        c0 = const[k]
        for d in range(r):
            for p in range(m):
                v_bar[b0, d, p] += _zero_skip_mul(c0, z_bar[d, p])
    f = flags[h]
    if f & 1:
        _zero(v_bar, barg0[h], r, m)
    b0 = barg0[h]
    c0 = const[h]
    if op[h] == CHAIN_MULC:
        for d in range(r):
            for p in range(m):
                v_bar[b0, d, p] += _zero_skip_mul(c0, z_bar[d, p])
        return
    if f & 2:
        _zero(v_bar, barg1[h], r, m)
    b1 = barg1[h]
    for d in range(r):
        for p in range(m):
            z = z_bar[d, p] + 0.0
            v_bar[b0, d, p] += z
            v_bar[b1, d, p] += _zero_skip_mul(c0, z)


@njit(inline="always", **FLAGS)
def _zero2(v_bar, v_bar_dot, b, q, m):
    for p in range(m):
        v_bar[b, p] = 0.0
    for d in range(q):
        for p in range(m):
            v_bar_dot[b, d, p] = 0.0


@njit(**INNER)
def _seed_tangents(X_dot, x_dot_step, res, n_in, n_params, v_dot, start, m):
    """Tangent rows of the inputs from the seed directions; the parameters' are zero."""
    q = v_dot.shape[1]
    for j in range(n_in):
        for d in range(q):
            if x_dot_step == 0:  # the same seeds at every point (unit directions of a Jacobian): a fill
                s = X_dot[0, j, d]
                for p in range(m):
                    v_dot[res[j], d, p] = s
            else:
                for p in range(m):
                    v_dot[res[j], d, p] = X_dot[start + p, j, d]
    for j in range(n_in, n_in + n_params):
        for d in range(q):
            for p in range(m):
                v_dot[res[j], d, p] = 0.0


@njit(**INNER)
def _store_tangents(Y, Y_dot, v, v_dot, res, outputs, start, m):
    """Y[start + p, j] and Y_dot[start + p, j, d] from the outputs' value and tangent rows, a
    loop over the tile's points per (j, d) (point by point, with loops over j and d inside,
    measured no faster on a 3 -> 3 Jacobian, and up to 1.5x slower with three directions)."""
    n_out = outputs.shape[0]
    q = v_dot.shape[1]
    for j in range(n_out):
        s = res[outputs[j]]
        for p in range(m):
            Y[start + p, j] = v[s, p]
    for j in range(n_out):
        s = res[outputs[j]]
        for d in range(q):
            for p in range(m):
                Y_dot[start + p, j, d] = v_dot[s, d, p]


@njit(**INNER)
def _row_sum(a, m):
    """a[0] + ... + a[m - 1] in a fixed order: four interleaved partial sums (p = 0, 4, 8, ...;
    1, 5, 9, ...; ...), so the loop runs at the adder's throughput, not its latency, then
    (s0 + s1) + (s2 + s3), then the last m % 4 terms. Deterministic: it depends only on a[:m]."""
    s0 = s1 = s2 = s3 = 0.0
    p = 0
    while p + 4 <= m:
        s0 += a[p]
        s1 += a[p + 1]
        s2 += a[p + 2]
        s3 += a[p + 3]
        p += 4
    s = (s0 + s1) + (s2 + s3)
    for k in range(p, m):
        s += a[k]
    return s


@njit(**INNER)
def _sum_gradient(S, v_bar, bres, flags, k, m):
    """S[k, j, d] = the sum over the tile's points of input j's adjoint (0 where nothing reads it)."""
    for j in range(S.shape[1]):
        for d in range(S.shape[2]):
            S[k, j, d] = 0.0 if flags[j] & 8 else _row_sum(v_bar[bres[j], d], m)


def threaded(driver, signature):
    """A sweep's ``_*_threads`` driver compiled for ``signature`` (its tile function's type first,
    a first-class function): it runs one share of the tiles per thread of Numba's pool."""
    return njit(signature, parallel=True, **FLAGS)(driver)
