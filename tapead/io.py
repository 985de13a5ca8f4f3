"""Tape files: a documented, versioned, pickle-free format, read as untrusted input.

A tape file is a zip archive (what ``numpy.savez`` writes, uncompressed) holding

* ``header.json``: ``{"format": "tapead-tape", "version": 1, "ops": [op names by code],
  "op_table_hash": ..., "n_in": n, "n_params": k, "out_shape": [...], "n_slots": s,
  "source": ["file:line: code", ...]}``: the lines of the recording function as text, each
  at most tapead.diagnose.MAX_SOURCE_CHARS characters; a file never names a path to be opened;
* ``op.npy`` (int32), ``arg0.npy``, ``arg1.npy``, ``arg2.npy``, ``outputs.npy`` (int32),
  ``const.npy`` (float64) and, when recorded, ``source_index.npy`` (int32): the tape's arrays
  (tapead/tape.py) as ``.npy`` members.

Opcodes are mapped through the names in the header, so a file written under an older op
table loads as long as every op it uses still exists; a file naming an unknown op is refused.
Reading never unpickles, never evaluates (the .npy headers are matched, not parsed as Python),
never opens a path a file names, never trusts a declared size (every member is checked against
the archive's own sizes and the limits below before anything is allocated), raises
:class:`~tapead.tape.TapeError` for anything malformed, and ends with
:func:`tapead.tape.validate`, so a tape from a file reaches the kernels only when it is
well-formed. Pickling a :class:`~tapead.api.Tape` goes through the same bytes.

Files are written atomically (:func:`atomic_file`): a unique temporary beside the target,
renamed over it only when complete, so readers and concurrent writers see the old file or a
whole new one, never part of one, and a failure leaves the old file as it was.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import secrets
import stat
import struct
import zipfile

import numpy as np

from tapead.diagnose import source_text, text_from_file
from tapead.ops import BY_NAME, OPS, op_table_hash
from tapead.tape import TapeData, TapeError, instruction_context, validate

__all__ = ["FORMAT", "VERSION", "atomic_file", "from_bytes", "load", "save", "to_bytes"]

FORMAT = "tapead-tape"
VERSION = 1
MAX_SLOTS = 2**28  # 268M instructions: far beyond any recording, below a hostile size
MAX_HEADER_BYTES = 1 << 20
_NPY_MAGIC = b"\x93NUMPY\x01\x00"  # .npy format 1.0, what numpy writes for these arrays
# what zipfile raises on a corrupted or hostile archive (TapeError, a ValueError, passes through)
_CORRUPT = (zipfile.BadZipFile, EOFError, OSError, ValueError, RuntimeError, NotImplementedError, struct.error)
_ARRAYS = {"op": np.int32, "arg0": np.int32, "arg1": np.int32, "arg2": np.int32, "const": np.float64,
           "outputs": np.int32, "source_index": np.int32}


def to_bytes(tape: TapeData) -> bytes:
    """The file format, in memory."""
    header = {
        "format": FORMAT, "version": VERSION, "ops": [spec.name for spec in OPS], "op_table_hash": op_table_hash(),
        "n_in": int(tape.n_in), "n_params": int(tape.n_params), "out_shape": list(tape.out_shape),
        "n_slots": tape.n_slots, "source": [source_text(s) for s in tape.source], "n_recorded": int(tape.n_recorded),
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


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike):
    """The name of a new, empty temporary file beside ``path``, to write; when the block ends
    normally the file replaces ``path`` in one step, with ``path``'s permission bits (a new file
    gets the umask's); when it raises (Ctrl-C included) the temporary is removed and ``path`` is
    left as it was. A symlink ``path`` is written through (its target is replaced).

    Each call has its own temporary, so concurrent writers never share one: the last to finish
    wins, whole. Only a process killed outright (SIGKILL, power loss) leaves a temporary, named
    ``.NAME.HEX.tmp``, never ``path`` itself.
    """
    target = os.path.realpath(path)
    directory, name = os.path.split(target)
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
    try:  # O_EXCL: never another's file; mode 0o666 less the umask, as open() would give
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    except OSError as error:
        raise OSError(error.errno, error.strerror, os.fspath(path)) from None
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the data is on disk before the name points at it
        finally:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode) & 0o777)
        try:
            os.replace(tmp, target)
        except OSError as error:
            raise OSError(error.errno, error.strerror, os.fspath(path)) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def save(tape: TapeData, path: str | os.PathLike) -> None:
    """Write ``tape`` to ``path`` (conventionally ``*.tape``), atomically (see :func:`atomic_file`)."""
    data = to_bytes(tape)
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def _read_array(archive: zipfile.ZipFile, name: str, dtype, n_max: int) -> np.ndarray:
    try:
        info = archive.getinfo(f"{name}.npy")
    except KeyError:
        raise TapeError(f"tape file has no {name}.npy") from None
    if info.compress_type != zipfile.ZIP_STORED:
        raise TapeError(f"{name}.npy is compressed; tape files store their arrays uncompressed")
    dtype = np.dtype(dtype).newbyteorder("<")
    with archive.open(info) as member:
        # the header numpy writes for a 1-D array, matched as bytes (never parsed as Python)
        magic, header = member.read(10), b""
        if len(magic) == 10 and magic[:8] == _NPY_MAGIC:
            header = member.read(struct.unpack("<H", magic[8:])[0])
        match = re.fullmatch(rb"\{'descr': '%s', 'fortran_order': False, 'shape': \(([0-9]{1,10}),\), \} *\n"
                             % dtype.str.encode(), header)
        if match is None:
            raise TapeError(f"{name}.npy must be a 1-D little-endian {dtype} array in .npy format 1.0, "
                            f"its header is {header[:120]!r}")
        n = int(match[1])
        if n > n_max:
            raise TapeError(f"{name}.npy declares {n} entries, more than the {n_max} the header allows")
        size = n * dtype.itemsize
        data = member.read(size + 1)
    if len(data) != size:
        raise TapeError(f"{name}.npy holds {len(data)} bytes of data, its header declares {size}")
    return np.frombuffer(data, dtype=dtype).astype(dtype.newbyteorder("="))


def _read_header(archive: zipfile.ZipFile) -> dict:
    try:
        info = archive.getinfo("header.json")
    except KeyError:
        raise TapeError("not a tapead tape file: no header.json") from None
    if info.file_size > MAX_HEADER_BYTES:
        raise TapeError(f"header.json is {info.file_size} bytes, more than {MAX_HEADER_BYTES}")
    if info.compress_type != zipfile.ZIP_STORED:  # no decompressor ever runs on a file's bytes
        raise TapeError("header.json is compressed; tape files store their members uncompressed")
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
        raise TapeError(f"header.json field {key!r} is missing or invalid: {repr(value)[:100]}")
    return value


def from_bytes(data: bytes) -> TapeData:
    """Parse and validate a tape file's bytes (untrusted)."""
    return _read(io.BytesIO(data))


