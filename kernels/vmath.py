"""Vectorisable exp, expm1, log, log1p, sin, cos, tanh for the sweeps (docs/design.md, "Transcendentals").

libm is called once per element and stops LLVM from vectorising the tile loops: exp costs
10-12 ns, sin about 20 ns and tanh about 30 ns per element, against about 1 ns for an add.
These are branch-free (every condition is a select), so a loop over a tile row compiles to
SIMD code. They are within 2 ulp of the correctly rounded result over the whole double
range (tests/test_vmath.py samples every binade against mpmath and millions of points
against libm); IEEE edges follow numpy: exp(-inf) = 0, log(0) = -inf, log(-1) = nan,
sin(inf) = nan, nan in gives nan out.

Methods (textbook, e.g. Muller, "Elementary Functions", ch. 11):
- exp: x = k ln2 + r with |r| <= ln2/2 (ln2 split in two so k*LN2_HI is exact), e^r - 1 by
  its Taylor series to r^13, scaled by 2^k as two exact powers of two (so results that
  underflow into subnormals are rounded once).
- log: x = 2^e m with m in [sqrt(1/2), sqrt(2)), f = m - 1, s = f / (2 + f),
  log(1 + f) = f - (f^2/2 - s (f^2/2 + R(s^2))) with R the tail of the series of 2 atanh(s).
- sin, cos: x = k pi/2 + r, pi/2 in four pieces (the first three exact when multiplied by
  k < 2^20), Taylor series on |r| <= pi/4 and the quadrant picked by k mod 4. They give nan
  for |x| >= 2^19 (and inf, nan): the sweeps then redo those elements, one by one, with libm,
  which reduces huge arguments exactly (kernels/generate.py writes that check).
- tanh: |x| < 0.55: an odd polynomial (near-minimax, fitted with mpmath); beyond,
  1 - 2 / (e^2|x| + 1), which does not cancel there; sign restored.
- expm1: its Taylor series for |x| <= 1.1, else 2^k (e^r - 1) + (2^k - 1).
"""

import math

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

FLAGS = {"cache": True, "nogil": True, "error_model": "numpy", "inline": "always"}


