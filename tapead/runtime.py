"""The Numba boundary: whether the kernels are compiled, how many points a tile and a block
hold, and running a sweep over a block's tiles on several threads.

The sweeps (``tapead.kernels.sweeps``) are serial functions that take one thread's share of
the tiles (tiles t, t + n_threads, ...). They release the GIL, so a launch runs one per
thread on a pool of Python threads; Numba's own parallel backend is not used (its drivers
re-optimised the linked sweep code and tripled the cold compile, and one of its threading
layers crashes on concurrent launches).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

from tapead.kernels.tiles import CHAIN_MULC
from tapead.ops import CONST

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
        from tapead import _gen_kernels
        from tapead.kernels import sweeps

        text = _gen_kernels.generate_specialised(codes)
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


def kernel(name: str, op: np.ndarray):
    """Sweep ``name`` for a tape of op codes ``op``: the full sweep when it is compiled (in this
    process or in the cache), else one specialised to the tape's ops (compiled in seconds)."""
    from tapead.kernels import sweeps

    full = getattr(sweeps, name)
    if not specialise or full.signatures or _cached(full):
        return full
    codes = frozenset(int(c) for c in np.unique(op) if CONST <= c < CHAIN_MULC)
    if not _announced:
        _announce()
    return getattr(_specialise(codes), name)


_announced = False


def _announce() -> None:
    global _announced
    _announced = True
    print("tapead: compiling sweeps for this tape's ops (seconds; cached for later runs; "
          "`tapead warmup` compiles them for every op)", file=sys.stderr, flush=True)


# threads start on first use; a launch runs its first share on the calling thread
_pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="tapead")


def launch(run, args: list, tile: int, n_points: int) -> None:
    """Run sweep ``run`` (see kernel) over ``n_points`` points in tiles of ``tile``: one share of
    the tiles per thread, as many threads as Numba's thread count allows and the tiles fill."""
    n_threads = max(1, min(numba.get_num_threads(), -(-n_points // tile)))
    if n_threads == 1:
        run(*args, tile, 1, 0)
        return
    shares = [_pool.submit(run, *args, tile, n_threads, t) for t in range(1, n_threads)]
    run(*args, tile, n_threads, 0)
    for share in shares:
        share.result()
