"""MNIST-style data: find it offline, prove it genuine, keep it as uint8 tensors.

`load_dataset` tries, in order, the `--data-dir` folder, then the data set's other sources (the
registry package for MNIST, Debian's package for Fashion-MNIST), then torchvision's download.
Whatever it used is verified, reported in one line, and cached in torchvision's layout
`DATA_DIR/<folder>/raw/` so that the next run, and `torchvision.datasets.MNIST(DATA_DIR)`, read it
from there. When nothing works, one error lists every source tried and why it failed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mnistgan.atomic import write_bytes_atomic
from mnistgan.data.idx import encode_idx
from mnistgan.data.sources import (
    FASHION_MNIST,
    MNIST,
    SPLIT_FILES,
    USER_IDX,
    Arrays,
    DatasetSpec,
    IdxFolder,
    NotFound,
    RegistryPackage,
    TorchvisionDownload,
    array_md5,
    verify,
)
from mnistgan.errors import UserError

SPECS: dict[str, DatasetSpec] = {s.name: s for s in (MNIST, FASHION_MNIST, USER_IDX)}
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


@dataclass(frozen=True)
class Dataset:
    """A data set in memory: uint8 images [N, 28, 28], int64 labels [N], and where it came from."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor | None
    test_labels: torch.Tensor | None
    source: str
    fingerprint: str  # sha256 over the md5 of each split's IDX encoding: names these exact bytes


def sources_for(spec: DatasetSpec, data_dir: Path) -> list:
    """The sources tried for `spec`, in order."""
    folder = IdxFolder(data_dir, f"--data-dir {data_dir}")
    if spec.name == "mnist":
        return [folder, RegistryPackage(), TorchvisionDownload()]
    if spec.name == "fashion-mnist":
        debian = IdxFolder(DEBIAN_FASHION_MNIST, "Debian package dataset-fashion-mnist", True)
        return [folder, debian, TorchvisionDownload()]
    return [folder]


def load_dataset(
    name: str = "mnist",
    data_dir: str | Path = "data",
    *,
    cache: bool = True,
    log: Callable[[str], None] | None = None,
) -> Dataset:
    """Find, verify and load data set `name` ("mnist", "fashion-mnist" or "idx")."""
    if name not in SPECS:
        raise UserError(f"unknown dataset {name!r} (choose from {', '.join(SPECS)})")
    spec, data_dir = SPECS[name], Path(data_dir)
    failures = []
    for i, source in enumerate(sources_for(spec, data_dir)):
        try:
            arrays = source.load(spec)
        except NotFound as e:
            failures.append(f"{source.label}: {e}")
            continue
        verify(arrays, spec, source.label)
        described = _describe(source, spec)
        if cache and i > 0:  # found elsewhere than --data-dir: keep a copy there
            described += _cache(arrays, data_dir / spec.folder / "raw")
        if log is not None:
            log(f"data: {described}")
        return _to_dataset(spec, arrays, described)
    tried = "; ".join(f"({i}) {f}" for i, f in enumerate(failures, 1))
    raise UserError(f"no {name} data found. Tried {tried}")


def load_samples(path: str | Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images uint8 (N, 28, 28) and labels (N,) or None from an .npz (`images`, optional
    `labels`) or a folder of IDX files (its training split, as `--dataset idx` reads it)."""
    path = Path(path)
    if path.is_dir():
        ds = load_dataset("idx", path, cache=False)
        return ds.train_images, ds.train_labels
    if not path.is_file():
        raise UserError(f"{path}: no such file or folder")
    try:
        with np.load(path, allow_pickle=False) as f:
            images = f["images"]
            labels = f["labels"] if "labels" in f.files else None
    except KeyError:
        raise UserError(f"{path}: an .npz of samples needs an 'images' array") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable .npz ({e})") from None
    arrays = {"train_images": images}
    if labels is not None:
        arrays["train_labels"] = labels
    if images.dtype != np.uint8 or (labels is not None and labels.dtype.kind not in "iu"):
        raise UserError(f"{path}: images must be uint8 and labels integers")
    if labels is not None:
        verify(arrays, USER_IDX, str(path))
    elif images.ndim != 3 or images.shape[1:] != (28, 28):
        raise UserError(f"{path}: images have shape {images.shape}, not (N, 28, 28)")
    y = None if labels is None else torch.from_numpy(labels.astype("int64"))
    return torch.from_numpy(np.ascontiguousarray(images)), y


def _describe(source, spec: DatasetSpec) -> str:
    checked = "fingerprints verified" if spec.md5 is not None else "structure checked"
    if isinstance(source, RegistryPackage):
        return f"{spec.name} from {source.label} {source.version()} ({checked})"
    return f"{spec.name} from {source.label} ({checked})"


def _cache(arrays: Arrays, raw_dir: Path) -> str:
    """Write the arrays as uncompressed IDX in torchvision's layout; a failure only warns."""
    try:
        raw_dir.mkdir(parents=True, exist_ok=True)
        blobs = {key: encode_idx(arrays[key]) for key in SPLIT_FILES}
        for key, blob in blobs.items():
            write_bytes_atomic(raw_dir / SPLIT_FILES[key], blob)
    except OSError as e:
        return f"; could not cache to {raw_dir} ({e.strerror or e})"
    return f"; cached to {raw_dir}"


def _to_dataset(spec: DatasetSpec, arrays: Arrays, source: str) -> Dataset:
    def images(key: str) -> torch.Tensor | None:
        return torch.from_numpy(arrays[key].copy()) if key in arrays else None

    def labels(key: str) -> torch.Tensor | None:
        return torch.from_numpy(arrays[key].astype("int64")) if key in arrays else None

    digests = spec.md5 or {key: array_md5(arrays[key]) for key in arrays}
    fingerprint = hashlib.sha256(
        "".join(f"{k}={digests[k]};" for k in sorted(digests)).encode()
    ).hexdigest()
    return Dataset(
        name=spec.name,
        train_images=images("train_images"),
        train_labels=labels("train_labels"),
        test_images=images("test_images"),
        test_labels=labels("test_labels"),
        source=source,
        fingerprint=fingerprint,
    )


__all__ = ["SPECS", "Dataset", "DatasetSpec", "load_dataset", "load_samples", "sources_for"]
