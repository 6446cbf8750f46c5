"""Behaviour the README promises that no other test checked: the bundled generator as the
default (load_generator, sample, generate, evaluate) and its sha256 refusal, `generate
--evaluate`, `evaluate --cas` and `--samples`, Fashion-MNIST, the WGAN-GP / R1 / LSGAN losses
through the Trainer, SIGINT's exit 130, `--snapshot-every`, and the flags a resume takes (every
`train` flag either listed in the README and accepted, or refused)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import fake_arrays, run_cli, skip_optional, write_fake
from mnistgan import pretrained
from mnistgan.cli import main
from mnistgan.config import RunConfig
from mnistgan.data import load_dataset
from mnistgan.errors import UserError
from mnistgan.sampling import load_generator
from mnistgan.session import RESUMABLE
from mnistgan.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


# -- the bundled generator ---------------------------------------------------------------------


def test_load_generator_defaults_to_the_bundle():
    sampler = load_generator()
    weights, meta = pretrained.read_bundle()
    assert sampler.source == f"bundled {pretrained.BUNDLE_NAME}"
    assert sampler.cfg == RunConfig.from_dict(meta["config"])
    for name, tensor in sampler.G.state_dict().items():
        assert torch.equal(tensor.float().cpu(), weights[name].float()), name
    images = sampler.sample(4, 7, seed=0)
    assert images.shape == (4, 28, 28) and images.dtype == torch.uint8 and images.max() > 128


def test_sample_without_a_checkpoint_draws_from_the_bundle(tmp_path, capsys):
    code, _, err = run_cli(capsys, "sample", "--out", str(tmp_path / "g.png"), "--digit", "3")
    assert code == 0, err
    assert (tmp_path / "g.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_tampered_bundle_is_refused(tmp_path, capsys, monkeypatch):
    """One flipped byte deep in the weights: load_generator() and the CLI refuse it by sha256."""
    copy = tmp_path / pretrained.BUNDLE_NAME
    data = bytearray(pretrained.bundle_path().read_bytes())
    data[len(data) // 2] ^= 0x01
    copy.write_bytes(bytes(data))
    monkeypatch.setattr(pretrained, "bundle_path", lambda: copy)
    with pytest.raises(UserError, match="is not the bundled generator's; reinstall"):
        load_generator()
    code, _, err = run_cli(capsys, "sample", "--out", str(tmp_path / "g.png"))
    assert code == 2 and err.count("\n") == 1 and "is not the bundled generator's" in err
    assert not (tmp_path / "g.png").exists()


def test_generate_without_a_checkpoint_uses_the_bundle_and_evaluate_scores_it(tmp_path, capsys,
                                                                             monkeypatch):
    """`generate` and `evaluate` with no generator named draw from the bundle; `generate
    --evaluate` puts the metrics and CAS of the training split beside real data's into the
    manifest, and `evaluate --cas` adds CAS beside real data's."""
    monkeypatch.chdir(tmp_path)
    bundled = f"bundled {pretrained.BUNDLE_NAME}"
    code, out, err = run_cli(capsys, "generate", "--out", "synth", "--n-train", "60",
                             "--n-test", "10", "--evaluate")
    assert code == 0, err
    assert f"generator: {bundled}" in out
    manifest = json.loads((tmp_path / "synth" / "manifest.json").read_text())
    assert manifest["generator"]["source"] == bundled
    ev = manifest["evaluation"]
    assert ev["n"] == 60 and {"fid", "is", "cas", "label_agreement"} <= ev.keys()
    assert {"fid", "cas"} <= ev["real"].keys() and 0 <= ev["cas"] <= 1
    assert ev["label_agreement"] > 0.9  # the bundle draws the digits it is asked for
    code, out, err = run_cli(capsys, "evaluate", "--n", "60", "--cas", "--no-memorisation",
                             "--json", "bundle.json")
    assert code == 0, err
    report = json.loads((tmp_path / "bundle.json").read_text())
    assert 0 <= report["cas"] <= 1 and 0 <= report["real"]["cas"] <= 1
    assert report["label_agreement"] > 0.9 and "memorisation" not in report


# -- evaluate --samples ------------------------------------------------------------------------


def test_evaluate_samples_reads_images_and_labels_from_an_npz(tmp_path, capsys, monkeypatch):
    """Real digits as "samples" score like real data; the same digits with shuffled labels keep
    their FID but lose label agreement: the file's labels are what is scored."""
    monkeypatch.chdir(tmp_path)
    real = load_dataset("mnist", tmp_path / "data")
    images = real.train_images[:300].numpy()
    labels = real.train_labels[:300].numpy().astype(np.int64)
    np.savez(tmp_path / "good.npz", images=images, labels=labels)
    np.savez(tmp_path / "shuffled.npz", images=images, labels=np.roll(labels, 1))
    reports = {}
    for name in ("good", "shuffled"):
        code, _, err = run_cli(capsys, "evaluate", "--samples", f"{name}.npz", "--n", "300",
                                 "--json", f"{name}.json")
        assert code == 0, err
        reports[name] = json.loads((tmp_path / f"{name}.json").read_text())
    good, shuffled = reports["good"], reports["shuffled"]
    assert good["label_agreement"] > 0.95 and shuffled["label_agreement"] < 0.3
    assert good["fid"] == pytest.approx(shuffled["fid"]) and good["fid"] < 5 * good["real"]["fid"]


