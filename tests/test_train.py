"""Training end to end on fake data: the run folder, exact resume, clean stops, kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mnistgan.checkpoint import load_checkpoint
from mnistgan.cli import main
from mnistgan.optim import lr_schedule
from mnistgan.trainer import Trainer
from tutorial import generator

LOG_KEYS = {"epoch", "step", "images", "d_loss", "g_loss", "d_real", "d_fake", "images_per_s",
    "seconds"}


def train(*args: str) -> None:
    preset = [] if "--preset" in args else ["--preset", "seed"]
    main(["train", *preset, "--dataset", "idx", *args])


def weights_of(run: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    out = {f"G.{k}": v for k, v in state["generator"].items()}
    out.update({f"D.{k}": v for k, v in state["discriminator"].items()})
    out.update({f"EMA.{k}": v for k, v in (state["ema"] or {}).items()})
    for name in ("opt_g", "opt_d"):
        for i, s in state[name]["state"].items():
            out.update({f"{name}.{i}.{k}": v for k, v in s.items()})
    return out


def test_run_folder_contents(fake_dir, tmp_path, capsys):
    run = tmp_path / "run"
    train("--data-dir", str(fake_dir), "--out", str(run), "--epochs", "2", "--batch-size", "16",
          "--log-every", "2")
    out = capsys.readouterr().out
    assert "Epoch [0/2], d_loss: " in out and ", D fake: " in out
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["train"]["epochs"] == 2 and cfg["model"]["arch"] == "seed"
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [2, 4, 6, 8, 10, 12]  # 96 // 16 = 6 steps an epoch
    assert all(LOG_KEYS <= r.keys() for r in records)
    assert records[-1]["images"] == 12 * 16 and records[-1]["epoch"] == 1
    for name in ("real_images.png", "fake_images-1.png", "fake_images-2.png"):
        assert (run / "images" / name).stat().st_size > 100
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["progress"]["step"] == 12 and state["progress"]["epoch"] == 2
    g = generator(100, 3136)
    g.load_state_dict(torch.load(run / "generator.pth", weights_only=True), strict=True)


@pytest.mark.parametrize("preset", ["seed", "cdcgan"])
def test_resume_is_bitwise(fake_dir, tmp_path, preset):
    common = ["--preset", preset, "--data-dir", str(fake_dir), "--batch-size", "8",
              "--log-every", "3", "--epochs", "3"]
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(*common, "--out", str(straight), "--max-steps", "29")
    train(*common, "--out", str(split), "--max-steps", "13")  # stops mid-epoch (12 an epoch)
    main(["train", "--resume", str(split), "--max-steps", "29"])
    a, b = weights_of(straight), weights_of(split)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    logs = [[json.loads(x) for x in (r / "log.jsonl").read_text().splitlines()]
            for r in (straight, split)]

    def strip(rs):
        return [{k: v for k, v in r.items() if k not in ("images_per_s", "seconds")} for r in rs]

    assert strip(logs[0]) == strip(logs[1])


def test_existing_run_is_refused_and_untouched(fake_dir, tmp_path, capsys):
    run = tmp_path / "run"
    train("--data-dir", str(fake_dir), "--out", str(run), "--max-steps", "2")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as e:
        train("--data-dir", str(fake_dir), "--out", str(run), "--max-steps", "2")
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already holds a run" in err
    assert before == {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_resume_refuses_changing_the_model(fake_dir, tmp_path, capsys):
    run = tmp_path / "run"
    train("--data-dir", str(fake_dir), "--out", str(run), "--max-steps", "2")
    with pytest.raises(SystemExit) as e:
        main(["train", "--resume", str(run), "--lr", "0.1"])
    assert e.value.code == 2 and "--lr cannot change on --resume" in capsys.readouterr().err


def _spawn(run: Path, fake_dir: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mnistgan", "train", "--preset", "seed", "--dataset", "idx",
           "--data-dir", str(fake_dir), "--batch-size", "4", "--log-every", "5", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd + ["--out", str(run)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_step(run: Path, step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        log = run / "log.jsonl"
        lines = log.read_text().splitlines() if log.is_file() else []
        if any(json.loads(x)["step"] >= step for x in lines if x.strip().endswith("}")):
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"run did not reach step {step}")


def test_sigterm_saves_and_says_how_to_resume(fake_dir, tmp_path):
    run = tmp_path / "run"
    proc = _spawn(run, fake_dir, "--max-steps", "100000", "--checkpoint-every", "100000")
    _wait_for_step(run, 10, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert f"mnistgan train --resume {run}" in err
    step = load_checkpoint(run / "checkpoints" / "last.pt")["progress"]["step"]
    assert step >= 10 and (run / "generator.pth").is_file()


def test_kill_9_then_resume_continues(fake_dir, tmp_path):
    run = tmp_path / "run"
    proc = _spawn(run, fake_dir, "--max-steps", "60", "--checkpoint-every", "5")
    _wait_for_step(run, 20, proc)
    proc.kill()
    proc.wait()
    saved = load_checkpoint(run / "checkpoints" / "last.pt")["progress"]["step"]
    assert 15 <= saved < 60
    main(["train", "--resume", str(run)])
    assert load_checkpoint(run / "checkpoints" / "last.pt")["progress"]["step"] == 60
    steps = [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(5, 65, 5))


def test_conditional_run_draws_a_row_per_digit_from_the_ema(fake_dir, tmp_path):
    from PIL import Image

    run = tmp_path / "run"
    train("--preset", "cdcgan", "--data-dir", str(fake_dir), "--out", str(run), "--epochs", "1",
          "--batch-size", "16")
    grid = Image.open(run / "images" / "fake_images-1.png")
    assert grid.size == (10 * 30 + 2, 10 * 30 + 2)  # 10 columns, 10 rows (one per digit)
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["ema"] is not None
    assert any(not torch.equal(state["ema"][k], state["generator"][k]) for k in state["ema"])


def test_eval_every_logs_fid_and_keeps_best(tmp_path, monkeypatch):
    from conftest import fake_arrays, write_fake

    monkeypatch.setenv("MNISTGAN_CACHE", str(tmp_path / "cache"))
    data = write_fake(tmp_path / "data", fake_arrays(n_train=96, n_test=200))
    run = tmp_path / "run"
    train("--preset", "dcgan", "--data-dir", str(data), "--out", str(run), "--max-steps", "12",
          "--batch-size", "16", "--eval-every", "6")
    evals = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines() if '"fid"' in x]
    assert [e["step"] for e in evals] == [6, 12] and all(e["fid"] > 0 for e in evals)
    assert len(evals[0]["class_share"]) == 10
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["progress"]["best_fid"] == min(e["fid"] for e in evals)


def test_max_minutes_stops_the_run(fake_dir, tmp_path):
    run = tmp_path / "run"
    train("--data-dir", str(fake_dir), "--out", str(run), "--max-minutes", "0.001",
          "--epochs", "1000", "--log-every", "1")
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert 1 <= state["progress"]["step"] < 1000 * 6 and state["progress"]["seconds"] >= 0.06


def test_lr_schedule_is_flat_then_a_line_to_zero():
    assert [lr_schedule(s, 10, 0.5) for s in (0, 4, 5, 6, 9, 10)] == [1, 1, 1, 0.8, 0.2, 0]
    assert lr_schedule(9, 10, 0.0) == 1 and lr_schedule(0, 10, 1.0) == 1


def test_lr_decay_lowers_the_rates_and_resumes_exactly(fake_dir, tmp_path, monkeypatch):
    decay = tmp_path / "decay.toml"
    decay.write_text("[optim]\nlr_decay = 0.5\n")
    common = ["--preset", "cdcgan", "--config", str(decay), "--data-dir", str(fake_dir),
              "--batch-size", "8", "--epochs", "2", "--log-every", "3"]  # 12 steps an epoch
    straight, split = tmp_path / "straight", tmp_path / "split"
    train(*common, "--out", str(straight))
    with monkeypatch.context() as m:  # an interruption at step 10, inside the flat part
        m.setattr(Trainer, "stopping", lambda self: self.progress.step >= 10)
        train(*common, "--out", str(split))
    assert load_checkpoint(split / "checkpoints" / "last.pt")["progress"]["step"] == 10
    main(["train", "--resume", str(split)])
    a, b = weights_of(straight), weights_of(split)
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    state = load_checkpoint(straight / "checkpoints" / "last.pt")
    for name in ("opt_g", "opt_d"):  # the last of 24 steps ran at 1/12 of lr 1e-3
        assert state[name]["param_groups"][0]["lr"] == pytest.approx(1e-3 / 12)
