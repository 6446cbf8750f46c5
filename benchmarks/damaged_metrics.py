"""What the metrics do as real digits are damaged: the README's table (section "Metrics").

    python benchmarks/damaged_metrics.py                 # 10,000 images a row, MNIST from data/
    python benchmarks/damaged_metrics.py --n 2000 --data-dir data

Each row scores one set with `mnistgan.metrics.evaluate` against the 10,000 MNIST test images:
real training images (10,000, seeded, as `mnistgan evaluate --real` draws them), the same with
Gaussian pixel noise (σ in grey levels of 0-255), blurred (Gaussian, 9x9 kernel), shifted right
by 2 px, the digits 0-4 only, and one digit alone (the first 6,000 training images of
`--digit`). Prints a Markdown table; the figures depend on the data and the evaluator, not on
the host's speed. `tests/test_metrics.py` checks on smaller sets that they move the right way.
"""

from __future__ import annotations

import argparse

import torch
import torchvision.transforms.functional as TF

from mnistgan.data import load_dataset
from mnistgan.metrics import evaluate


def noisy(images: torch.Tensor, sigma: float) -> torch.Tensor:
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(0)) * sigma
    return (images.float() + noise).round().clamp(0, 255).to(torch.uint8)


def blurred(images: torch.Tensor, sigma: float) -> torch.Tensor:
    out = TF.gaussian_blur(images[:, None].float(), kernel_size=9, sigma=sigma)[:, 0]
    return out.round().clamp(0, 255).to(torch.uint8)


def rows(data, n: int, digit: int) -> dict[str, torch.Tensor]:
    """The sets of the table, by row name (uint8 images [N,28,28])."""
    order = torch.randperm(len(data.train_images), generator=torch.Generator().manual_seed(0))
    real = data.train_images[order[:n]]
    labels = data.train_labels[order]
    low = data.train_images[order[labels < 5][:n]]
    one = data.train_images[data.train_labels == digit][:6000]
    return {
        "real": real,
        "Gaussian noise σ=10": noisy(real, 10), "Gaussian noise σ=30": noisy(real, 30),
        "blur σ=0.6": blurred(real, 0.6), "blur σ=1.0": blurred(real, 1.0),
        "shifted 2 px": torch.roll(real, shifts=2, dims=2),
        "digits 0-4 only": low, f"one digit ({len(one):,})": one,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10_000, help="images a row (default 10,000)")
    p.add_argument("--digit", type=int, default=1, help="the one-digit row's digit (default 1)")
    p.add_argument("--data-dir", default="data", help="where MNIST is found or cached")
    a = p.parse_args()
    data = load_dataset("mnist", a.data_dir, log=print)
    print("| set | FID | KID | IS | precision | recall |\n| --- | --- | --- | --- | --- | --- |")
    for name, images in rows(data, a.n, a.digit).items():
        r = evaluate(images, data, n=len(images), memorise=False)
        print(f"| {name} | {r['fid']:.3g} | {r['kid']:.2g} | {r['is']:.3g} | "
              f"{r['precision']:.3f} | {r['recall']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
