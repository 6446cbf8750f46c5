"""The classifier Inception Score ("MNIST score") on the evaluator's class probabilities.

This module owns `inception_score` = exp(E_x KL(p(y|x) || p(y))), computed on the whole set in
float64 (no splits). It is high when each sample is classified confidently and the classes are
used evenly; with 10 classes it is at most 10, and 1 when every sample gets the same distribution.
"""

from __future__ import annotations

import math

import torch


def inception_score(probs: torch.Tensor) -> float:
    """IS of class probabilities (N, 10), each row summing to 1; between 1 and 10."""
    p = probs.double()
    marginal = p.mean(dim=0, keepdim=True)  # (1, 10)
    kl = (torch.special.xlogy(p, p) - torch.special.xlogy(p, marginal)).sum(dim=1)  # (N,)
    return math.exp(kl.mean().item())
