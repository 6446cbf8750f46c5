"""Export formats: one `Writer` class per format, found by name in `WRITERS`.

A writer streams an export into the staging folder split by split, block by block: `begin`
(a split of n images), `write` (a block: uint8 images (k, 28, 28), uint8 labels (k,)), `end`
(the split's files finished and fsynced), then `describe` for files that describe the whole
export (a dataset card, Croissant metadata), and `close` on the way out of a failure. Its
class data say which names it puts in OUT (`entries`: the only names `--overwrite` ever sets
aside) and which Python package it needs. A new format is one subclass with `@register`.

Every file is deterministic: gzip with mtime 0 and no name, zip entries dated 1980-01-01, PNGs
without time chunks.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import queue
import struct
import threading
import zipfile
import zlib
from pathlib import Path
from typing import ClassVar

import numpy as np

from mnistgan.data.idx import idx_header
from mnistgan.export.croissant import png_croissant

GZIP_LEVEL = 1  # chosen by benchmarks/export_speed.py: level 6 is ~10% smaller, far slower
IDX_PREFIX = {"train": "train", "test": "t10k"}


def finish_file(f) -> None:
    """Flush, fsync and close: a staged file is on the disk before anything is renamed."""
    f.flush()
    os.fsync(f.fileno())
    f.close()


def write_json(path: Path, document: dict, sort_keys: bool = True) -> None:
    """A staged JSON file, deterministic, fsynced."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(document, indent=2, sort_keys=sort_keys) + "\n")
        finish_file(f)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


_PNG_HEAD = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 28, 28, 8, 0, 0,
                                                                  0, 0))  # 8-bit grey, mode L
_PNG_END = _png_chunk(b"IEND", b"")


def png_block(images: np.ndarray) -> list[bytes]:
    """uint8 images (k, 28, 28) as greyscale PNGs (mode L, filter 0, zlib level 6, no time
    chunk): the chunks written directly, ~5x faster than PIL per image (benchmarks/
    export_speed.py), and byte-identical on every run."""
    rows = np.zeros((len(images), 28, 29), np.uint8)  # each row prefixed by filter type 0
    rows[:, :, 1:] = images
    return [_PNG_HEAD + _png_chunk(b"IDAT", zlib.compress(r.tobytes(), 6)) + _PNG_END
            for r in rows]


class Writer:
    """The interface every format implements; see the module docstring."""

    name: ClassVar[str]
    entries: ClassVar[tuple[str, ...]]  # what it puts in OUT, besides manifest.json
    help: ClassVar[str]
    extra: ClassVar[str | None] = None  # the mnistgan extra that installs `needs`
    needs: ClassVar[str | None] = None  # a module it imports, checked before anything is drawn
    hashes_files: ClassVar[bool] = True  # sha256 of every file in the manifest (PNG: counts)

    def __init__(self, staging: Path, plan: dict[str, list[int]]):
        self.staging, self.plan = staging, plan

    def begin(self, split: str, n: int) -> None:
        raise NotImplementedError

    def write(self, images: np.ndarray, labels: np.ndarray) -> None:
        raise NotImplementedError

    def end(self) -> None:
        raise NotImplementedError

    def describe(self, info: dict, files: dict[str, str]) -> list[str]:
        """Write files describing the whole export (given the manifest so far and the sha256
        of the data files); returns their names relative to the staging folder."""
        return []

    def close(self) -> None:
        """Release open handles after a failure (the staging folder is deleted anyway)."""


WRITERS: dict[str, type[Writer]] = {}


def register(cls: type[Writer]) -> type[Writer]:
    """Add a format to `WRITERS` under its `name`."""
    WRITERS[cls.name] = cls
    return cls


