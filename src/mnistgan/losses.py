"""GAN losses as pure functions of discriminator logits, registered by name.

Each entry gives the discriminator's loss from (real logits, fake logits) and the generator's
loss from fake logits. "bce" is the seed tutorial's: D learns real=1 / fake=0 with binary cross
entropy, G learns to make D say 1 (the non-saturating loss of Goodfellow et al. 2014), written
on logits (BCE-with-logits), which is the tutorial's sigmoid + BCELoss computed stably.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class GanLoss:
    d_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g_loss: Callable[[torch.Tensor], torch.Tensor]


def bce_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The tutorial's d_loss: BCE(D(real), 1) + BCE(D(fake), 0), each a batch mean."""
    ones, zeros = torch.ones_like(real), torch.zeros_like(fake)
    return F.binary_cross_entropy_with_logits(real, ones) + F.binary_cross_entropy_with_logits(
        fake, zeros
    )


def bce_g(fake: torch.Tensor) -> torch.Tensor:
    """The tutorial's g_loss: BCE(D(G(z)), 1)."""
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))


LOSSES: dict[str, GanLoss] = {"bce": GanLoss(bce_d, bce_g)}

__all__ = ["LOSSES", "GanLoss", "bce_d", "bce_g"]
