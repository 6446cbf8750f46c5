"""Generators and discriminators as pure modules, registered by architecture name.

Every generator maps noise `z` [N, z_dim] (and, when conditional, integer labels [N]) to images
[N, 1, 28, 28] in [-1, 1]; every discriminator maps images (and labels) to logits [N]. Both carry
`num_classes` (0 when unconditional) so callers know whether to pass labels.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from torch import nn

from mnistgan.models.dcgan import DCDiscriminator, DCGenerator
from mnistgan.models.seed import SeedDiscriminator, SeedGenerator

if TYPE_CHECKING:  # models take a ModelConfig; config names ARCHS, so only the type is imported
    from mnistgan.config import ModelConfig

Builder = Callable[["ModelConfig"], tuple[nn.Module, nn.Module]]


def _seed(cfg: ModelConfig) -> tuple[nn.Module, nn.Module]:
    return SeedGenerator(cfg.z_dim, 3136), SeedDiscriminator()


def _dcgan(cfg: ModelConfig) -> tuple[nn.Module, nn.Module]:
    return (
        DCGenerator(cfg.z_dim, cfg.ch, cfg.num_classes, cfg.depth),
        DCDiscriminator(cfg.ch, cfg.num_classes, cfg.spectral_norm, cfg.aux_classifier,
                        cfg.twin_classifier, cfg.mbstd, cfg.depth),
    )


ARCHS: dict[str, Builder] = {"seed": _seed, "dcgan": _dcgan}


def build_models(cfg: ModelConfig) -> tuple[nn.Module, nn.Module]:
    """The (generator, discriminator) pair of architecture `cfg.arch`, freshly initialised."""
    return ARCHS[cfg.arch](cfg)


__all__ = [
    "ARCHS",
    "DCDiscriminator",
    "DCGenerator",
    "SeedDiscriminator",
    "SeedGenerator",
    "build_models",
]
