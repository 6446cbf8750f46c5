"""Fréchet distance between Gaussians fitted to two feature sets (FID, on evaluator features).

This module owns `FeatureStats` (mean and covariance in float64), fitting them, and the distance
    FID = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)).
The matrix square root's trace is taken as the sum of square roots of the eigenvalues of the
symmetric matrix S_a^(1/2) S_b S_a^(1/2), which has the same spectrum as S_a S_b and avoids
the complex round-off that a general `sqrtm` produces.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FeatureStats:
    """Mean (D,) and covariance (D, D) of a feature set, float64, plus how many rows made them."""

    mean: torch.Tensor
    cov: torch.Tensor
    count: int


def feature_stats(features: torch.Tensor) -> FeatureStats:
    """Fit mean and unbiased covariance, in float64, to features (N, D), N >= 2."""
    x = features.double()
    mean = x.mean(dim=0)
    centred = x - mean
    cov = centred.T @ centred / (len(x) - 1)
    return FeatureStats(mean, cov, len(x))


def _psd_sqrt(m: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh(m)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """FID between two fitted Gaussians; >= 0, and 0 for identical statistics."""
    root_a = _psd_sqrt(a.cov)
    middle = root_a @ b.cov @ root_a
    middle = (middle + middle.T) / 2  # symmetric up to round-off; make it exactly so for eigh
    trace_sqrt = torch.linalg.eigvalsh(middle).clamp(min=0).sqrt().sum()
    dist = (a.mean - b.mean).square().sum() + a.cov.trace() + b.cov.trace() - 2 * trace_sqrt
    return max(dist.item(), 0.0)