def _read(file) -> TapeData:
    try:
        archive = zipfile.ZipFile(file)
    except _CORRUPT as error:
        raise TapeError(f"not a tapead tape file (not a readable zip archive): {error}") from None
    with archive:
        try:
            return _from_archive(archive)
        except TapeError:
            raise
        except _CORRUPT as error:
            raise TapeError(f"corrupted tape file: {error}") from None


def _from_archive(archive: zipfile.ZipFile) -> TapeData:
    header = _read_header(archive)
    names = _field(header, "ops", list, lambda v: all(isinstance(n, str) for n in v))
    n_slots = _field(header, "n_slots", int, lambda v: 0 <= v <= MAX_SLOTS)
    n_in = _field(header, "n_in", int, lambda v: 0 <= v <= n_slots)
    n_params = _field(header, "n_params", int, lambda v: 0 <= v <= n_slots)
    out_shape = _field(header, "out_shape", list, lambda v: len(v) <= 32 and all(
        isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SLOTS for s in v))
    source = _field(header, "source", list, lambda v: len(v) <= n_slots and all(isinstance(s, str) for s in v))
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
        i = int(np.flatnonzero((op < 0) | (op >= len(names)))[0])
        raise TapeError(f"op.npy holds opcodes outside the {len(names)} ops its header names, first at instruction "
                        f"{i}:\n{_context(arrays, n_in, n_params, names, i)}")
    if op.size and np.any(codes[op] < 0):
        unknown = sorted({names[c] for c in np.unique(op) if codes[c] < 0})
        i = int(np.flatnonzero(codes[op] < 0)[0])
        raise TapeError(f"tape file uses ops this tapead does not have: {unknown}, first at instruction "
                        f"{i}:\n{_context(arrays, n_in, n_params, names, i)}")
    arrays["op"] = codes[op].astype(np.int32) if op.size else op
    source_index = None
    if "source_index.npy" in archive.namelist():
        source_index = _read_array(archive, "source_index", np.int32, n_slots)
    return validate(TapeData(n_in=n_in, n_params=n_params, out_shape=tuple(out_shape),
                             source=tuple(map(text_from_file, source)),
                             source_index=source_index, n_recorded=n_recorded, **arrays))


def _context(arrays: dict[str, np.ndarray], n_in: int, n_params: int, names: list[str], i: int) -> str:
    """Instruction ``i`` of a file's unchecked arrays and its neighbours, the file's opcodes read
    through its own op names (one this tapead lacks prints raw)."""
    data = TapeData(n_in=n_in, n_params=n_params, **arrays)
    return instruction_context(data, i, ops=[BY_NAME.get(name) for name in names])


def load(path: str | os.PathLike) -> TapeData:
    """Read and validate a tape file (only the bytes its members hold are read)."""
    with open(path, "rb") as f:
        return _read(f)
