"""Atomic file writes: every file mnistgan writes appears whole or not at all.

A writer gets a temp file beside the target; only when the block finishes without error is the
temp file fsynced and renamed over the target (`os.replace`, atomic on POSIX). An exception or a
full disk leaves the old file, if any, untouched and removes the temp file. A kill -9 can leave a
`.NAME.tmp-PID` file behind, which no reader ever takes for the real one.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from mnistgan.errors import UserError


def check_writable(path: str | os.PathLike, flag: str = "--out") -> None:
    """A one-line `UserError` now, before any work, if a file cannot be written at `path`."""
    path = Path(path)
    if not path.parent.exists():
        raise UserError(f"{flag} {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a directory")


def write_json_atomic(path: str | os.PathLike, data: object) -> None:
    """`data` as indented JSON, written atomically."""
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def temp_path(path: Path) -> Path:
    """The hidden temp name a write to `path` goes through."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open `path` for binary writing so that it is replaced only if the block succeeds."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as e:
        if e.filename is None:  # name the file a full disk failed, not just the reason
            e.filename = str(path)
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `path` atomically."""
    with atomic_open(path) as f:
        f.write(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))


def fsync_dir(directory: Path) -> None:
    """Make renames in `directory` durable: a crash right after one keeps the new name."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
