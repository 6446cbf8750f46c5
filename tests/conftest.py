"""Shared fixtures: tiny fake IDX data sets written to temp folders, so tests need no network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mnistgan.data.idx import write_idx
from mnistgan.data.sources import SPLIT_FILES

torch.set_num_threads(1)  # tests are small; one thread each leaves the other core free


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


def tiny_cdcgan_run(tmp_path_factory) -> Path:
    """A class-conditional DCGAN trained 3 steps on fake data: bad digits, a real checkpoint."""
    from mnistgan.cli import main

    root = tmp_path_factory.mktemp("data")
    write_fake(root / "MNIST" / "raw", fake_arrays())
    out = tmp_path_factory.mktemp("runs") / "cdcgan"
    main(["train", "--preset", "cdcgan", "--dataset", "idx", "--data-dir", str(root),
          "--out", str(out), "--max-steps", "3", "--batch-size", "16", "--log-every", "1"])
    return out