@intrinsic
def _bits(typingctx, x):
    """The IEEE bit pattern of a float64 as an int64."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _float(typingctx, b):
    """The float64 whose IEEE bit pattern is the int64 ``b``."""

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


LOG2E = 1.4426950408889634
LN2_HI = 6.93147180369123816490e-01  # 32 significant bits: k * LN2_HI is exact for |k| < 2^21
LN2_LO = 1.90821492927058770002e-10  # ln 2 - LN2_HI
ROUND = 6755399441055744.0  # 1.5 * 2^52: x + ROUND - ROUND rounds x to an integer (|x| < 2^51)
NAN = math.nan
INF = math.inf


@njit(**FLAGS)
def _expm1_reduced(r):
    # e^r - 1 for |r| <= ln2/2 + tiny: Taylor to r^13 (truncation < 2^-60 relative)
    p = 1.0 / 6227020800.0
    p = 1.0 / 479001600.0 + r * p
    p = 1.0 / 39916800.0 + r * p
    p = 1.0 / 3628800.0 + r * p
    p = 1.0 / 362880.0 + r * p
    p = 1.0 / 40320.0 + r * p
    p = 1.0 / 5040.0 + r * p
    p = 1.0 / 720.0 + r * p
    p = 1.0 / 120.0 + r * p
    p = 1.0 / 24.0 + r * p
    p = 1.0 / 6.0 + r * p
    p = 0.5 + r * p
    return r + r * r * p


@njit(**FLAGS)
def _reduce_exp(x):
    # (k, r) with x = k ln2 + r, |r| <= ln2/2; x clamped to where exp is finite and nonzero
    xc = max(-746.0, min(710.0, x))  # nan -> 710.0, fixed at the end
    kf = (xc * LOG2E + ROUND) - ROUND
    r = (xc - kf * LN2_HI) - kf * LN2_LO
    return kf, r


@njit(**FLAGS)
def exp(x):
    kf, r = _reduce_exp(x)
    k = int(kf)
    k1 = k >> 1
    y = (1.0 + _expm1_reduced(r)) * _float((k1 + 1023) << 52) * _float((k - k1 + 1023) << 52)
    return x if math.isnan(x) else y


@njit(**FLAGS)
def _expm1_taylor(x):
    # e^x - 1 for |x| <= 1.1: Taylor to x^20 (truncation < 2^-62 relative)
    p = 1.0 / 51090942171709440000.0
    p = 1.0 / 2432902008176640000.0 + x * p
    p = 1.0 / 121645100408832000.0 + x * p
    p = 1.0 / 6402373705728000.0 + x * p
    p = 1.0 / 355687428096000.0 + x * p
    p = 1.0 / 20922789888000.0 + x * p
    p = 1.0 / 1307674368000.0 + x * p
    p = 1.0 / 87178291200.0 + x * p
    p = 1.0 / 6227020800.0 + x * p
    p = 1.0 / 479001600.0 + x * p
    p = 1.0 / 39916800.0 + x * p
    p = 1.0 / 3628800.0 + x * p
    p = 1.0 / 362880.0 + x * p
    p = 1.0 / 40320.0 + x * p
    p = 1.0 / 5040.0 + x * p
    p = 1.0 / 720.0 + x * p
    p = 1.0 / 120.0 + x * p
    p = 1.0 / 24.0 + x * p
    p = 1.0 / 6.0 + x * p
    p = 0.5 + x * p
    return x + x * x * p


@njit(**FLAGS)
def expm1(x):
    # |x| <= 1.1: the series itself; beyond, 2^k (e^r - 1) + (2^k - 1)
    kf, r = _reduce_exp(x)
    k = int(kf)
    k = k if k < 1024 else 1023
    s = _float((k + 1023) << 52) if k > -1023 else 0.0
    y = s * _expm1_reduced(r) + (s - 1.0)
    y = y * 2.0 if kf > 1023.0 else y  # e^x overflows at k = 1024: finish the scaling
    xs = x if math.fabs(x) <= 1.1 else 0.0
    y = _expm1_taylor(xs) if math.fabs(x) <= 1.1 else y
    y = y if math.fabs(x) > 5.551115123125783e-17 else x  # expm1 x = x below 2^-54 (keeps -0.0)
    return x if math.isnan(x) else y


@njit(**FLAGS)
def log(x):
    sub = x < 2.2250738585072014e-308  # subnormal (or zero/negative): scale by 2^54 first
    xs = x * 18014398509481984.0 if sub else x
    b = _bits(xs)
    mant = b & 0x000FFFFFFFFFFFFF
    hi = mant > 0x6A09E667F3BCC  # m > sqrt(2): use m/2 and e + 1
    e = (b >> 52) - 1023 + (1 if hi else 0) - (54 if sub else 0)
    m = _float(mant | ((1022 if hi else 1023) << 52))
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    # R(z) = 2z/3 + 2z^2/5 + ... (2 atanh(s) = 2s + s R): to z^12, truncation < 2^-60
    R = 2.0 / 25.0
    R = 2.0 / 23.0 + z * R
    R = 2.0 / 21.0 + z * R
    R = 2.0 / 19.0 + z * R
    R = 2.0 / 17.0 + z * R
    R = 2.0 / 15.0 + z * R
    R = 2.0 / 13.0 + z * R
    R = 2.0 / 11.0 + z * R
    R = 2.0 / 9.0 + z * R
    R = 2.0 / 7.0 + z * R
    R = 2.0 / 5.0 + z * R
    R = 2.0 / 3.0 + z * R
    R = z * R
    hfsq = 0.5 * f * f
    ef = float(e)
    y = ef * LN2_HI + (f - (hfsq - (s * (hfsq + R) + ef * LN2_LO)))
    y = -INF if x == 0.0 else y
    y = NAN if x < 0.0 else y
    return x if (math.isnan(x) or x == INF) else y


@njit(**FLAGS)
def log1p(x):
    # log(u) with u = 1 + x rounded, corrected by (x - (u - 1)) / u to first order
    u = 1.0 + x
    c = (x - (u - 1.0)) / u if u != 0.0 else 0.0
    y = log(u) + c
    y = x if u == 1.0 else y  # |x| < 2^-53: log1p(x) = x to rounding (and keeps -0.0)
    return x if (math.isnan(x) or x == INF) else y


PIO2_1 = 1.57079632673412561417e+00  # first 33 bits of pi/2
PIO2_2 = 6.07710050630396597660e-11  # next 33 bits
PIO2_3 = 2.02226624871116645580e-21  # next 33 bits
PIO2_3T = 8.47842766036889956997e-32  # pi/2 - PIO2_1 - PIO2_2 - PIO2_3
TWO_OVER_PI = 6.36619772367581382433e-01
LARGE = 524288.0  # 2^19: beyond it sin and cos go to libm


@njit(**FLAGS)
def _sin_reduced(r, e):
    # sin(r + e), |r| <= pi/4, |e| << ulp(r): Taylor to r^17, and sin(r + e) ~ sin r + e (1 - r^2/2)
    z = r * r
    p = -1.0 / 355687428096000.0
    p = 1.0 / 1307674368000.0 + z * p
    p = -1.0 / 6227020800.0 + z * p
    p = 1.0 / 39916800.0 + z * p
    p = -1.0 / 362880.0 + z * p
    p = 1.0 / 5040.0 + z * p
    p = -1.0 / 120.0 + z * p
    p = 1.0 / 6.0 + z * p
    return r + (e - (r * z * p + 0.5 * z * e))


@njit(**FLAGS)
def _cos_reduced(r, e):
    # cos(r + e) ~ cos r - e r: 1 - r^2/2 rounded, plus what that rounding lost, plus the tail
    z = r * r
    p = -1.0 / 6402373705728000.0
    p = 1.0 / 20922789888000.0 + z * p
    p = -1.0 / 87178291200.0 + z * p
    p = 1.0 / 479001600.0 + z * p
    p = -1.0 / 3628800.0 + z * p
    p = 1.0 / 40320.0 + z * p
    p = -1.0 / 720.0 + z * p
    p = 1.0 / 24.0 + z * p
    hz = 0.5 * z
    w = 1.0 - hz
    return w + ((((1.0 - w) - hz) + z * z * p) - e * r)


@njit(**FLAGS)
def _reduce_trig(x):
    # x = k pi/2 + (r + e): k * PIO2_1 and k * PIO2_2 are exact, x - k * PIO2_1 too; the
    # rounding of (that - k * PIO2_2) is recovered exactly and carried in e with the tail
    xc = x if math.fabs(x) < LARGE else 0.0  # keeps the conversion to int defined
    kf = (xc * TWO_OVER_PI + ROUND) - ROUND
    r1 = xc - kf * PIO2_1
    w = kf * PIO2_2
    r = r1 - w
    e = ((r1 - r) - w) - (kf * PIO2_3 + kf * PIO2_3T)
    return int(kf) & 3, r, e


@njit(**FLAGS)
def sin(x):
    n, r, e = _reduce_trig(x)
    s = _sin_reduced(r, e)
    c = _cos_reduced(r, e)
    y = (c if n & 1 else s) * float(1 - (n & 2))  # quadrant n: s, c, -s, -c
    y = y if math.fabs(x) > 7.450580596923828e-09 else x  # sin x = x below 2^-27 (keeps -0.0)
    return y if math.fabs(x) < LARGE else NAN  # callers use libm for these elements


@njit(**FLAGS)
def cos(x):
    n, r, e = _reduce_trig(x)
    s = _sin_reduced(r, e)
    c = _cos_reduced(r, e)
    y = (s if n & 1 else c) * float(1 - ((n + 1) & 2))  # quadrant n: c, -s, -c, s
    return y if math.fabs(x) < LARGE else NAN


@njit(**FLAGS)
def tanh(x):
    a = math.fabs(x)
    # a < 0.55: a + a z P(z), z = a^2, P a near-minimax fit of (tanh(a)/a - 1)/z on
    # [0, 0.3025] (mpmath chebyfit, 11 terms, relative error 6e-17 with these coefficients)
    z = a * a
    p = -2.060276537636634e-05
    p = 8.511313685577672e-05 + z * p
    p = -0.0002346347410887237 + z * p
    p = 0.0005889360520074057 + z * p
    p = -0.001455661830100716 + z * p
    p = 0.003592110378689024 + z * p
    p = -0.008863234397814355 + z * p
    p = 0.021869488493666944 + z * p
    p = -0.053968253967434016 + z * p
    p = 0.13333333333332714 + z * p
    p = -0.3333333333333333 + z * p
    small = a + a * (z * p)
    # beyond: 1 - 2 / (e^2a + 1), no cancellation since 2 / (e^2a + 1) < 1/2 (1.0 from a = 20)
    large = 1.0 - 2.0 / (exp(2.0 * min(20.0, a)) + 1.0)
    y = math.copysign(small if a < 0.55 else large, x)
    return x if math.isnan(x) else y


@njit(**FLAGS)
def trig_reducible(x, m):
    """True when sin and cos above are exact for x[:m]: every |x| < 2^19 (no inf, no nan).

    The sweeps do not call it: they check element by element (see the module docstring)."""
    ok = True
    for p in range(m):
        ok &= math.fabs(x[p]) < LARGE
    return ok