class _IdxStream:
    """One IDX file written twice as the data streams in: plain (what torchvision reads) and
    gzipped (what MNIST's mirrors ship), header first, since the shape is known up front."""

    def __init__(self, path: Path, shape: tuple[int, ...]):
        self.expected, self.written = int(np.prod(shape)), 0
        # Held open across writes, closed by `finish` or `close`: a streaming writer.
        self.plain = open(path, "wb")  # noqa: SIM115
        self.gz = open(path.with_name(path.name + ".gz"), "wb")  # noqa: SIM115
        self.zip = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # gzip: mtime 0, no name
        self._write(idx_header(shape))

    def _write(self, data: bytes) -> None:
        self.plain.write(data)
        self.gz.write(self.zip.compress(data))

    def write(self, array: np.ndarray) -> None:
        self.written += array.size
        self._write(array.tobytes())

    def finish(self) -> None:
        if self.written != self.expected:
            raise RuntimeError(f"IDX stream got {self.written} of {self.expected} bytes")
        self.gz.write(self.zip.flush())
        finish_file(self.plain)
        finish_file(self.gz)

    def close(self) -> None:
        self.plain.close()
        self.gz.close()


@register
class IdxWriter(Writer):
    """Each split as `MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`, where
    `torchvision.datasets.MNIST(OUT)` and `--dataset idx --data-dir OUT` read it."""

    name, entries, help = "idx", ("MNIST",), "MNIST's IDX files, plain and .gz"

    def begin(self, split: str, n: int) -> None:
        raw = self.staging / "MNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        self.base = raw / IDX_PREFIX[split]
        self.images = _IdxStream(raw / f"{IDX_PREFIX[split]}-images-idx3-ubyte", (n, 28, 28))
        self.labels: list[np.ndarray] = []

    def write(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images.write(images)
        self.labels.append(labels)

    def end(self) -> None:
        self.images.finish()
        y = np.concatenate(self.labels) if self.labels else np.zeros(0, np.uint8)
        labels = _IdxStream(self.base.with_name(self.base.name + "-labels-idx1-ubyte"), y.shape)
        labels.write(y)
        labels.finish()

    def close(self) -> None:
        if hasattr(self, "images"):
            self.images.close()


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # no clock in the file
    info.compress_type, info.external_attr = zipfile.ZIP_STORED, 0o644 << 16
    return info


class NpzStream:
    """An uncompressed .npz (as `np.savez` writes) whose big image arrays stream in block by
    block after their .npy header; small arrays are added whole."""

    def __init__(self, path: Path):
        self.file = open(path, "wb")  # noqa: SIM115 (held across writes)
        self.zip = zipfile.ZipFile(self.file, "w", zipfile.ZIP_STORED, allowZip64=True)
        self.entry = None

    def open_images(self, key: str, n: int) -> None:
        """Start the array `key`, uint8 (n, 28, 28); `write` appends to it."""
        big = n * 28 * 28 + 128 > zipfile.ZIP64_LIMIT
        self.entry = self.zip.open(_zip_info(f"{key}.npy"), "w", force_zip64=big)
        header = {"descr": "|u1", "fortran_order": False, "shape": (n, 28, 28)}
        np.lib.format.write_array_header_1_0(self.entry, header)

    def write(self, images: np.ndarray) -> None:
        self.entry.write(images.tobytes())

    def close_images(self) -> None:
        self.entry.close()
        self.entry = None

    def add(self, key: str, array: np.ndarray) -> None:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, array, allow_pickle=False)
        self.zip.writestr(_zip_info(f"{key}.npy"), buf.getvalue())

    def finish(self) -> None:
        self.zip.close()
        finish_file(self.file)

    def close(self) -> None:
        # After `finish` these are no-ops; on the way out of a failed export they only release
        # the handles (the staged file is deleted, whatever state it is in).
        with contextlib.suppress(OSError, ValueError):
            if self.entry is not None:
                self.entry.close()
            self.zip.close()
        self.file.close()


def _labels(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, np.uint8)


