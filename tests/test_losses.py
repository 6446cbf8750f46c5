"""GAN losses and penalties: each behaves as its paper says on hand-made logits."""

from __future__ import annotations

import math

import pytest
import torch

from mnistgan.config import ModelConfig
from mnistgan.losses import LOSSES, gradient_penalty, r1_penalty
from mnistgan.models import build_models


def test_bce_is_the_tutorials_sigmoid_bce():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    bce = torch.nn.BCELoss()
    expected = bce(torch.sigmoid(real), torch.ones(2)) + bce(torch.sigmoid(fake), torch.zeros(2))
    torch.testing.assert_close(LOSSES["bce"].d_loss(real, fake), expected)
    torch.testing.assert_close(LOSSES["bce"].g_loss(fake), bce(torch.sigmoid(fake), torch.ones(2)))


@pytest.mark.parametrize("name", list(LOSSES))
def test_d_loss_prefers_a_discriminator_that_separates(name):
    good = LOSSES[name].d_loss(torch.full((8,), 3.0), torch.full((8,), -3.0))
    bad = LOSSES[name].d_loss(torch.full((8,), -3.0), torch.full((8,), 3.0))
    assert good < bad
    # and G's loss falls as D scores the fakes higher
    assert LOSSES[name].g_loss(torch.full((8,), 2.0)) < LOSSES[name].g_loss(torch.full((8,), -2.0))


def test_hinge_is_zero_beyond_the_margin():
    assert LOSSES["hinge"].d_loss(torch.full((4,), 1.5), torch.full((4,), -1.5)) == 0


def test_penalties_on_a_linear_critic():
    class Linear(torch.nn.Module):  # D(x) = sum(w * x): its input gradient is w everywhere
        def __init__(self, w):
            super().__init__()
            self.w = w

        def forward(self, x, labels=None):
            return (x * self.w).flatten(1).sum(1)

    w = torch.full((1, 1, 28, 28), 0.1)
    d, x = Linear(w), torch.randn(4, 1, 28, 28)
    norm2 = float((w**2).sum())
    assert r1_penalty(d, x, None).item() == pytest.approx(norm2)
    expected = (math.sqrt(norm2) - 1) ** 2
    assert gradient_penalty(d, x, x.flip(0), None).item() == pytest.approx(expected)


def test_penalties_backpropagate_into_d():
    _, d = build_models(ModelConfig(arch="dcgan", num_classes=10, ch=8))
    x, y = torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    r1_penalty(d, x, y).backward()
    weights = [p for name, p in d.named_parameters() if name.endswith("weight")]
    assert weights and all(p.grad is not None and p.grad.abs().sum() > 0 for p in weights)
