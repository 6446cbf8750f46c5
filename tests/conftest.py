"""Shared fixtures: tiny fake IDX data sets written to temp folders, so tests need no network;
the isolation every test gets (its torch thread count restored, the metrics cache in a temp
folder, never ~/.cache); and the switch that makes optional-dependency skips failures.

`MNISTGAN_REQUIRE_OPTIONAL=1` (CI sets it; `MNISTGAN_REQUIRE_BROWSER=1` is an alias) turns every
skip for a missing optional dependency (onnx, onnxruntime, yaml, the notebook runner, zarr and
the registry copy of MNIST, Chromium) into a failure, so a broken extra cannot pass CI green.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from mnistgan.data.idx import write_idx
from mnistgan.data.sources import SPLIT_FILES

THREADS = 1  # tests are small; one thread each leaves the other core free
torch.set_num_threads(THREADS)
REQUIRE_VARS = ("MNISTGAN_REQUIRE_OPTIONAL", "MNISTGAN_REQUIRE_BROWSER")


def optional_required() -> bool:
    """Whether CI asked for every optional dependency to be present (see the docstring)."""
    return any(os.environ.get(name) == "1" for name in REQUIRE_VARS)


def skip_optional(reason: str) -> None:
    """Skip for a missing optional dependency, or fail when `optional_required()`."""
    if optional_required():
        pytest.fail(f"MNISTGAN_REQUIRE_OPTIONAL=1 but {reason}")
    pytest.skip(reason)


def require_optional(module: str) -> ModuleType:
    """`pytest.importorskip(module)`, except that it fails when `optional_required()`."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        skip_optional(f"{module} cannot be imported ({e})")


@pytest.fixture(autouse=True)
def _restore_threads():
    """Each test leaves torch's thread count as it found it: a test (or the serve code it calls)
    that changes it cannot slow down or speed up the rest of the run."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="session")
def _session_isolation(tmp_path_factory):
    """For the whole run: THREADS torch threads whatever a test module set while being
    imported, and the metrics cache ($MNISTGAN_CACHE) in a temp folder, never ~/.cache (tests
    that need their own cache set it again with monkeypatch)."""
    torch.set_num_threads(THREADS)
    old = os.environ.get("MNISTGAN_CACHE")
    os.environ["MNISTGAN_CACHE"] = str(tmp_path_factory.mktemp("mnistgan-cache"))
    yield
    if old is None:
        os.environ.pop("MNISTGAN_CACHE", None)
    else:
        os.environ["MNISTGAN_CACHE"] = old


def fake_arrays(n_train: int = 96, n_test: int = 32, seed: int = 0) -> dict[str, np.ndarray]:
    """Digit-like fake data: a bright bar whose position depends on the label, plus noise."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        for i, y in enumerate(labels):
            images[i, 4 + 2 * int(y) : 6 + 2 * int(y), 6:22] = 255
        out[f"{split}_images"], out[f"{split}_labels"] = images, labels
    return out


def write_fake(directory: Path, arrays: dict[str, np.ndarray], gz: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for key, name in SPLIT_FILES.items():
        write_idx(directory / (name + (".gz" if gz else "")), arrays[key])
    return directory


@pytest.fixture
def fake_dir(tmp_path: Path) -> Path:
    """A data dir in torchvision's layout (DIR/MNIST/raw) holding a tiny fake data set."""
    root = tmp_path / "fake"
    write_fake(root / "MNIST" / "raw", fake_arrays())
    return root


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """Run the `mnistgan` CLI in-process: (exit status, stdout, stderr)."""
    from mnistgan.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def tiny_cdcgan_run(tmp_path_factory, *args: str) -> Path:
    """A class-conditional DCGAN trained 3 steps on fake data: bad digits, a real checkpoint.
    `args` go to `mnistgan train` as well (e.g. a `--config`)."""
    from mnistgan.cli import main

    root = tmp_path_factory.mktemp("data")
    write_fake(root / "MNIST" / "raw", fake_arrays())
    out = tmp_path_factory.mktemp("runs") / "cdcgan"
    main(["train", "--preset", "cdcgan", "--dataset", "idx", "--data-dir", str(root),
          "--out", str(out), "--max-steps", "3", "--batch-size", "16", "--log-every", "1", *args])
    return out
