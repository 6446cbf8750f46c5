"""What the per-step NaN/inf check costs: the seed preset's training step beside the fused
gradient check (`Trainer.flag_gradients`, GradScaler's kernel) it runs on G's and D's gradients.

    python benchmarks/nan_check_cost.py                  # batch 16, the tutorial's batch
    python benchmarks/nan_check_cost.py --batch-size 64

Prints the median step time, the median time of both checks together on that step's real
gradients, and the share; tiny fake data, one thread, CPU.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mnistgan.bench import describe_device
from mnistgan.config import load_preset
from mnistgan.data import load_dataset
from mnistgan.data.idx import write_idx
from mnistgan.data.sources import SPLIT_FILES
from mnistgan.trainer import Trainer


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch-size", type=int, default=16, help="images a step (default 16)")
    p.add_argument("--steps", type=int, default=20, help="steps timed (default 20)")
    a = p.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        for key, name in SPLIT_FILES.items():
            n = (a.steps + 2) * a.batch_size if key.startswith("train") else 8  # one epoch
            shape = (n, 28, 28) if key.endswith("images") else (n,)
            write_idx(Path(tmp) / name, rng.integers(0, 256 if key.endswith("images") else 10,
                                                     shape).astype(np.uint8))
        cfg = load_preset("seed").replace(data={"dataset": "idx", "data_dir": tmp},
                                          train={"batch_size": a.batch_size})
        tr = Trainer(cfg, load_dataset("idx", tmp, cache=False), device=torch.device("cpu"))
        tr.train_step()  # warm-up: allocations, first-call overheads
        step = median_seconds(tr.train_step, a.steps)
        check = median_seconds(lambda: (tr.flag_gradients(tr.G, 0), tr.flag_gradients(tr.D, 1)),
                               10 * a.steps)
    print(f"{describe_device(torch.device('cpu'))}, 1 thread\n"
          f"seed preset, batch {a.batch_size}: step {1000 * step:.1f} ms, NaN/inf check of G's "
          f"and D's gradients {1000 * check:.2f} ms ({check / step:.1%} of a step)")


if __name__ == "__main__":
    main()
