"""The ``tapead`` command line.

* ``tapead demo``: the worked example (docs/design.md; its traces), then throughput.
* ``tapead explain EXPR --at x1=2,x2=5 [--wrt x1] [--dot FILE | --svg FILE | --png FILE]``:
  the traces, edge partials and path sums of an expression at one point, and its graph.
* ``tapead grad EXPR --points FILE --out FILE [--vars x1,x2] [--block ROWS]``: values and
  gradients at every point of a .npy or .csv file, streamed in blocks of rows.

Expressions are parsed by :mod:`tapead.expr` (a whitelist parser, never eval).
Output files are written atomically (:func:`tapead.io.atomic_file`): a failed, interrupted
(Ctrl-C) or terminated (SIGTERM) run leaves an existing file as it was and creates none.
Exit status: 0 success; 1 a problem with a file or its data (unreadable, malformed,
Graphviz missing); 2 a bad command line, a bad expression included; 130 interrupted;
143 terminated.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import sys
import threading
import time

import numpy as np

WORKED_EXAMPLE_TEXT = "y = f(x1, x2) = log(x1) + x1*x2 - sin(x2)"


def worked_example(x):
    return np.log(x[0]) + x[0] * x[1] - np.sin(x[1])


def demo(n_points: int = 1_000_000, repeats: int = 5) -> int:
    import numba

    import tapead
    from tapead.explain import explain

    print(f"tapead demo: {WORKED_EXAMPLE_TEXT}, at (x1, x2) = (2, 5)\n")
    tape = tapead.record(worked_example, 2)
    print(explain(tape, [2.0, 5.0], wrt=0))
    g = tape.gradient(np.array([2.0, 5.0]))
    print(f"\nGradient from the compiled reverse sweep: dy/dx1 = {float(g[0])!r}, dy/dx2 = {float(g[1])!r}")
    print(f"  exact: 1/x1 + x2 = 5.5, x1 - cos(x2) = {2 - float(np.cos(5))!r}")

    X = np.random.default_rng(0).uniform(1, 3, size=(n_points, 2))
    tape.value_and_gradient(X[:1000])  # load (or compile) the kernels outside the timing
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        y, g = tape.value_and_gradient(X)
        times.append(time.perf_counter() - start)
    best, median = min(times), float(np.median(times))
    print(f"\nvalue_and_gradient over {n_points:,} random points in [1, 3]^2 "
          f"({numba.get_num_threads()} threads, {repeats} runs):")
    print(f"  median {median * 1e3:.1f} ms = {median / n_points * 1e9:.1f} ns per point "
          f"({n_points / median / 1e6:.1f} million points/s); best {best * 1e3:.1f} ms")
    print(f"  mean y = {y.mean():.6f}, mean gradient = ({g[:, 0].mean():.6f}, {g[:, 1].mean():.6f})")
    return 0


# ---- errors -----------------------------------------------------------------


class CommandError(Exception):
    """A user error: printed without a traceback, exits with ``status``."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def _usage(message: str) -> CommandError:
    return CommandError(message, 2)


# ---- tapead explain ----------------------------------------------------------


def _parse_at(text: str) -> tuple[tuple[str, ...], np.ndarray]:
    """``x1=2,x2=5`` as (names, values); the names' order is the tape's input order."""
    from tapead.expr import ExpressionError, check_variable_names

    names, values = [], []
    for item in text.split(","):
        name, _, value = item.partition("=")
        try:
            values.append(float(value))
        except ValueError:
            raise _usage(f"--at: expected name=number, got {item.strip()!r}") from None
        names.append(name.strip())
    try:
        return check_variable_names(names), np.array(values)
    except ExpressionError as e:
        raise _usage(f"--at: {e}") from None


def _parse_wrt(text: str | None, names: tuple[str, ...]):
    """--wrt: a variable's name (its index), or a direction of len(names) numbers."""
    if text is None:
        return 0
    if text in names:
        return names.index(text)
    try:
        direction = np.array([float(t) for t in text.split(",")])
    except ValueError:
        direction = None
    if direction is None or direction.shape != (len(names),):
        raise _usage(f"--wrt: {text!r} is neither a variable ({', '.join(names)}) "
                     f"nor a direction of {len(names)} comma-separated numbers")
    return direction


