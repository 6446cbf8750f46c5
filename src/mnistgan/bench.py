"""Throughput, side by side with the seed tutorial's own loop: what `mnistgan bench` measures.

Rows, measured in one run so that their ratios compare like with like on a shared machine:
- tutorial: a faithful copy of the tutorial's loop (torchvision MNIST + ToTensor + Normalize
  through a DataLoader, batch 16, sigmoid + BCELoss, no detach, G run twice per iteration), on
  the chosen device and with its label shape fixed so that today's PyTorch runs it;
- mnistgan's seed preset at batch 16 and at larger batches, in each asked precision;
- the default preset at its batch size, in each precision, eager and (if asked) compiled;
- generation: images/s of the bundled generator drawing uint8 digits in batches of 1,000, and
  the seconds of the evaluator's whole report on 10,000 of them (real-data statistics cached).
Each row is the median of `repeats` timed windows after a warm-up window; the windows of all
rows take turns, so a slow spell of the machine lands on every row alike. Each training row's
FLOPs per image are counted once by `torch.utils.flop_counter` and shown as GFLOP/s and as a
share of this device's measured matmul peak in that precision.
"""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from mnistgan.config import DEFAULT_PRESET, load_preset
from mnistgan.data import Dataset
from mnistgan.metrics import evaluate, load_evaluator
from mnistgan.models.seed import SeedDiscriminator, SeedGenerator
from mnistgan.runtime import cpu_flags, native_bf16, native_precision
from mnistgan.sampling import load_generator
from mnistgan.trainer import Trainer

SHOWN_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_fp16")
PEAK_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class Row:
    name: str
    batch: int
    precision: str
    steps: Iterator[int] = field(repr=False)  # yields images per training step, forever
    flops: float  # per image, forward and backward of one step
    rates: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def tutorial_steps(data_dir: str, device: torch.device) -> Iterator[int]:
    """The tutorial's training loop, yielding the images of each iteration."""
    # lazy: torchvision's MNIST loader, for the tutorial's row only
    from torchvision import datasets, transforms

    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    loader = DataLoader(datasets.MNIST(data_dir, transform=tf), batch_size=16, shuffle=True)
    D, G = SeedDiscriminator().to(device), SeedGenerator(100).to(device)
    criterion = nn.BCELoss()
    d_opt = torch.optim.Adam(D.parameters(), lr=0.0003)
    g_opt = torch.optim.Adam(G.parameters(), lr=0.0003)

    def d(x):  # the tutorial's discriminator ends in nn.Sigmoid(); mnistgan's returns logits
        return torch.sigmoid(D(x))

    while True:
        for img, _ in loader:
            img, n = img.to(device), img.size(0)
            real_label, fake_label = torch.ones(n, device=device), torch.zeros(n, device=device)
            z = torch.randn(n, 100, device=device)
            d_loss = criterion(d(img), real_label) + criterion(d(G(z)), fake_label)
            d_opt.zero_grad()
            d_loss.backward()
            d_opt.step()
            g_loss = criterion(d(G(torch.randn(n, 100, device=device))), real_label)
            g_opt.zero_grad()
            g_loss.backward()
            g_opt.step()
            yield n


def tutorial_flops(data_dir: str) -> float:
    """FLOPs per image of one tutorial iteration (on the CPU: FLOPs do not depend on the device)."""
    steps = tutorial_steps(data_dir, torch.device("cpu"))
    with FlopCounterMode(display=False) as counter:
        n = next(steps)
    return counter.get_total_flops() / n


def trainer(preset: str, data: Dataset, device: torch.device, **train):
    cfg = load_preset(preset).replace(train=train)
    return Trainer(cfg, data, device=device, echo=lambda _: None)


def trainer_steps(t) -> Iterator[int]:
    """A Trainer's steps, wrapping around epochs without its checkpoints or pictures."""
    p = t.progress
    while True:
        t.train_step()
        if p.batch == t.batches.steps_per_epoch:
            p.epoch, p.batch = p.epoch + 1, 0
        yield t.cfg.train.batch_size


