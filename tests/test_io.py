"""Tape files and pickles: round trips, older op tables, and hostile files (fuzzed)."""

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tapead
from tapead import io as tape_io
from tapead.ops import OPS
from tapead.tape import TapeError


def seed(x):
    return np.log(x[0]) + x[0] * x[1] - np.sin(x[1])


@pytest.fixture(scope="module")
def tape():
    return tapead.record(lambda x, p: [seed(x) * p[0], tapead.where(x[0] > 1, x[1], 0.5)], 2, n_params=1)


@pytest.fixture(scope="module")
def data(tape):
    return tape_io.to_bytes(tape)


def _same(a, b):
    for name in ("op", "arg0", "arg1", "arg2", "const", "outputs", "source_index"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert (a.n_in, a.n_params, a.out_shape, a.source) == (b.n_in, b.n_params, b.out_shape, b.source)


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
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_files_get_a_clear_error(data, name, tmp_path):
    bad = HOSTILE[name](data)
    with pytest.raises(TapeError):
        tape_io.from_bytes(bad)
    path = tmp_path / "bad.tape"
    path.write_bytes(bad)
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
    from .conftest import OP_ROWS, one_op_tape

    for spec in OP_ROWS:
        tape = one_op_tape(spec, 1.5)
        assert tapead.load(_save(tape, tmp_path)).op.tolist() == tape.op.tolist()
    assert len(OP_ROWS) + 3 == len(OPS)


def _save(tape, tmp_path):
    path = tmp_path / "t.tape"
    tape.save(path)
    return path