class _NpzWriter(Writer):
    """What the npz formats share: images streamed into an `NpzStream`, labels kept."""

    npz: NpzStream | None = None

    def write(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.npz.write(images)
        self.labels.append(labels)

    def close(self) -> None:
        if self.npz is not None:
            self.npz.close()


@register
class NpzWriter(_NpzWriter):
    """Each split as `{split}.npz` with `images` uint8 (N, 28, 28) and `labels` uint8 (N,)."""

    name, entries, help = "npz", ("train.npz", "test.npz"), "OUT/{train,test}.npz"

    def begin(self, split: str, n: int) -> None:
        self.npz, self.labels = NpzStream(self.staging / f"{split}.npz"), []
        self.npz.open_images("images", n)

    def end(self) -> None:
        self.npz.close_images()
        self.npz.add("labels", _labels(self.labels))
        self.npz.finish()


@register
class KerasWriter(_NpzWriter):
    """`mnist.npz` as `keras.datasets.mnist.load_data()` reads it: `x_train`, `y_train`,
    `x_test`, `y_test`, uint8 (N, 28, 28) and (N,), so Keras code runs on it with `np.load`."""

    name, entries, help = "keras", ("mnist.npz",), "OUT/mnist.npz with Keras' keys"

    def begin(self, split: str, n: int) -> None:
        if self.npz is None:
            self.npz, self.y = NpzStream(self.staging / "mnist.npz"), {}
        self.split, self.labels = split, []
        self.npz.open_images(f"x_{split}", n)

    def end(self) -> None:
        self.npz.close_images()
        self.y[self.split] = _labels(self.labels)
        if len(self.y) == len(self.plan):  # the last split: labels after the images
            for split, y in self.y.items():
                self.npz.add(f"y_{split}", y)
            self.npz.finish()


@register
class PngWriter(Writer):
    """Each split as an ImageFolder tree `{split}/{digit}/{index}.png`, index its place in the
    split, zero-padded so that names sort in order; `croissant.json` describes the trees."""

    name, entries, help = "png", ("train", "test", "croissant.json"), "ImageFolder PNG trees"
    hashes_files = False

    def begin(self, split: str, n: int) -> None:
        self.root, self.index = self.staging / split, 0
        self.width = max(5, len(str(max(n - 1, 0))))
        for d in range(10):
            (self.root / str(d)).mkdir(parents=True)

    def write(self, images: np.ndarray, labels: np.ndarray) -> None:
        for png, label in zip(png_block(images), labels.tolist(), strict=True):
            path = self.root / str(label) / f"{self.index:0{self.width}d}.png"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)  # 3 calls a file
            try:
                if os.write(fd, png) != len(png):  # a short write: the disk is full
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            finally:
                os.close(fd)
            self.index += 1

    def end(self) -> None:
        # One sync for the split's files, not an fsync per file: on this CPU's disk 70,000
        # fsyncs took longer than drawing the images. sync() returns once all is on the disk.
        os.sync()

    def describe(self, info: dict, files: dict[str, str]) -> list[str]:
        write_json(self.staging / "croissant.json", png_croissant(info))
        return ["croissant.json"]


class Background:
    """A writer's `write` on a worker thread, so gzip, PNG encoding and the disk overlap the
    generator (zlib and file writes release the GIL). At most `depth` blocks wait in the queue,
    so memory stays bounded; the first error is raised in the caller at its next call."""

    def __init__(self, writer: Writer, depth: int = 2):
        self.writer, self.error = writer, None
        self.queue: queue.Queue = queue.Queue(depth)
        self.thread = threading.Thread(target=self._run, name="export-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:  # after an error, only drain, so the caller never blocks
                try:
                    self.writer.write(*item)
                except BaseException as e:  # handed to the caller's thread, raised there
                    self.error = e

    def check(self) -> None:
        """Raise the writer's first error, if any, in the caller's thread."""
        if self.error is not None:
            raise self.error

    def write(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.check()
        self.queue.put((images, labels))

    def join(self) -> None:
        """Wait until every queued block is written (or dropped after an error)."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()
