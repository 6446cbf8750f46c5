"""The run lifecycle from Python (`mnistgan.train`, resume included) and from the CLI: how a run
ends, the next free run name, and `--overwrite` / `--out` refusing anything but a run of its own."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

import mnistgan
from conftest import run_cli
from mnistgan.checkpoint import load_checkpoint
from mnistgan.errors import UserError
from mnistgan.trainer import Trainer


def seed_run(fake_dir: Path, **kw):
    """A tiny seed-preset run on the fake data, quiet."""
    return mnistgan.train("seed", dataset="idx", data_dir=str(fake_dir), batch_size=16,
                          log_every=2, log=None, **kw)


def states_equal(a: Path, b: Path) -> bool:
    sa, sb = (load_checkpoint(r / "checkpoints" / "last.pt") for r in (a, b))
    return all(torch.equal(sa[part][k], sb[part][k])
               for part in ("generator", "discriminator") for k in sa[part])


def test_python_api_trains_and_resumes_exactly(fake_dir, tmp_path):
    straight = seed_run(fake_dir, out=tmp_path / "straight", max_steps=8)
    assert straight.outcome.ended == "finished" and straight.outcome.step == 8
    assert straight.exit_status == 0 and straight.run == tmp_path / "straight"
    first = seed_run(fake_dir, out=tmp_path / "split", max_steps=3)
    assert first.outcome.step == 3
    resumed = mnistgan.train(resume=tmp_path / "split", max_steps=8, log=None)
    assert resumed.outcome.step == 8 and resumed.cfg.train.max_steps == 8
    assert states_equal(tmp_path / "straight", tmp_path / "split")
    log = (tmp_path / "split" / "log.jsonl").read_text().splitlines()
    steps = [json.loads(x)["step"] for x in log]
    assert steps == [2, 4, 6, 8]  # the resume logged from step 3 on, nothing twice


def test_python_api_refuses_what_a_resume_cannot_change(fake_dir, tmp_path):
    seed_run(fake_dir, out=tmp_path / "run", max_steps=2)
    with pytest.raises(UserError, match="--batch-size cannot change on --resume"):
        mnistgan.train(resume=tmp_path / "run", batch_size=32, log=None)
    with pytest.raises(UserError, match="unknown training option 'batchsize'"):
        mnistgan.train("seed", batchsize=32, log=None)


def test_next_free_run_name(fake_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    a, b = (seed_run(fake_dir, max_steps=1) for _ in range(2))
    assert (a.run, b.run) == (Path("runs/seed-000"), Path("runs/seed-001"))
    assert (tmp_path / "runs" / "seed-001" / "checkpoints" / "last.pt").is_file()


def test_fit_returns_how_it_ended(fake_dir, monkeypatch):
    cfg = mnistgan.load_preset("seed").replace(
        data={"dataset": "idx", "data_dir": str(fake_dir)},
        train={"batch_size": 16, "max_steps": 50, "log_every": 100})
    trainer = Trainer(cfg, mnistgan.load_dataset("idx", fake_dir, cache=False),
                      device=torch.device("cpu"), echo=lambda _: None)
    step = trainer.train_step

    def step_then_interrupt() -> None:
        step()
        if trainer.progress.step == 3:
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C: the step ends, then the loop stops

    monkeypatch.setattr(trainer, "train_step", step_then_interrupt)
    outcome = trainer.fit()
    assert (outcome.ended, outcome.step, outcome.signal) == ("interrupted", 3, signal.SIGINT)
    assert outcome.exit_status == 130


# -- --overwrite and --out: only a run folder of its own --------------------------------------


def one_line_error(code: int, err: str, message: str) -> None:
    assert code == 2 and err.count("\n") == 1 and message in err, err


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def train_into(capsys, fake_dir: Path, out: str, *extra: str) -> tuple[int, str, str]:
    return run_cli(capsys, "train", "--preset", "seed", "--dataset", "idx", "--data-dir",
                   str(fake_dir), "--out", out, "--max-steps", "1", "--batch-size", "16", *extra)


def valid_config() -> str:
    return json.dumps(mnistgan.load_preset("seed").to_dict())


NOT_RUNS = {
    "config.json that is not a RunConfig": ({"config.json": '{"thesis": 1}', "log.jsonl": ""},
                                            "no mnistgan config.json"),
    "config.json alone": ({"config.json": None}, "neither checkpoints/ nor log.jsonl"),
    "a foreign file in checkpoints/": ({"config.json": None, "checkpoints/notes.txt": "mine"},
                                       "checkpoints/ holds what mnistgan does not write"),
    "a log that is not mnistgan's": ({"config.json": None, "log.jsonl": "hello\nworld\n"},
                                     "neither checkpoints/ nor log.jsonl"),
    "a run plus a file of the user's": ({"config.json": None, "checkpoints/last.pt": "x",
                                         "thesis.tex": "years of work"}, "'thesis.tex'"),
}


@pytest.mark.parametrize("files, message", NOT_RUNS.values(), ids=NOT_RUNS.keys())
def test_overwrite_refuses_a_folder_that_is_not_provably_a_run(fake_dir, tmp_path, capsys,
                                                               files, message):
    folder = tmp_path / "mine"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(valid_config() if text is None else text)
    before = snapshot(folder)
    code, _, err = train_into(capsys, fake_dir, str(folder), "--overwrite")
    one_line_error(code, err, message)
    assert snapshot(folder) == before and not (tmp_path / ".mine.replaced").exists()


def test_overwrite_replaces_a_real_run(fake_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert train_into(capsys, fake_dir, str(run))[0] == 0
    code, _, err = train_into(capsys, fake_dir, str(run), "--overwrite", "--seed", "3")
    assert code == 0, err
    assert load_checkpoint(run / "checkpoints" / "last.pt")["config"]["train"]["seed"] == 3


@pytest.mark.parametrize("where", [".", "..", "/", "~", "file", "./sub/.."])
@pytest.mark.parametrize("overwrite", [False, True])
def test_odd_out_paths_are_one_line(fake_dir, tmp_path, capsys, monkeypatch, where, overwrite):
    home, cwd = tmp_path / "home", tmp_path / "work"
    (cwd / "sub").mkdir(parents=True)
    (cwd / "file").write_text("a file")
    (cwd / "notes.txt").write_text("mine")
    (home / "keep").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    before = snapshot(tmp_path)
    out = str(home) if where == "~" else where
    code, _, err = train_into(capsys, fake_dir, out, *(["--overwrite"] if overwrite else []))
    message = {"file": "is not a directory", "~": "home directory"}.get(where, "working directory")
    one_line_error(code, err, message)
    assert snapshot(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake", "home", "work"]
