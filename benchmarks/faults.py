"""Kill a training run with SIGKILL at random moments, resume it each time, and prove nothing
was lost: every resume starts from the last complete checkpoint, the step count never goes
backwards, no half-written file is ever taken for a checkpoint, and the final weights, optimizer
states and log equal those of an uninterrupted run with the same seed, bit for bit (CPU).

About half of the kills are aimed at a checkpoint write: the script watches for the temp file
`.last.pt.tmp-PID` and kills the moment it appears. The rest come after a random delay, so some
land during start-up, before the run's first checkpoint (then the run is started again with
--overwrite, as a user would).

    python benchmarks/faults.py                       # 12 kills on tiny fake data, ~2 minutes
    python benchmarks/faults.py --kills 3 --steps 30  # the quick version the tests run
    FAULTS_DEBUG=1 python benchmarks/faults.py        # also one line per kill
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mnistgan.checkpoint import load_checkpoint
from mnistgan.data.idx import write_idx
from mnistgan.data.sources import SPLIT_FILES


def fake_data(directory: Path, n: int = 96, seed: int = 0) -> Path:
    """A tiny digit-like IDX data set (a bar whose height is the label, on noise)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for split, count in (("train", n), ("test", 32)):
        labels = rng.integers(0, 10, count).astype(np.uint8)
        images = rng.integers(0, 40, (count, 28, 28)).astype(np.uint8)
        for i, y in enumerate(labels):
            images[i, 4 + 2 * int(y): 6 + 2 * int(y), 6:22] = 255
        write_idx(directory / SPLIT_FILES[f"{split}_images"], images)
        write_idx(directory / SPLIT_FILES[f"{split}_labels"], labels)
    return directory


def command(args: argparse.Namespace, run: Path, data: Path, how: str) -> list[str]:
    base = [sys.executable, "-m", "mnistgan", "train"]
    if how == "resume":
        return base + ["--resume", str(run)]
    cmd = base + ["--preset", "seed", "--dataset", "idx", "--data-dir", str(data),
                  "--batch-size", "4", "--max-steps", str(args.steps), "--log-every", "1",
                  "--checkpoint-every", str(args.checkpoint_every), "--seed", str(args.seed),
                  "--out", str(run)]
    return cmd + (["--overwrite"] if how == "overwrite" else [])


