"""What a new user waits for: a fresh install's first gradient, the demo, and tapead warmup.

    python -m bench.cold_start [--points 1000000]

Installs this checkout (``pip install --no-deps --target``) into a temporary directory, so
that its kernel cache starts empty (``NUMBA_CACHE_DIR`` points into the same directory), then
runs each step in a fresh process and prints a table of wall and CPU seconds:

1. ``tapead demo``: seconds to its first printed gradient, and to its end;
2. ``tapead demo`` again: everything loaded from the cache;
3. ``tapead warmup``: the full sweeps (every op) compiled, with each sweep's time;
4. ``tapead warmup`` again: every sweep loaded from the cache.

Goals (issue "First run in seconds"): first gradient <= 20 s, whole demo <= 60 s, warmup
<= 120 s of CPU in total. The machine's load is printed with the table: the steps are CPU
bound, and a busy machine lengthens their wall time, not much their CPU time.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOALS = {"first gradient": ("wall", 20.0), "demo": ("wall", 60.0), "warmup": ("cpu", 120.0)}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(command: list[str], env: dict, marker: str | None = None) -> tuple[float, float | None, float, str]:
    """(wall s, wall s until a line containing ``marker`` was printed, CPU s, stdout)."""
    cpu0, start = _children_cpu(), time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen, lines = None, []
    for line in child.stdout:
        lines.append(line)
        if seen is None and marker and marker in line:
            seen = time.perf_counter() - start
    if child.wait():
        raise SystemExit(f"{' '.join(command)} failed:\n{''.join(lines)}")
    return time.perf_counter() - start, seen, _children_cpu() - cpu0, "".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--points", type=int, default=1_000_000, help="the demo's timed points")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tapead-cold-") as tmp:
        site = os.path.join(tmp, "site")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", site, ROOT],
                       check=True, stdout=subprocess.DEVNULL)
        env = dict(os.environ, PYTHONPATH=site, NUMBA_CACHE_DIR=os.path.join(tmp, "cache"))
        tapead = [sys.executable, "-c", "import sys; from tapead.cli import main; sys.exit(main())"]
        demo = [*tapead, "demo", "--points", str(args.points)]
        load = os.getloadavg()[0]
        rows = []
        wall, first, cpu, _ = run(demo, env, marker="Gradient from the compiled")
        rows += [("first gradient", "cold", first, None), ("demo", "cold", wall, cpu)]
        wall, first, cpu, _ = run(demo, env, marker="Gradient from the compiled")
        rows += [("first gradient", "cached", first, None), ("demo", "cached", wall, cpu)]
        wall, _, cpu, out = run([*tapead, "warmup"], env)
        rows.append(("warmup", "cold", wall, cpu))
        sweeps = [line.strip() for line in out.splitlines() if line.startswith("  ")]
        wall, _, cpu, _ = run([*tapead, "warmup"], env)
        rows.append(("warmup", "cached", wall, cpu))
    print(f"# Cold start ({os.cpu_count()} CPUs, load {load:.2f} at the start, {time.strftime('%Y-%m-%d %H:%M')})\n")
    print("| step | cache | wall s | CPU s | goal |")
    print("|---|---|---|---|---|")
    for step, cache, wall, cpu in rows:
        goal = ""
        if cache == "cold" and step in GOALS:
            kind, limit = GOALS[step]
            value = wall if kind == "wall" else cpu
            goal = f"<= {limit:.0f} s {kind}: {'met' if value <= limit else 'MISSED'}"
        print(f"| {step} | {cache} | {wall:.1f} | {'' if cpu is None else f'{cpu:.1f}'} | {goal} |")
    print("\nwarmup, per sweep (wall, CPU; two processes at once):")
    for line in sweeps:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
