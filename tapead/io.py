"""Tape files: a documented, versioned, pickle-free format, read as untrusted input.

A tape file is a zip archive (what ``numpy.savez`` writes, uncompressed) holding

* ``header.json``: ``{"format": "tapead-tape", "version": 1, "ops": [op names by code],
  "op_table_hash": ..., "n_in": n, "n_params": k, "out_shape": [...], "n_slots": s,
  "source": ["file:line", ...]}``;
* ``op.npy`` (int32), ``arg0.npy``, ``arg1.npy``, ``arg2.npy``, ``outputs.npy`` (int32),
  ``const.npy`` (float64) and, when recorded, ``source_index.npy`` (int32): the tape's arrays
  (tapead/tape.py) as ``.npy`` members.

Opcodes are mapped through the names in the header, so a file written under an older op
table loads as long as every op it uses still exists; a file naming an unknown op is refused.
Reading never unpickles, never trusts a declared size (every member is checked against
the archive's own sizes and the limits below before anything is allocated), and ends with
:func:`tapead.tape.validate`, so a tape from a file reaches the kernels only when it is
well-formed. Pickling a :class:`~tapead.api.Tape` goes through the same bytes.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np

from tapead.ops import BY_NAME, OPS, op_table_hash
from tapead.tape import TapeData, TapeError, validate

__all__ = ["save", "load", "to_bytes", "from_bytes", "FORMAT", "VERSION"]

FORMAT = "tapead-tape"
VERSION = 1
MAX_SLOTS = 2**28  # 268M instructions: far beyond any recording, below a hostile size
MAX_HEADER_BYTES = 1 << 20
_ARRAYS = {"op": np.int32, "arg0": np.int32, "arg1": np.int32, "arg2": np.int32, "const": np.float64,
           "outputs": np.int32, "source_index": np.int32}


def to_bytes(tape: TapeData) -> bytes:
    """The file format, in memory."""
    header = {
        "format": FORMAT, "version": VERSION, "ops": [spec.name for spec in OPS], "op_table_hash": op_table_hash(),
        "n_in": int(tape.n_in), "n_params": int(tape.n_params), "out_shape": list(tape.out_shape),
        "n_slots": tape.n_slots, "source": list(tape.source), "n_recorded": int(tape.n_recorded),
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr("header.json", json.dumps(header))
        arrays = tape.arrays()
        if tape.source_index is not None:
            arrays["source_index"] = tape.source_index
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(f"{name}.npy", member.getvalue())
    return buffer.getvalue()


def save(tape: TapeData, path: str | os.PathLike) -> None:
    """Write ``tape`` to ``path`` (conventionally ``*.tape``), atomically."""
    data = to_bytes(tape)
    tmp = f"{os.fspath(path)}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _read_array(archive: zipfile.ZipFile, name: str, dtype, n_max: int) -> np.ndarray:
    try:
        info = archive.getinfo(f"{name}.npy")
    except KeyError:
        raise TapeError(f"tape file has no {name}.npy") from None
    if info.compress_type != zipfile.ZIP_STORED:
        raise TapeError(f"{name}.npy is compressed; tape files store their arrays uncompressed")
    with archive.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f"unsupported .npy version {version}")
            shape, fortran, stored = read_header(member, max_header_size=10000)
        except (ValueError, SyntaxError, TypeError, OverflowError) as error:
            raise TapeError(f"{name}.npy has a malformed header: {error}") from None
        if stored != np.dtype(dtype).newbyteorder("<") or fortran or len(shape) != 1:
            raise TapeError(f"{name}.npy must be a 1-D little-endian {np.dtype(dtype)} array, "
                            f"got {stored} with shape {shape}")
        if not 0 <= shape[0] <= n_max:
            raise TapeError(f"{name}.npy declares {shape[0]} entries, more than the {n_max} the header allows")
        size = shape[0] * np.dtype(dtype).itemsize
        data = member.read(size + 1)
    if len(data) != size:
        raise TapeError(f"{name}.npy holds {len(data)} bytes of data, its header declares {size}")
    return np.frombuffer(data, dtype=stored).astype(dtype)


def _read_header(archive: zipfile.ZipFile) -> dict:
    try:
        info = archive.getinfo("header.json")
    except KeyError:
        raise TapeError("not a tapead tape file: no header.json") from None
    if info.file_size > MAX_HEADER_BYTES:
        raise TapeError(f"header.json is {info.file_size} bytes, more than {MAX_HEADER_BYTES}")
    try:
        header = json.loads(archive.read(info).decode("utf-8"))
    except (ValueError, RecursionError) as error:
        raise TapeError(f"header.json is not valid JSON: {error}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise TapeError("not a tapead tape file: header.json has no format 'tapead-tape'")
    if header.get("version") != VERSION:
        raise TapeError(f"tape file format version {header.get('version')!r}; this tapead reads version {VERSION}")
    return header


def _field(header: dict, key: str, kind: type, check=lambda value: True):
    value = header.get(key)
    if not isinstance(value, kind) or isinstance(value, bool) or not check(value):
        raise TapeError(f"header.json field {key!r} is missing or invalid: {value!r}")
    return value


def from_bytes(data: bytes) -> TapeData:
    """Parse and validate a tape file's bytes (untrusted)."""
    return _read(io.BytesIO(data))


