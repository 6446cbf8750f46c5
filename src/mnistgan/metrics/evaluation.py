"""The evaluation report: every metric on a set of samples, beside the same metrics on real data.

This module owns the real-test-set reference (features, float64 statistics and k-NN radii of the
10,000 test images, cached), the real-data baseline (the same metrics on `n` real *training*
images against the test set, cached, so a reader always sees what "good" looks like at this
sample count), `evaluate` / `evaluate_real` that build the report dict, `fid_score` for cheap
FID during training, and `format_report`, the readable table. What each key means and how it is
shown is `mnistgan.metrics.registry.METRICS`.

Report keys: `n`, `fid`, `kid`, `is`, `precision`, `recall`, `class_share` (10),
`class_share_min`, `class_share_max`, `class_kl`, `collapse_alarm`, `label_agreement` (labelled
samples), `cas` (when asked), `real` (the same keys for the baseline), `evaluator_sha256`,
`dataset_fingerprint`, `seconds`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from mnistgan.errors import UserError
from mnistgan.metrics.cas import SCALE_FROM, classification_accuracy_score, recipe_for
from mnistgan.metrics.classes import class_balance, label_agreement
from mnistgan.metrics.evaluator import Evaluator, load_evaluator
from mnistgan.metrics.fid import FeatureStats, feature_stats, frechet_distance
from mnistgan.metrics.inception_score import inception_score
from mnistgan.metrics.inputs import RealData, Samples, SampleSource, check_samples, draw_samples
from mnistgan.metrics.kid import kernel_distance, self_term
from mnistgan.metrics.memorisation import memorisation, memorisation_reference
from mnistgan.metrics.precision_recall import K, knn_radii, precision_recall
from mnistgan.metrics.recipes import CAS_RECIPE, resolved_bf16
from mnistgan.metrics.registry import BY_KEY, METRICS
from mnistgan.metrics.stats_cache import cache_dir as resolve_cache_dir
from mnistgan.metrics.stats_cache import cache_key, cached_json, cached_tensors

NOT_DIGITS = frozenset({"fashion-mnist"})
MIN_SAMPLES = 50  # below this the k-NN manifolds and the covariance are mostly noise
Log = Callable[[str], None]
CacheDir = str | os.PathLike | None


@dataclass(frozen=True)
class Reference:
    """What the metrics compare samples against: the real test set as the evaluator sees it."""

    features: torch.Tensor  # (N, 128) float32
    stats: FeatureStats  # float64
    radii: torch.Tensor  # (N,) k-NN radii, k = K
    kid_self_term: float  # the real set's own term of the KID


def _key_parts(data: RealData, evaluator: Evaluator) -> dict:
    """What every cached real-data figure depends on."""
    _check_real_data(data)
    return {
        "dataset": data.fingerprint,
        "evaluator": evaluator.sha256,
        "bf16": evaluator.bf16,
        "reference_count": len(data.test_images),
        "k": K,
    }


def real_reference(
    data: RealData, evaluator: Evaluator, cache_dir: CacheDir = None, log: Log | None = None
) -> Reference:
    """The test set's features, statistics and radii; computed once, then read from the cache."""
    count = len(data.test_images)
    folder = resolve_cache_dir(cache_dir)
    key = cache_key("reference", **_key_parts(data, evaluator))

    def compute() -> dict[str, torch.Tensor]:
        if log is not None:
            log(f"computing real test-set statistics once (cached in {folder})")
        features = evaluator.embed(check_samples(data.test_images).images).features
        stats = feature_stats(features)
        return {
            "features": features,
            "mean": stats.mean,
            "cov": stats.cov,
            "radii": knn_radii(features, K),
            "kid_self_term": torch.tensor(self_term(features), dtype=torch.float64),
        }

    t = cached_tensors(folder, key, compute)
    return Reference(
        t["features"],
        FeatureStats(t["mean"], t["cov"], count),
        t["radii"],
        t["kid_self_term"].item(),
    )


def _check_real_data(data: RealData) -> None:
    # User IDX folders are taken on trust to hold digits; known non-digit sets are refused.
    name = getattr(data, "name", "mnist")
    if name in NOT_DIGITS:
        raise UserError(f"the evaluator is an MNIST digit classifier; it cannot score {name}")
    if data.test_images is None:
        raise UserError("the metrics need the data set's test split, and this one has none")


