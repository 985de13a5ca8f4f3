"""scipy.optimize as a client: fun, jac, hess and hessp of a recorded scalar function, or of
its sum (or mean) over rows of parameters: a likelihood over observations."""

from __future__ import annotations

import numpy as np

__all__ = ["ScipyFunctions"]


class ScipyFunctions:
    """Callables for ``scipy.optimize.minimize`` on one point at a time.

    ``fun_and_jac`` returns (f, g) from one reverse sweep, for ``jac=True``. With parameters
    ``P`` of shape (N, k) and ``reduce="sum"`` (or ``"mean"``, optional ``weights`` (N,)), each
    callable is that of sum_k f(x, P[k]): the reduction runs inside the sweeps.

    Examples
    --------
    >>> import numpy as np, tapead
    >>> funcs = tapead.record(lambda x: (x[0] - 1) ** 2 + 10 * (x[1] + 2) ** 2, 2).to_scipy()
    >>> from scipy.optimize import minimize
    >>> result = minimize(funcs.fun, np.zeros(2), jac=funcs.jac, hessp=funcs.hessp, method="trust-ncg")
    >>> np.round(result.x, 6).tolist()
    [1.0, -2.0]
    """

    def __init__(self, tape, P=None, reduce=None, weights=None) -> None:
        if tape.n_out != 1:
            raise ValueError(f"scipy.optimize needs a scalar function; outputs have shape {tape.out_shape}")
        self._tape = tape
        self._args = () if P is None else (np.asarray(P, dtype=float),)
        self._reduce = {} if reduce is None else {"reduce": reduce, "weights": weights}
        if self._args and self._args[0].ndim == 2 and self._args[0].shape[0] > 1 and reduce is None:
            raise ValueError("P with several rows makes f(x) one value per row: pass reduce='sum' or 'mean'")

    def fun(self, x) -> float:
        return float(self._tape(x, *self._args, **self._reduce))

    def jac(self, x) -> np.ndarray:
        return self._tape.gradient(x, *self._args, **self._reduce)

    def fun_and_jac(self, x) -> tuple[float, np.ndarray]:
        y, g = self._tape.value_and_gradient(x, *self._args, **self._reduce)
        return float(y), g

    def hess(self, x) -> np.ndarray:
        return self._tape.hessian(x, *self._args, **self._reduce)

    def hessp(self, x, p) -> np.ndarray:
        return self._tape.hvp(x, *self._args, p, **self._reduce)