def _read(file) -> TapeData:
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise TapeError(f"not a tapead tape file (not a zip archive): {error}") from None
    with archive:
        try:
            return _from_archive(archive)
        except (zipfile.BadZipFile, EOFError, OSError, NotImplementedError, RuntimeError) as error:
            raise TapeError(f"corrupted tape file: {error}") from None


def _from_archive(archive: zipfile.ZipFile) -> TapeData:
    header = _read_header(archive)
    names = _field(header, "ops", list, lambda v: all(isinstance(n, str) for n in v))
    n_slots = _field(header, "n_slots", int, lambda v: 0 <= v <= MAX_SLOTS)
    n_in = _field(header, "n_in", int, lambda v: 0 <= v <= n_slots)
    n_params = _field(header, "n_params", int, lambda v: 0 <= v <= n_slots)
    out_shape = _field(header, "out_shape", list, lambda v: len(v) <= 32 and all(
        isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SLOTS for s in v))
    source = _field(header, "source", list, lambda v: all(isinstance(s, str) for s in v))
    n_recorded = _field({"n_recorded": header.get("n_recorded", 0)}, "n_recorded", int, lambda v: 0 <= v <= MAX_SLOTS)
    arrays = {name: _read_array(archive, name, dtype, MAX_SLOTS if name == "outputs" else n_slots)
              for name, dtype in _ARRAYS.items() if name != "source_index"}
    if arrays["op"].shape[0] != n_slots:
        raise TapeError(f"op.npy has {arrays['op'].shape[0]} entries, the header declares {n_slots} slots")
    # opcodes through the file's own op names: an older table maps, an unknown op is refused
    codes = np.full(len(names), -1, dtype=np.int64)
    for code, name in enumerate(names):
        if name in BY_NAME:
            codes[code] = BY_NAME[name].code
    op = arrays["op"]
    if op.size and (op.min() < 0 or op.max() >= len(names)):
        raise TapeError(f"op.npy holds opcodes outside the {len(names)} ops its header names")
    if op.size and np.any(codes[op] < 0):
        unknown = sorted({names[c] for c in np.unique(op) if codes[c] < 0})
        raise TapeError(f"tape file uses ops this tapead does not have: {unknown}")
    arrays["op"] = codes[op].astype(np.int32) if op.size else op
    source_index = None
    if "source_index.npy" in archive.namelist():
        source_index = _read_array(archive, "source_index", np.int32, n_slots)
    return validate(TapeData(n_in=n_in, n_params=n_params, out_shape=tuple(out_shape), source=tuple(source),
                             source_index=source_index, n_recorded=n_recorded, **arrays))


def load(path: str | os.PathLike) -> TapeData:
    """Read and validate a tape file (only the bytes its members hold are read)."""
    with open(path, "rb") as f:
        return _read(f)