def spawn(cmd: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one thread: bitwise-reproducible on CPU
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def state_tensors(path: Path) -> dict[str, torch.Tensor]:
    state = load_checkpoint(path)
    out = {}
    for part in ("generator", "discriminator", "ema"):
        out.update({f"{part}.{k}": v for k, v in (state[part] or {}).items()})
    for part in ("opt_g", "opt_d"):
        for i, s in state[part]["state"].items():
            out.update({f"{part}.{i}.{k}": v for k, v in s.items()})
    return out


def logged(run: Path) -> list[dict]:
    """log.jsonl without the timing fields; a torn last line (a kill mid-write) is skipped."""
    records = []
    path = run / "log.jsonl"
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        records.append({k: v for k, v in r.items() if k not in ("images_per_s", "seconds")})
    return records


def kill_at_checkpoint_write(proc: subprocess.Popen, ckpt_dir: Path, timeout: float) -> bool:
    """SIGKILL `proc` as soon as a temp checkpoint file appears; False if none did in time."""
    deadline = time.time() + timeout
    tmp = f".last.pt.tmp-{proc.pid}"
    while time.time() < deadline and proc.poll() is None:
        if (ckpt_dir / tmp).exists():
            proc.kill()
            return True
        time.sleep(0.0005)
    return False


def check_visible_checkpoints(run: Path) -> int:
    """Load every checkpoint a reader could pick (no dot names); a half-written one would fail."""
    seen = 0
    for path in sorted((run / "checkpoints").glob("*.pt")):
        load_checkpoint(path)  # raises on a torn or partial file
        seen += 1
    return seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=12, help="SIGKILLs to deliver")
    ap.add_argument("--steps", type=int, default=240, help="total steps of the run")
    ap.add_argument("--checkpoint-every", type=int, default=3, help="steps between checkpoints")
    ap.add_argument("--seed", type=int, default=0, help="training seed")
    ap.add_argument("--rng", type=int, default=1, help="seed of the kill schedule")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()
    rnd = random.Random(args.rng)
    with tempfile.TemporaryDirectory(prefix="mnistgan-faults-") as tmp:
        root = Path(tmp)
        data = fake_data(root / "data")
        ref, run = root / "reference", root / "killed"
        t0 = time.time()
        done = subprocess.run(command(args, ref, data, "new"),
                              env={**os.environ, "OMP_NUM_THREADS": "1"},
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        straight = time.time() - t0
        figures = kill_loop(args, rnd, run, data, straight)
        want = state_tensors(ref / "checkpoints" / "last.pt")
        got = state_tensors(run / "checkpoints" / "last.pt")
        mismatches = sum(1 for k in want if k not in got or not torch.equal(want[k], got[k]))
        mismatches += len(set(got) - set(want))
        for name in ("generator.pth", "discriminator.pth"):
            mismatches += (ref / name).read_bytes() != (run / name).read_bytes()
        log_equal = logged(ref) == logged(run)
        mismatches += not log_equal
        figures.update(tensors_compared=len(want), mismatches=mismatches, log_equal=log_equal,
                       uninterrupted_seconds=round(straight, 1))
    report(figures)
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    sys.exit(0 if mismatches == 0 and not figures["failures"] else 1)


def kill_loop(args, rnd: random.Random, run: Path, data: Path, straight: float) -> dict:
    kills = resumes = restarts = mid_write = 0
    lost: list[int] = []
    failures: list[str] = []
    last_saved = -1
    how = "new"
    while True:
        proc = spawn(command(args, run, data, how))
        if kills < args.kills and rnd.random() < 0.5:
            hit = kill_at_checkpoint_write(proc, run / "checkpoints", timeout=straight + 30)
        else:
            hit = False
            if kills < args.kills:
                deadline = time.time() + rnd.uniform(0.2, 0.6 * straight)
                while time.time() < deadline and proc.poll() is None:
                    time.sleep(0.01)
                if proc.poll() is None:
                    proc.kill()
                    hit = True
        proc.wait()
        err = proc.stderr.read()
        proc.stderr.close()
        if not hit or proc.returncode == 0:
            if proc.returncode != 0:
                failures.append(f"attempt ended with {proc.returncode}: {err.strip()[-300:]}")
            break
        kills += 1
        ckpt = run / "checkpoints" / "last.pt"
        mid_write += any((run / "checkpoints").glob(".last.pt.tmp-*"))
        try:
            check_visible_checkpoints(run)
        except Exception as e:  # a half-written checkpoint taken for a real one
            failures.append(f"kill {kills}: {e}")
            break
        reached = max((r["step"] for r in logged(run) if "d_loss" in r), default=0)
        if ckpt.is_file():
            saved = load_checkpoint(ckpt)["progress"]["step"]
            if saved < last_saved:
                failures.append(f"kill {kills}: step went back from {last_saved} to {saved}")
            last_saved = saved
            lost.append(max(reached - saved, 0))
            if os.environ.get("FAULTS_DEBUG"):
                print(f"kill {kills}: reached {reached}, checkpoint {saved}", flush=True)
            how = "resume"
            resumes += 1
        else:  # killed before the run's first checkpoint: start it again
            lost.append(reached)
            how = "overwrite"
            restarts += 1
    final = load_checkpoint(run / "checkpoints" / "last.pt")["progress"]["step"]
    if final != args.steps:
        failures.append(f"the run ended at step {final}, not {args.steps}")
    return {"kills": kills, "resumes": resumes, "restarts_before_first_checkpoint": restarts,
            "kills_during_checkpoint_write": mid_write,
            "steps_lost_mean": round(statistics.fmean(lost), 2) if lost else 0.0,
            "steps_lost_max": max(lost, default=0), "final_step": final, "failures": failures}


def report(f: dict) -> None:
    print(f"kills: {f['kills']} (during a checkpoint write: {f['kills_during_checkpoint_write']})")
    print(f"resumes: {f['resumes']}  restarts before the first checkpoint: "
          f"{f['restarts_before_first_checkpoint']}")
    print(f"steps lost per kill: mean {f['steps_lost_mean']}, max {f['steps_lost_max']}")
    print(f"final step: {f['final_step']}; tensors compared with the uninterrupted run: "
          f"{f['tensors_compared']}; log identical: {f['log_equal']}")
    print(f"mismatches: {f['mismatches']}")
    for line in f["failures"]:
        print(f"FAILURE: {line}")


if __name__ == "__main__":
    main()