# -- Fashion-MNIST -----------------------------------------------------------------------------


def test_fashion_mnist_is_verified_and_trains(tmp_path, capsys):
    """Debian's package of the genuine files: fingerprints checked, then a few steps train."""
    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        skip_optional(f"Fashion-MNIST is not in {FASHION} (apt-get install dataset-fashion-mnist)")
    code, out, err = run_cli(capsys, "data", "--dataset", "fashion-mnist", "--data-dir",
                             str(FASHION))
    assert code == 0, err
    assert "train: 60000 images" in out and "test: 10000 images" in out
    code, out, err = run_cli(capsys, "train", "--preset", "dcgan", "--dataset", "fashion-mnist",
                             "--data-dir", str(FASHION), "--out", str(tmp_path / "run"),
                             "--max-steps", "2", "--batch-size", "16", "--log-every", "1")
    assert code == 0, err
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["data"]["dataset"] == "fashion-mnist"


def test_fashion_mnist_with_wrong_files_is_one_line(tmp_path, capsys, fake_dir):
    """MNIST-shaped files that are not Fashion-MNIST fail its fingerprint: one line, exit 2."""
    flat = tmp_path / "flat"
    shutil.copytree(fake_dir / "MNIST" / "raw", flat)
    code, _, err = run_cli(capsys, "data", "--dataset", "fashion-mnist", "--data-dir", str(flat))
    assert code == 2 and err.count("\n") == 1 and err.startswith("mnistgan: error: ")


# -- the losses through the Trainer ------------------------------------------------------------


@pytest.mark.parametrize("optim, penalty", [
    ({"loss": "wgan-gp", "gp_weight": 10.0}, "gradient_penalty"),
    ({"loss": "hinge", "r1_gamma": 1.0}, "r1_penalty"),
    ({"loss": "lsgan"}, None),
])
def test_losses_train_through_the_trainer(fake_dir, monkeypatch, optim, penalty):
    """A few steps with each loss: finite losses, G and D both move, the penalty is applied."""
    from mnistgan import losses, steps

    calls = []
    if penalty is not None:
        real_penalty = getattr(steps, penalty)

        def spy(*args, **kwargs):
            out = real_penalty(*args, **kwargs)
            calls.append(out.item())
            return out

        monkeypatch.setattr(steps, penalty, spy)
    cfg = RunConfig.from_dict({"model": {"arch": "dcgan", "ch": 8}, "optim": optim,
                               "data": {"dataset": "idx", "data_dir": str(fake_dir)},
                               "train": {"batch_size": 16}})
    tr = Trainer(cfg, load_dataset("idx", fake_dir, cache=False), device=torch.device("cpu"))
    assert tr.loss is losses.LOSSES[optim["loss"]]
    g0 = [p.detach().clone() for p in tr.G.parameters()]
    d0 = [p.detach().clone() for p in tr.D.parameters()]
    for _ in range(3):
        tr.train_step()
    assert torch.isfinite(tr.window).all() and tr.window_steps == 3
    assert any(not torch.equal(a, b) for a, b in zip(g0, tr.G.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(d0, tr.D.parameters(), strict=True))
    if penalty is not None:
        assert len(calls) == 3 and all(math.isfinite(c) and c >= 0 for c in calls)
        assert any(c > 0 for c in calls)


# -- SIGINT, snapshots, resume flags -----------------------------------------------------------


def test_sigint_saves_and_exits_130(fake_dir, tmp_path):
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "mnistgan", "train", "--preset", "seed", "--dataset", "idx",
           "--data-dir", str(fake_dir), "--batch-size", "4", "--log-every", "2",
           "--max-steps", "100000", "--checkpoint-every", "100000", "--out", str(run)]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        while line and not line.startswith("Epoch ["):  # the first log line: training runs
            line = proc.stdout.readline()
        assert line, proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert f"mnistgan train --resume {run}" in err and "Traceback" not in err
    from mnistgan.checkpoint import load_checkpoint

    assert load_checkpoint(run / "checkpoints" / "last.pt")["progress"]["step"] >= 2
    assert (run / "generator.pth").is_file()


def test_snapshot_every_keeps_every_nth_epoch(tmp_path):
    data = write_fake(tmp_path / "data", fake_arrays(n_train=8, n_test=8))  # one batch of 8
    run = tmp_path / "run"
    main(["train", "--preset", "seed", "--dataset", "idx", "--data-dir", str(data),
          "--out", str(run), "--epochs", "3", "--batch-size", "8", "--snapshot-every", "2",
          "--log-every", "100"])
    kept = sorted(p.name for p in (run / "checkpoints").glob("epoch-*.pt"))
    assert kept == ["epoch-0002.pt"]
    from mnistgan.checkpoint import load_checkpoint

    assert load_checkpoint(run / "checkpoints" / "epoch-0002.pt")["progress"]["step"] == 2