def _shorten(text: str, width: int = 200) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def explain_command(args) -> int:
    from tapead.explain import explain
    from tapead.expr import parse

    names, x = _parse_at(args.at)
    expression = parse(args.expression, variables=names)
    wrt = _parse_wrt(args.wrt, names)
    print(f"y = f({_shorten(', '.join(names))}) = {_shorten(' '.join(args.expression.split()))}\n")
    print(explain(expression.tape, x, wrt=wrt, names=names))
    target = args.dot or args.svg or args.png
    if target:
        from tapead.dot import INSTALL_HINT, GraphvizNotFound, render, to_dot
        from tapead.io import atomic_file

        try:
            text = to_dot(expression.tape, x, names=names)
        except ValueError as e:
            raise CommandError(f"no graph written: {e}") from None
        try:  # a failed or interrupted run leaves an existing FILE as it was
            with atomic_file(target) as tmp:
                if args.dot:
                    _write_text(tmp, text, "w")
                else:
                    render(text, tmp, "svg" if args.svg else "png")
        except GraphvizNotFound:
            # keep the user's work: the DOT text renders later with `dot -Tsvg FILE.dot -o FILE.svg`
            fallback = _write_new_text(os.path.splitext(target)[0] + ".dot", text)
            raise CommandError(f"{INSTALL_HINT}; wrote the DOT text to {fallback} instead") from None
        except RuntimeError as e:
            raise CommandError(str(e)) from None
        print(f"tapead explain: wrote the graph to {target}", file=sys.stderr)
    return 0


def _write_text(path: str, text: str, mode: str) -> None:
    with open(path, mode, encoding="utf-8") as f:
        f.write(text + "\n")


def _write_new_text(path: str, text: str) -> str:
    """Write ``text`` to ``path``, or when that exists to PATH-2, PATH-3, ... (a file is never
    overwritten); return the name written."""
    stem, suffix = os.path.splitext(path)
    for k in range(1, 100):
        name = path if k == 1 else f"{stem}-{k}{suffix}"
        try:
            _write_text(name, text, "x")
            return name
        except FileExistsError:
            continue
    raise CommandError(f"no graph written: {path} and {stem}-2{suffix} .. {stem}-99{suffix} all exist")


# ---- tapead grad ---------------------------------------------------------------

BLOCK_ROWS = 65536  # rows per block: a few MiB per block, whatever the file's size
PROGRESS_DELAY = 0.5  # seconds before a progress bar appears: short runs print none


class _Progress:
    """A one-line progress bar on a terminal (redrawn after a carriage return); silent when not a TTY."""

    def __init__(self, stream, label: str, delay: float | None = None) -> None:
        self.stream, self.label = stream, label
        self.on = bool(getattr(stream, "isatty", lambda: False)())
        self.start = time.monotonic()
        self.delay = PROGRESS_DELAY if delay is None else delay
        self.last = -1.0
        self.shown = False

    def update(self, fraction: float, points: int) -> None:
        now = time.monotonic()
        if not self.on or now - self.start < self.delay or (now - self.last < 0.2 and fraction < 1.0):
            return
        self.last = now
        fraction = min(max(fraction, 0.0), 1.0)
        filled = int(30 * fraction)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {fraction:6.1%}  {points:,} points")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


def _file_kind(path: str, option: str) -> str:
    kind = os.path.splitext(path)[1].lower().lstrip(".")
    if kind not in ("npy", "csv"):
        raise _usage(f"{option} {path}: expected a .npy or .csv file")
    return kind


def _load_npy(path: str) -> np.ndarray:
    """The array in ``path``, memory-mapped (so larger than memory works); never unpickles."""
    try:
        X = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, EOFError) as e:
        raise CommandError(f"cannot read {path} as a .npy array: {e}") from None
    if not isinstance(X, np.ndarray):
        X.close()
        raise CommandError(f"{path} is not a .npy array (an .npz archive?)")
    if X.dtype.kind not in "iuf":
        raise CommandError(f"{path} holds {X.dtype}; expected real numbers")
    return X


def _csv_header(f, path: str) -> tuple[str, ...]:
    from tapead.expr import ExpressionError, check_variable_names

    line = f.readline()
    if not line.strip():
        raise CommandError(f"{path}: the first line must be a header naming the variables, e.g. x1,x2")
    names = [h.strip().strip('"').strip() for h in line.lstrip("\ufeff").split(",")]
    try:
        return check_variable_names(names)
    except ExpressionError as e:
        raise CommandError(f"{path}: the header must name the variables, one per column: {e}") from None


