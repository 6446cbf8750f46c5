"""Faults and bad input: divergence, untrusted checkpoints, damaged data, full disks, existing
outputs, and one line with exit status 2 for every user mistake in the CLI."""

from __future__ import annotations

import errno
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import fake_arrays, run_cli, write_fake
from mnistgan import losses
from mnistgan.checkpoint import load_checkpoint
from mnistgan.cli import main
from mnistgan.data.idx import IdxError, encode_idx, read_idx

ROOT = Path(__file__).resolve().parents[1]



def one_line_error(code: int, err: str, *parts: str) -> None:
    assert code == 2, err
    assert err.startswith("mnistgan: error: ") and err.count("\n") == 1, err
    for part in parts:
        assert part in err, err


def train_args(data: Path, run: Path, *extra: str) -> list[str]:
    return ["train", "--preset", "seed", "--dataset", "idx", "--data-dir", str(data),
            "--batch-size", "8", "--out", str(run), *extra]


# -- divergence -------------------------------------------------------------------------------


def poison_g_loss(monkeypatch, at_calls: set[int] | None) -> list[int]:
    """Make the generator's loss NaN on the given calls (1-based; None: always)."""
    calls = [0]
    real = losses.LOSSES["bce"]

    def g_loss(logits):
        calls[0] += 1
        out = real.g_loss(logits)
        return out * float("nan") if at_calls is None or calls[0] in at_calls else out

    monkeypatch.setitem(losses.LOSSES, "bce", losses.GanLoss(real.d_loss, g_loss))
    return calls


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(fake_dir, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    poison_g_loss(monkeypatch, {6})  # step 6; checkpoints at 0, 4 (and 8, 12 if it went on)
    code, _, err = run_cli(capsys, *train_args(fake_dir, run, "--max-steps", "12",
                                               "--checkpoint-every", "4", "--log-every", "4"))
    one_line_error(code, err, "training diverged: non-finite ", "g_loss", "G's gradients",
                   "between steps 4 and 8", str(run / "checkpoints" / "last.pt"), "--on-nan rollback")
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["progress"]["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["generator"].values())
    assert not (run / "generator.pth").exists()  # poisoned weights are never exported
    assert [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines()] == [4]


def test_nan_gradient_alone_is_caught(fake_dir, tmp_path):
    """A NaN in D's gradients with finite losses: flagged in the step, caught at the boundary."""
    from mnistgan.config import load_preset
    from mnistgan.data import load_dataset
    from mnistgan.errors import Diverged
    from mnistgan.run import RunDir
    from mnistgan.trainer import Trainer

    cfg = load_preset("seed").replace(train={"max_steps": 9, "batch_size": 8, "log_every": 3,
                                             "checkpoint_every": 3}, data={"dataset": "idx"})
    run = RunDir.create(tmp_path / "run", cfg)
    trainer = Trainer(cfg, load_dataset("idx", fake_dir), device=torch.device("cpu"), run=run,
                      echo=lambda _: None)
    poisoned = []

    def hook(grad):  # once, in step 5 (4 steps done), D's own backward
        if trainer.progress.step == 4 and not poisoned:
            poisoned.append(True)
            return grad * float("nan")
        return grad

    next(trainer.D.parameters()).register_hook(hook)
    with pytest.raises(Diverged, match="non-finite .*D's gradients.* between steps 3 and 6"):
        trainer.fit()
    assert load_checkpoint(run.last)["progress"]["step"] == 3


def test_rollback_reloads_and_halves_the_learning_rate(fake_dir, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    poison_g_loss(monkeypatch, {7})
    code, out, err = run_cli(capsys, *train_args(fake_dir, run, "--max-steps", "12",
                                                 "--checkpoint-every", "4", "--log-every", "2",
                                                 "--on-nan", "rollback"))
    assert code == 0, err
    assert "between steps 6 and 8; rolled back to step 4 with lr_g 0.00015" in out
    assert "g_loss" in out.split("rolled back")[0]
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["progress"]["step"] == 12 and state["progress"]["rollbacks"] == 1
    assert state["opt_g"]["param_groups"][0]["lr"] == pytest.approx(1.5e-4)
    assert state["opt_d"]["param_groups"][0]["lr"] == pytest.approx(1.5e-4)
    assert all(torch.isfinite(v).all() for v in state["generator"].values())
    steps = [json.loads(x)["step"] for x in (run / "log.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8, 10, 12]  # the poisoned records were dropped, then redone


def test_rollback_gives_up_after_three(fake_dir, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    poison_g_loss(monkeypatch, None)
    code, out, err = run_cli(capsys, *train_args(fake_dir, run, "--max-steps", "12",
                                                 "--checkpoint-every", "4", "--log-every", "4",
                                                 "--on-nan", "rollback"))
    one_line_error(code, err, "after 3 rollbacks")
    assert out.count("rolled back to step 0") == 3
    assert load_checkpoint(run / "checkpoints" / "last.pt")["progress"]["step"] == 0


def test_the_finite_check_syncs_only_at_boundaries(fake_dir, tmp_path, monkeypatch, capsys):
    """The flags are read where the run logs or checkpoints, not every step."""
    from mnistgan.trainer import Trainer

    reads = []
    real = Trainer.healthy
    monkeypatch.setattr(Trainer, "healthy", lambda self: reads.append(self.progress.step) or real(self))
    code, _, err = run_cli(capsys, *train_args(fake_dir, tmp_path / "run", "--max-steps", "24",
                                               "--log-every", "6", "--checkpoint-every", "12"))
    assert code == 0, err
    assert sorted(set(reads)) == [0, 6, 12, 18, 24]  # 24 steps, 5 distinct places


# -- untrusted files --------------------------------------------------------------------------


class Payload:
    """Unpickling this creates the marker file: the code an attacker would run."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def crafted_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"format": 1, "config": {}, "progress": {}, "generator": Payload(marker)}, path)
    return path


def test_crafted_pickle_would_run_code_without_weights_only(tmp_path):
    """The payload is real: a plain torch.load runs it (so the refusal below means something)."""
    marker = tmp_path / "ran"
    path = crafted_checkpoint(tmp_path / "evil.pt", marker)
    code = f"import torch; torch.load({str(path)!r}, weights_only=False)"
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    assert marker.exists()


@pytest.mark.parametrize("command", ["sample", "evaluate", "generate", "resume"])
def test_crafted_pickle_is_refused_and_never_runs(tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran"
    if command == "resume":
        (tmp_path / "run" / "checkpoints").mkdir(parents=True)
        crafted_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt", marker)
        args = ["train", "--resume", "run"]
    else:
        crafted_checkpoint(tmp_path / "evil.pt", marker)
        args = [command, "--checkpoint", "evil.pt", "--out", "o"]
        args = args[:3] if command == "evaluate" else args
    code, _, err = run_cli(capsys, *args)
    one_line_error(code, err, "refused, not a plain weights file")
    assert not marker.exists()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory) -> Path:
    """A 2-step conditional run on fake data (for checkpoints to damage and CLI errors)."""
    root = tmp_path_factory.mktemp("small")
    data = write_fake(root / "data", fake_arrays())
    run = root / "run"
    main(["train", "--preset", "cdcgan", "--dataset", "idx", "--data-dir", str(data),
          "--out", str(run), "--max-steps", "2", "--batch-size", "16"])
    return run


def altered(small_run: Path, tmp_path: Path, change) -> Path:
    state = torch.load(small_run / "checkpoints" / "last.pt", weights_only=True)
    change(state)
    run = tmp_path / "altered"
    (run / "checkpoints").mkdir(parents=True)
    torch.save(state, run / "checkpoints" / "last.pt")
    return run


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update(format=2), "checkpoint format 2 is newer than this mnistgan reads (1)"),
    (lambda s: s["config"]["train"].update(warp_drive=True),
     "incompatible config (config: unknown key train.warp_drive)"),
    (lambda s: s["config"]["model"].update(num_classes=0, aux_classifier=False,
                                           twin_classifier=False),
     "generator lacks weight 'norm0.norm.weight' for its config (model.arch dcgan)"),
    (lambda s: s["config"]["model"].update(ch=48), "has shape"),
    (lambda s: s["progress"].update(warp=1), "progress has unknown field 'warp'"),
    (lambda s: s.pop("opt_d"), "checkpoint lacks opt_d"),
])
@pytest.mark.parametrize("command", ["resume", "sample"])
def test_incompatible_checkpoint_is_one_line(small_run, tmp_path, capsys, change, message, command):
    run = altered(small_run, tmp_path, change)
    args = (["train", "--resume", str(run)] if command == "resume"
            else ["sample", "--checkpoint", str(run), "--out", str(tmp_path / "g.png")])
    code, _, err = run_cli(capsys, *args)
    one_line_error(code, err, str(run / "checkpoints" / "last.pt"), message)


def test_truncated_checkpoint_is_refused(small_run, tmp_path, capsys):
    run = altered(small_run, tmp_path, lambda s: None)
    ckpt = run / "checkpoints" / "last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    code, _, err = run_cli(capsys, "train", "--resume", str(run))
    one_line_error(code, err, str(ckpt), "unreadable or truncated")


# -- bad data ---------------------------------------------------------------------------------


def _rewrite(name: str, fn):
    def damage(raw: Path) -> Path:
        path = raw / name
        path.write_bytes(fn(path.read_bytes()))
        return path
    return damage


def _relabel(raw: Path) -> Path:
    arrays = fake_arrays()
    arrays["train_labels"][3] = 12
    write_fake(raw, arrays)
    return raw / "train-labels-idx1-ubyte"


def _short_labels(raw: Path) -> Path:
    arrays = fake_arrays()
    arrays["train_labels"] = arrays["train_labels"][:-5]
    write_fake(raw, arrays)
    return raw / "train-labels-idx1-ubyte"


def _flat_images(raw: Path) -> Path:
    arrays = fake_arrays()
    arrays["train_images"] = arrays["train_images"].reshape(96, 784)
    write_fake(raw, arrays)
    return raw / "train-images-idx3-ubyte"


def _garbled_gz(raw: Path) -> Path:
    path = raw / "train-images-idx3-ubyte"
    data = bytearray(gzip.compress(path.read_bytes()))
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    path.unlink()
    (raw / "train-images-idx3-ubyte.gz").write_bytes(bytes(data))
    return raw / "train-images-idx3-ubyte.gz"


BAD_DATA = {
    "truncated": (_rewrite("train-images-idx3-ubyte", lambda b: b[:-100]), "truncated"),
    "trailing bytes": (_rewrite("t10k-labels-idx1-ubyte", lambda b: b + b"\0"), "trailing bytes"),
    "wrong magic": (_rewrite("train-labels-idx1-ubyte", lambda b: b"\x01" + b[1:]), "bad magic"),
    "wrong dtype": (_rewrite("train-images-idx3-ubyte", lambda b: b[:2] + b"\x0d" + b[3:]),
                    "not unsigned byte"),
    "empty file": (_rewrite("t10k-images-idx3-ubyte", lambda b: b""), "too short for a header"),
    "garbled gzip": (_garbled_gz, "corrupt gzip"),
    "lengths differ": (_short_labels, "96 images but train-labels-idx1-ubyte has 91 labels"),
    "label 12": (_relabel, "labels go up to 12, not 0-9"),
    "wrong shape": (_flat_images, "shape (96, 784), not (N, 28, 28)"),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
@pytest.mark.parametrize("command", ["data", "train"])
def test_bad_data_is_one_line_naming_the_file(tmp_path, capsys, monkeypatch, case, command):
    monkeypatch.chdir(tmp_path)
    raw = write_fake(tmp_path / "d" / "MNIST" / "raw", fake_arrays())
    damage, what = BAD_DATA[case]
    path = damage(raw)
    args = (["data", "--dataset", "idx", "--data-dir", "d"] if command == "data"
            else ["train", "--dataset", "idx", "--data-dir", "d", "--max-steps", "1"])
    code, _, err = run_cli(capsys, *args)
    one_line_error(code, err, path.name, what)


def test_fingerprint_mismatch_names_the_file(fake_dir, capsys):
    code, _, err = run_cli(capsys, "data", "--dataset", "mnist", "--data-dir", str(fake_dir))
    one_line_error(code, err, "train-images-idx3-ubyte fails its fingerprint")


def test_unreadable_directory_and_file(fake_dir, capsys, monkeypatch):
    raw = fake_dir / "MNIST" / "raw"
    real_iterdir, real_open = Path.iterdir, Path.open

    def iterdir(self):  # as root, chmod cannot make a folder unreadable: refuse like the OS
        if self == raw:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_iterdir(self)

    monkeypatch.setattr(Path, "iterdir", iterdir)
    code, _, err = run_cli(capsys, "data", "--dataset", "idx", "--data-dir", str(fake_dir))
    one_line_error(code, err, str(raw), "cannot list (Permission denied)")
    monkeypatch.setattr(Path, "iterdir", real_iterdir)

    def open_file(self, *args, **kwargs):  # the IDX reader streams the file through Path.open
        if self.name == "train-labels-idx1-ubyte":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", open_file)
    code, _, err = run_cli(capsys, "data", "--dataset", "idx", "--data-dir", str(fake_dir))
    one_line_error(code, err, "train-labels-idx1-ubyte: cannot read (Permission denied)")


GOOD = encode_idx(np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=48), st.booleans())
def test_random_files_plain_or_gzip_parse_or_raise_idx_error(tmp_path_factory, data, gz_magic):
    path = tmp_path_factory.mktemp("h") / "x-idx3-ubyte"
    path.write_bytes((b"\x1f\x8b" if gz_magic else b"") + data)
    try:
        out = read_idx(path)
    except IdxError as e:
        assert str(path) in str(e) and "\n" not in str(e)
        return
    assert out.dtype == np.uint8


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=4),
       st.integers(-40, 8), st.booleans())
def test_mutated_files_parse_or_raise_idx_error(tmp_path_factory, flips, resize, gz):
    """Byte flips and truncation of a valid file, applied before or after gzip."""
    data = bytearray(gzip.compress(GOOD, mtime=0) if gz else GOOD)
    for pos, value in flips:
        data[pos % len(data)] = value
    data = data[: len(data) + resize] if resize < 0 else data + bytes(resize)
    path = tmp_path_factory.mktemp("m") / "x-idx3-ubyte.gz"
    path.write_bytes(bytes(data))
    try:
        out = read_idx(path)
    except IdxError:
        return
    assert out.dtype == np.uint8 and out.size <= len(GOOD) * 2


def test_huge_claimed_shape_is_an_idx_error():
    header = b"\x00\x00\x08\x04" + b"\xff\xff\xff\xff" * 4
    with pytest.raises(IdxError, match="needs"):
        from mnistgan.data.idx import decode_idx
        decode_idx(header + b"\x00" * 16, "f")


# -- full disks -------------------------------------------------------------------------------


def _enospc(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["fsync", "write"])
def test_full_disk_keeps_the_previous_checkpoint(fake_dir, tmp_path, capsys, monkeypatch, where):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, *train_args(fake_dir, run, "--max-steps", "4"))
    assert code == 0, err
    ckpt = run / "checkpoints" / "last.pt"
    before = {p: p.read_bytes() for p in (ckpt, run / "generator.pth")}
    if where == "fsync":
        monkeypatch.setattr(os, "fsync", _enospc)
    else:
        real_save = torch.save

        def half_then_full(obj, f, *a, **k):  # some bytes reach the disk, then it is full
            f.write(b"PK\x03\x04 partial")
            _enospc()

        monkeypatch.setattr(torch, "save", half_then_full)
        assert real_save is not torch.save
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--max-steps", "8")
    if where == "fsync":  # every atomic write fails, the first being the resume's log rewrite
        one_line_error(code, err, str(run), "No space left on device")
    else:
        one_line_error(code, err, str(ckpt), "cannot write checkpoint (No space left on device)",
                       "the previous file is kept")
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in before} == before
    assert load_checkpoint(ckpt)["progress"]["step"] == 4
    assert not [p for p in run.rglob(".*tmp*")]  # no temp file left to look finished


def test_full_disk_at_the_weights_files_keeps_them(fake_dir, tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    run_cli(capsys, *train_args(fake_dir, run, "--max-steps", "2"))
    g = (run / "generator.pth").read_bytes()
    real_save = torch.save

    def full_for_weights(obj, f, *a, **k):  # checkpoints fit on the disk, the .pth files do not
        if "format" not in obj:
            f.write(b"partial")
            _enospc()
        real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", full_for_weights)
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--max-steps", "4")
    one_line_error(code, err, "generator.pth: cannot write weights (No space left on device)")
    monkeypatch.undo()
    assert (run / "generator.pth").read_bytes() == g
    assert load_checkpoint(run / "checkpoints" / "last.pt")["progress"]["step"] == 4
    assert not [p for p in run.rglob(".*tmp*")]


def test_stale_temp_files_of_killed_writers_are_removed(fake_dir, tmp_path, capsys):
    run = tmp_path / "run"
    run_cli(capsys, *train_args(fake_dir, run, "--max-steps", "2"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    stale = run / "checkpoints" / f".last.pt.tmp-{dead}"
    stale.write_bytes(b"half a checkpoint")
    code, _, err = run_cli(capsys, "train", "--resume", str(run), "--max-steps", "4")
    assert code == 0, err
    assert not stale.exists()


# -- existing outputs -------------------------------------------------------------------------


def test_overwrite_deletes_nothing_until_the_new_run_checkpoints(fake_dir, tmp_path, capsys):
    run = tmp_path / "run"
    run_cli(capsys, *train_args(fake_dir, run, "--max-steps", "2"))
    old = (run / "checkpoints" / "last.pt").read_bytes()
    # The new run fails before its first checkpoint (its data folder is empty).
    code, _, err = run_cli(capsys, "train", "--preset", "seed", "--dataset", "idx", "--data-dir",
                           str(tmp_path / "empty"), "--out", str(run), "--overwrite")
    assert code == 2
    aside = tmp_path / ".run.replaced"
    assert (aside / "checkpoints" / "last.pt").read_bytes() == old
    code, _, err = run_cli(capsys, "train", "--resume", str(run))
    one_line_error(code, err, f"the run it replaced is kept at {aside}")
    # A second try that gets going: the set-aside run goes once the new one has a checkpoint.
    code, _, err = run_cli(capsys, *train_args(fake_dir, run, "--max-steps", "3", "--seed", "5",
                                               "--overwrite"))
    assert code == 0, err
    assert not aside.exists()
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["config"]["train"]["seed"] == 5 and state["progress"]["step"] == 3


REPLACE_CALLS = (("os", "replace"), ("os", "rename"), ("os", "fsync"), ("shutil", "rmtree"))


def fail_call(monkeypatch, at: int | None) -> list[str]:
    """Count the filesystem calls a replace makes (REPLACE_CALLS); the `at`-th (1-based) raises
    ENOSPC. Returns the names of the calls made, in order."""
    import shutil

    calls: list[str] = []
    for module, name in REPLACE_CALLS:
        owner = {"os": os, "shutil": shutil}[module]
        real = getattr(owner, name)

        def call(*args, _real=real, _name=name, **kwargs):
            calls.append(_name)
            if len(calls) == at:
                _enospc()
            return _real(*args, **kwargs)

        monkeypatch.setattr(owner, name, call)
    return calls


def test_a_failed_call_while_replacing_a_run_never_loses_both(fake_dir, tmp_path, capsys,
                                                               monkeypatch):
    """`train --overwrite` of a run, with each rename, replace, fsync and rmtree of the whole
    command failing in turn: afterwards the old run is whole (in RUN, or set aside in
    .RUN.replaced, where `--resume RUN` points), or the new run has a checkpoint to resume
    from (the old one is removed only then) or finished; a failure is one line, exit 2."""
    import shutil

    template = tmp_path / "template"
    run_cli(capsys, *train_args(fake_dir, template, "--max-steps", "1"))
    old = (template / "checkpoints" / "last.pt").read_bytes()
    new_args = train_args(fake_dir, tmp_path / "run", "--max-steps", "1", "--seed", "5",
                          "--overwrite")

    def fresh() -> Path:
        for p in (tmp_path / "run", tmp_path / ".run.replaced"):
            shutil.rmtree(p, ignore_errors=True)
        shutil.copytree(template, tmp_path / "run")
        return tmp_path / "run"

    fresh()
    with monkeypatch.context() as m:
        clean = fail_call(m, None)
        assert run_cli(capsys, *new_args)[0] == 0
    assert {"replace", "fsync", "rmtree"} <= set(clean)
    for k in range(1, len(clean) + 1):
        run, aside = fresh(), tmp_path / ".run.replaced"
        with monkeypatch.context() as m:
            fail_call(m, k)
            code, _, err = run_cli(capsys, *new_args)
        where = f"call {k} of {len(clean)} ({clean[k - 1]})"
        if code == 0:  # a failure the command could absorb: the new run finished
            state = load_checkpoint(run / "checkpoints" / "last.pt")
            assert state["config"]["train"]["seed"] == 5 and state["progress"]["step"] == 1, where
            assert (run / "generator.pth").is_file(), where
            continue
        one_line_error(code, err, "No space left on device")
        kept = [p for p in (run, aside) if (p / "checkpoints" / "last.pt").is_file()
                and (p / "checkpoints" / "last.pt").read_bytes() == old]
        if not kept:  # gone only once the new run had a checkpoint: that run resumes
            state = load_checkpoint(run / "checkpoints" / "last.pt")
            assert state["config"]["train"]["seed"] == 5, f"{where}: the old run is gone"
        elif kept == [aside] and not (run / "checkpoints" / "last.pt").is_file():
            assert f"the run it replaces is kept whole at {aside}" in err, f"{where}: {err}"
            code, _, err = run_cli(capsys, "train", "--resume", str(run))
            one_line_error(code, err, f"the run it replaced is kept at {aside}")


# -- every user error in the CLI --------------------------------------------------------------


CLI_ERRORS = [
    (["train", "--preset", "nope"], "unknown preset 'nope'"),
    (["train", "--device", "tpu"], "train.device must be"),
    (["train", "--epochs", "0"], "train.epochs must be at least 1"),
    (["train", "--epochs", "-2"], "train.epochs must be at least 1"),
    (["train", "--batch-size", "0"], "train.batch_size must be at least 1"),
    (["train", "--max-steps", "-1"], "train.max_steps must be at least 1"),
    (["train", "--log-every", "0"], "train.log_every must be at least 1"),
    (["train", "--checkpoint-every", "0"], "train.checkpoint_every must be at least 1"),
    (["train", "--eval-every", "-1"], "train.eval_every must be at least 0"),
    (["train", "--max-minutes", "0"], "train.max_minutes must be positive"),
    (["train", "--on-nan", "ignore"], "'ignore' is not one of"),
    (["train", "--resume", "missing-run"], "--resume missing-run: no such run folder"),
    (["sample", "--checkpoint", "missing.pt", "--out", "g.png"], "missing.pt: no such file"),
    (["sample", "--checkpoint", "RUN", "--out", "g.png", "--device", "tpu"], "tpu"),
    (["sample", "--checkpoint", "RUN", "--out", "g.png", "--digit", "10"], "--digit must be 0-9, got 10"),
    (["sample", "--checkpoint", "RUN", "--out", "g.png", "--digit", "-1"], "--digit must be 0-9, got -1"),
    (["sample", "--checkpoint", "RUN", "--out", "w.png", "--interpolate", "--walks", "0"], "needs at least 1 walk and 2 steps"),
    (["sample", "--checkpoint", "RUN", "--out", "w.png", "--interpolate", "--steps", "-3"], "needs at least 1 walk and 2 steps"),
    (["sample", "--checkpoint", "RUN", "--out", "nodir/g.png"], "does not exist"),
    (["evaluate", "--checkpoint", "missing.pt"], "missing.pt: no such file"),
    (["evaluate", "--real", "--n", "0"], "--n must be at least 1"),
    (["evaluate", "--real", "--n", "-5"], "--n must be at least 1"),
    (["evaluate", "--checkpoint", "RUN", "--device", "tpu"], "tpu"),
    (["generate", "--checkpoint", "missing.pt", "--out", "o"], "missing.pt: no such file"),
    (["generate", "--checkpoint", "RUN", "--out", "o", "--device", "tpu"], "tpu"),
    (["generate", "--checkpoint", "RUN", "--out", "o", "--n-train", "-1"], "--n-train"),
    (["generate", "--checkpoint", "RUN", "--out", "o", "--n-test", "-1"], "--n-test"),
    (["generate", "--checkpoint", "RUN", "--out", "o", "--batch-size", "0"], "--batch-size must be at least 1"),
    (["generate", "--checkpoint", "RUN", "--out", "o", "--labels", "1,2,3"], "--labels"),
    (["generate", "--checkpoint", "RUN", "--out", "o", "--labels", "1,1,1,1,1,1,1,1,1,1,1"], "--labels"),
    (["generate", "--checkpoint", "RUN", "--out", "o", "--labels", "5,5,5,5,5,5,5,5,5,-5"], "--labels"),
    (["generate", "--checkpoint", "RUN", "--out", "o", "--labels", "uniform"], "--labels"),
    (["generate", "--checkpoint", "RUN", "--out", "o", "--min-confidence", "1.5"], "--min-confidence"),
]


@pytest.mark.parametrize("args, message", CLI_ERRORS, ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_every_cli_user_error_is_one_line_exit_2(small_run, tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    args = [str(small_run) if a == "RUN" else a for a in args]
    code, _, err = run_cli(capsys, *args)
    one_line_error(code, err, message)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "o").exists()


# -- the kill loop, small -------------------------------------------------------------------


def test_fault_script_survives_kills(tmp_path):
    """benchmarks/faults.py in miniature: SIGKILLs, resumes, bitwise-equal final state."""
    out = tmp_path / "faults.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "faults.py"), "--kills", "2",
                           "--steps", "12", "--json", str(out)],
                          capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures = json.loads(out.read_text())
    assert figures["kills"] == 2 and figures["mismatches"] == 0 and figures["final_step"] == 12
    assert figures["log_equal"] and not figures["failures"]


@pytest.mark.parametrize("plant", ["notes.txt", "checkpoints/notes.txt", "bad-config"])
def test_overwrite_sets_aside_only_a_provable_run(fake_dir, tmp_path, capsys, plant):
    run = tmp_path / "run"
    run_cli(capsys, *train_args(fake_dir, run, "--max-steps", "2"))
    if plant == "bad-config":
        (run / "config.json").write_text('{"not": "a run config"}')
    else:
        (run / plant).write_text("a user's file")
    before = sorted(str(p.relative_to(run)) for p in run.rglob("*"))
    code, _, err = run_cli(capsys, *train_args(fake_dir, run, "--max-steps", "2", "--overwrite"))
    assert code == 2 and "--overwrite" in err and "nothing deleted" in err
    assert len(err.strip().splitlines()) == 1
    assert sorted(str(p.relative_to(run)) for p in run.rglob("*")) == before
    assert not (tmp_path / ".run.replaced").exists()


@pytest.mark.parametrize("where", ["cwd", "parent", "home"])
def test_out_at_the_working_or_home_folder_is_one_line(fake_dir, tmp_path, capsys, monkeypatch,
                                                       where):
    work = tmp_path / "work"
    work.mkdir()
    (work / "precious.txt").write_text("keep me")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(work))
    out = {"cwd": ".", "parent": "..", "home": str(work)}[where]
    code, _, err = run_cli(capsys, *train_args(fake_dir, Path(out), "--max-steps", "2",
                                               "--overwrite"))
    assert code == 2 and "folder of its own" in err
    assert len(err.strip().splitlines()) == 1
    assert (work / "precious.txt").read_text() == "keep me" and sorted(os.listdir(work)) == [
        "precious.txt"]
