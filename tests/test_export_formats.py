"""The formats ML users load, read back by the real libraries: `datasets.load_dataset` (hf),
numpy with Keras' keys (keras), `mlcroissant` (croissant.json); and the README's loaders run."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import datasets
import mlcroissant
import numpy as np
import pytest
import yaml
from PIL import Image

import conftest
from mnistgan.export import ExportOptions, export_dataset, verify
from mnistgan.sampling import load_generator

README = Path(__file__).resolve().parents[1] / "README.md"
SMALL = {"n_train": 50, "n_test": 20}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A class-conditional DCGAN trained 3 steps on fake data: bad digits, fast."""
    return conftest.tiny_cdcgan_run(tmp_path_factory)


@pytest.fixture(scope="module")
def exports(run, tmp_path_factory) -> dict[str, Path]:
    """The same 50 + 20 images in every format."""
    sampler, root = load_generator(run), tmp_path_factory.mktemp("formats")
    for fmt in ("idx", "hf", "keras", "png"):
        export_dataset(sampler, root / fmt, ExportOptions(**SMALL, format=fmt))
    return {fmt: root / fmt for fmt in ("idx", "hf", "keras", "png")}


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    """`datasets` caches into the test's folder, not the user's ~/.cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    return tmp_path / "hf-cache"


def idx_arrays(out: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from mnistgan.data import load_dataset

    d = load_dataset("idx", out, cache=False)
    return {"train": (d.train_images.numpy(), d.train_labels.numpy()),
            "test": (d.test_images.numpy(), d.test_labels.numpy())}


def test_hf_loads_as_the_hubs_mnist(exports, hf_cache):
    ds = datasets.load_dataset(str(exports["hf"]), cache_dir=str(hf_cache))
    assert isinstance(ds, datasets.DatasetDict) and set(ds) == {"train", "test"}
    assert ds["train"].num_rows == 50 and ds["test"].num_rows == 20
    assert ds["train"].features == datasets.Features({
        "image": datasets.Image(), "label": datasets.ClassLabel(names=[str(d) for d in range(10)])})
    idx = idx_arrays(exports["idx"])
    for split in ("train", "test"):
        images = [np.asarray(r["image"]) for r in ds[split]]
        first = ds[split][0]["image"]
        assert first.size == (28, 28) and first.mode == "L"
        assert np.array_equal(np.stack(images), idx[split][0])  # the IDX export's pixels
        assert ds[split]["label"] == idx[split][1].tolist()
    assert (exports["hf"] / "data" / "train-00000-of-00001.parquet").is_file()


def test_hf_dataset_card(exports):
    text = (exports["hf"] / "README.md").read_text()
    _, header, body = text.split("---\n", 2)
    card = yaml.safe_load(header)
    assert card["annotations_creators"] == ["machine-generated"]
    assert card["task_categories"] == ["image-classification"] and card["license"]
    assert card["source_datasets"] == ["extended|other"]  # trained on an IDX folder
    assert card["configs"][0]["data_files"] == [
        {"split": "train", "path": "data/train-00000-of-00001.parquet"},
        {"split": "test", "path": "data/test-00000-of-00001.parquet"}]
    info = card["dataset_info"]
    assert [f["name"] for f in info["features"]] == ["image", "label"]
    assert info["features"][1]["dtype"]["class_label"]["names"] == {
        str(d): str(d) for d in range(10)}
    assert {s["name"]: s["num_examples"] for s in info["splits"]} == {"train": 50, "test": 20}
    manifest = verify(exports["hf"])
    assert manifest["generator"]["weights_sha256"] in body and "seed 0" in body
    assert "| train | 50 | 5 5 5 5 5 5 5 5 5 5 |" in body and '"arch"' in body
    assert manifest["files"]["README.md"] and manifest["files"]["croissant.json"]


def test_card_carries_the_evaluation_beside_real_data(exports):
    """With --evaluate the card shows whatever `evaluate` reported (memorisation included), each
    figure beside real data's, and no timing, so the card stays byte-identical."""
    from mnistgan.export.hf import dataset_card

    info = verify(exports["hf"])
    report = {"n": 50, "fid": 1.25, "cas": 0.9, "memorisation": 0.01, "collapse_alarm": False,
              "class_share": [0.1] * 10, "seconds": 12.5, "evaluator_sha256": "e" * 64,
              "real": {"fid": 0.5, "cas": 0.98, "memorisation": 0.0}}
    card = dataset_card({**info, "evaluation": report}, info["files"])
    assert "1.250  (real data: 0.500)" in card and '"memorisation": 0.01' in card
    assert "12.5" not in card and "Not evaluated" in dataset_card(info, info["files"])


