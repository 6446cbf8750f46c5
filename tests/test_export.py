"""`mnistgan generate`: files every MNIST loader reads, labels as asked, byte-identical repeats,
and no finished-looking file after an interrupted or failed export."""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

import conftest
from conftest import fake_arrays, write_fake
from mnistgan import export
from mnistgan.cli import main
from mnistgan.config import load_preset
from mnistgan.data import load_dataset
from mnistgan.errors import UserError
from mnistgan.export import ExportOptions, export_dataset, plan_counts, scale_counts, writers
from mnistgan.models import build_models
from mnistgan.sampling import Sampler, load_generator


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A class-conditional DCGAN trained 3 steps on fake data: bad digits, real checkpoint."""
    return conftest.tiny_cdcgan_run(tmp_path_factory)


@pytest.fixture(scope="module")
def sampler(run) -> Sampler:
    return load_generator(run)


def unconditional() -> Sampler:
    cfg = load_preset("dcgan")
    torch.manual_seed(0)
    g, _ = build_models(cfg.model)
    return Sampler(g, cfg, device=torch.device("cpu"), source="untrained dcgan")


@dataclass(frozen=True)
class FakeEmbedding:
    probs: torch.Tensor


class FakeEvaluator:
    """Stands in for the MNIST evaluator: a deterministic confidence from a hash of the pixels,
    uniform in [0, 1] over images (also over the nearly alike images of a generator trained 3
    steps), so rejection and quotas are testable without real digits. With `digits` each image
    is one digit (from the same hash) at that confidence; without, the confidence is the same
    for every digit, so a conditional generator's requested label always counts."""

    sha256 = "fake"

    def __init__(self, conf_scale: float = 1.0, digits: bool = True):
        self.conf_scale, self.digits = conf_scale, digits

    def embed(self, images: torch.Tensor) -> FakeEmbedding:
        rows = images.reshape(len(images), -1).cpu().numpy()
        h = torch.tensor([int.from_bytes(hashlib.blake2b(r.tobytes(), digest_size=4).digest(),
                                         "little") for r in rows])
        conf = ((h // 10) % 100).double() / 99 * self.conf_scale  # (N,)
        if not self.digits:
            return FakeEmbedding(conf[:, None].expand(-1, 10).clone())
        probs = ((1 - conf) / 9)[:, None].expand(-1, 10).clone()
        probs[torch.arange(len(h)), h % 10] = conf
        return FakeEmbedding(probs)


def fake_evaluator(monkeypatch, conf_scale: float = 1.0, digits: bool = True) -> FakeEvaluator:
    ev = FakeEvaluator(conf_scale, digits)
    monkeypatch.setattr("mnistgan.metrics.load_evaluator", lambda device="cpu": ev)
    return ev


def generate(run: Path, out: Path, *args: str) -> None:
    main(["generate", "--checkpoint", str(run), "--out", str(out), *args])


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root (hidden ones included) by relative path."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code, _, err = conftest.run_cli(capsys, *args)
    return code, err

# -- loaders read it ---------------------------------------------------------------------------


def test_idx_export_reads_in_torchvision_and_mnistgan(run, tmp_path):
    out = tmp_path / "synth"
    generate(run, out, "--n-train", "50", "--n-test", "20")
    raw = out / "MNIST" / "raw"
    for split, n in ((True, 50), (False, 20)):
        ds = torchvision.datasets.MNIST(out, train=split)  # reads the plain files only
        assert len(ds) == n and ds.data.dtype == torch.uint8 and ds.data.shape[1:] == (28, 28)
    data = load_dataset("idx", out, cache=False)
    tv = torchvision.datasets.MNIST(out, train=True)
    assert torch.equal(data.train_images, tv.data) and torch.equal(data.train_labels, tv.targets)
    assert data.test_images.shape == (20, 28, 28)
    for name in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        gz = (raw / f"{name}.gz").read_bytes()
        assert gzip.decompress(gz) == (raw / name).read_bytes()
        assert gz[3] == 0 and gz[4:8] == b"\0\0\0\0"  # no file name, mtime 0
    header = (raw / "train-images-idx3-ubyte").read_bytes()[:16]
    assert header == bytes([0, 0, 8, 3, 0, 0, 0, 50, 0, 0, 0, 28, 0, 0, 0, 28])  # MNIST's magic
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["splits"]["train"]["per_digit"] == [5] * 10
    assert manifest["generator"]["checkpoint_sha256"] == export.file_sha256(
        run / "checkpoints" / "last.pt")
    assert manifest["files"]["MNIST/raw/train-images-idx3-ubyte"] == export.file_sha256(
        raw / "train-images-idx3-ubyte")
    assert manifest["timing"]["images_per_s"] > 0 and manifest["mnistgan_version"]
    assert not list(out.glob(".mnistgan-export-*"))  # the staging folder is gone


def test_formats_hold_the_same_images(sampler, tmp_path):
    """Format decides the files, not the content: npz and PNG hold the IDX export's images."""
    for fmt in ("idx", "npz", "png"):
        export_dataset(sampler, tmp_path / fmt, ExportOptions(n_train=30, n_test=10, format=fmt))
    idx = load_dataset("idx", tmp_path / "idx", cache=False)
    with np.load(tmp_path / "npz" / "train.npz") as f:
        assert f["images"].dtype == np.uint8 and f["labels"].dtype == np.uint8
        assert np.array_equal(f["images"], idx.train_images.numpy())
        assert np.array_equal(f["labels"], idx.train_labels.numpy())
    with np.load(tmp_path / "npz" / "test.npz") as f:
        assert f["images"].shape == (10, 28, 28)
    folder = torchvision.datasets.ImageFolder(tmp_path / "png" / "train")
    assert len(folder) == 30 and folder.classes == [str(d) for d in range(10)]
    png = tmp_path / "png" / "train" / str(int(idx.train_labels[7])) / "00007.png"
    assert np.array_equal(np.asarray(Image.open(png)), idx.train_images[7].numpy())


# -- deterministic -----------------------------------------------------------------------------


def test_repeat_is_byte_identical_whatever_the_batch_size(run, tmp_path):
    generate(run, tmp_path / "a", "--n-train", "1200", "--n-test", "10", "--batch-size", "7")
    generate(run, tmp_path / "b", "--n-train", "1200", "--n-test", "10", "--batch-size", "1000")
    generate(run, tmp_path / "c", "--n-train", "1200", "--n-test", "10", "--seed", "1")
    a, b, c = (tree(tmp_path / x) for x in "abc")
    ma, mb = (json.loads(t.pop("manifest.json")) for t in (a, b))
    c.pop("manifest.json")
    assert a == b and a.keys() == c.keys()
    assert a["MNIST/raw/train-images-idx3-ubyte"] != c["MNIST/raw/train-images-idx3-ubyte"]
    ma.pop("timing"), mb.pop("timing")
    assert ma == mb  # the manifest too, but for its timing


def test_npz_and_png_repeat_byte_identical(sampler, tmp_path):
    for fmt in ("npz", "png"):
        for name in ("a", "b"):
            export_dataset(sampler, tmp_path / fmt / name,
                           ExportOptions(n_train=20, n_test=5, format=fmt))
        a, b = tree(tmp_path / fmt / "a"), tree(tmp_path / fmt / "b")
        a.pop("manifest.json"), b.pop("manifest.json")
        assert a == b and len(a) == (2 if fmt == "npz" else 25 + 1)  # PNGs + croissant.json


# -- labels ------------------------------------------------------------------------------------


def test_label_plans():
    assert plan_counts("balanced", 25, 10) == {"train": [3] * 5 + [2] * 5, "test": [1] * 10}
    mnist = {split: list(counts) for split, counts in export.MNIST_COUNTS.items()}
    assert plan_counts("mnist", 60_000, 10_000) == mnist
    small = plan_counts("mnist", 100, 7)
    assert sum(small["train"]) == 100 and sum(small["test"]) == 7 and small["train"][1] == 11
    listed = plan_counts("0,0,0,30,0,0,0,0,10,0", None, 8)
    assert listed == {"train": [0, 0, 0, 30, 0, 0, 0, 0, 10, 0],
                      "test": [0, 0, 0, 6, 0, 0, 0, 0, 2, 0]}
    assert plan_counts("1,1,1,1,1,1,1,1,1,1", 10, 0)["train"] == [1] * 10  # equal --n-train: fine
    assert scale_counts([1, 1, 1], 4) == [2, 1, 1]  # ties: the remainder to the lower digit


@pytest.mark.parametrize("labels, expected", [
    ("balanced", [3] * 3 + [2] * 7),
    ("mnist", scale_counts(export.MNIST_COUNTS["train"], 23)),
    ("0,5,0,0,0,0,0,0,0,7", [0, 5, 0, 0, 0, 0, 0, 0, 0, 7]),
])
def test_written_label_counts_follow_labels(run, tmp_path, labels, expected):
    extra = [] if "," in labels else ["--n-train", "23"]
    generate(run, tmp_path / "s", "--labels", labels, "--n-test", "10", *extra)
    data = load_dataset("idx", tmp_path / "s", cache=False)
    assert data.train_labels.bincount(minlength=10).tolist() == expected
    assert len(data.train_labels) == sum(expected) and len(data.test_labels) == 10
    labels = data.train_labels.tolist()
    assert labels != sorted(labels)  # shuffled, as MNIST's files are: not grouped by digit


def test_unconditional_generator_is_labelled_by_the_evaluator(monkeypatch, tmp_path):
    ev = fake_evaluator(monkeypatch)
    manifest = export_dataset(unconditional(), tmp_path / "u",
                              ExportOptions(n_train=40, n_test=20, labels="mnist"))
    data = load_dataset("idx", tmp_path / "u", cache=False)
    assert data.train_labels.bincount(minlength=10).tolist() == scale_counts(
        export.MNIST_COUNTS["train"], 40)
    predicted = ev.embed(data.train_images).probs.argmax(1)
    assert torch.equal(predicted, data.train_labels)  # each label is the evaluator's verdict
    assert "evaluator" in manifest["labels"]["from"] and manifest["evaluator_sha256"] == "fake"
    split = manifest["splits"]["train"]
    assert split["acceptance_rate"] == 1 and 0 < split["kept_share"] < 1  # quotas rejected some


def test_min_confidence_keeps_only_confident_samples(monkeypatch, sampler, tmp_path):
    ev = fake_evaluator(monkeypatch, digits=False)
    manifest = export_dataset(sampler, tmp_path / "c",
                              ExportOptions(n_train=200, n_test=0, min_confidence=0.6))
    data = load_dataset("idx", tmp_path / "c", cache=False)
    probs = ev.embed(data.train_images).probs
    assert (probs[torch.arange(200), data.train_labels] >= 0.6).all()
    assert data.train_labels.bincount(minlength=10).tolist() == [20] * 10
    rate, kept = manifest["splits"]["train"]["acceptance_rate"], manifest["kept_share"]
    assert 0.25 < rate < 0.55 and manifest["min_confidence"] == 0.6  # about 40% pass
    assert 0.5 * rate < kept <= rate  # few passes wasted on slots already filled


def test_hopeless_acceptance_is_one_clear_error(monkeypatch, sampler, tmp_path):
    fake_evaluator(monkeypatch, conf_scale=0.001, digits=False)
    with pytest.raises(UserError, match="lower --min-confidence"):
        export_dataset(sampler, tmp_path / "h", ExportOptions(n_train=50, min_confidence=0.5))
    assert not (tmp_path / "h").exists()


# -- nothing half-written ----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["idx", "npz", "png"])
def test_interrupted_export_leaves_nothing(monkeypatch, sampler, tmp_path, fmt):
    calls = {"n": 0}
    real_generate = Sampler.generate

    def flaky(self, z, labels=None):
        calls["n"] += 1
        if calls["n"] == 3:  # mid-stream: the first block is already written
            raise KeyboardInterrupt
        return real_generate(self, z, labels)

    monkeypatch.setattr(Sampler, "generate", flaky)
    with pytest.raises(KeyboardInterrupt):
        export_dataset(sampler, tmp_path / "x", ExportOptions(n_train=1500, n_test=10,
                                                              format=fmt, batch_size=500))
    # The writer may have started the next block's draw before the interrupt reached it.
    assert 3 <= calls["n"] <= 4 and not (tmp_path / "x").exists()


def test_disk_full_leaves_the_earlier_export_untouched(monkeypatch, sampler, tmp_path):
    out = tmp_path / "synth"
    export_dataset(sampler, out, ExportOptions(n_train=20, n_test=5))
    before = tree(out)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UserError, match="No space left on device"):
        export_dataset(sampler, out, ExportOptions(n_train=30, n_test=5, seed=1, overwrite=True))
    assert tree(out) == before  # old files and manifest as they were, no staging left


def test_out_of_space_mid_write(monkeypatch, sampler, tmp_path):
    """A write that fails (not only fsync): the error is one line and no file is left."""
    def full(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(writers._IdxStream, "write", full)
    with pytest.raises(UserError, match="No space left on device.*nothing was written"):
        export_dataset(sampler, tmp_path / "x", ExportOptions(n_train=20, n_test=5))
    assert not (tmp_path / "x").exists()


def test_existing_export_needs_overwrite(run, tmp_path, capsys):
    out = tmp_path / "synth"
    generate(run, out, "--n-train", "20", "--n-test", "5", "--format", "npz")
    code, err = run_cli(capsys, "generate", "--checkpoint", str(run), "--out", str(out),
                        "--n-train", "20")
    assert code == 2 and "already holds an export" in err and err.count("\n") == 1
    generate(run, out, "--n-train", "30", "--n-test", "5", "--overwrite")  # npz -> idx
    assert sorted(p.name for p in out.iterdir()) == ["MNIST", "manifest.json"]
    assert len(load_dataset("idx", out, cache=False).train_labels) == 30


def test_foreign_files_are_never_replaced(sampler, tmp_path):
    real = tmp_path / "data"
    write_fake(real / "MNIST" / "raw", fake_arrays())
    before = tree(real)
    with pytest.raises(UserError, match="not part of an mnistgan export"):
        export_dataset(sampler, real, ExportOptions(n_train=20, overwrite=True))
    assert tree(real) == before


def test_blocks_stream_bounded(monkeypatch, sampler, tmp_path):
    sizes = []
    real_write = writers.IdxWriter.write
    monkeypatch.setattr(writers.IdxWriter, "write",
                        lambda self, x, y: (sizes.append(len(x)), real_write(self, x, y)))
    export_dataset(sampler, tmp_path / "s", ExportOptions(n_train=2500, n_test=0))
    assert sizes == [1000, 1000, 500]


@pytest.mark.parametrize("args, message", [
    (["--labels", "1,2,3"], "ten comma-separated counts"),
    (["--labels", "1,2,3,4,5,6,7,8,9,-1"], "ten comma-separated counts"),
    (["--labels", "1,1,1,1,1,1,1,1,1,1", "--n-train", "20"], "leave out --n-train"),
    (["--min-confidence", "1"], "between 0 and 1"),
    (["--min-confidence", "0"], "between 0 and 1"),
    (["--n-train", "-1"], "--n-train must be at least 0"),
    (["--n-test", "-5"], "--n-test must be at least 0"),
    (["--format", "tiff"], "'tiff' is not one of"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
])
def test_generate_user_errors(run, tmp_path, capsys, args, message):
    code, err = run_cli(capsys, "generate", "--checkpoint", str(run), "--out",
                        str(tmp_path / "o"), *args)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def test_generate_missing_checkpoint(tmp_path, capsys):
    code, err = run_cli(capsys, "generate", "--checkpoint", str(tmp_path / "nope"), "--out",
                        str(tmp_path / "o"))
    assert code == 2 and "nope" in err and err.count("\n") == 1
