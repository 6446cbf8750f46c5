"""The IDX reader and writer: byte-exact round trips and a clear error for every bad file."""

from __future__ import annotations

import gzip
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnistgan.data import idx
from mnistgan.data.idx import (
    IdxError,
    decode_idx,
    encode_idx,
    idx_header,
    read_idx,
    write_idx,
)
from mnistgan.errors import UserError


def test_round_trip_plain_and_gz(tmp_path):
    a = np.arange(2 * 28 * 28, dtype=np.int64).astype(np.uint8).reshape(2, 28, 28)
    for name in ("x-idx3-ubyte", "x-idx3-ubyte.gz"):
        write_idx(tmp_path / name, a)
        np.testing.assert_array_equal(read_idx(tmp_path / name), a)
    assert gzip.decompress((tmp_path / "x-idx3-ubyte.gz").read_bytes()) == (
        tmp_path / "x-idx3-ubyte"
    ).read_bytes()


def test_header_is_mnist_format():
    data = encode_idx(np.zeros((3, 28, 28), np.uint8))
    assert data[:4] == b"\x00\x00\x08\x03"
    assert struct.unpack(">3I", data[4:16]) == (3, 28, 28)
    assert len(data) == 16 + 3 * 28 * 28


def test_gzip_output_is_deterministic(tmp_path):
    a = np.random.default_rng(0).integers(0, 255, (5, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "a.gz", a)
    first = (tmp_path / "a.gz").read_bytes()
    write_idx(tmp_path / "a.gz", a)
    assert (tmp_path / "a.gz").read_bytes() == first


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00\x00", "too short"),
        (b"\x01\x00\x08\x01\x00\x00\x00\x01\x05", "bad magic"),
        (b"\x00\x00\x0d\x01\x00\x00\x00\x01\x05", "not unsigned byte"),
        (b"\x00\x00\x08\x00", "dimensions"),
        (b"\x00\x00\x08\x02\x00\x00", "truncated IDX header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x03\x05", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x01\x05\x06", "trailing bytes"),
    ],
)
def test_bad_bytes_are_clear_errors(data, message):
    with pytest.raises(IdxError, match=message):
        decode_idx(data, "f")


def test_corrupt_gzip_names_file(tmp_path):
    path = tmp_path / "t-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(encode_idx(np.zeros(100, np.uint8)))[:30])
    with pytest.raises(IdxError, match="t-idx1-ubyte.gz: corrupt gzip"):
        read_idx(path)


def test_missing_file_is_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot read"):
        read_idx(tmp_path / "nope")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_parse_or_raise_idx_error(data):
    try:
        out = decode_idx(data)
    except IdxError:
        return
    assert out.dtype == np.uint8 and len(data) == 4 + 4 * out.ndim + out.size


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 23), st.integers(0, 255), st.integers(-4, 4))
def test_mutated_valid_file_parses_or_raises_idx_error(pos, value, resize):
    good = bytearray(encode_idx(np.ones((2, 2, 3), np.uint8)))
    good[pos % len(good)] = value
    data = bytes(good[: len(good) + resize]) if resize < 0 else bytes(good) + b"\x00" * resize
    try:
        decode_idx(data)
    except IdxError:
        pass


def _gzip_stream(parts, total: int) -> bytes:
    """gzip of `parts` followed by zeros up to `total` bytes, compressed a block at a time so
    building a large bomb never holds it uncompressed."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [z.compress(p) for p in parts]
    left = total - sum(len(p) for p in parts)
    block = bytes(1 << 20)
    while left > 0:
        out.append(z.compress(block[: min(left, len(block))]))
        left -= len(block)
    return b"".join(out) + z.flush()


def test_gzip_bomb_stops_at_the_headers_size(tmp_path, monkeypatch):
    """A 60 KiB file whose header declares 2 images but that expands to 64 MiB: one IdxError,
    and decompression stops early (memory never holds more than a chunk past the header's size)."""
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(_gzip_stream([idx_header((2, 28, 28))], 64 << 20))
    assert path.stat().st_size < 100_000
    produced = []
    real = zlib.decompressobj

    class Counting:
        def __init__(self, *a, **k):
            self.d = real(*a, **k)

        def decompress(self, data, max_length=0):
            out = self.d.decompress(data, max_length)
            produced.append(len(out))
            return out

        def __getattr__(self, name):
            return getattr(self.d, name)

    monkeypatch.setattr(idx.zlib, "decompressobj", Counting)
    with pytest.raises(IdxError, match=r"expands past the 1584 bytes its IDX header declares"):
        read_idx(path)
    assert sum(produced) <= 1584 + idx.CHUNK  # stopped at the first chunk, not 64 MiB


def test_gzip_claiming_less_than_it_holds_is_refused_with_a_small_chunk(tmp_path, monkeypatch):
    monkeypatch.setattr(idx, "CHUNK", 64)  # many chunks: the bound holds across chunk edges
    path = tmp_path / "l.gz"
    path.write_bytes(_gzip_stream([encode_idx(np.ones(100, np.uint8))], 5000))
    with pytest.raises(IdxError, match="expands past the 108 bytes"):
        read_idx(path)
    path.write_bytes(gzip.compress(encode_idx(np.ones(1000, np.uint8))))
    np.testing.assert_array_equal(read_idx(path), np.ones(1000, np.uint8))


def test_gzip_bad_header_fails_before_decompressing_the_rest(tmp_path, monkeypatch):
    monkeypatch.setattr(idx, "CHUNK", 64)
    path = tmp_path / "b.gz"
    path.write_bytes(_gzip_stream([b"\x00\x00\x0d\x01"], 1 << 20))
    with pytest.raises(IdxError, match="not unsigned byte"):
        read_idx(path)


def test_multi_member_and_padded_gzip_read_like_gunzip(tmp_path, monkeypatch):
    monkeypatch.setattr(idx, "CHUNK", 16)
    data = encode_idx(np.arange(200, dtype=np.uint8))
    path = tmp_path / "m.gz"
    path.write_bytes(gzip.compress(data[:50]) + gzip.compress(data[50:]) + b"\x00" * 40)
    np.testing.assert_array_equal(read_idx(path), np.arange(200, dtype=np.uint8))
    path.write_bytes(gzip.compress(data) + b"junk")
    with pytest.raises(IdxError, match="corrupt gzip"):
        read_idx(path)
