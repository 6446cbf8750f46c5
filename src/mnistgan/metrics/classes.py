"""Which digits the samples are, as the evaluator sees them: class shares, the collapse alarm,
and label agreement.

This module owns `ClassBalance` (share of each digit, min/max share, KL from uniform), the
mode-collapse alarm and its thresholds, `check_collapse` (a cheap call for the training loop on
a small batch of samples), and `label_agreement` for class-conditional samples.

The alarm fires when some digit gets under a quarter of its fair 10% share (below 2.5%) or one
digit over 2.5 times it (above 25%). Real MNIST's shares lie between 8.9% and 11.4%; samples with
those shares raise a false alarm with probability 1e-4 at 200 samples, 3e-5 at 256 and 3e-9 at
500 (binomial tails), so `check_collapse` refuses fewer than 200 samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mnistgan.errors import UserError
from mnistgan.metrics.evaluator import Evaluator
from mnistgan.metrics.inputs import SampleSource, draw_samples

ALARM_MIN_SHARE = 0.025
ALARM_MAX_SHARE = 0.25
MIN_ALARM_SAMPLES = 200


@dataclass(frozen=True)
class ClassBalance:
    """Distribution of the evaluator's predicted digit over a set of samples."""

    share: list[float]  # 10 fractions summing to 1, digit 0 first
    count: int

    @property
    def min_share(self) -> float:
        return min(self.share)

    @property
    def max_share(self) -> float:
        return max(self.share)

    @property
    def kl_from_uniform(self) -> float:
        """KL(share || uniform) in nats: 0 when even, log(10) = 2.30 when one digit only."""
        return sum(p * math.log(10 * p) for p in self.share if p > 0)

    @property
    def alarm(self) -> bool:
        """True when the samples look mode-collapsed (thresholds in the module docstring)."""
        return self.min_share < ALARM_MIN_SHARE or self.max_share > ALARM_MAX_SHARE

    def warning(self) -> str | None:
        """A one-line log warning when the alarm fires, else None."""
        if not self.alarm:
            return None
        lo = min(range(10), key=lambda d: self.share[d])
        hi = max(range(10), key=lambda d: self.share[d])
        return (
            f"mode-collapse alarm: digit {lo} is {self.share[lo]:.1%} and digit {hi} is "
            f"{self.share[hi]:.1%} of {self.count} samples (fair share 10%)"
        )


def class_balance(predicted: torch.Tensor) -> ClassBalance:
    """Class shares of predicted digits (N,) int64."""
    if len(predicted) == 0:
        raise UserError("no samples to count classes of")
    counts = torch.bincount(predicted.long(), minlength=10)[:10].double()
    return ClassBalance((counts / len(predicted)).tolist(), len(predicted))


def label_agreement(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of samples whose evaluator class equals the label they were generated for."""
    return (predicted == labels.long()).double().mean().item()


def check_collapse(source: SampleSource, evaluator: Evaluator, n: int = 500) -> ClassBalance:
    """Sample n images (or take a tensor's first n), classify them, return the class balance.

    For the training loop: `if (w := check_collapse(sample, ev).warning()): log(w)`.
    """
    if n < MIN_ALARM_SAMPLES:
        raise UserError(f"the collapse alarm needs at least {MIN_ALARM_SAMPLES} samples, got {n}")
    samples = draw_samples(source, n)
    return class_balance(evaluator.embed(samples.images).predicted)