def score(samples: Samples, reference: Reference, evaluator: Evaluator) -> dict:
    """All metrics except CAS for `samples` against `reference`."""
    emb = evaluator.embed(samples.images)
    kid = kernel_distance(reference.features, emb.features, real_self_term=reference.kid_self_term)
    precision, recall = precision_recall(
        reference.features, emb.features, real_radii=reference.radii
    )
    balance = class_balance(emb.predicted)
    figures = {
        "n": len(samples),
        "fid": frechet_distance(feature_stats(emb.features), reference.stats),
        "kid": kid,
        "is": inception_score(emb.probs),
        "precision": precision,
        "recall": recall,
        "class_share": balance.share,
        "class_share_min": balance.min_share,
        "class_share_max": balance.max_share,
        "class_kl": balance.kl_from_uniform,
        "collapse_alarm": balance.alarm,
    }
    if samples.labels is not None:
        figures["label_agreement"] = label_agreement(emb.predicted, samples.labels)
    return figures


def real_training_subset(data: RealData, n: int, seed: int = 0) -> Samples:
    """A seeded random choice of n real training images with their labels."""
    if not MIN_SAMPLES <= n <= len(data.train_images):
        raise UserError(f"n must be between {MIN_SAMPLES} and {len(data.train_images)}, got {n}")
    idx = torch.randperm(len(data.train_images), generator=torch.Generator().manual_seed(seed))[:n]
    return check_samples(data.train_images[idx], data.train_labels[idx])


def real_baseline(
    data: RealData,
    evaluator: Evaluator,
    n: int,
    *,
    cas: bool = False,
    cache_dir: CacheDir = None,
    seed: int = 0,
    log: Log | None = None,
) -> dict:
    """The metrics of n real training images against the test set; cached (CAS separately)."""
    folder = resolve_cache_dir(cache_dir)
    parts = {"n": n, "seed": seed, **_key_parts(data, evaluator)}
    subset = real_training_subset(data, n, seed)

    def compute() -> dict:
        reference = real_reference(data, evaluator, cache_dir, log)
        if log is not None:
            log(f"scoring {n} real training images for the baseline once (cached in {folder})")
        return score(subset, reference, evaluator)

    figures = cached_json(folder, cache_key("baseline", **parts), compute)
    if cas:

        def compute_cas() -> dict:
            if log is not None:
                log(f"training the CAS classifier on {n} real training images (cached after)")
            return {
                "cas": classification_accuracy_score(
                    subset, data.test_images, data.test_labels, seed=seed
                )
            }

        recipe = repr(CAS_RECIPE) + f" bf16={resolved_bf16(CAS_RECIPE)}"  # as trained here
        figures = {
            **figures,
            **cached_json(folder, cache_key("cas-real", recipe=recipe, **parts), compute_cas),
        }
    return figures


def evaluate(
    samples: SampleSource,
    data: RealData,
    *,
    n: int = 10_000,
    evaluator: Evaluator | None = None,
    cas: bool = False,
    cache_dir: CacheDir = None,
    seed: int = 0,
    log: Log | None = None,
    cas_n: tuple[int, ...] = (),
    memorise: bool = True,
) -> dict:
    """The full report for n samples (a sample function `fn(n)`, a tensor, or (images, labels)).

    CAS (`cas=True`) needs labelled samples and trains two small classifiers (about 30 s each
    for 10,000 images on 2 CPU cores; the real-data one is cached). `cas_n` adds CAS trained on
    that many fresh samples each (`cas_at`), beside the recipe on min(m, 60,000) real images.
    `memorise` adds the memorisation share (a pass over the training set, see memorisation.py).
    """
    start = time.perf_counter()
    if n < MIN_SAMPLES:
        raise UserError(f"n must be at least {MIN_SAMPLES}, got {n}")
    evaluator = load_evaluator() if evaluator is None else evaluator
    drawn = draw_samples(samples, n)
    if cas and drawn.labels is None:
        raise UserError("CAS needs labelled samples: a class-conditional generator or labels")
    report = score(drawn, real_reference(data, evaluator, cache_dir, log), evaluator)
    if cas:
        if log is not None:
            log(f"training the CAS classifier on {n} samples")
        report["cas"] = classification_accuracy_score(
            drawn, data.test_images, data.test_labels, seed=seed
        )
    report["real"] = real_baseline(
        data, evaluator, n, cas=cas, cache_dir=cache_dir, seed=seed, log=log
    )
    if memorise:
        report.update(memorisation(drawn.images, data, cache_dir))
        report["real"]["memorisation"] = memorisation_reference(data, cache_dir).real_share
    if cas_n:
        report["cas_at"], report["real"]["cas_at"] = cas_at_scale(
            samples, data, cas_n, cache_dir=cache_dir, evaluator=evaluator, seed=seed, log=log)
    report["evaluator_sha256"] = evaluator.sha256
    report["dataset_fingerprint"] = data.fingerprint
    report["seconds"] = round(time.perf_counter() - start, 2)
    return report


