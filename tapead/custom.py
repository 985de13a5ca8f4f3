"""User derivative rules: values from one traced expression, derivatives from another.

``custom_derivative(f, jacobian)`` records ``f`` for the values and ``jacobian`` for the
derivatives, with the op table's ``stop_gradient`` (value x, derivative 0). With
d = x - stop(x) (value 0, derivative the identity) and J = jacobian(x), the result is

    y = stop(f(x)) + stop(J) @ d + 1/2 (J - stop(J)) @ d

whose value is f(x) (the other terms are exactly 0 at every point), whose first derivative is J,
and whose second derivative is the symmetric part of J's derivative: the Hessian of f when J is
f's true Jacobian (the 1/2 term is what makes forward-over-reverse see dJ/dx once, not twice).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tapead.tracer import FUNCTIONS, asarray, holds_traced

__all__ = ["custom_derivative", "stop_gradient"]

stop_gradient = FUNCTIONS["stop_gradient"]


def custom_derivative(f: Callable, jacobian: Callable) -> Callable:
    """``f`` whose derivatives, when recorded, are those of ``jacobian``.

    Parameters
    ----------
    f : callable
        ``f(x)`` of a 1-D array x of n values (traced while recording), returning a scalar or
        an array of shape ``out_shape``.
    jacobian : callable
        ``jacobian(x)``: its Jacobian, of shape ``(*out_shape, n)`` (the gradient (n,) for a
        scalar f), written with tapead's functions like ``f``. Its own derivative gives the
        Hessian (symmetrised), so give the true Jacobian of a smooth rule for second orders.

    Called on numbers, the result is plain ``f(x)``. A point where an input is inf or NaN
    gets NaN (x - stop(x) is NaN there), as does a point where J is.

    Examples
    --------
    >>> import numpy as np, tapead
    >>> # log(1 + e^x) with the derivative written in its stable form
    >>> softplus = tapead.custom_derivative(lambda x: np.log1p(np.exp(x[0])), lambda x: [tapead.sigmoid(x[0])])
    >>> tape = tapead.record(lambda x: softplus(x), 1)
    >>> tape.gradient(np.array([800.0])).tolist()
    [1.0]
    """

    def with_rule(x):
        if not holds_traced(x):
            return f(x)
        xs = asarray(x).reshape(-1)
        y = asarray(f(x))
        J = asarray(jacobian(x))
        if J.shape != (*y.shape, xs.shape[0]):
            raise ValueError(f"custom_derivative: jacobian(x) has shape {J.shape}; f(x) has shape {y.shape} and x "
                             f"{xs.shape[0]} values, so the Jacobian must have shape {(*y.shape, xs.shape[0])}")
        d = xs - stop_gradient(xs)
        J_stop = stop_gradient(J)
        terms = J_stop * d + 0.5 * ((J - J_stop) * d)
        result = stop_gradient(y) + np.sum(terms, axis=-1)
        return result.item() if isinstance(result, np.ndarray) and result.ndim == 0 else result

    with_rule.__name__ = getattr(f, "__name__", "custom_derivative")
    return with_rule
