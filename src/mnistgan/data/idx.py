"""The IDX file format that MNIST ships in: parse with strict checks, write byte-exactly.

An IDX file is a 4-byte magic (two zero bytes, a dtype code, the number of dimensions), one
big-endian uint32 per dimension, then the array in C order. Only unsigned bytes (code 0x08) are
used by MNIST-style data sets, and only those are accepted. Files may be gzipped; gzip output is
written with a zero timestamp and no file name so that the same array gives the same bytes.
Reading one is streamed and bounded by the size its header declares, so a gzip bomb is one
clear error, not an exhausted memory.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from mnistgan.atomic import write_bytes_atomic
from mnistgan.errors import IdxError

UBYTE = 0x08
MAX_NDIM = 4
GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1 << 20  # bytes read, and at most decompressed, per step


def decode_idx(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Parse uncompressed IDX bytes into a uint8 array; `IdxError` naming `name` if invalid."""
    shape, header = parse_header(data, name)
    expected = header + math.prod(shape)  # exact: a crafted shape cannot overflow it
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise IdxError(
            f"{name}: {what}: shape {tuple(shape)} needs {expected} bytes, file has {len(data)}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def parse_header(data: bytes, name: str = "<bytes>") -> tuple[tuple[int, ...], int]:
    """The shape an IDX header declares and the header's length; `IdxError` if it is invalid
    or `data` is too short to hold it."""
    if len(data) < 4:
        raise IdxError(f"{name}: not an IDX file ({len(data)} bytes, too short for a header)")
    zero1, zero2, code, ndim = data[0], data[1], data[2], data[3]
    if zero1 != 0 or zero2 != 0:
        raise IdxError(f"{name}: not an IDX file (bad magic {bytes(data[:4]).hex()})")
    if code != UBYTE:
        raise IdxError(f"{name}: IDX dtype code 0x{code:02x} is not unsigned byte (0x08)")
    if not 1 <= ndim <= MAX_NDIM:
        raise IdxError(f"{name}: IDX header claims {ndim} dimensions (expected 1 to {MAX_NDIM})")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IdxError(f"{name}: truncated IDX header ({len(data)} of {header} bytes)")
    return struct.unpack(f">{ndim}I", bytes(data[4:header])), header


def encode_idx(array: np.ndarray) -> bytes:
    """The uncompressed IDX bytes of a uint8 array (header + data), exactly as MNIST's files."""
    array = np.ascontiguousarray(array)
    if array.dtype != np.uint8:
        raise ValueError(f"IDX arrays here are uint8, got {array.dtype}")
    return idx_header(array.shape) + array.tobytes()


def idx_header(shape: tuple[int, ...]) -> bytes:
    """The header of a uint8 IDX file of this shape; the data follows it in C order, so a
    writer that knows the shape up front can stream the data after it."""
    if not 1 <= len(shape) <= MAX_NDIM:
        raise ValueError(f"IDX arrays have 1 to {MAX_NDIM} dimensions, got {len(shape)}")
    return bytes([0, 0, UBYTE, len(shape)]) + struct.pack(f">{len(shape)}I", *shape)


def read_idx_bytes(path: str | os.PathLike) -> bytes:
    """The uncompressed bytes of an IDX file, gunzipping when it starts with gzip's magic.

    Decompression is streamed and bounded by the size the IDX header declares: a gzip bomb
    (a small file that expands to far more than its header says) stops at that bound with one
    `IdxError`, having held at most the declared size plus one chunk in memory."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            if f.read(2) != GZIP_MAGIC:
                f.seek(0)
                return f.read()
            f.seek(0)
            return _gunzip_bounded(f, str(path))
    except OSError as e:
        raise IdxError(f"{path}: cannot read ({e.strerror or e})") from None


def _gunzip_bounded(f: BinaryIO, name: str) -> bytes:
    """Gunzip `f` chunk by chunk, stopping as soon as the output passes what its header declares."""
    out, limit = bytearray(), None
    try:
        for chunk in _gunzip_chunks(f):
            out += chunk
            if limit is None and len(out) >= 4 and len(out) >= 4 + 4 * min(out[3], MAX_NDIM):
                shape, header = parse_header(out, name)  # a bad header fails here, early
                limit = header + math.prod(shape)
            if limit is not None and len(out) > limit:
                raise IdxError(f"{name}: corrupt gzip data: expands past the {limit} bytes its "
                               "IDX header declares (a gzip bomb?); stopped reading")
    except (EOFError, zlib.error) as e:
        raise IdxError(f"{name}: corrupt gzip data ({e})") from None
    return bytes(out)


def _gunzip_chunks(f: BinaryIO) -> Iterator[bytes]:
    """The decompressed bytes of a gzip stream (all members, as `gzip.decompress`), at most
    `CHUNK` bytes at a time, reading `f` a chunk at a time."""
    d, started, data = zlib.decompressobj(wbits=31), False, b""
    while True:
        if not data:
            data = f.read(CHUNK)
            if not data:
                break
        if not started:  # between members gzip allows zero padding
            data = data.lstrip(b"\x00")
            started = bool(data)
            if not started:
                continue
        yield d.decompress(data, CHUNK)
        data = d.unconsumed_tail
        if d.eof:  # the next member, if any, starts in what this one left over
            d, started, data = zlib.decompressobj(wbits=31), False, d.unused_data
    if started:
        raise EOFError("compressed data ended before the end-of-stream marker")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a uint8 array with every structural check."""
    return decode_idx(read_idx_bytes(path), str(path))


def gzip_bytes(data: bytes) -> bytes:
    """Deterministic gzip: no timestamp, no file name, so equal inputs give equal files."""
    return gzip.compress(data, compresslevel=6, mtime=0)


def write_idx(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write `array` as IDX (gzipped when `path` ends in .gz), atomically via a temp file."""
    data = encode_idx(array)
    if str(path).endswith(".gz"):
        data = gzip_bytes(data)
    write_bytes_atomic(path, data)
