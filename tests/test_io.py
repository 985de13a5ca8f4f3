"""Tape files and pickles: round trips, older op tables, hostile files (fuzzed), source lines
carried as text, and atomic, concurrent saving."""

import io
import json
import linecache
import os
import pickle
import stat
import struct
import sys
import threading
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tapead
from bench.problems import worked_example
from tapead import io as tape_io
from tapead.diagnose import MAX_SOURCE_CHARS, source_text
from tapead.ops import CONST, INPUT, OPS
from tapead.tape import TapeData, TapeError, slot_name, validate


@pytest.fixture(scope="module")
def tape():
    return tapead.record(lambda x, p: [worked_example(x) * p[0], tapead.where(x[0] > 1, x[1], 0.5)], 2, n_params=1)


@pytest.fixture(scope="module")
def data(tape):
    return tape_io.to_bytes(tape)


def _same(a, b):
    for name in ("op", "arg0", "arg1", "arg2", "const", "outputs", "source_index"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert (a.n_in, a.n_params, a.out_shape) == (b.n_in, b.n_params, b.out_shape)
    assert [source_text(s) for s in a.source] == [source_text(s) for s in b.source]  # a file holds the text


def test_save_load_round_trip(tape, tmp_path, rng):
    path = tmp_path / "f.tape"
    tape.save(path)
    loaded = tapead.load(path)
    _same(tape, loaded)
    X, P = rng.uniform(1, 3, (100, 2)), rng.normal(size=(100, 1))
    np.testing.assert_array_equal(loaded.jacobian(X, P), tape.jacobian(X, P))
    assert loaded.find_nonfinite(np.array([[-1.0, 2.0]]), np.ones(1))[0].source  # lines travel too


def test_pickle_round_trip_uses_the_same_bytes(tape):
    blob = pickle.dumps(tape)
    assert b"numpy" not in blob and b"ndarray" not in blob  # arrays travel as file bytes, not pickles
    _same(tape, pickle.loads(blob))


def test_older_op_table_is_mapped_by_name(tape, data):
    """A file whose header lists the ops in another order (an older table) loads correctly."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    header = json.loads(archive.read("header.json"))
    order = list(reversed(header["ops"]))  # the "old" table: every opcode different
    remap = np.array([order.index(name) for name in header["ops"]], dtype=np.int32)
    members = {name: archive.read(name) for name in archive.namelist()}
    op = np.load(io.BytesIO(members["op.npy"]))
    members["op.npy"] = _npy(remap[op])
    header["ops"] = order
    members["header.json"] = json.dumps(header).encode()
    _same(tape, tape_io.from_bytes(_zip(members)))
    header["ops"] = ["no_such_op" if n == "log" else n for n in order]
    members["header.json"] = json.dumps(header).encode()
    with pytest.raises(TapeError, match=r"does not have: \['no_such_op'\]"):
        tape_io.from_bytes(_zip(members))


def _npy(array) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array(out, np.asarray(array), allow_pickle=True)
    return out.getvalue()


def _npy_header(shape) -> bytes:
    """A .npy header declaring ``shape`` float64, with no data behind it."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return out.getvalue()


def _zip(members: dict, compression=zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return out.getvalue()


def _npy_text(header: str) -> bytes:
    """A .npy member whose header is ``header``, whatever it says."""
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1")


def _patched(data: bytes, marker: bytes, offset: int, new: bytes) -> bytes:
    """``data`` with ``new`` written ``offset`` bytes after the first ``marker``."""
    at = data.index(marker) + offset
    return data[:at] + new + data[at + len(new) :]


def _garbled_header(data: bytes, compression: int) -> bytes:
    """header.json compressed with ``compression``, its compressed bytes overwritten."""
    members = _members(data)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content, compress_type=compression if name == "header.json" else zipfile.ZIP_STORED)
    return _patched(out.getvalue(), b"header.json", 11 + 8, b"\xff" * 12)  # after the local header's name


def _members(data):
    archive = zipfile.ZipFile(io.BytesIO(data))
    return {name: archive.read(name) for name in archive.namelist()}


def _with(data, **changes):
    members = _members(data)
    header = json.loads(members["header.json"])
    for name, value in changes.items():
        if name.endswith("_npy"):
            members[name[:-4] + ".npy"] = value
        else:
            header[name] = value
    members["header.json"] = json.dumps(header).encode()
    return _zip(members)


HOSTILE = {
    "not a zip": lambda d: b"hello",
    "empty": lambda d: b"",
    "no header": lambda d: _zip({k: v for k, v in _members(d).items() if k != "header.json"}),
    "header not json": lambda d: _zip({**_members(d), "header.json": b"{not json"}),
    "deep json": lambda d: _zip({**_members(d), "header.json": b"[" * 100000 + b"]" * 100000}),
    "wrong format": lambda d: _with(d, format="other"),
    "newer version": lambda d: _with(d, version=99),
    "huge n_slots": lambda d: _with(d, n_slots=2**40),
    "negative n_in": lambda d: _with(d, n_in=-1),
    "bool n_in": lambda d: _with(d, n_in=True),
    "huge out_shape": lambda d: _with(d, out_shape=[2**40]),
    "object dtype": lambda d: _with(d, op_npy=_npy(np.array([object()] * 3, dtype=object))),
    "float opcodes": lambda d: _with(d, op_npy=_npy(np.zeros(10))),
    "2-D arg0": lambda d: _with(d, arg0_npy=_npy(np.zeros((2, 5), dtype=np.int32))),
    "big-endian const": lambda d: _with(d, const_npy=_npy(np.zeros(10, dtype=">f8"))),
    "forward operand": lambda d: _with(d, arg0_npy=_npy(np.array([-1, -1, -1, 9, 3, 4, 5, 6, 7, 8, 9], np.int32))),
    "operand out of range": lambda d: _with(d, arg1_npy=_npy(np.full(11, 2**30, np.int32))),
    "unknown opcode": lambda d: _with(d, op_npy=_npy(np.array([0, 0, 1] + [500] * 8, np.int32))),
    "output out of range": lambda d: _with(d, outputs_npy=_npy(np.array([5, 10**6], np.int32))),
    "truncated": lambda d: d[: len(d) // 2],
    "huge declared npy": lambda d: _with(d, const_npy=_npy_header((10**11,))),
    "compressed member": lambda d: _zip(_members(d), zipfile.ZIP_DEFLATED),
    # these raised NotImplementedError, tokenize.TokenError, zlib.error and LZMAError, or loaded
    "newer zip version": lambda d: _patched(d, b"PK\x01\x02", 6, b"\x63"),  # needs version 9.9 to extract
    "unterminated npy header": lambda d: _with(d, op_npy=_npy_text("{'descr': '<i4', 'shape': (11,\n")),
    "python-2 npy header": lambda d: _with(d, op_npy=_npy_text("{'descr': '<i4', 'fortran_order': False, "
                                                              "'shape': (11L,), }\n") + b"\0" * 44),
    "deflated garbage header": lambda d: _garbled_header(d, zipfile.ZIP_DEFLATED),
    "lzma garbage header": lambda d: _garbled_header(d, zipfile.ZIP_LZMA),
    "out_shape wraps to 0": lambda d: _with(d, out_shape=[2**28] * 3, outputs_npy=_npy(np.zeros(0, np.int32))),
    "no inputs": lambda d: _with(d, n_in=0),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_files_get_a_clear_error(data, name, tmp_path):
    bad = HOSTILE[name](data)
    path = tmp_path / "bad.tape"
    path.write_bytes(bad)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no warning on the way
        with pytest.raises(TapeError):
            tape_io.from_bytes(bad)
        with pytest.raises(TapeError):
            tapead.load(path)


FUZZ_EXAMPLES = 300


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.floats(0.0, 1.0))
def test_fuzzed_files_load_or_fail_cleanly(data, edits, cut):
    """Flip bytes anywhere and truncate: a TapeError or a valid tape, never anything else."""
    mutated = bytearray(data)
    for where, value in edits:
        mutated[int(where * len(mutated))] = value
    mutated = bytes(mutated[: max(1, int(cut * len(mutated)))]) if cut < 0.98 else bytes(mutated)
    try:
        loaded = tape_io.from_bytes(mutated)
    except TapeError:
        return
    tapead.validate(loaded)  # anything that loads is a well-formed tape
    assert len(loaded.op) == len(loaded.const)


def test_every_op_survives_a_file(tmp_path):
    from .helpers import OP_ROWS, one_op_tape

    for spec in OP_ROWS:
        tape = one_op_tape(spec, 1.5)
        assert tapead.load(_save(tape, tmp_path)).op.tolist() == tape.op.tolist()
    assert len(OP_ROWS) + 3 == len(OPS)


def _save(tape, tmp_path):
    path = tmp_path / "t.tape"
    tape.save(path)
    return path


# ---- tapes without inputs or outputs -------------------------------------------------------


def _tape_data(op, outputs, n_in, out_shape) -> TapeData:
    n = len(op)
    return TapeData(op=np.array(op, np.int32), arg0=np.full(n, -1, np.int32), arg1=np.full(n, -1, np.int32),
                    arg2=np.full(n, -1, np.int32), const=np.full(n, 2.0), outputs=np.array(outputs, np.int32),
                    n_in=n_in, out_shape=out_shape)


def test_tapes_without_inputs_or_outputs_are_refused(data):
    validate(_tape_data([INPUT, CONST], [1], 1, ()))  # the smallest valid tape: x -> 2
    with pytest.raises(TapeError, match="at least one input"):
        validate(_tape_data([CONST], [0], 0, ()))
    with pytest.raises(TapeError, match="at least one output"):
        validate(_tape_data([INPUT], [], 1, (0,)))
    with pytest.raises(TapeError, match="at least one input"):
        tape_io.from_bytes(_with(data, n_in=0))
    with pytest.raises(TapeError, match=r"out_shape \(268435456, 268435456, 268435456\) does not hold its 0"):
        tape_io.from_bytes(HOSTILE["out_shape wraps to 0"](data))


# ---- a TapeError about an instruction shows it and its neighbours --------------------------


def _corrupted(tape, field: str, i: int, value) -> TapeData:
    arrays = {name: getattr(tape, name).copy() for name in ("op", "arg0", "arg1", "arg2", "const", "outputs")}
    arrays[field][i] = value
    return TapeData(n_in=tape.n_in, n_params=tape.n_params, out_shape=tape.out_shape, **arrays)


def _shown_rows(message: str) -> list[str]:
    """The rows a TapeError shows after its first line, without their two-space margin: the
    neighbours indented by two spaces, the offending row marked with "> "."""
    return [line[2:] for line in message.splitlines()[1:]]


@pytest.mark.parametrize("field,value", [
    ("arg0", 2**30),  # out of the tape: printed raw
    ("arg1", -7),
    ("arg1", 6),  # a later slot (before slot 7): printed by its name
    ("arg2", 0),  # unused by every op but where: the row prints as usual, its raw fields tell
    ("op", 500),  # unknown opcode: printed raw
    ("op", -3),
])
def test_an_instructions_error_shows_it_and_two_neighbours_each_side(tape, field, value):
    printed = [line[2:] for line in str(tape).splitlines()[1 : tape.n_slots + 1]]  # "v3 = v1 + v2", ...
    refused = 0
    for i in range(tape.n_in + tape.n_params, tape.n_slots):
        spec = OPS[tape.op[i]]
        used = field == "op" or spec.arity > int(field[-1])
        if used and field != "op" and 0 <= value < i or not used and value == -1:
            continue  # a valid tape
        bad = _corrupted(tape, field, i, value)
        with pytest.raises(TapeError, match=f"instruction {i} ") as error:
            validate(bad)
        refused += 1
        rows = _shown_rows(str(error.value))
        lo, hi = max(0, i - 2), min(tape.n_slots, i + 3)
        assert len(rows) == hi - lo
        for j, row in zip(range(lo, hi), rows):
            if j != i:
                assert row == "  " + printed[j]  # the neighbours, exactly as print(tape) shows them
        marked = rows[i - lo]
        assert marked.startswith(f"> {slot_name(tape, i)} = ")
        assert f"{field} {value}" in marked  # the raw fields follow the row
        text = marked[2:].partition("    [")[0]
        if field == "op":
            assert text == f"{slot_name(tape, i)} = <opcode {value}>"
        elif used and not 0 <= value < tape.n_slots:
            assert f"<slot {value}>" in text
        else:
            assert text == str(bad).splitlines()[1 + i][2:]  # printed as print(tape) prints it
    assert refused >= 3


def test_a_file_with_an_op_outside_its_header_shows_the_instruction_raw(tape, data):
    members = _members(data)
    op = np.load(io.BytesIO(members["op.npy"]))
    names = json.loads(members["header.json"])["ops"] + ["no_such_op"]  # a name this tapead lacks
    i = tape.n_in + tape.n_params + 1
    for code, words in [(len(names) + 5, f"outside the {len(names)} ops its header names"), (len(names) - 1, r"does not have: \['no_such_op'\]")]:
        changed = op.copy()
        changed[i] = code
        bad = _with(_zip({**members, "op.npy": _npy(changed)}), ops=names)
        with pytest.raises(TapeError, match=f"{words}, first at instruction {i}:") as error:
            tape_io.from_bytes(bad)
        rows = _shown_rows(str(error.value))
        assert [row for row in rows if row.startswith(">")] == [rows[2]]
        assert rows[2].startswith(f"> {slot_name(tape, i)} = <opcode {code}>    [op {code}, ")
        # the neighbours, read through the file's own op names, as print(tape) shows them
        printed = str(tape).splitlines()
        assert rows[:2] + rows[3:] == ["  " + printed[1 + j][2:] for j in (i - 2, i - 1, i + 1, i + 2)]


# ---- source lines: text inside the file, never a path to open --------------------------------

_WATCHED: set[str] = set()


def _refuse_watched_opens(event: str, args: tuple) -> None:
    """An audit hook: opening a watched path raises, so a FIFO cannot hang the test."""
    path = args[0] if event == "open" and _WATCHED else None
    if isinstance(path, (str, bytes)) and os.path.realpath(os.fsdecode(path)) in _WATCHED:
        raise RuntimeError(f"opened {path!r}, a path named by a tape file")


@pytest.fixture
def never_opened():
    """A set of paths this process must not open while the test runs."""
    if not getattr(sys, "_tapead_test_audit", False):  # audit hooks cannot be removed: add it once
        sys.addaudithook(_refuse_watched_opens)
        sys._tapead_test_audit = True
    yield _WATCHED
    _WATCHED.clear()


def test_source_lines_travel_inside_the_file_as_text(tmp_path, never_opened):
    module = tmp_path / "model.py"
    module.write_text("import numpy as np\n\n\ndef f(x):\n    return np.log(x[0])  # the recorded line\n")
    namespace = {}
    exec(compile(module.read_text(), str(module), "exec"), namespace)  # noqa: S102 - our own file, as import would
    tapead.record(namespace["f"], 1).save(tmp_path / "f.tape")
    module.write_text("# edited since\n" * 9)
    linecache.checkcache(str(module))
    never_opened.add(os.path.realpath(module))
    (report,) = tapead.load(tmp_path / "f.tape").find_nonfinite(np.array([[-1.0]]))
    assert report.source == f"{module}:5: return np.log(x[0])  # the recorded line"


def test_a_tape_file_never_makes_tapead_open_the_paths_it_names(data, tmp_path, never_opened):
    """Its source entries name a private file, a FIFO (would hang) and /dev/zero (would grow)."""
    secret = tmp_path / "private.txt"
    secret.write_text("the secret\n")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    never_opened.update(os.path.realpath(p) for p in (secret, fifo, "/dev/zero"))
    n = len(json.loads(_members(data)["header.json"])["source"])
    for entry in (f"{secret}:1", f"{fifo}:1", "/dev/zero:1", "\x1b[2J" + "x" * 5000 + ":3"):
        path = tmp_path / "hostile.tape"
        path.write_bytes(_with(data, source=[entry] * n))
        tape = tapead.load(path)
        (report,) = tape.find_nonfinite(np.array([[-1.0, 2.0]]), np.ones(1))
        assert "secret" not in str(report) and report.source.isprintable()
        if len(entry) < MAX_SOURCE_CHARS:
            assert report.source == f"{entry} (from a tape file)"
        else:  # cut to the limit, its escape sequence made harmless
            assert len(report.source) == MAX_SOURCE_CHARS and report.source.startswith(" [2Jxxx")
        assert pickle.loads(pickle.dumps(tape)).source == tape.source  # saved again as the same text


# ---- saving: atomic, concurrent, permissions kept --------------------------------------------


def test_concurrent_saves_to_one_path_never_fail_tear_or_leak(tmp_path):
    """8 threads x 50 saves of two tapes to one path while 2 threads load it: every save
    succeeds, every load finds one whole tape, and no temporary file is left."""
    tapes = [tapead.record(worked_example, 2), tapead.record(lambda x: x[0] * x[1], 2)]
    sizes = {t.n_slots for t in tapes}
    path = tmp_path / "shared.tape"
    tapes[0].save(path)
    errors, loaded, done = [], [], threading.Event()

    def save(k):
        try:
            for i in range(50):
                tapes[(k + i) % 2].save(path)
        except BaseException as error:  # noqa: BLE001 - collected, then asserted empty
            errors.append(error)

    def load():
        try:
            while not done.is_set():
                loaded.append(tapead.load(path).n_slots)
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    readers = [threading.Thread(target=load) for _ in range(2)]
    writers = [threading.Thread(target=save, args=(k,)) for k in range(8)]
    for thread in readers + writers:
        thread.start()
    for thread in writers:
        thread.join()
    done.set()
    for thread in readers:
        thread.join()
    assert errors == []
    assert loaded and set(loaded) <= sizes and len(sizes) == 2
    assert os.listdir(tmp_path) == ["shared.tape"]


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_save_keeps_permissions_writes_through_symlinks_and_cleans_up(tape, tmp_path):
    path = tmp_path / "t.tape"
    tape.save(path)
    umask = os.umask(0o22)
    os.umask(umask)
    assert _mode(path) == 0o666 & ~umask  # a new file: what open() would give
    path.chmod(0o600)
    tapead.record(worked_example, 2).save(path)
    assert _mode(path) == 0o600 and tapead.load(path).n_in == 2  # replaced, its permissions kept
    link = tmp_path / "link.tape"
    link.symlink_to(path)
    tape.save(link)
    assert link.is_symlink() and tapead.load(path).n_params == 1  # written through the link
    (tmp_path / "dir.tape").mkdir()
    with pytest.raises(IsADirectoryError):
        tape.save(tmp_path / "dir.tape")
    with pytest.raises(FileNotFoundError):
        tape.save(tmp_path / "no" / "such.tape")
    assert sorted(os.listdir(tmp_path)) == ["dir.tape", "link.tape", "t.tape"]  # no temporary left


def test_an_interrupted_write_leaves_the_old_file(tape, tmp_path):
    path = tmp_path / "t.tape"
    tape.save(path)
    before = path.read_bytes()
    with pytest.raises(KeyboardInterrupt), tape_io.atomic_file(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(b"half a tape")
        raise KeyboardInterrupt
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["t.tape"]