def test_keras_npz_has_keras_keys(exports):
    idx = idx_arrays(exports["idx"])
    with np.load(exports["keras"] / "mnist.npz", allow_pickle=False) as f:
        assert sorted(f) == ["x_test", "x_train", "y_test", "y_train"]
        for split in ("train", "test"):
            x, y = f[f"x_{split}"], f[f"y_{split}"]
            assert x.dtype == np.uint8 and y.dtype == np.uint8 and x.shape[1:] == (28, 28)
            assert np.array_equal(x, idx[split][0]) and np.array_equal(y, idx[split][1])


@pytest.mark.parametrize("fmt", ["hf", "png"])
def test_croissant_validates_and_loads(exports, fmt):
    dataset = mlcroissant.Dataset(jsonld=str(exports[fmt] / "croissant.json"))  # validates
    idx = idx_arrays(exports["idx"])
    for split, n in (("train", 50), ("test", 20)):
        records = list(dataset.records(record_set=split))
        assert len(records) == n
        labels = sorted(int(r[f"{split}/label"]) for r in records)
        assert labels == sorted(idx[split][1].tolist())
        image = records[0][f"{split}/image"]
        assert isinstance(image, Image.Image) and image.size == (28, 28)


@pytest.mark.parametrize("fmt, files", [("hf", 5), ("keras", 2)])
def test_new_formats_repeat_byte_identical(run, tmp_path, fmt, files):
    sampler, trees = load_generator(run), []
    for name in ("a", "b"):
        out = tmp_path / name
        batch = 7 if name == "a" else 37  # speed only, never the bytes
        export_dataset(sampler, out, ExportOptions(**SMALL, format=fmt, batch_size=batch))
        tree = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*")
                if p.is_file()}
        tree.pop("manifest.json")
        trees.append(tree)
    assert trees[0] == trees[1] and len(trees[0]) == files - 1


def test_hf_without_pyarrow_is_one_line(run, tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pyarrow" else real(name, *a))
    code, _, err = conftest.run_cli(capsys, "generate", "--checkpoint", str(run), "--out",
                                    str(tmp_path / "o"), "--format", "hf")
    assert code == 2 and "pip install 'mnistgan[hf]'" in err and err.count("\n") == 1, err
    assert not (tmp_path / "o").exists()


def readme_section() -> tuple[list[str], list[str]]:
    """The `mnistgan generate` commands and the Python blocks of README's "Use it with"."""
    text = README.read_text()
    section = text.split("\n## Use it with", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^mnistgan generate [^#\n]*", section, re.M)
    return [c.strip() for c in commands], re.findall(r"```python\n(.*?)```", section, re.S)


def test_readme_loaders_run(run, tmp_path, monkeypatch, hf_cache):
    commands, blocks = readme_section()
    assert len(commands) == 3 and len(blocks) == 3
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(hf_cache))
    from mnistgan.cli import main

    for command in commands:  # small sets from the tiny run, else exactly the README's flags
        main([*command.split()[1:], "--checkpoint", str(run), "--n-train", "50",
              "--n-test", "20"])
    scope: dict = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), scope)
    assert len(scope["train"]) == 50 and isinstance(scope["label"], int)
    assert scope["ds"]["test"].num_rows == 20
    assert scope["x_train"].shape == (50, 28, 28) and scope["y_test"].shape == (20,)
    assert json.loads(Path("synth/manifest.json").read_text())["format"] == "idx"