def cas_at_scale(samples: SampleSource, data: RealData, sizes: tuple[int, ...], *,
                 cache_dir: CacheDir, evaluator: Evaluator, seed: int,
                 log: Log | None) -> tuple[dict, dict]:
    """CAS on m fresh labelled samples for each m in `sizes` (keys are str(m)), and the same
    recipe on min(m, 60,000) real training images (cached)."""
    synthetic, real = {}, {}
    for m in sizes:
        if log is not None:
            log(f"CAS at scale: drawing {m} samples and training the classifier on them")
        drawn = draw_samples(samples, m)
        if drawn.labels is None:
            raise UserError("CAS needs labelled samples: a class-conditional generator or labels")
        recipe = recipe_for(m)
        synthetic[str(m)] = classification_accuracy_score(
            drawn, data.test_images, data.test_labels, recipe=recipe, seed=seed)
        k = min(m, SCALE_FROM, len(data.train_images))
        recipe_k = repr(recipe_for(k)) + f" bf16={resolved_bf16(recipe_for(k))}"
        parts = {"n": k, "seed": seed, "recipe": recipe_k, **_key_parts(data, evaluator)}

        def compute(k: int = k) -> dict:
            subset = real_training_subset(data, k, seed)
            return {"cas": classification_accuracy_score(
                subset, data.test_images, data.test_labels, recipe=recipe_for(k), seed=seed)}

        real[str(m)] = cached_json(resolve_cache_dir(cache_dir), cache_key("cas-scale", **parts),
                                   compute)["cas"]
    return synthetic, real


def evaluate_real(
    data: RealData,
    *,
    n: int = 10_000,
    evaluator: Evaluator | None = None,
    cas: bool = False,
    cache_dir: CacheDir = None,
    seed: int = 0,
    log: Log | None = None,
) -> dict:
    """`mnistgan evaluate --real`: the report whose samples are the real-data baseline itself."""
    start = time.perf_counter()
    evaluator = load_evaluator() if evaluator is None else evaluator
    baseline = real_baseline(data, evaluator, n, cas=cas, cache_dir=cache_dir, seed=seed, log=log)
    return {
        **baseline,
        "real": baseline,
        "evaluator_sha256": evaluator.sha256,
        "dataset_fingerprint": data.fingerprint,
        "seconds": round(time.perf_counter() - start, 2),
    }


def fid_score(
    samples: SampleSource,
    data: RealData,
    *,
    n: int = 2000,
    evaluator: Evaluator | None = None,
    cache_dir: CacheDir = None,
) -> float:
    """FID alone, for `--eval-every` during training (a couple of seconds for 2,000 samples).

    FID is biased upward at small n: compare values at the same n only.
    """
    evaluator = load_evaluator() if evaluator is None else evaluator
    features = evaluator.embed(draw_samples(samples, n).images).features
    return frechet_distance(
        feature_stats(features), real_reference(data, evaluator, cache_dir).stats
    )


def format_report(report: dict) -> str:
    """A readable table: each figure beside its real-data baseline, e.g.
    `FID 2.93 (real data: 1.10)`."""
    real = report.get("real", {})
    n = report["n"]
    lines = [f"{n} samples vs the real MNIST test set; real data = {n} real training images"]
    for m in METRICS:
        if m.key not in report:
            continue
        value, base = m.show(report[m.key]), m.show(real.get(m.key))
        lines.append(f"  {m.label:<16} {value:>8}  {f'(real data: {base})':<21} {m.note}".rstrip())
    cas = BY_KEY["cas"]
    for m, value in report.get("cas_at", {}).items():
        base = cas.show(real.get("cas_at", {}).get(m))
        lines.append(f"  {'CAS ' + m:<16} {cas.show(value):>8}  {f'(real data: {base})':<21} "
                     f"classifier trained on {m} samples; real: on min({m}, 60000) real images")
    alarm = "YES, check for mode collapse" if report["collapse_alarm"] else "no"
    lines.append(f"  {'collapse alarm':<16} {alarm}")
    shares = "  ".join(f"{d}:{s:.1%}" for d, s in enumerate(report["class_share"]))
    lines.append(f"  digit shares     {shares}")
    if "seconds" in report:
        lines.append(f"  ({report['seconds']:.1f} s; evaluator {report['evaluator_sha256'][:12]})")
    return "\n".join(lines)
