"""Small helpers shared by the benchmark scripts: interleaved timing, markdown tables, optional peers.

Benchmark code only (not part of the tapead package). Every script measures the things it
compares side by side in one process, interleaved (a, b, c, a, b, c, ...), so that noise from
other work on the machine hits all of them alike, and reports medians and ratios of medians.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import time
from collections.abc import Callable

import numpy as np


def interleaved(fns: dict[str, Callable[[], object]], repeats: int = 7, number: int = 1,
                warmup: int = 1, raw: bool = False,
                clock: Callable[[], float] = time.perf_counter) -> dict[str, float] | dict[str, list[float]]:
    """Median seconds per call of each callable, timed round-robin ``repeats`` times.

    Each timing runs the callable ``number`` times back to back (for calls of microseconds).
    Every callable is called ``warmup`` times first (JIT compilation, caches, thread pools).
    With ``raw=True``, every timing instead of the medians. ``clock=time.thread_time`` counts
    the calling thread's CPU time only: for one-thread work on a shared machine, it leaves out
    the time other processes held the core.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = clock()
            for _ in range(number):
                fn()
            times[name].append((clock() - t0) / number)
    if raw:
        return times
    return {name: float(np.median(ts)) for name, ts in times.items()}


def once(fn: Callable[[], object]) -> tuple[float, object]:
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def optional(module: str):
    """The module, or None with a message on stdout saying the peer is skipped."""
    try:
        return importlib.import_module(module)
    except Exception as error:  # noqa: BLE001 (ImportError, or a broken install)
        print(f"> skipping {module}: not installed ({type(error).__name__}: {error})\n")
        return None


def table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(str(c) for c in row) + " |")
    return "\n".join(lines)


def fmt(x: float | None, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def machine_line() -> str:
    import numba

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} CPUs, {numba.get_num_threads()} numba threads "
            f"(tapead and the prange kernels: Numba's {_threading_layer()}), "
            f"Python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
            f"{time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.2f} at start")


def _threading_layer() -> str:
    """Numba's threading layer (that of the prange reference kernels), once one has run."""
    import numba

    try:
        return f"{numba.threading_layer()} layer"
    except ValueError:
        return "threading layer not started yet"


def command_line() -> str:
    """How this process was started: ``python -m bench.compare --repeats 7``."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    program = [f"-m {spec.name}"] if spec is not None and spec.name else sys.argv[:1]
    return " ".join([os.path.basename(sys.executable), *program, *sys.argv[1:]])


def header(title: str) -> None:
    print(f"# {title}\n\n{machine_line()}\n\n`{command_line()}`\n", flush=True)
