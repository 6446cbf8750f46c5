"""Differentiable augmentation of D's inputs (DiffAugment, Zhao et al. 2020), MNIST-shaped.

D sees real and fake images through the same random transform, and G's gradient flows back
through it, so D cannot memorise exact pixel positions of the training digits while G is still
asked for plain, unshifted digits. Transforms draw their randomness from the caller's
`torch.Generator` (the Trainer's noise stream, saved in every checkpoint), so resume stays exact.

Policies (`optim.augment`, comma-separated): `translation` shifts each image by up to 1/8 of its
size (3 px at 28x28) with background fill; `cutout` blanks a random 14x14 square (half the side).
Images are in [-1, 1] with background -1, which is what both fills use.
"""

from __future__ import annotations

import torch

BACKGROUND = -1.0
POLICIES = ("translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """`"translation,cutout"` -> ("translation", "cutout"); "" -> (); unknown names raise."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    for name in names:
        if name not in POLICIES:
            raise ValueError(f"unknown augmentation {name!r} (choose from {', '.join(POLICIES)})")
    return names


def augment(x: torch.Tensor, policy: tuple[str, ...], gen: torch.Generator) -> torch.Tensor:
    """x (N, C, H, W) -> the same shape, each image transformed independently."""
    for name in policy:
        x = translation(x, gen) if name == "translation" else cutout(x, gen)
    return x


def translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by whole pixels in [-s, s] on both axes, s = ratio * size, filling with
    the background. A gather from a padded copy, so gradients reach every kept pixel."""
    n, c, h, w = x.shape
    s = int(h * ratio + 0.5)
    dy = torch.randint(-s, s + 1, (n, 1, 1), generator=gen, device=x.device)
    dx = torch.randint(-s, s + 1, (n, 1, 1), generator=gen, device=x.device)
    rows = (torch.arange(h, device=x.device)[None, :, None] + dy + s).expand(n, h, w)
    cols = (torch.arange(w, device=x.device)[None, None, :] + dx + s).expand(n, h, w)
    padded = torch.nn.functional.pad(x, (s, s, s, s), value=BACKGROUND)  # (N, C, H+2s, W+2s)
    flat = (rows * (w + 2 * s) + cols).reshape(n, 1, h * w).expand(n, c, h * w)
    return padded.flatten(2).gather(2, flat).view(n, c, h, w)


def cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    """Set a random square of side ratio * size (its centre anywhere) to the background."""
    n, _, h, w = x.shape
    size = int(h * ratio + 0.5)
    cy = torch.randint(0, h, (n, 1, 1), generator=gen, device=x.device)
    cx = torch.randint(0, w, (n, 1, 1), generator=gen, device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    hole = ((ys - cy).abs() <= size // 2) & ((xs - cx).abs() <= size // 2)  # (N, H, W)
    return torch.where(hole[:, None], torch.full_like(x, BACKGROUND), x)


__all__ = ["POLICIES", "augment", "cutout", "parse_policy", "translation"]
