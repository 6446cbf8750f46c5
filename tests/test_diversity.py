"""The diversity levers of the quality issue: DiffAugment, minibatch std, the TAC-GAN twin head,
a learning-rate floor, and the two measures that keep them honest (memorisation, CAS at scale)."""

from __future__ import annotations

import json

import pytest
import torch

from mnistgan.augment import augment, cutout, parse_policy, translation
from mnistgan.config import ModelConfig, RunConfig
from mnistgan.errors import UserError
from mnistgan.metrics.cas import recipe_for
from mnistgan.metrics.memorisation import memorisation, nearest_training
from mnistgan.models import build_models
from mnistgan.models.dcgan import minibatch_std
from mnistgan.optim import lr_schedule
from mnistgan.trainer import Trainer


def digits(n: int, seed: int = 0) -> torch.Tensor:
    """In [-1, 1] with background -1 and a bright blob somewhere inside."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 1, 28, 28), -1.0)
    for i in range(n):
        r, c = torch.randint(6, 18, (2,), generator=g).tolist()
        x[i, 0, r:r + 6, c:c + 4] = 1.0
    return x


def test_translation_shifts_whole_images_and_passes_gradients():
    x = digits(16).requires_grad_(True)
    y = translation(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.isin(y, torch.tensor([-1.0, 1.0])).all()
    assert torch.equal((y == 1).sum((1, 2, 3)), (x == 1).sum((1, 2, 3)))  # blobs stay whole
    assert not torch.equal(y, x)  # ... but move
    y.sum().backward()
    assert x.grad.abs().sum() > 0
    again = translation(x, torch.Generator().manual_seed(0))
    assert torch.equal(again, y)  # the randomness is the caller's generator's


def test_cutout_blanks_to_the_background_and_policies_are_checked():
    x = torch.ones(8, 1, 28, 28)
    y = cutout(x, torch.Generator().manual_seed(1))
    blanked = (y == -1).float().mean((1, 2, 3))
    assert (blanked > 0).all() and (blanked <= 15 * 15 / 784).all()
    assert parse_policy(" translation, cutout ") == ("translation", "cutout")
    assert parse_policy("") == () and torch.equal(augment(x, (), torch.Generator()), x)
    with pytest.raises(UserError, match="optim.augment: unknown augmentation 'flip'"):
        RunConfig.from_dict({"optim": {"augment": "translation,flip"}})


def test_minibatch_std_keeps_real_and_fake_groups_apart():
    h = torch.randn(8, 3, 7, 7)
    out = minibatch_std(h, 4)
    assert out.shape == (8, 4, 7, 7) and torch.equal(out[:, :3], h)
    changed = h.clone()
    changed[4:] *= 10  # the second half (the fakes, in D's real-then-fake batch)
    again = minibatch_std(changed, 4)
    assert torch.equal(again[:4, 3], out[:4, 3]) and (again[4:, 3] > out[4:, 3]).all()
    same = torch.randn(1, 3, 7, 7).expand(4, 3, 7, 7)
    assert minibatch_std(same, 4)[:, 3].max() < 1e-3  # no variety, no signal


def test_twin_head_outputs_and_config_rules():
    torch.manual_seed(0)
    _, d = build_models(ModelConfig(arch="dcgan", ch=8, num_classes=10, aux_classifier=True,
                                    twin_classifier=True, mbstd=4))
    x, y = torch.randn(8, 1, 28, 28), torch.arange(8)
    logits, classes = d(x, y, classes=True)
    assert logits.shape == (8,) and classes.shape == (8, 2, 10)
    assert not torch.allclose(classes[:, 0], classes[:, 1])  # two heads, not one twice
    with pytest.raises(UserError, match="twin_classifier needs the class head"):
        RunConfig.from_dict({"model": {"arch": "dcgan", "num_classes": 10,
                                       "twin_classifier": True}})
    with pytest.raises(UserError, match="no minibatch std"):
        RunConfig.from_dict({"model": {"arch": "seed", "mbstd": 4}})


def test_depth_adds_a_conv_per_resolution_and_leaves_depth_0_as_it_was():
    plain = ModelConfig(arch="dcgan", ch=8, num_classes=10, aux_classifier=True)
    g0, d0 = build_models(plain)
    assert {k.split(".")[0] for k in g0.state_dict()} == {"fc", "norm0", "up1", "norm1", "up2"}
    assert not any(k.startswith("mid") for k in d0.state_dict())  # old checkpoints still load
    g1, d1 = build_models(ModelConfig(**{**plain.__dict__, "depth": 2}))
    assert len(g1.mid) == 2 and len(d1.mid1) == 2 and len(d1.mid2) == 2
    torch.manual_seed(0)
    z, y = torch.randn(4, 100), torch.arange(4)
    x = g1(z, y)
    assert x.shape == (4, 1, 28, 28) and x.abs().max() <= 1
    logits, classes = d1(x, y, classes=True)
    assert logits.shape == (4,) and classes.shape == (4, 10)
    for net, conv in ((g1, g1.mid[1]), (d1, d1.mid2[0])):  # every extra conv is on the path
        before = net(z, y) if net is g1 else d1(x, y)
        with torch.no_grad():
            for p in conv.parameters():
                p.add_(0.5)
        assert not torch.allclose(before, net(z, y) if net is g1 else d1(x, y))
    with pytest.raises(UserError, match="model.depth must be at least 0"):
        RunConfig.from_dict({"model": {"arch": "dcgan", "depth": -1}})
    with pytest.raises(UserError, match="no extra depth"):
        RunConfig.from_dict({"model": {"arch": "seed", "depth": 1}})


def _trainer(fake_dir, **optim) -> Trainer:
    from mnistgan.data import load_dataset

    cfg = RunConfig.from_dict({
        "model": {"arch": "dcgan", "ch": 8, "num_classes": 10, "aux_classifier": True,
                  "twin_classifier": True, "mbstd": 4},
        "optim": {"loss": "hinge", "lr_d": 1e-2, **optim},
        "data": {"dataset": "idx", "data_dir": str(fake_dir)},
        "train": {"batch_size": 32},
    })
    return Trainer(cfg, load_dataset("idx", fake_dir, cache=False), device=torch.device("cpu"))


def test_twin_head_learns_the_fakes_and_g_pays_the_difference(fake_dir):
    tr = _trainer(fake_dir)
    z, y = tr.latents(32)
    with torch.no_grad():
        fake = tr.G(z, y)

    def twin_loss() -> float:
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(tr.D(fake, y, classes=True)[1][:, 1],
                                                     y).item()

    before = twin_loss()
    for _ in range(3):
        tr.train_step()
    assert twin_loss() < before
    classes = torch.randn(6, 2, 10)
    labels = torch.arange(6)
    ce = torch.nn.functional.cross_entropy
    expected = ce(classes[:, 0], labels) - ce(classes[:, 1], labels)
    assert torch.allclose(tr.class_loss_g(classes, labels), expected)


def test_d_only_class_term_leaves_g_without_it(fake_dir, monkeypatch):
    tr = _trainer(fake_dir, aux_weight_g=0.0)
    seen = []
    monkeypatch.setattr(Trainer, "class_loss_g", lambda self, c, y: seen.append(1))
    tr.train_step()
    assert tr.aux_weight == 1.0 and tr.aux_weight_g == 0.0 and not seen


def test_lr_floor():
    assert [lr_schedule(s, 10, 0.5, 0.2) for s in (0, 5, 10)] == [1, 1, pytest.approx(0.2)]
    assert lr_schedule(8, 10, 0.5, 0.2) == pytest.approx(0.2 + 0.8 * 0.4)


def test_resume_is_bitwise_with_every_lever_on(fake_dir, tmp_path, monkeypatch):
    from mnistgan.checkpoint import load_checkpoint
    from mnistgan.cli import main

    cfg = tmp_path / "levers.toml"
    cfg.write_text('[model]\ntwin_classifier = true\nmbstd = 4\ndepth = 1\n'
                   '[optim]\naugment = "translation,cutout"\nlr_decay = 0.5\nlr_floor = 0.1\n')
    common = ["train", "--preset", "cdcgan", "--config", str(cfg), "--dataset", "idx",
              "--data-dir", str(fake_dir), "--batch-size", "8", "--epochs", "2",
              "--log-every", "3"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    main([*common, "--out", str(straight)])
    with monkeypatch.context() as m:  # an interruption at step 7 (not --max-steps, which
        m.setattr(Trainer, "stopping", lambda self: self.progress.step >= 7)  # moves the decay)
        main([*common, "--out", str(split)])
    main(["train", "--resume", str(split)])
    a, b = (load_checkpoint(r / "checkpoints" / "last.pt") for r in (straight, split))
    for part in ("generator", "discriminator", "ema"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    assert json.loads((split / "config.json").read_text())["optim"]["augment"] == \
        "translation,cutout"


class Tiny:
    """A RealData stand-in: 200 training and 100 test 'digits', each a random uint8 picture."""

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.train_images = torch.randint(0, 256, (200, 28, 28), generator=g, dtype=torch.uint8)
        self.train_labels = torch.randint(0, 10, (200,), generator=g)
        self.test_images = torch.randint(0, 256, (100, 28, 28), generator=g, dtype=torch.uint8)
        self.test_labels = torch.randint(0, 10, (100,), generator=g)
        self.fingerprint = "tiny"


def test_nearest_training_finds_the_copy_and_its_distance():
    data = Tiny()
    pick = torch.tensor([5, 17, 199, 0])
    copies = data.train_images[pick].clone()
    copies[0, 0, 0] ^= 1  # one grey level off in one pixel
    near = nearest_training(copies, data.train_images)
    assert torch.equal(near.index, pick)
    assert near.distance[0] == pytest.approx(1 / 255, abs=1e-6)
    assert torch.all(near.distance[1:] == 0)


def test_memorisation_is_high_for_copies_and_low_for_new_images(tmp_path):
    data = Tiny()
    copied = memorisation(data.train_images[:100], data, cache_dir=tmp_path)
    assert copied["memorisation"] == 1.0
    assert copied["nearest_pairs"][0][2] == 0 and len(copied["nearest_pairs"]) == 8
    fresh = torch.randint(0, 256, (100, 28, 28), generator=torch.Generator().manual_seed(9),
                          dtype=torch.uint8)
    assert memorisation(fresh, data, cache_dir=tmp_path)["memorisation"] < 0.1
    assert len(list(tmp_path.glob("memorisation-*"))) == 1  # the reference is cached once


def test_cas_recipe_keeps_the_image_budget_at_scale():
    assert recipe_for(10_000).epochs == recipe_for(60_000).epochs == 8
    assert recipe_for(600_000).epochs == 1 and recipe_for(120_000).epochs == 4


@pytest.mark.parametrize("value, message", [("60000,lots", "comma-separated whole numbers"),
                                            ("10", "at least 50")])
def test_cas_n_flag_mistakes_are_one_line(capsys, value, message):
    from conftest import run_cli

    code, _, err = run_cli(capsys, "evaluate", "--cas", "--cas-n", value)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_evaluate_reports_cas_at_scale_and_memorisation_beside_real(tmp_path):
    from mnistgan.metrics import evaluate, format_report

    data = Tiny()
    calls = []

    def sample(n):  # copies of training images, as a memorising generator would give
        calls.append(n)
        idx = torch.arange(n) % 200
        return data.train_images[idx], data.train_labels[idx]

    report = evaluate(sample, data, n=60, cas=True, cas_n=(120,), cache_dir=tmp_path)
    assert calls == [60, 120]  # the scale set is drawn fresh, at its own size
    assert report["memorisation"] == 1.0 and 0 <= report["real"]["memorisation"] < 0.2
    assert set(report["cas_at"]) == set(report["real"]["cas_at"]) == {"120"}
    assert 0 <= report["cas_at"]["120"] <= 1
    text = format_report(report)
    assert "memorisation" in text and "CAS 120" in text
