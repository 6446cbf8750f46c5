"""The DCGAN pair: shapes, conditioning that reaches the pixels, the class head, and the EMA."""

from __future__ import annotations

import pytest
import torch

from mnistgan.config import ModelConfig, RunConfig
from mnistgan.errors import UserError
from mnistgan.models import build_models
from mnistgan.optim import EMA


def conditional(**kw):
    torch.manual_seed(0)
    return build_models(ModelConfig(arch="dcgan", ch=8, num_classes=10, **kw))


def test_shapes_and_range():
    for classes in (0, 10):
        torch.manual_seed(0)
        g, d = build_models(ModelConfig(arch="dcgan", ch=8, num_classes=classes))
        y = torch.arange(6) % 10 if classes else None
        x = g(torch.randn(6, 100), y)
        assert x.shape == (6, 1, 28, 28) and x.abs().max() <= 1
        assert d(x, y).shape == (6,)


def test_the_label_changes_the_image_and_the_score():
    g, d = conditional()
    z = torch.randn(4, 100)
    a, b = torch.zeros(4, dtype=torch.long), torch.full((4,), 7)
    assert not torch.allclose(g(z, a), g(z, b))
    x = torch.randn(4, 1, 28, 28)
    assert not torch.allclose(d(x, a), d(x, b))  # the projection term


def test_class_head_only_when_asked():
    _, d = conditional(aux_classifier=True)
    x, y = torch.randn(5, 1, 28, 28), torch.arange(5)
    logits, classes = d(x, y, classes=True)
    assert logits.shape == (5,) and classes.shape == (5, 10)
    assert torch.equal(logits, d(x, y))  # the head adds an output, not a change
    _, plain = conditional()
    with pytest.raises(ValueError, match="no class head"):
        plain(x, y, classes=True)


def test_class_head_needs_a_conditional_model():
    with pytest.raises(UserError, match="aux_classifier needs a conditional model"):
        RunConfig.from_dict({"model": {"arch": "dcgan", "aux_classifier": True}})


def test_ema_warms_up_then_averages_and_copies_buffers():
    torch.manual_seed(0)
    g = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    ema = EMA(g, decay=0.99)
    start = ema.module[0].weight.clone()
    with torch.no_grad():
        g[0].weight.add_(1.0)
        g[1].running_mean.fill_(5.0)
    ema.update(g, updates=0)  # warm-up decay (1 + 0) / (10 + 0) = 0.1: mostly the new weights
    torch.testing.assert_close(ema.module[0].weight, start + 0.9)
    assert torch.equal(ema.module[1].running_mean, g[1].running_mean)  # copied, not averaged
    ema.update(g, updates=10_000)  # the full decay: a 1% step toward G
    torch.testing.assert_close(ema.module[0].weight, start + 0.9 + 0.1 * 0.01)


def test_trainer_teaches_the_class_head_on_real_digits(fake_dir):
    from mnistgan.data import load_dataset
    from mnistgan.trainer import Trainer

    cfg = RunConfig.from_dict({
        "model": {"arch": "dcgan", "ch": 8, "num_classes": 10, "aux_classifier": True},
        "optim": {"loss": "hinge", "lr_d": 1e-2},
        "data": {"dataset": "idx", "data_dir": str(fake_dir)},
        "train": {"batch_size": 32},
    })
    tr = Trainer(cfg, load_dataset("idx", fake_dir, cache=False), device=torch.device("cpu"))
    real, labels = tr.batches.batch(0, 0)

    def class_loss() -> float:
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(tr.D(real, labels, classes=True)[1],
                                                     labels).item()

    before = class_loss()
    for _ in range(3):
        tr.train_step()
    assert class_loss() < before  # the fake digits' labels follow a bar's position: learnable
