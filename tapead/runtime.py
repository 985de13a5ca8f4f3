"""The Numba boundary: whether the kernels are compiled, how many points a tile and a block
hold, and running a sweep over a block's tiles on several threads.

The sweeps (``tapead.kernels.sweeps``) are serial functions that take one thread's share of
the tiles (tiles t, t + n_threads, ...). A launch on several threads goes through a small
parallel driver per sweep that receives the sweep as a first-class function: the driver
compiles in seconds and never links the sweep's code (a driver that called the sweep
directly re-optimised all of it, and tripled the cold compile).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
import warnings

import numba
import numpy as np
from numba import types
from numba.core.errors import NumbaExperimentalFeatureWarning
from numba.core.types import FunctionType
from numba.experimental.function_type import _get_wrapper_address
from numba.extending import typeof_impl

from tapead.kernels.tiles import CHAIN_MULC
from tapead.ops import CONST
from tapead.shapes import contiguous

SWEEPS = ("forward_primal", "forward_tangent", "reverse_adjoint", "reverse_hessian")

# Tile of points per sweep: keep the hot scratch (rows x directions x tile x 8 B) near L2
# (docs/design.md, "Kernels": 128 .. 512 points; 64 lost 10-25% to per-op overhead).
_SCRATCH_BUDGET = 256 * 1024
_TILE_MIN, _TILE_MAX = 128, 512
# ... but below 128 points where a huge tape's scratch would pass this per thread
_SCRATCH_CAP = 64 << 20

# Points per launch: inputs are converted and seeds sliced one block at a time, so that
# temporaries stay bounded whatever N is.
BLOCK = 1 << 18


def blocks(n_points: int, progress=None):
    """Slices of BLOCK points; ``progress(done, n_points)`` after each."""
    for start in range(0, n_points, BLOCK):
        block = slice(start, min(n_points, start + BLOCK))
        yield block
        if progress is not None:
            progress(block.stop, n_points)


def rows(A, step: int, block: slice):
    """A block's rows of a per-point array (step 1); a shared one (step 0) as it is."""
    return A[block] if step else A


def sweep(name: str, tape, layout, tile: int, X, P, p_step: int, *middle, outputs: tuple, tail: tuple = (),
          progress=None) -> None:
    """Run sweep ``name`` of ``tape`` with ``layout`` (tapead.layout) over all points of X, in
    blocks of BLOCK points so that converted inputs and temporaries stay bounded. ``middle``
    holds the sweep's own arguments, a (seeds, step) pair for a seed array (sliced per block
    when its step is 1); ``outputs`` are (N, ...) arrays, ``tail`` the arguments after them. An
    X whose rows are one row repeated (a stride-0 view) goes to the kernels as that row."""
    n_points = X.shape[0]
    run = kernel(name, layout.op)
    x_step = int(X.strides[0] != 0)
    for block in blocks(n_points, progress):
        m = block.stop - block.start
        args = [layout.op, *layout.values.arguments(), tape.const, tape.n_in, tape.n_params, tape.outputs,
                contiguous(X[block] if x_step else X[:1]), x_step, contiguous(rows(P, p_step, block)), p_step,
                *layout.adjoint_arguments()]
        for item in middle:
            if isinstance(item, tuple):
                seeds, step = item
                args += [contiguous(rows(seeds, step, block)), step]
            else:
                args.append(item)
        args += [out[block] for out in outputs]
        args += tail
        launch(run, args, min(tile, m), m)  # one point: a one-point tile's scratch
        del args  # before the next block is converted: one block of temporaries at a time


def tile_size(n_rows: int, n_dirs: int = 0, minimum: int = _TILE_MIN) -> int:
    """Points per tile: the largest power of two whose scratch fits the budget, within [minimum, 512]
    (below the minimum, down to one point, when the scratch would pass _SCRATCH_CAP)."""
    per_point = 8 * n_rows * (1 + n_dirs)
    tile = _TILE_MAX
    while tile > 1 and tile * per_point > (_SCRATCH_BUDGET if tile > minimum else _SCRATCH_CAP):
        tile //= 2
    return tile


def _cached(dispatcher) -> bool:
    """Whether Numba's disk cache has an index for ``dispatcher`` newer than its source file."""
    index = dispatcher._cache._cache_file._index_path  # Numba's cache of the function: its index file
    return os.path.exists(index) and os.path.getmtime(index) >= os.path.getmtime(dispatcher.py_func.__code__.co_filename)


def kernels_cached() -> bool:
    """Whether the full sweeps are compiled in Numba's disk cache (then a process loads them in
    about a second, and every tape uses them)."""
    from tapead.kernels import sweeps

    return all(_cached(getattr(sweeps, name)) for name in SWEEPS)


def _cache_dir() -> str:
    """Where specialised sweeps are written: beside Numba's cache."""
    from tapead.kernels import sweeps

    base = os.environ.get("NUMBA_CACHE_DIR") or os.path.join(os.path.dirname(sweeps.__file__), "__pycache__")
    path = os.path.join(base, "tapead_specialised")
    try:
        os.makedirs(path, exist_ok=True)
        return path
    except OSError:
        path = os.path.join(os.path.expanduser("~"), ".cache", "tapead")
        os.makedirs(path, exist_ok=True)
        return path


