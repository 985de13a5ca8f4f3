"""tapead: record a function once, evaluate it and its derivatives at millions of points.

A Python function is recorded into a flat opcode tape (numpy arrays) and
JIT-compiled Numba sweeps, compiled once for all tapes, evaluate values,
tangents (JVPs) and adjoints (VJPs, gradients) over batches of points.
See README.md and docs/design.md.
"""

from tapead.api import Tape, load, optimize, record
from tapead.tape import TapeError, validate
from tapead.tracer import FUNCTIONS, FrozenRandomWarning, TracedArray, Var, asarray

globals().update(FUNCTIONS)  # tapead.sin, tapead.where, tapead.maximum, ... from the op table

__all__ = ["FrozenRandomWarning", "Tape", "TapeError", "TracedArray", "Var", "asarray", "load", "optimize", "record",
           "validate", *FUNCTIONS]
__version__ = "0.1.0"