# A valid value for each `train` flag a resume may change, and the config key it lands in (a
# value that differs from what the run was made with, so the dry run shows it was taken).
RESUME_VALUES = {
    "--epochs": (["7"], ("train", "epochs"), 7),
    "--max-steps": (["5"], ("train", "max_steps"), 5),
    "--max-minutes": (["5"], ("train", "max_minutes"), 5),
    "--log-every": (["3"], ("train", "log_every"), 3),
    "--checkpoint-every": (["9"], ("train", "checkpoint_every"), 9),
    "--snapshot-every": (["2"], ("train", "snapshot_every"), 2),
    "--eval-every": (["11"], ("train", "eval_every"), 11),
    "--device": (["cpu"], ("train", "device"), "cpu"),
    "--data-dir": (["elsewhere"], ("data", "data_dir"), "elsewhere"),
    "--on-nan": (["rollback"], ("train", "on_nan"), "rollback"),
    "--precision": (["fp32"], ("train", "precision"), "fp32"),
    "--memory-format": (["contiguous"], ("train", "memory_format"), "contiguous"),
    "--compile": ([], ("train", "compile"), True),
    "--tensorboard": ([], None, None),  # an output, not a config key
}
# A valid value for every other flag: each is refused on resume.
FIXED_VALUES = {"--preset": ["dcgan"], "--out": ["elsewhere"], "--overwrite": [],
                "--batch-size": ["8"], "--lr": ["0.01"], "--seed": ["3"], "--dataset": ["mnist"],
                "--normalize": ["tutorial"], "--config": ["my.toml"]}
NOT_RUN_OPTIONS = {"--resume", "--dry-run", "--print-config", "--help"}


def documented_resume_flags() -> set[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    sentence = re.search(r"Only (`--.*?) may change on resume", text, re.DOTALL).group(1)
    return set(re.findall(r"`(--[a-z-]+)`", sentence))


def test_every_train_flag_is_either_resumable_or_refused():
    """The two tables below cover every option `mnistgan train` has, so a new flag must be put
    in one: documented as resumable (and tested) or refused on resume (and tested)."""
    from mnistgan.cli import cli

    flags = {o for p in cli.commands["train"].params for o in p.opts if o.startswith("--")}
    assert flags - NOT_RUN_OPTIONS == set(RESUME_VALUES) | set(FIXED_VALUES)
    assert documented_resume_flags() == set(RESUME_VALUES)
    assert {"--" + k.replace("_", "-") for k in RESUMABLE} | {"--tensorboard"} == set(RESUME_VALUES)
    assert "--no-compile" in {o for p in cli.commands["train"].params for o in p.secondary_opts}


@pytest.fixture(scope="module")
def one_step_run(tmp_path_factory):
    """A run of one step (the seed preset on fake data), resumed with --dry-run by the tests."""
    tmp = tmp_path_factory.mktemp("resume")
    data = write_fake(tmp / "data", fake_arrays(n_train=16, n_test=8))
    main(["train", "--preset", "seed", "--dataset", "idx", "--data-dir", str(data),
          "--out", str(tmp / "run"), "--max-steps", "1", "--batch-size", "16", "--log-every", "1"])
    return tmp / "run"


@pytest.mark.parametrize("flag", sorted(RESUME_VALUES))
def test_each_documented_flag_is_accepted_on_resume(one_step_run, capsys, flag):
    """`train --resume RUN FLAG` takes every flag the README lists and the config shows it."""
    args, key, value = RESUME_VALUES[flag]
    capsys.readouterr()
    code, out, err = run_cli(capsys, "train", "--resume", str(one_step_run), flag, *args,
                             "--dry-run")
    assert code == 0, err
    if key is not None:
        cfg = json.loads(out)
        assert cfg[key[0]][key[1]] == value
    if flag == "--compile":  # and its negative form
        code, out, err = run_cli(capsys, "train", "--resume", str(one_step_run), "--no-compile",
                                 "--dry-run")
        assert code == 0 and json.loads(out)["train"]["compile"] is False, err


@pytest.mark.parametrize("flag", sorted(FIXED_VALUES))
def test_every_other_flag_is_refused_on_resume(one_step_run, capsys, tmp_path, monkeypatch, flag):
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code, _, err = run_cli(capsys, "train", "--resume", str(one_step_run), flag,
                           *FIXED_VALUES[flag], "--dry-run")
    assert code == 2 and err.count("\n") == 1, err
    assert f"{flag} cannot change on --resume: the run's config fixes it" in err
    assert not (tmp_path / "elsewhere").exists()  # --out elsewhere: nothing made