def _is_data(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _csv_rows(lines: list[str], n: int, path: str, first_line: int) -> np.ndarray:
    """The data rows of ``lines`` (blank and # lines skipped) as an (k, n) float array."""
    rows = [line for line in lines if _is_data(line)]
    if not rows:
        return np.empty((0, n))
    try:
        data = np.loadtxt(rows, delimiter=",", dtype=np.float64, ndmin=2, comments="#")
        if data.shape[1] == n:
            return data
    except ValueError:
        pass
    for k, line in enumerate(lines):  # find the first bad line, to name it
        if not _is_data(line):
            continue
        try:
            ok = np.loadtxt([line], delimiter=",", dtype=np.float64, ndmin=2, comments="#").shape[1] == n
        except ValueError:
            ok = False
        if not ok:
            raise CommandError(f"{path}, line {first_line + k}: expected {n} numbers separated by commas, "
                               f"got {_shorten(line.strip(), 60)!r}")
    raise CommandError(f"{path}: cannot read lines {first_line} to {first_line + len(lines) - 1}")  # pragma: no cover


def _csv_blocks(f, n: int, block: int, path: str):
    """(rows, characters read so far) per block of ``block`` lines after the header."""
    line_no, read = 2, 0
    while True:
        lines = list(itertools.islice(f, block))
        if not lines:
            return
        data = _csv_rows(lines, n, path, line_no)
        line_no += len(lines)
        read += sum(map(len, lines))
        yield data, read


def _count_csv_rows(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        f.readline()
        return sum(1 for line in f if _is_data(line))


def grad_command(args) -> int:
    from tapead.expr import ExpressionError, check_variable_names, parse

    if args.block < 1:
        raise _usage("--block must be at least 1")
    in_kind, out_kind = _file_kind(args.points, "--points"), _file_kind(args.out, "--out")
    if _same_file(args.points, args.out):
        raise _usage(f"--out {args.out} must not be the --points file {args.points} (the same file)")
    block = args.block
    closing = []
    try:
        if in_kind == "npy":
            names = None
            if args.vars:
                try:
                    names = check_variable_names(v.strip() for v in args.vars.split(","))
                except ExpressionError as e:
                    raise _usage(f"--vars: {e}") from None
            expression = parse(args.expression, variables=names)
            X = _load_npy(args.points)
            names = expression.variables
            n = len(names)
            if X.ndim == 1 and n == 1:
                X = X.reshape(-1, 1)
            if X.ndim != 2 or X.shape[1] != n:
                raise CommandError(
                    f"{args.points} has shape {X.shape}; expected (N, {n}) for the variables {', '.join(names)} "
                    "(name its columns with --vars)"
                )
            n_rows = X.shape[0]
            blocks = ((X[i : i + block], (i + block) / max(n_rows, 1)) for i in range(0, n_rows, block))
        else:
            if args.vars:
                raise _usage("--vars is for .npy points: a CSV file's header names its columns")
            f = open(args.points, encoding="utf-8")  # noqa: SIM115 - closed below
            closing.append(f)
            names = _csv_header(f, args.points)
            expression = parse(args.expression, variables=names)
            n = len(names)
            n_rows = _count_csv_rows(args.points) if out_kind == "npy" else None
            size = max(os.path.getsize(args.points), 1)
            blocks = ((data, read / size) for data, read in _csv_blocks(f, n, block, args.points))
        columns = ["f", *(f"df/d{name}" for name in names)]
        done, nonfinite = _stream(expression.tape, blocks, args.out, out_kind, n_rows, columns)
    except UnicodeDecodeError as e:
        raise CommandError(f"{args.points} is not UTF-8 text: {e.reason}") from None
    finally:
        for f in closing:
            f.close()
    note = f"; {nonfinite:,} of them not finite (see Tape.find_nonfinite)" if nonfinite else ""
    shown = ", ".join(columns) if len(columns) <= 8 else ", ".join(columns[:8]) + ", ..."
    print(f"tapead grad: wrote {done:,} points to {args.out} (columns {shown}){note}", file=sys.stderr)
    return 0


def _same_file(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` name one file: the same path, or through a hard link or a symlink."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): not the same file
        return False


def _stream(tape, blocks, out: str, out_kind: str, n_rows: int | None, columns: list[str]) -> tuple[int, int]:
    """Evaluate each block, write it, and return (points written, points with a non-finite result).

    The result goes to a temporary file that replaces ``out`` only once complete (see
    tapead.io.atomic_file): a failure leaves an existing ``out`` as it was and creates none.
    """
    from tapead.io import atomic_file

    progress = _Progress(sys.stderr, "tapead grad")
    try:
        with atomic_file(out) as tmp:
            if out_kind == "npy":
                result = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float64, shape=(n_rows, len(columns)))
            else:
                result = open(tmp, "w", encoding="utf-8")  # noqa: SIM115 - closed below
                result.write(",".join(columns) + "\n")
            try:
                return _fill(tape, blocks, result, out_kind, n_rows, len(columns), progress)
            finally:
                _close(result)
    finally:
        progress.close()


def _fill(tape, blocks, result, out_kind: str, n_rows: int | None, width: int, progress) -> tuple[int, int]:
    done = nonfinite = 0
    for X, fraction in blocks:
        _check_signal()
        k = X.shape[0]
        if k == 0:
            continue
        y, g = tape.value_and_gradient(X)
        rows = np.empty((k, width))
        rows[:, 0], rows[:, 1:] = y, g
        nonfinite += int(k - np.isfinite(rows).all(axis=1).sum())
        if out_kind == "npy":
            if done + k > n_rows:
                raise CommandError("the points file grew while it was read")
            result[done : done + k] = rows
        else:
            # repr is the shortest text that reads back as the same float64
            result.write("".join(",".join(map(repr, row)) + "\n" for row in rows.tolist()))
        done += k
        progress.update(fraction, done)
    progress.update(1.0, done)  # the whole file is read: CSV fractions count characters, not bytes
    _check_signal()  # a signal swallowed during the last block: nothing is committed
    if out_kind == "npy" and done != n_rows:
        raise CommandError(f"read {done} points, expected {n_rows}: the points file changed while it was read")
    return done, nonfinite


def _close(result) -> None:
    if isinstance(result, np.memmap):
        result.flush()  # the mapping itself closes when the array is collected
    else:
        result.close()


# ---- main --------------------------------------------------------------------

EPILOG = """\
expressions: numbers, variables (x1, a, sigma, ...), + - * / **, unary minus, and calls of tapead's
functions (log, exp, sin, sqrt, tanh, maximum, where, ...); never evaluated by Python. An expression
that starts with '-' needs a leading space or parentheses: ' -x' or '(-x)'.
exit status: 0 success, 1 a problem with a file or its data, 2 a bad command line or expression.
"""


# each sweep through the call that runs it, in two groups that share op functions (the values
# sweep's are the gradient's forward part, the tangent sweep's the Hessian's)
_WARMUP = {
    "values": lambda tape, X: tape(X),
    "gradient": lambda tape, X: tape.gradient(X),
    "jvp": lambda tape, X: tape.jvp(X, np.ones(2)),
    "hessian": lambda tape, X: tape.hvp(X, np.ones(2)),
}
_GROUPS = ("values,gradient", "jvp,hessian")


def warmup(jobs: int | None = None, only: str | None = None) -> int:
    """Compile the full sweeps (every op of the table) into Numba's cache, or load them from it,
    so that every later process and every tape uses them; print each sweep's time.

    Without them, a tape's first evaluation compiles sweeps for its own ops only (seconds).
    When not cached yet, the two groups of sweeps compile in up to ``jobs`` processes at once
    (default: one per CPU): compilation is single-threaded.
    """
    import resource
    import subprocess

    import tapead
    from tapead import runtime

    start = time.perf_counter()
    jobs = (os.cpu_count() or 1) if jobs is None else max(1, jobs)
    kinds = list(_WARMUP) if only is None else only.split(",")
    if only is None and jobs > 1 and not runtime.kernels_cached():
        print(f"compiling the tapead sweeps in {min(jobs, len(_GROUPS))} processes, once ...", file=sys.stderr,
              flush=True)
        children = [subprocess.Popen([sys.executable, "-m", "tapead", "warmup", "--only", group],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    for group in _GROUPS[:jobs]]
        for child in children:
            out, err = child.communicate()
            print(out.rstrip().rsplit("\n", 1)[0])  # its per-sweep lines
            if child.returncode:  # the runs below compile what is missing, and fail loudly
                print(err, file=sys.stderr)
    runtime.specialise = False
    tape = tapead.record(worked_example, 2)
    for kind in kinds:
        if kind not in _WARMUP:
            raise CommandError(f"--only: unknown sweep {kind!r}; choose from {', '.join(_WARMUP)}", 2)
        wall, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
        for X in (np.array([2.0, 5.0]), np.ones((5000, 2)) * 2):
            _WARMUP[kind](tape, X)
        used = resource.getrusage(resource.RUSAGE_SELF)
        print(f"  {kind}: {time.perf_counter() - wall:.1f} s "
              f"({used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime:.1f} s CPU)")
    print(f"tapead kernels ready in {time.perf_counter() - start:.1f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tapead", description="Record once, evaluate derivatives at many points.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="the worked example: traces, gradient, and throughput on 1,000,000 points")
    p_demo.add_argument("--points", type=int, default=1_000_000, help="points to time (default 1,000,000)")

    p_explain = sub.add_parser(
        "explain", help="evaluation, tangent and adjoint traces, edge partials and path sums at one point",
        description="The traces of an expression at one point, as for the worked example, and its graph.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p_explain.add_argument("expression", help='e.g. "log(x1) + x1*x2 - sin(x2)"')
    p_explain.add_argument("--at", required=True, metavar="NAME=NUMBER,...",
                           help="the point, e.g. x1=2,x2=5; its order is the order of the inputs")
    p_explain.add_argument("--wrt", metavar="NAME|DIRECTION",
                           help="the tangent trace's seed: a variable (default: the first) or a direction, e.g. 1,0.5")
    graph = p_explain.add_mutually_exclusive_group()
    graph.add_argument("--dot", metavar="FILE", help="write the graph, with values and edge partials, as DOT text")
    graph.add_argument("--svg", metavar="FILE", help="draw the graph as SVG (needs graphviz's dot program)")
    graph.add_argument("--png", metavar="FILE", help="draw the graph as PNG (needs graphviz's dot program)")

    p_grad = sub.add_parser(
        "grad", help="values and gradients at every point of a .npy or .csv file",
        description="Values and gradients of an expression at every point of a file, streamed in blocks.\n"
                    "Output columns: f, then df/dv for each variable v in input order, as an (N, 1+n)\n"
                    "float64 .npy array or as a CSV file with the header f,df/dx1,...",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p_grad.add_argument("expression", help='e.g. "log(x1) + x1*x2 - sin(x2)"')
    p_grad.add_argument("--points", required=True, metavar="FILE",
                        help="an (N, n) .npy array, or a .csv file whose header line names the variables")
    p_grad.add_argument("--out", required=True, metavar="FILE", help="a .npy or .csv file to write")
    p_grad.add_argument("--vars", metavar="NAME,...",
                        help="the .npy columns' variables, in order (default: order of first appearance)")
    p_grad.add_argument("--block", type=int, default=BLOCK_ROWS, metavar="ROWS",
                        help=f"rows per block (default {BLOCK_ROWS})")

    p_warmup = sub.add_parser("warmup", help="compile (or load from the cache) every kernel now, and say how long it took")
    p_warmup.add_argument("--jobs", type=int, default=None, help="processes compiling at once (default: one per CPU)")
    p_warmup.add_argument("--only", help=argparse.SUPPRESS)  # sweeps, comma-separated

    args = parser.parse_args(argv)
    if args.command == "warmup":
        if args.jobs is not None and args.jobs < 1:
            parser.error("--jobs must be at least 1")
        return warmup(args.jobs, args.only)
    if args.command == "demo":
        if args.points < 1:
            parser.error("--points must be at least 1")
        return demo(args.points)
    from tapead.expr import ExpressionError

    command = {"explain": explain_command, "grad": grad_command}[args.command]
    main_thread = threading.current_thread() is threading.main_thread()  # where signal handlers live
    if main_thread:
        _signalled.clear()
        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return command(args)
    except KeyboardInterrupt:
        print(f"tapead {args.command}: interrupted", file=sys.stderr)
        return 130
    except ExpressionError as e:
        print(f"tapead {args.command}: invalid expression:\n{e}", file=sys.stderr)
        return 2
    except CommandError as e:
        print(f"tapead {args.command}: {e}", file=sys.stderr)
        return e.status
    except BrokenPipeError:  # `tapead explain ... | head`: stop quietly, as other command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except OSError as e:
        where = "" if e.filename is None else f"{e.filename}: "
        # name the argument whose file failed: --points, --out, --dot, --svg or --png
        option = next((f"--{name} " for name in ("points", "out", "dot", "svg", "png")
                       if where and getattr(args, name, None) == e.filename), "")
        print(f"tapead {args.command}: {option}{where}{e.strerror or e}", file=sys.stderr)
        return 1
    finally:
        if main_thread:
            for sig, handler in previous.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


_signalled: list[int] = []  # SIGINT or SIGTERM received during a command


def _on_signal(signum, frame):
    """SIGINT and SIGTERM unwind (so a half-written output is removed), then exit 130 or 143.
    The signal is remembered, and while Numba runs a Python callback from LLVM (loading a kernel
    from the cache) it is only remembered: raised there, the exception would be swallowed (and
    its traceback printed), so _check_signal raises it at the next block, before any output is
    committed."""
    _signalled.append(signum)
    while frame is not None:
        if "llvmlite" in frame.f_code.co_filename:
            return
        frame = frame.f_back
    _raise_for(signum)


def _raise_for(signum):
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


def _check_signal() -> None:
    if _signalled:
        _raise_for(_signalled[0])


if __name__ == "__main__":
    sys.exit(main())
