"""Export speed: images per second that `mnistgan generate` draws and writes, per gzip level.

    python benchmarks/export_speed.py --checkpoint runs/cdcgan-000 --threads 2

Times (1) the generator alone (`Sampler.generate` in batches, uint8 conversion included) and
(2) whole exports (`mnistgan.export.export_dataset`: 60,000 + 10,000 images by default, files,
gzip, fsync, manifest) at each `--gzip-levels` value, and prints images/s, seconds and bytes.
Without --checkpoint it uses the bundled generator, else a freshly initialised cdcgan (speed
does not depend on training, the gzip ratio does). Each figure is the best of `--repeat` runs,
the one least disturbed by other work; the load average is printed before and after, so anything
else running on the cores shows there.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from mnistgan import export
from mnistgan.config import load_preset
from mnistgan.errors import UserError
from mnistgan.export import writers
from mnistgan.models import build_models
from mnistgan.sampling import Sampler, load_generator, to_uint8


def sampler_for(checkpoint: str | None) -> Sampler:
    try:
        return load_generator(checkpoint)
    except UserError:
        if checkpoint is not None:
            raise
    cfg = load_preset("cdcgan")
    torch.manual_seed(0)
    g, _ = build_models(cfg.model)
    print("no bundled generator: timing a freshly initialised cdcgan")
    return Sampler(g, cfg, device=torch.device("cpu"), source="untrained cdcgan")


def generator_only(sampler: Sampler, n: int, batch: int) -> float:
    """Images/s of noise -> uint8 images, with no files."""
    z = torch.randn(batch, sampler.z_dim)
    y = torch.arange(batch) % 10 if sampler.num_classes else None
    to_uint8(sampler.generate(z, y))  # warm-up
    start = time.perf_counter()
    for _ in range(0, n, batch):
        to_uint8(sampler.generate(z, y))
    return n / (time.perf_counter() - start)


def one_export(sampler: Sampler, level: int, args: argparse.Namespace) -> tuple[float, int]:
    """(seconds, bytes on disk) of one whole export at this gzip level."""
    writers.GZIP_LEVEL = level
    out = Path(tempfile.mkdtemp(prefix="export-speed-")) / "synth"
    options = export.ExportOptions(n_train=args.n_train, n_test=args.n_test, format=args.format,
                                   batch_size=args.batch_size)
    try:
        start = time.perf_counter()
        export.export_dataset(sampler, out, options)
        seconds = time.perf_counter() - start
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    finally:
        shutil.rmtree(out.parent)
    return seconds, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="Run folder or checkpoint.")
    parser.add_argument("--n-train", type=int, default=60_000, help="Training images per export.")
    parser.add_argument("--n-test", type=int, default=10_000, help="Test images per export.")
    parser.add_argument("--format", default="idx", choices=export.FORMATS, help="Export format.")
    parser.add_argument("--gzip-levels", default="1,6", help="Comma-separated gzip levels to time.")
    parser.add_argument("--batch-size", type=int, default=1000, help="Images per generator pass.")
    parser.add_argument("--threads", type=int, default=2, help="torch threads.")
    parser.add_argument("--repeat", type=int, default=3, help="Runs per figure; the best counts.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sampler = sampler_for(args.checkpoint)
    print(f"generator: {sampler.source} ({sampler.cfg.model.arch} ch={sampler.cfg.model.ch}, "
          f"{sampler.cfg.train.precision}); {args.threads} threads; "
          f"load average before: {os.getloadavg()[0]:.2f}")
    n = args.n_train + args.n_test
    rate = max(generator_only(sampler, n, args.batch_size) for _ in range(args.repeat))
    print(f"generator alone: {rate:,.0f} images/s")
    for level in (int(x) for x in args.gzip_levels.split(",")):
        seconds, size = min(one_export(sampler, level, args) for _ in range(args.repeat))
        print(f"export {args.format} gzip {level}: {n / seconds:,.0f} images/s "
              f"({n} images in {seconds:.2f} s, {size / 1e6:.1f} MB on disk)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
