"""Memorisation: are the samples new digits, or copies of training digits?

A generator that returned training images would ace every other metric, so this module measures
closeness to the training set directly, in pixel space (the L2 distance between images scaled to
[0, 1], 784 values each). It owns:

- `nearest_training`: each image's distance to its nearest training image, and which one it is;
- `memorisation_reference`: the same distances for real *test* digits, which are genuinely new
  digits by the same writers' population. Its threshold is the distance that 99% of the even-
  indexed test digits exceed; the odd-indexed half, measured against that threshold, gives the
  real-data figure (about 1%), so the baseline is a measurement, not a definition. Cached.
- `memorisation`: the share of samples nearer to a training image than that threshold (about 1%
  for genuinely new digits; a copying generator approaches 100%), and the nearest pairs to show.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mnistgan.metrics.inputs import RealData
from mnistgan.metrics.stats_cache import cache_dir as resolve_cache_dir
from mnistgan.metrics.stats_cache import cache_key, cached_tensors

QUANTILE = 0.01  # the threshold: this share of real test digits lie nearer to a training image
PAIRS = 8  # nearest (sample, training image) pairs kept for the report
CHUNK = 1024  # query images per distance block: (CHUNK x 60,000) floats at a time


@dataclass(frozen=True)
class Nearest:
    distance: torch.Tensor  # (N,) float32 L2 distance in [0, 1] pixel units
    index: torch.Tensor  # (N,) int64 index of the nearest training image


def _flat(images: torch.Tensor) -> torch.Tensor:
    return images.reshape(len(images), -1).float().div_(255.0)  # (N, 784) in [0, 1]


def nearest_training(images: torch.Tensor, train_images: torch.Tensor) -> Nearest:
    """For uint8 images (N, 28, 28): the L2 distance to, and index of, the nearest of the uint8
    training images (M, 28, 28). Blocked matrix products, |a|^2 + |b|^2 - 2ab, then an exact
    recomputation of each winner's distance (the expansion loses digits near 0)."""
    train = _flat(train_images)  # (M, 784)
    train_sq = train.pow(2).sum(1)  # (M,)
    index = torch.empty(len(images), dtype=torch.int64)
    for start in range(0, len(images), CHUNK):
        q = _flat(images[start:start + CHUNK])  # (B, 784)
        d2 = q.pow(2).sum(1, keepdim=True) + train_sq[None] - 2.0 * q @ train.T  # (B, M)
        index[start:start + len(q)] = d2.argmin(1)
    distance = (_flat(images) - train[index]).norm(dim=1)
    return Nearest(distance, index)


@dataclass(frozen=True)
class MemorisationReference:
    threshold: float  # 99% of (even-indexed) real test digits are farther than this
    real_share: float  # the share of odd-indexed test digits nearer than it: the real figure


def memorisation_reference(data: RealData, cache_dir=None) -> MemorisationReference:
    """The threshold and the real-data share, from the test set against the training set."""
    key = cache_key("memorisation", dataset=data.fingerprint, quantile=QUANTILE,
                    test_count=len(data.test_images))

    def compute() -> dict[str, torch.Tensor]:
        d = nearest_training(data.test_images, data.train_images).distance
        threshold = torch.quantile(d[0::2].double(), QUANTILE)
        share = (d[1::2].double() < threshold).double().mean()
        return {"threshold": threshold, "real_share": share}

    t = cached_tensors(resolve_cache_dir(cache_dir), key, compute)
    return MemorisationReference(t["threshold"].item(), t["real_share"].item())


def memorisation(images: torch.Tensor, data: RealData, cache_dir=None) -> dict:
    """Report entries for uint8 samples (N, 28, 28): `memorisation` (the share nearer to a
    training image than the threshold), the threshold, the median nearest distance, and the
    `PAIRS` nearest pairs as [sample index, training index, distance]."""
    ref = memorisation_reference(data, cache_dir)
    near = nearest_training(images, data.train_images)
    order = near.distance.argsort()[:PAIRS]
    return {
        "memorisation": (near.distance < ref.threshold).double().mean().item(),
        "memorisation_threshold": ref.threshold,
        "nearest_distance_median": near.distance.median().item(),
        "nearest_pairs": [[int(i), int(near.index[i]), round(near.distance[i].item(), 4)]
                          for i in order],
    }


__all__ = ["MemorisationReference", "Nearest", "memorisation", "memorisation_reference",
           "nearest_training"]