def step_flops(preset: str, data: Dataset, batch_size: int) -> float:
    """FLOPs per image of one mnistgan training step (D step + G step, forward and backward)."""
    t = trainer(preset, data, torch.device("cpu"), batch_size=batch_size, precision="fp32",
                compile=False)
    with FlopCounterMode(display=False) as counter:
        t.train_step()
    return counter.get_total_flops() / batch_size


def matmul_peak(dtype: torch.dtype, device: torch.device, seconds: float = 1.0) -> float:
    """GFLOP/s of square matrix products, the size doubled from 256 (up to 4096 on a CPU, 8192
    on a GPU) while one product takes under 50 ms (an emulated dtype stays small and quick)."""
    size, largest = 256, 8192 if device.type == "cuda" else 4096
    while True:
        a, b = (torch.randn(size, size, device=device).to(dtype) for _ in range(2))
        sync(device)
        start = time.perf_counter()
        a @ b
        sync(device)
        if time.perf_counter() - start > 0.05 or size >= largest:
            break
        size *= 2
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
        if device.type == "cuda" and n % 16 == 0:
            sync(device)
    sync(device)
    return 2 * size**3 * n / (time.perf_counter() - start) / 1e9


def measure(rows: list[Row], device: torch.device, seconds: float, repeats: int,
            progress: Callable[[str], None]) -> None:
    """Fill each row's `rates`: one warm-up window, then `repeats` timed windows, taking turns."""
    for i in range(repeats + 1):
        for row in rows:
            images = 0
            sync(device)
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                images += next(row.steps)
            sync(device)
            if i:
                row.rates.append(images / (time.perf_counter() - start))
        progress(f"round {i + 1}/{repeats + 1} done" + (" (warm-up)" if i == 0 else ""))


def generation(data: Dataset, device: torch.device, seconds: float, repeats: int,
               eval_n: int) -> tuple[float, float]:
    """(images/s of the bundled generator, seconds of a full metric report on eval_n samples)."""
    sampler = load_generator(device=str(device))
    labels = torch.arange(1000) % 10

    def steps() -> Iterator[int]:
        seed = 0
        while True:
            sampler.sample(1000, labels, seed=seed)
            seed += 1
            yield 1000

    row = Row("generation", 1000, "", steps(), 0.0)
    measure([row], device, seconds, repeats, lambda _: None)
    ev = load_evaluator(device=str(device))
    evaluate(sampler.metric_samples, data, n=eval_n, evaluator=ev)  # warms the real-data cache
    start = time.perf_counter()
    evaluate(sampler.metric_samples, data, n=eval_n, evaluator=ev)
    return row.rate, time.perf_counter() - start


@dataclass
class Options:
    device: torch.device
    data_dir: str = "data"
    seconds: float = 10.0
    repeats: int = 3
    precisions: tuple[str, ...] = ("fp32", "bf16")
    seed_batch_sizes: tuple[int, ...] = (16, 64)
    compile: tuple[bool, ...] = (False,)
    generation: bool = True
    eval_n: int = 10_000


def build_rows(opts: Options, data: Dataset) -> list[Row]:
    rows = [Row("tutorial loop", 16, "fp32", tutorial_steps(opts.data_dir, opts.device),
                tutorial_flops(opts.data_dir))]
    default_batch = load_preset(DEFAULT_PRESET).train.batch_size
    plan = [("seed", bs, False) for bs in opts.seed_batch_sizes]
    plan += [(DEFAULT_PRESET, default_batch, c) for c in opts.compile]
    flops = {}
    for preset, bs, compiled in plan:
        flops[preset, bs] = flops.get((preset, bs)) or step_flops(preset, data, bs)
        for prec in opts.precisions:
            t = trainer(preset, data, opts.device, batch_size=bs, precision=prec,
                        compile=compiled)
            name = f"{preset} preset" + (", compiled" if compiled else "")
            rows.append(Row(name, bs, prec, trainer_steps(t), flops[preset, bs]))
    return rows


