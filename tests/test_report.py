"""Pictures: training curves, latent walks, and the self-contained run report."""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch
from PIL import Image

import conftest
from conftest import fake_arrays, write_fake
from mnistgan.cli import main
from mnistgan.plots import curves_png, save_curves
from mnistgan.sampling import latent_walk, load_generator, slerp


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    write_fake(root / "MNIST" / "raw", fake_arrays())
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory, data_dir) -> Path:
    """A conditional run of 2 epochs on fake data, with in-training FID records."""
    out = tmp_path_factory.mktemp("runs") / "cdcgan"
    cache = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MNISTGAN_CACHE", str(cache))
        main(["train", "--preset", "cdcgan", "--dataset", "idx", "--data-dir", str(data_dir),
              "--out", str(out), "--epochs", "2", "--batch-size", "32", "--log-every", "1",
              "--eval-every", "3"])
    return out


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code, _, err = conftest.run_cli(capsys, *args)
    return code, err

# -- curves ------------------------------------------------------------------------------------


def test_training_draws_curves_at_each_epoch_end(run):
    curves = run / "images" / "curves.png"  # written by the Trainer, before any report
    assert curves.is_file() and Image.open(curves).width > 0


def test_save_curves_draws_the_log(run):
    path = save_curves(run)
    assert path == run / "images" / "curves.png"
    with_fid = Image.open(path)
    records = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert any("fid" in r for r in records) and any("d_loss" in r for r in records)
    without = Image.open(io.BytesIO(curves_png([r for r in records if "fid" not in r])))
    assert with_fid.width > 1.3 * without.width  # a third panel: FID over time
    assert with_fid.height == without.height


def test_save_curves_without_records_writes_nothing(tmp_path):
    (tmp_path / "log.jsonl").write_text(json.dumps({"step": 3, "fid": 9.0}) + "\n")
    assert save_curves(tmp_path) is None and not (tmp_path / "images").exists()


# -- latent walks ------------------------------------------------------------------------------


def test_slerp_ends_at_its_endpoints_and_keeps_the_norm():
    a, b = torch.randn(4, 100), torch.randn(4, 100)
    walk = slerp(a, b, torch.linspace(0, 1, 7))
    assert walk.shape == (4, 7, 100)
    assert torch.allclose(walk[:, 0], a, atol=1e-5) and torch.allclose(walk[:, -1], b, atol=1e-5)
    b = a * 2  # same direction: the arc is the line
    assert torch.allclose(slerp(a, b, torch.tensor([0.5]))[:, 0], 1.5 * a, atol=1e-4)
    c = torch.nn.functional.normalize(torch.randn(4, 100), dim=1) * 10
    d = torch.nn.functional.normalize(torch.randn(4, 100), dim=1) * 10
    norms = slerp(c, d, torch.linspace(0, 1, 9)).norm(dim=2)
    assert torch.allclose(norms, torch.full_like(norms, 10.0), atol=1e-3)  # a lerp would dip


def test_interpolate_writes_png_and_gif(run, tmp_path, capsys):
    out = tmp_path / "walk.png"
    main(["sample", "--checkpoint", str(run), "--interpolate", "--walks", "3", "--steps", "5",
          "--out", str(out)])
    png, gif = Image.open(out), Image.open(tmp_path / "walk.gif")
    assert png.size == (5 * 30 + 2, 3 * 30 + 2)  # columns = steps, rows = walks, 2 px borders
    assert gif.size == (3 * 30 + 2, 32) and gif.n_frames == 2 * 5 - 2  # forward, then back
    assert "slerp" in capsys.readouterr().out


def test_walk_rows_keep_their_digit(run):
    sampler = load_generator(run)
    calls = []
    real = sampler.generate
    sampler.generate = lambda z, labels=None: (calls.append(labels), real(z, labels))[1]
    walk = latent_walk(sampler, 4, 3, digit=None)
    assert walk.shape == (4, 3, 28, 28) and walk.dtype == torch.uint8
    assert calls[0].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    latent_walk(sampler, 2, 3, digit=7)
    assert calls[1].tolist() == [7] * 6


@pytest.mark.parametrize("args, message", [
    (["--walks", "3"], "go with --interpolate"),
    (["--interpolate", "--steps", "1"], "at least 1 walk and 2 steps"),
    (["--interpolate", "--digit", "12"], "--digit must be 0-9"),
])
def test_sample_walk_user_errors(run, tmp_path, capsys, args, message):
    code, err = run_cli(capsys, "sample", "--checkpoint", str(run), "--out",
                        str(tmp_path / "w.png"), *args)
    assert code == 2 and message in err and err.count("\n") == 1


# -- the report --------------------------------------------------------------------------------


class Refs(HTMLParser):
    """Every URL-bearing attribute, and the tags seen."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href", "srcset", "poster", "data")]


def test_report_is_one_self_contained_page(run, data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MNISTGAN_CACHE", str(tmp_path / "cache"))
    main(["report", str(run), "--dataset", "idx", "--data-dir", str(data_dir), "--n", "64"])
    page = (run / "report.html").read_text(encoding="utf-8")
    refs = Refs()
    refs.feed(page)
    refs.close()
    assert "script" not in refs.tags and "link" not in refs.tags and "iframe" not in refs.tags
    assert refs.urls and all(u.startswith("data:image/") for u in refs.urls)
    kinds = set()
    for url in refs.urls:
        head, payload = url.split(",", 1)
        image = Image.open(io.BytesIO(base64.b64decode(payload)))  # each one decodes
        kinds.add((head, image.format))
    assert ("data:image/gif;base64", "GIF") in kinds and ("data:image/png;base64", "PNG") in kinds
    assert len(refs.urls) >= 6  # samples, real, curves, epoch animation, walk GIF and grid
    text = re.sub(r"data:image/[a-z]+;base64,[A-Za-z0-9+/=]+", "", page)  # all but the images
    assert "url(" not in text and "@import" not in text and "//" not in text
    for text in ("FID", "real data", "Latent walk", "epoch", "lr_g", "cdcgan"):
        assert text in page
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["key"]["n"] == 64 and "fid" in metrics["report"]
    assert "wrote" in capsys.readouterr().out


def test_report_reuses_its_metrics(run, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MNISTGAN_CACHE", str(tmp_path / "cache"))
    args = ["report", str(run), "--dataset", "idx", "--data-dir", str(data_dir), "--n", "64"]
    main(args)
    monkeypatch.setattr("mnistgan.metrics.evaluate",
                        lambda *a, **k: pytest.fail("the cached metrics should be used"))
    main(args)
    main([*args[:-1], "0"])  # --n 0: no metrics section at all
    assert "Quality against real MNIST" not in (run / "report.html").read_text()


def test_report_of_a_folder_that_is_not_a_run(tmp_path, capsys):
    code, err = run_cli(capsys, "report", str(tmp_path), "--n", "0")
    assert code == 2 and "not a run folder" in err