_specialised: dict[frozenset, object] = {}
_lock = threading.Lock()


def _specialise(codes: frozenset):
    """The tile functions for tapes of ``codes`` only, from a module generated into the cache
    directory (its compiled code is cached by Numba like the full sweeps')."""
    with _lock:
        module = _specialised.get(codes)
        if module is not None:
            return module
        from tapead.kernels import generate, sweeps

        text = generate.generate_specialised(codes)
        digest = hashlib.sha256((_source_digest(sweeps.__file__) + text).encode()).hexdigest()[:20]
        path = os.path.join(_cache_dir(), f"sweeps_{digest}.py")
        if not os.path.exists(path):
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        spec = importlib.util.spec_from_file_location(f"tapead.kernels.sweeps_{digest}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # Numba's cache finds the functions' module by name
        spec.loader.exec_module(module)
        _specialised[codes] = module
        return module


def _source_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# whether a tape whose full sweep is not compiled yet gets one specialised to its ops (seconds)
# rather than the full one (minutes); tapead warmup and the tests turn it off
specialise = True


_full_ready: set[str] = set()


def kernel(name: str, op: np.ndarray):
    """Sweep ``name`` for a tape of op codes ``op``: the full sweep when it is compiled (in this
    process or in the cache), else one specialised to the tape's ops (compiled in seconds)."""
    from tapead.kernels import sweeps

    full = getattr(sweeps, name)
    if name in _full_ready:
        return full
    if not specialise or full.signatures or _cached(full):
        _full_ready.add(name)  # compiled or cached now: from here on, without asking again
        return full
    codes = frozenset(min(int(c), CHAIN_MULC) for c in np.unique(op) if c >= CONST)  # chains: CHAIN_MULC
    if not _announced:
        _announce()
    return getattr(_specialise(codes), name)


_announced = False


def _announce() -> None:
    global _announced
    _announced = True
    print("tapead: compiling sweeps for this tape's ops (seconds; cached for later runs; "
          "`tapead warmup` compiles them for every op)", file=sys.stderr, flush=True)


class _FirstClass(types.WrapperAddressProtocol):
    """A compiled sweep as a first-class function value for its driver. Numba types this at once;
    a Dispatcher passed instead went through Numba's slow argument conversion on every launch
    (0.5 ms)."""

    def __init__(self, run, signature) -> None:
        run.compile(signature.args)
        self._address = _get_wrapper_address(run, signature)
        self._signature = signature
        self.numba_type = FunctionType(signature)

    def __wrapper_address__(self) -> int:
        return self._address

    def signature(self):
        return self._signature


@typeof_impl.register(_FirstClass)
def _typeof_first_class(value, context):
    return value.numba_type  # made once: Numba's own typeof of the protocol builds it per call


_drivers: dict[object, tuple] = {}


def _driver(run, args: list) -> tuple:
    """(the ``_*_threads`` driver of sweep ``run`` for these arguments' types, ``run`` as its
    first argument), compiled once (and cached on disk like the sweeps; a few seconds). ``run``
    gets exactly the signature the one-thread path calls it with: its arguments', then tile,
    n_threads and t as int64. The api hands a sweep the same types every time (C-contiguous
    float64 points and results, read-only tape arrays), so one driver per sweep."""
    from tapead.kernels import sweeps, tiles

    arg_types = tuple(numba.typeof(a) for a in args) + (types.int64, types.int64)  # ..., tile, n_threads
    signature = types.none(*arg_types, types.int64)
    driver = tiles.threaded(getattr(sweeps, f"_{run.__name__}_threads"),
                            types.none(FunctionType(signature), *arg_types))
    return driver, _FirstClass(run, signature)


def launch(run, args: list, tile: int, n_points: int) -> None:
    """Run sweep ``run`` (see kernel) over ``n_points`` points in tiles of ``tile``: one share of
    the tiles per thread, as many threads as Numba's thread count allows and the tiles fill,
    on Numba's own thread pool (shared with the caller's parallel Numba code, so neither waits
    for the other's spinning threads)."""
    n_threads = max(1, min(numba.get_num_threads(), -(-n_points // tile)))
    if n_threads == 1:
        run(*args, tile, 1, 0)
        return
    found = _drivers.get(run)
    if found is None:
        found = _drivers[run] = _driver(run, args)
    driver, first_class = found
    try:
        driver(first_class, *args, tile, n_threads)
    except TypeError as error:  # other argument types than the driver's: one for these
        if "No matching definition" not in str(error):
            raise
        driver, first_class = _drivers[run] = _driver(run, args)
        driver(first_class, *args, tile, n_threads)


# the drivers take the sweeps as first-class functions, which Numba calls experimental
warnings.filterwarnings("ignore", message="First-class function type feature is experimental",
                        category=NumbaExperimentalFeatureWarning)
