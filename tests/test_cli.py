"""The command line: end to end through subprocesses (a dozen), and its error paths in-process."""

from __future__ import annotations

import io
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tapead import cli

from .helpers import WORKED_EXAMPLE_TRACES, parse_dot

WORKED_EXAMPLE = "log(x1) + x1*x2 - sin(x2)"


def run(*args: str, cwd, env=None) -> subprocess.CompletedProcess:
    # a generous timeout: the first process after the kernels change compiles them (minutes)
    return subprocess.run([sys.executable, "-m", "tapead", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900, check=False)


def worked_example_grads(X: np.ndarray) -> np.ndarray:
    x1, x2 = X[:, 0], X[:, 1]
    return np.column_stack([np.log(x1) + x1 * x2 - np.sin(x2), 1 / x1 + x2, x1 - np.cos(x2)])


@pytest.fixture
def points(tmp_path) -> np.ndarray:
    X = np.random.default_rng(7).uniform(1, 3, size=(50, 2))
    np.save(tmp_path / "points.npy", X)
    with open(tmp_path / "points.csv", "w") as f:
        f.write("x1,x2\n")
        for k, (a, b) in enumerate(X.tolist()):
            if k == 3:
                f.write("# a comment, then a blank line\n\n")
            f.write(f"{a!r}, {b!r}\n")
    return X


# ---- end to end ---------------------------------------------------------------------------


def test_explain_prints_the_worked_example_traces_and_writes_dot(tmp_path):
    done = run("explain", WORKED_EXAMPLE, "--at", "x1=2,x2=5", "--dot", "example.dot", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"y = f(x1, x2) = {WORKED_EXAMPLE}\n\n{WORKED_EXAMPLE_TRACES}\n"
    nodes, edges = parse_dot((tmp_path / "example.dot").read_text())
    assert len(nodes) == 7 and {e["label"] for _, _, e in edges} == {"0.5", "5", "2", "1", "0.283662", "-1"}
    assert "wrote the graph to example.dot" in done.stderr


@pytest.mark.skipif(shutil.which("dot") is None, reason="graphviz's dot program is not installed")
def test_explain_draws_svg_with_graphviz(tmp_path):
    done = run("explain", "a*sin(sigma)", "--at", "a=2,sigma=0", "--wrt", "sigma", "--svg", "g.svg", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Forward tangent trace for sigma, seed x_dot = (0, 1)" in done.stdout
    assert "dy1/dsigma" in done.stdout
    svg = (tmp_path / "g.svg").read_text()
    assert "<svg" in svg and "sin v_0" in svg


def test_explain_without_graphviz_writes_dot_and_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    env = {**os.environ, "PATH": str(tmp_path / "empty")}  # no dot program on this PATH
    done = run("explain", WORKED_EXAMPLE, "--at", "x1=2,x2=5", "--svg", "example.svg", cwd=tmp_path, env=env)
    assert done.returncode == 1
    assert ("graphviz's dot program is not installed (apt-get install graphviz); "
            "wrote the DOT text to example.dot instead") in done.stderr
    assert not (tmp_path / "example.svg").exists()
    parse_dot((tmp_path / "example.dot").read_text())
    assert WORKED_EXAMPLE_TRACES in done.stdout  # the traces were still printed


@pytest.mark.parametrize("expression, caret", [
    ("log(x1 +* x2)", "log(x1 +* x2)\n        ^ expected an operand"),
    ("__import__('os').system('touch pwned')", "^ names may not start with an underscore"),
    ("(" * 10_000 + "x1" + ")" * 10_000, "^ nested more than 64 levels deep"),
])
def test_explain_rejects_bad_expressions_with_the_parsers_error(tmp_path, expression, caret):
    done = run("explain", expression, "--at", "x1=2,x2=5", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("tapead explain: invalid expression:\n")
    assert caret in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    assert not (tmp_path / "pwned").exists()


def test_grad_npy_to_npy_in_blocks(tmp_path, points):
    done = run("grad", WORKED_EXAMPLE, "--points", "points.npy", "--out", "out.npy", "--block", "7", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "wrote 50 points to out.npy (columns f, df/dx1, df/dx2)" in done.stderr
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (50, 3) and out.dtype == np.float64
    np.testing.assert_allclose(out, worked_example_grads(points), rtol=1e-14)


def test_grad_csv_to_csv_in_blocks(tmp_path, points):
    # the header names the variables in the file's order, which here is not the order of appearance
    with open(tmp_path / "swapped.csv", "w") as f:
        f.write("x2,x1\n" + "".join(f"{b!r},{a!r}\n" for a, b in points.tolist()))
    done = run("grad", WORKED_EXAMPLE, "--points", "swapped.csv", "--out", "out.csv", "--block", "8", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == "f,df/dx2,df/dx1" and len(lines) == 51
    out = np.loadtxt(lines[1:], delimiter=",")
    np.testing.assert_allclose(out, worked_example_grads(points)[:, [0, 2, 1]], rtol=1e-14)


def test_grad_csv_to_npy_matches_npy_input(tmp_path, points):
    done = run("grad", WORKED_EXAMPLE, "--points", "points.csv", "--out", "out.npy", "--block", "5", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), worked_example_grads(points), rtol=1e-14)


@pytest.mark.parametrize("kind", ["object array", "bare pickle"])
def test_grad_never_unpickles(tmp_path, kind):
    marker = tmp_path / "unpickled"
    if kind == "object array":
        np.save(tmp_path / "evil.npy", np.array([_Marker(str(marker))], dtype=object), allow_pickle=True)
    else:  # np.load(allow_pickle=True) would run this
        (tmp_path / "evil.npy").write_bytes(pickle.dumps(_Marker(str(marker))))
    done = run("grad", "x1", "--points", "evil.npy", "--out", "out.npy", cwd=tmp_path)
    assert done.returncode == 1
    assert "cannot read evil.npy as a .npy array" in done.stderr and "Traceback" not in done.stderr
    assert not marker.exists() and not (tmp_path / "out.npy").exists()


class _Marker:
    """Unpickling this creates a file: proof that a pickle was (or was not) loaded."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_grad_names_the_bad_csv_line_and_leaves_no_output(tmp_path):
    (tmp_path / "bad.csv").write_text("x1,x2\n1,2\n3,4\n5,oops\n")
    done = run("grad", WORKED_EXAMPLE, "--points", "bad.csv", "--out", "out.csv", "--block", "2", cwd=tmp_path)
    assert done.returncode == 1
    assert "bad.csv, line 4: expected 2 numbers separated by commas, got '5,oops'" in done.stderr
    assert not (tmp_path / "out.csv").exists()


def test_demo_still_works(tmp_path):
    done = run("demo", "--points", "2000", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert WORKED_EXAMPLE_TRACES in done.stdout
    assert "dy/dx1 = 5.5, dy/dx2 = 1.7163378145367738" in done.stdout
    assert "value_and_gradient over 2,000 random points" in done.stdout


# ---- in-process: error paths and the progress bar -------------------------------------------


def main(capsys, *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("args, status, message", [
    (["explain", "x1", "--at", "x1"], 2, "--at: expected name=number, got 'x1'"),
    (["explain", "x1", "--at", "x1=two"], 2, "--at: expected name=number"),
    (["explain", "x1", "--at", "x1=1,x1=2"], 2, "distinct"),
    (["explain", "x1", "--at", "_x=1"], 2, "invalid variable name '_x'"),
    (["explain", "x1*x2", "--at", "x1=1"], 2, "unknown variable 'x2'"),
    (["explain", "x1", "--at", "x1=1", "--wrt", "x9"], 2, "--wrt: 'x9' is neither a variable (x1) nor a direction"),
    (["explain", "x1", "--at", "x1=1", "--wrt", "1,2"], 2, "direction of 1 comma-separated numbers"),
    (["grad", "x1", "--points", "p.txt", "--out", "o.npy"], 2, "expected a .npy or .csv file"),
    (["grad", "x1", "--points", "p.npy", "--out", "p.npy"], 2, "must not be the --points file"),
    (["grad", "x1", "--points", "p.npy", "--out", "o.npy", "--block", "0"], 2, "--block must be at least 1"),
    (["grad", "x1", "--points", "missing.npy", "--out", "o.npy"], 1, "--points missing.npy: No such file or directory"),
    (["grad", "x1", "--points", "missing.csv", "--out", "o.npy"], 1, "--points missing.csv: No such file or directory"),
    (["explain", "x1", "--at", "x1=1", "--dot", "no/g.dot"], 1, "--dot no/g.dot: No such file or directory"),
    (["grad", "x1 +", "--points", "missing.npy", "--out", "o.npy"], 2, "^ expected an operand"),  # text first
])
def test_command_line_errors(capsys, tmp_path, monkeypatch, args, status, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = main(capsys, *args)
    assert code == status and message in err, err
    assert "Traceback" not in err


def test_grad_npy_checks_columns_and_names_them_with_vars(capsys, tmp_path, monkeypatch, points):
    monkeypatch.chdir(tmp_path)
    code, _, err = main(capsys, "grad", "x1*x2*x3", "--points", "points.npy", "--out", "o.npy")
    assert code == 1 and "has shape (50, 2); expected (N, 3)" in err and "--vars" in err
    code, _, err = main(capsys, "grad", "b - 2*a", "--points", "points.npy", "--out", "o.npy", "--vars", "a,b")
    assert code == 0 and "columns f, df/da, df/db" in err
    np.testing.assert_array_equal(np.load("o.npy")[:, 1:], np.tile([-2.0, 1.0], (50, 1)))
    code, _, err = main(capsys, "grad", "a", "--points", "points.csv", "--out", "o.npy", "--vars", "a")
    assert code == 2 and "header names its columns" in err


def test_grad_handles_empty_and_headerless_files(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    np.save("none.npy", np.empty((0, 1)))
    code, _, err = main(capsys, "grad", "x**2", "--points", "none.npy", "--out", "o.npy")
    assert code == 0 and np.load("o.npy").shape == (0, 2)
    (tmp_path / "empty.csv").write_text("")
    code, _, err = main(capsys, "grad", "x", "--points", "empty.csv", "--out", "o.csv")
    assert code == 1 and "the first line must be a header" in err
    (tmp_path / "numbers.csv").write_text("1,2\n3,4\n")
    code, _, err = main(capsys, "grad", "x", "--points", "numbers.csv", "--out", "o.csv")
    assert code == 1 and "the header must name the variables" in err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal(capsys, tmp_path, monkeypatch, points):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "PROGRESS_DELAY", 0.0)
    code, _, err = main(capsys, "grad", WORKED_EXAMPLE, "--points", "points.npy", "--out", "o.npy", "--block", "10")
    assert code == 0 and "\r" not in err  # stderr is not a terminal here
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert cli.main(["grad", WORKED_EXAMPLE, "--points", "points.csv", "--out", "o.csv", "--block", "10"]) == 0
    shown = terminal.getvalue()
    assert shown.startswith("\rtapead grad [") and "100.0%  50 points\n" in shown


def test_warmup_readies_every_kernel(tmp_path):
    script = ("from tapead import cli, runtime; from tapead.kernels import sweeps; cli.main(['warmup']); "
              "print(all(len(getattr(sweeps, n).signatures) == 1 for n in runtime.SWEEPS))")
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    assert "tapead kernels ready in" in out.stdout and out.stdout.strip().endswith("True")
    for kind in cli._WARMUP:  # a time per sweep
        assert f"  {kind}: " in out.stdout


def test_warmup_on_a_cold_cache_runs_one_process_per_group_of_sweeps(monkeypatch, capsys):
    from tapead import runtime

    started = []
    real_popen = subprocess.Popen

    def popen(command, **kwargs):
        started.append(command[-1])
        return real_popen(command, **kwargs)  # the children find the kernels cached: seconds

    monkeypatch.setattr(runtime, "kernels_cached", lambda: False)
    monkeypatch.setattr(subprocess, "Popen", popen)
    assert cli.warmup(jobs=2) == 0
    assert started == ["values,gradient", "jvp,hessian"]
    captured = capsys.readouterr()
    # a failing child's stderr would be passed on: only the one message may be there
    assert captured.err.strip() == "compiling the tapead sweeps in 2 processes, once ..."
    assert "tapead kernels ready in" in captured.out


# ---- nothing lost: the input is never the output, and the output appears whole or not at all ----


@pytest.mark.parametrize("link", [os.link, os.symlink], ids=["hard link", "symlink"])
def test_grad_refuses_an_out_that_is_the_points_file_by_another_name(capsys, tmp_path, monkeypatch, points, link):
    monkeypatch.chdir(tmp_path)
    link("points.npy", "alias.npy")
    before = (tmp_path / "points.npy").read_bytes()
    code, _, err = main(capsys, "grad", WORKED_EXAMPLE, "--points", "points.npy", "--out", "alias.npy")
    assert code == 2 and "--out alias.npy must not be the --points file points.npy" in err
    code, _, err = main(capsys, "grad", WORKED_EXAMPLE, "--points", "alias.npy", "--out", "points.npy")
    assert code == 2 and "must not be the --points file" in err
    assert (tmp_path / "points.npy").read_bytes() == before


def test_a_failed_grad_leaves_an_existing_out_as_it_was(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.csv").write_text("x1,x2\n1,2\n3,4\n5,oops\n")
    for out in ("out.csv", "out.npy"):
        (tmp_path / out).write_text("precious\n")
        code, _, err = main(capsys, "grad", WORKED_EXAMPLE, "--points", "bad.csv", "--out", out, "--block", "2")
        assert code == 1 and "bad.csv, line 4" in err
        assert (tmp_path / out).read_text() == "precious\n"
    assert sorted(os.listdir()) == ["bad.csv", "out.csv", "out.npy"]  # no temporary left


def test_grad_names_the_argument_whose_file_fails(capsys, tmp_path, monkeypatch, points):
    monkeypatch.chdir(tmp_path)
    code, _, err = main(capsys, "grad", WORKED_EXAMPLE, "--points", "points.npy", "--out", "no/o.npy")
    assert code == 1 and "--out no/o.npy: No such file or directory" in err
    with pytest.raises(SystemExit) as exit_:
        cli.main(["warmup", "--jobs", "0"])
    assert exit_.value.code == 2 and "--jobs must be at least 1" in capsys.readouterr().err


def _identity(path) -> tuple[int, int, int]:
    status = os.stat(path)
    return status.st_ino, status.st_size, status.st_mtime_ns


# one point per block: thousands of blocks a second, so 200,000 points take a minute or more
GRAD_SLOWLY = ["grad", WORKED_EXAMPLE, "--points", "big.npy", "--block", "1"]


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGKILL, -9)],
                         ids=["SIGINT", "SIGTERM", "SIGKILL"])
def test_grad_killed_mid_run_leaves_out_as_it_was(tmp_path, sig, status):
    """Two runs, one over an existing --out and one to a new file, stopped while writing:
    the old file is intact, the new name never appears, and only SIGKILL leaves a temporary."""
    np.save(tmp_path / "big.npy", np.random.default_rng(1).uniform(1, 3, size=(200_000, 2)))
    np.save(tmp_path / "old.npy", np.arange(6.0))
    old = _identity(tmp_path / "old.npy")
    runs = [subprocess.Popen([sys.executable, "-m", "tapead", *GRAD_SLOWLY, "--out", out], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            for out in ("old.npy", "new.npy")]
    try:
        deadline = time.monotonic() + 600  # the first run after the kernels change compiles them
        # both are writing: a new name each in the folder (or old.npy itself changed)
        while len(set(os.listdir(tmp_path)) - {"big.npy", "old.npy"}) + (_identity(tmp_path / "old.npy") != old) < 2:
            assert all(run.poll() is None for run in runs), [run.communicate()[1] for run in runs]
            assert time.monotonic() < deadline
            time.sleep(0.02)
        for run in runs:
            run.send_signal(sig)
        errors = [run.communicate(timeout=60)[1] for run in runs]
    finally:
        for run in runs:
            run.kill()
    assert [run.returncode for run in runs] == [status, status], errors
    assert "Traceback" not in "".join(errors)
    np.testing.assert_array_equal(np.load(tmp_path / "old.npy"), np.arange(6.0))
    assert not (tmp_path / "new.npy").exists()
    temporaries = set(os.listdir(tmp_path)) - {"big.npy", "old.npy"}
    assert all(re.fullmatch(r"\.(old|new)\.npy\.[0-9a-f]{16}\.tmp", name) for name in temporaries)
    assert not temporaries or sig == signal.SIGKILL  # only a process killed outright leaves one


def test_explain_fallback_never_overwrites_an_existing_dot_file(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no graphviz
    (tmp_path / "example.dot").write_text("mine\n")
    code, _, err = main(capsys, "explain", WORKED_EXAMPLE, "--at", "x1=2,x2=5", "--svg", "example.svg")
    assert code == 1 and "wrote the DOT text to example-2.dot instead" in err
    assert (tmp_path / "example.dot").read_text() == "mine\n"
    parse_dot((tmp_path / "example-2.dot").read_text())
    assert sorted(os.listdir()) == ["empty", "example-2.dot", "example.dot"]  # no .svg, no temporary
