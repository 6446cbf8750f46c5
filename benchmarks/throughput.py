"""Training and sampling throughput, side by side with the seed tutorial's own loop.

    python benchmarks/throughput.py [--seconds 20] [--repeats 3]

Rows, each the median of `--repeats` timed windows after a warm-up, measured in one run so that
the ratios compare like with like on a shared machine:
- tutorial: a faithful copy of the tutorial's loop (torchvision MNIST + ToTensor + Normalize
  through a DataLoader, batch 16, sigmoid + BCELoss, no detach), device-agnostic and with its
  label shape fixed so that today's PyTorch runs it;
- mnistgan's seed preset at batch 16 and at larger batches, fp32 and bf16;
- the default preset (cdcgan);
- generation: images/s of the bundled generator drawing uint8 digits in batches of 1,000, and
  the seconds of the evaluator's whole report on 10,000 of them (real-data statistics cached);
- the machine's fp32 and bf16 matmul peak (2048x2048 products), and each row's achieved GFLOP/s
  (FLOPs of one training step counted by torch.utils.flop_counter) as a share of that peak.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tutorial import discriminator, generator

from mnistgan.config import load_preset
from mnistgan.data import load_dataset
from mnistgan.train import Trainer


def tutorial_steps(data_dir: str):
    """The tutorial's training loop as a generator of (images per step) after each iteration."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    loader = DataLoader(datasets.MNIST(data_dir, transform=tf), batch_size=16, shuffle=True)
    D, G = discriminator(), generator(100, 3136)
    criterion = nn.BCELoss()
    d_opt = torch.optim.Adam(D.parameters(), lr=0.0003)
    g_opt = torch.optim.Adam(G.parameters(), lr=0.0003)
    while True:
        for img, _ in loader:
            n = img.size(0)
            real_label, fake_label = torch.ones(n, 1), torch.zeros(n, 1)  # shape fixed
            d_loss = criterion(D(img), real_label) + criterion(D(G(torch.randn(n, 100))), fake_label)
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
            g_loss = criterion(D(G(torch.randn(n, 100))), real_label)
            g_opt.zero_grad()
            g_loss.backward()
            g_opt.step()
            yield n


def trainer_steps(preset: str, data, **train):
    cfg = load_preset(preset).replace(train=train)
    trainer = Trainer(cfg, data, device=torch.device("cpu"))
    while True:
        trainer.train_step()
        if trainer.progress.batch == trainer.batches.steps_per_epoch:
            trainer.progress.epoch, trainer.progress.batch = trainer.progress.epoch + 1, 0
        yield cfg.train.batch_size


def rate(steps, seconds: float, repeats: int) -> float:
    """Median images/s over `repeats` windows of `seconds`, after one warm-up window."""
    rates = []
    for i in range(repeats + 1):
        images, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            images += next(steps)
        if i:
            rates.append(images / (time.perf_counter() - start))
    return statistics.median(rates)


def step_flops(preset: str, data, **train) -> float:
    """FLOPs of one mnistgan training step per image (D step + G step, forward and backward)."""
    cfg = load_preset(preset).replace(train={**train, "precision": "fp32"})
    trainer = Trainer(cfg, data, device=torch.device("cpu"))
    with FlopCounterMode(display=False) as counter:
        trainer.train_step()
    return counter.get_total_flops() / cfg.train.batch_size


def matmul_peak(dtype: torch.dtype, seconds: float = 2.0) -> float:
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return 2 * 2048**3 * n / (time.perf_counter() - start) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20.0, help="length of each timed window")
    ap.add_argument("--repeats", type=int, default=3, help="timed windows per row (median)")
    ap.add_argument("--data-dir", default="data")
    args = ap.parse_args()
    data = load_dataset("mnist", args.data_dir, log=print)
    peaks = {"fp32": matmul_peak(torch.float32), "bf16": matmul_peak(torch.bfloat16)}
    print(f"matmul peak: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s")
    rows = [("tutorial loop (batch 16, fp32)", tutorial_steps(args.data_dir), "seed", 16, "fp32")]
    for preset, bs, prec in [("seed", 16, "fp32"), ("seed", 16, "bf16"), ("seed", 128, "fp32"),
                             ("seed", 128, "bf16"), ("cdcgan", 64, "fp32"), ("cdcgan", 64, "bf16")]:
        rows.append((f"{preset} batch {bs} {prec}",
                     trainer_steps(preset, data, batch_size=bs, precision=prec), preset, bs, prec))
    print("| row | images/s | x tutorial | GFLOP/s | share of peak |")
    print("| --- | --- | --- | --- | --- |")
    base = None
    for name, steps, preset, bs, prec in rows:
        r = rate(steps, args.seconds, args.repeats)
        base = base or r
        gflops = r * step_flops(preset, data, batch_size=bs) / 1e9
        print(f"| {name} | {r:.0f} | {r / base:.1f}x | {gflops:.0f} | {gflops / peaks[prec]:.1%} |",
              flush=True)
    gen, seconds = generation(data, args.seconds, args.repeats)
    print(f"| generation, bundled cdcgan (uint8, batches of 1000) | {gen:.0f} | {gen / base:.0f}x | | |")
    print(f"evaluator report on 10,000 samples: {seconds:.1f} s (real-data statistics cached)")


def generation(data, seconds: float, repeats: int) -> tuple[float, float]:
    """(images/s of the bundled generator, seconds of a full metric report on 10,000 samples)."""
    from mnistgan.metrics import evaluate
    from mnistgan.sampling import load_generator

    sampler = load_generator()
    labels = torch.arange(1000) % 10

    def steps():
        seed = 0
        while True:
            sampler.sample(1000, labels, seed=seed)
            seed += 1
            yield 1000

    r = rate(steps(), seconds, repeats)
    evaluate(lambda k: sampler.metric_samples(k), data, n=10_000)  # warm the real-data cache
    start = time.perf_counter()
    evaluate(lambda k: sampler.metric_samples(k), data, n=10_000)
    return r, time.perf_counter() - start


if __name__ == "__main__":
    main()
