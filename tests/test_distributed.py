"""torchrun: two CPU processes (gloo) train one run; rank 0 alone writes; resumes at any size."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from mnistgan.checkpoint import load_checkpoint
from mnistgan.distributed import World


def torchrun(nproc: int, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
           "--standalone", "-m", "mnistgan", "train", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_two_processes_train_one_run_and_resume_at_another_size(fake_dir, tmp_path):
    run = tmp_path / "run"
    first = torchrun(2, "--preset", "cdcgan", "--dataset", "idx", "--data-dir", str(fake_dir),
                     "--out", str(run), "--max-steps", "4", "--batch-size", "32",
                     "--log-every", "2", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "x 2 processes" in first.stdout and first.stdout.count("done: 4 steps") == 1
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    assert state["progress"]["step"] == 4 and state["progress"]["images"] == 4 * 32
    assert state["config"]["train"]["batch_size"] == 32  # the global batch
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]  # one writer: no record twice
    assert not list(tmp_path.glob("runs"))  # no other rank made a folder of its own
    # The same run continues in one process, then in two again.
    one = subprocess.run([sys.executable, "-m", "mnistgan", "train", "--resume", str(run),
                          "--max-steps", "6"], capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    again = torchrun(2, "--resume", str(run), "--max-steps", "8", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-2000:]
    final = load_checkpoint(run / "checkpoints" / "last.pt")
    assert final["progress"]["step"] == 8 and final["progress"]["images"] == 8 * 32
    assert any(not torch.equal(final["generator"][k], state["generator"][k])
               for k in state["generator"])


def test_batch_must_split_evenly_across_processes(fake_dir, tmp_path):
    bad = torchrun(2, "--preset", "cdcgan", "--dataset", "idx", "--data-dir", str(fake_dir),
                   "--out", str(tmp_path / "run"), "--max-steps", "2", "--batch-size", "33",
                   cwd=tmp_path)
    assert bad.returncode != 0 and "multiple of the 2 processes" in bad.stderr


def test_one_process_world_is_the_identity():
    w = World()
    x = torch.arange(6)
    assert not w.distributed and w.main and torch.equal(w.shard(x), x)
    assert World(rank=1, size=2).shard(x).tolist() == [3, 4, 5]
    m = torch.nn.Linear(2, 2)
    assert w.wrap(m) is m and w.agree(True, torch.device("cpu"))
