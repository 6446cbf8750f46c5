"""Generators and discriminators as pure modules, registered by architecture name.

Every generator maps noise `z` [N, z_dim] (and, when conditional, integer labels [N]) to images
[N, 1, 28, 28] in [-1, 1]; every discriminator maps images (and labels) to logits [N]. Both carry
`num_classes` (0 when unconditional) so callers know whether to pass labels.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from mnistgan.config import ModelConfig
from mnistgan.models.seed import SeedDiscriminator, SeedGenerator

Builder = Callable[[ModelConfig], tuple[nn.Module, nn.Module]]


def _seed(cfg: ModelConfig) -> tuple[nn.Module, nn.Module]:
    return SeedGenerator(cfg.z_dim, 3136), SeedDiscriminator()


ARCHS: dict[str, Builder] = {"seed": _seed}


def build_models(cfg: ModelConfig) -> tuple[nn.Module, nn.Module]:
    """The (generator, discriminator) pair of architecture `cfg.arch`, freshly initialised."""
    return ARCHS[cfg.arch](cfg)


__all__ = ["ARCHS", "SeedDiscriminator", "SeedGenerator", "build_models"]