def run(opts: Options, data: Dataset, progress: Callable[[str], None] = print) -> dict:
    """Measure everything; returns the figures as plain data (what `--json` writes)."""
    peaks = {p: matmul_peak(PEAK_DTYPES[p], opts.device)
             for p in dict.fromkeys(("fp32", *opts.precisions))}
    rows = build_rows(opts, data)
    if opts.compile != (False,):
        progress("compiling (the first steps of a compiled row take minutes on a CPU) ...")
        for row in rows:
            if "compiled" in row.name:
                next(row.steps)
    measure(rows, opts.device, opts.seconds, opts.repeats, progress)
    base = rows[0].rate  # the tutorial's
    out = {
        "device": describe_device(opts.device), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "native_bf16": native_bf16(opts.device),
        "emulated": [p for p in peaks if not native_precision(p, opts.device)],
        "seconds": opts.seconds, "repeats": opts.repeats, "peak_gflops": peaks,
        "rows": [summary(r, base, peaks[r.precision]) for r in rows],
    }
    if opts.generation:
        gen, seconds = generation(data, opts.device, opts.seconds, opts.repeats, opts.eval_n)
        out["generation_images_per_s"], out["report_seconds"] = gen, seconds
        out["report_n"] = opts.eval_n
    return out


def summary(row: Row, base: float, peak: float) -> dict:
    """One row's figures: images/s (median window), its ratio to `base` images/s, and its
    arithmetic rate as GFLOP/s and as a share of `peak` GFLOP/s."""
    gflops = row.rate * row.flops / 1e9
    return {"name": row.name, "batch": row.batch, "precision": row.precision,
            "images_per_s": row.rate, "x_tutorial": row.rate / base, "rates": row.rates,
            "gflops": gflops, "mflop_per_image": row.flops / 1e6, "share_of_peak": gflops / peak}


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type != "cpu":
        return device.type
    name = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            models = [ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")]
        name = models[0] if models else name
    shown = [f for f in SHOWN_CPU_FLAGS if f in cpu_flags()] or ["none of", *SHOWN_CPU_FLAGS]
    return (f"cpu: {name}, {os.cpu_count()} logical cores, "
            f"{torch.backends.cpu.get_cpu_capability()} kernels, flags {' '.join(shown)}")


def share(row: dict, emulated: list[str]) -> str:
    # An emulated precision has no hardware peak to be a share of.
    return "emulated" if row["precision"] in emulated else f"{row['share_of_peak']:.1%}"


def table(result: dict) -> str:
    """The figures as a Markdown table with a few lines of context."""
    peaks = result["peak_gflops"]
    lines = [
        f"device: {result['device']}, torch {result['torch']}, {result['threads']} threads, "
        f"native bf16: {'yes' if result['native_bf16'] else 'no'}",
        "matmul peak: " + ", ".join(
            f"{p} {v:,.1f} GFLOP/s" + (" (emulated)" if p in result["emulated"] else "")
            for p, v in peaks.items()),
        f"median of {result['repeats']} windows of {result['seconds']:g} s per row",
        "",
        "| row | batch | precision | images/s | x tutorial | MFLOP/image | GFLOP/s "
        "| share of peak |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        lines.append(f"| {r['name']} | {r['batch']} | {r['precision']} | {r['images_per_s']:,.0f} "
                     f"| {r['x_tutorial']:.1f}x | {r['mflop_per_image']:.0f} "
                     f"| {r['gflops']:,.1f} | {share(r, result['emulated'])} |")
    if "generation_images_per_s" in result:
        base = result["rows"][0]["images_per_s"]
        gen = result["generation_images_per_s"]
        lines += ["", "generation, bundled generator (uint8, batches of 1,000): "
                  f"{gen:,.0f} images/s ({gen / base:,.0f}x the tutorial's training rate)",
                  f"evaluator report on {result['report_n']:,} samples: "
                  f"{result['report_seconds']:.1f} s (real-data statistics cached)"]
    return "\n".join(lines)


