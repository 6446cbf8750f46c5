"""The seed models are the tutorial's, parameter for parameter."""

from __future__ import annotations

import torch

from mnistgan.config import ModelConfig
from mnistgan.models import SeedDiscriminator, SeedGenerator, build_models
from tutorial import discriminator, generator


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_match_the_tutorial():
    g, d = build_models(ModelConfig(arch="seed", z_dim=100))
    assert n_params(g) == n_params(generator(100, 3136)) == 328_764
    assert n_params(d) == n_params(discriminator()) == 3_265_409


def test_state_dicts_move_strictly_both_ways():
    ours_g, ours_d = SeedGenerator(100, 3136), SeedDiscriminator()
    tut_g, tut_d = generator(100, 3136), discriminator()
    assert list(ours_g.state_dict()) == list(tut_g.state_dict())
    assert list(ours_d.state_dict()) == list(tut_d.state_dict())
    tut_g.load_state_dict(ours_g.state_dict(), strict=True)
    tut_d.load_state_dict(ours_d.state_dict(), strict=True)
    ours_g.load_state_dict(generator(100, 3136).state_dict(), strict=True)
    ours_d.load_state_dict(discriminator().state_dict(), strict=True)


def test_same_weights_same_outputs_logits_vs_sigmoid():
    torch.manual_seed(0)
    ours_g, ours_d = SeedGenerator(100, 3136), SeedDiscriminator()
    tut_g, tut_d = generator(100, 3136), discriminator()
    tut_g.load_state_dict(ours_g.state_dict())
    tut_d.load_state_dict(ours_d.state_dict())
    z = torch.randn(4, 100)
    img = ours_g(z)
    assert img.shape == (4, 1, 28, 28) and img.abs().max() <= 1
    torch.testing.assert_close(img, tut_g(z))
    logits = ours_d(img)
    assert logits.shape == (4,)
    torch.testing.assert_close(torch.sigmoid(logits), tut_d(img).squeeze(1))
