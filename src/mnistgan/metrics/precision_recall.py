"""Improved precision and recall (Kynkäänniemi et al. 2019) on evaluator features.

This module owns the k-nearest-neighbour manifold estimate: each point of a set gets a ball whose
radius is the distance to its k-th nearest neighbour in the same set (k=3). Precision is the
share of generated points inside some real ball (are the samples realistic?); recall is the
share of real points inside some generated ball (do the samples cover the data?).

Distances are computed in row chunks, so two sets of 10,000 never hold a full 10k x 10k matrix:
peak memory is chunk x N floats.
"""

from __future__ import annotations

import torch

K = 3
CHUNK = 1000


def knn_radii(features: torch.Tensor, k: int = K, chunk: int = CHUNK) -> torch.Tensor:
    """Distance (N,) from each row to its k-th nearest other row of the same set."""
    if len(features) <= k:
        raise ValueError(f"k-NN radii need more than k={k} points, got {len(features)}")
    x = features.float()
    radii = []
    for rows in x.split(chunk):
        dist = torch.cdist(rows, x)  # (chunk, N); each row's own distance 0 is among the k+1
        radii.append(dist.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def precision_recall(
    real: torch.Tensor,
    fake: torch.Tensor,
    *,
    k: int = K,
    real_radii: torch.Tensor | None = None,
    chunk: int = CHUNK,
) -> tuple[float, float]:
    """(precision, recall) of fake features (M, D) against real features (N, D).

    `real_radii` may be passed precomputed (they depend only on the real set and k).
    """
    real, fake = real.float(), fake.float()
    real_radii = knn_radii(real, k, chunk) if real_radii is None else real_radii
    fake_radii = knn_radii(fake, k, chunk)
    fake_inside = []
    real_covered = torch.zeros(len(real), dtype=torch.bool)
    for rows, radii in zip(fake.split(chunk), fake_radii.split(chunk), strict=True):
        dist = torch.cdist(rows, real)  # (chunk, N)
        fake_inside.append((dist <= real_radii[None, :]).any(dim=1))
        real_covered |= (dist <= radii[:, None]).any(dim=0)
    precision = torch.cat(fake_inside).double().mean().item()
    return precision, real_covered.double().mean().item()
