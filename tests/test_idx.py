"""The IDX reader and writer: byte-exact round trips and a clear error for every bad file."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnistgan.data.idx import IdxError, decode_idx, encode_idx, read_idx, write_idx
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
