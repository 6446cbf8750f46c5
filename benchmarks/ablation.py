"""The quality issue's ablation: recipes side by side at equal steps, scored on every figure.

    python benchmarks/ablation.py --configs benchmarks/ablation/*.toml --steps 10000 \\
        --out runs/ablation
    python benchmarks/ablation.py --configs benchmarks/ablation/*.toml --out runs/ablation \\
        --score-only --checkpoint epoch-6.pt

Each `--config` file is trained by `mnistgan train --config F --max-steps S` with one thread per
run, all runs at once (two cores, two or more runs: each gets an equal share, so equal steps are
also equal CPU time for recipes of equal cost), then the EMA generator of each run's checkpoint
(`last.pt`, or a kept snapshot such as `epoch-6.pt`, the same for every run) is scored on 10,000
samples against the real test set: FID, precision, recall, label agreement, CAS (the fixed
classifier recipe trained on the 10,000 samples) and the memorisation share. Prints a markdown
table with real data's row and writes `OUT/ablation.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from mnistgan.data import load_dataset
from mnistgan.metrics import evaluate
from mnistgan.sampling import load_generator

COLUMNS = [("FID", "fid", "{:.3f}"), ("precision", "precision", "{:.3f}"),
           ("recall", "recall", "{:.3f}"), ("agreement", "label_agreement", "{:.2%}"),
           ("CAS 10k", "cas", "{:.2%}"), ("memorisation", "memorisation", "{:.2%}")]


def train_all(configs: list[Path], steps: int, out: Path) -> None:
    """Every recipe at once, one thread each; waits for all."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-m", "mnistgan", "train", "--config", str(c),
                               "--max-steps", str(steps), "--out", str(out / c.stem),
                               "--overwrite", "--snapshot-every", "2", "--log-every", "200"],
                              env=env, stdout=subprocess.DEVNULL) for c in configs]
    if any(p.wait() for p in procs):
        sys.exit("a training run failed")


def score(run: Path, checkpoint: str, data, n: int) -> dict:
    sampler = load_generator(run / "checkpoints" / checkpoint)
    return evaluate(lambda k: sampler.metric_samples(k, seed=0), data, n=n, cas=True)


def row(name: str, r: dict) -> str:
    cells = ["n/a" if r.get(key) is None else spec.format(r[key]) for _, key, spec in COLUMNS]
    return f"| {name} | " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=10_000, help="training steps per recipe")
    ap.add_argument("--checkpoint", default="last.pt", help="checkpoint of each run to score")
    ap.add_argument("--score-only", action="store_true", help="score runs already in --out")
    ap.add_argument("--n", type=int, default=10_000, help="samples scored per recipe")
    ap.add_argument("--out", type=Path, default=Path("runs/ablation"))
    args = ap.parse_args()
    if not args.score_only:
        train_all(args.configs, args.steps, args.out)
    data = load_dataset("mnist", "data")
    rows = {c.stem: score(args.out / c.stem, args.checkpoint, data, args.n) for c in args.configs}
    print("| recipe | " + " | ".join(c for c, _, _ in COLUMNS) + " |")
    print("| --- " * (len(COLUMNS) + 1) + "|")
    for name, r in rows.items():
        print(row(name, r))
    print(row("real data", next(iter(rows.values()))["real"]))
    (args.out / "ablation.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
