"""GAN losses as pure functions of discriminator logits, and the gradient penalties.

Each `GanLoss` gives the discriminator's loss from (real logits, fake logits) and the generator's
loss from fake logits:

- "bce": the seed tutorial's. D learns real=1 / fake=0 with binary cross entropy, G learns to
  make D say 1 (the non-saturating loss of Goodfellow et al. 2014), written on logits
  (BCE-with-logits): the tutorial's sigmoid + BCELoss, computed stably.
- "hinge": Lim & Ye 2017 / Miyato et al. 2018.
- "lsgan": least squares, Mao et al. 2017 (targets 1 for real, 0 for fake).
- "wgan-gp": Wasserstein (Arjovsky et al. 2017); pair it with `gradient_penalty` (Gulrajani
  et al. 2017), which the Trainer adds when the loss is wgan-gp.

`r1_penalty` (Mescheder et al. 2018) penalises D's gradient on real data, for any loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


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


def hinge_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()


def lsgan_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((real - 1.0) ** 2).mean() + 0.5 * (fake**2).mean()


def lsgan_g(fake: torch.Tensor) -> torch.Tensor:
    return 0.5 * ((fake - 1.0) ** 2).mean()


def wasserstein_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    return fake.mean() - real.mean()


def negative_mean(fake: torch.Tensor) -> torch.Tensor:
    """G's loss for hinge and Wasserstein: raise D's score of the fakes."""
    return -fake.mean()


LOSSES: dict[str, GanLoss] = {
    "bce": GanLoss(bce_d, bce_g),
    "hinge": GanLoss(hinge_d, negative_mean),
    "lsgan": GanLoss(lsgan_d, lsgan_g),
    "wgan-gp": GanLoss(wasserstein_d, negative_mean),
}


def _input_grad(d: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(d(x, labels).sum(), x, create_graph=True)
    return grad.flatten(1)  # (N, 784)


def r1_penalty(d: nn.Module, real: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """E ||grad_x D(x)||^2 on real images (multiply by gamma / 2 as in the paper)."""
    return _input_grad(d, real, labels).pow(2).sum(1).mean()


def gradient_penalty(
    d: nn.Module, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None
) -> torch.Tensor:
    """E (||grad D(x_hat)|| - 1)^2 at random interpolates of real and fake images."""
    eps = torch.rand(len(real), 1, 1, 1, device=real.device, dtype=real.dtype)
    mixed = eps * real.detach() + (1 - eps) * fake.detach()
    return (_input_grad(d, mixed, labels).norm(dim=1) - 1.0).pow(2).mean()


__all__ = ["LOSSES", "GanLoss", "gradient_penalty", "r1_penalty"]
