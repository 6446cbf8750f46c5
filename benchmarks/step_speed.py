"""What each speed change of the training step is worth: the README's "+35% frozen D, +14/15%
channels-last, +5% fused Adam" (section "Speed"), measured by switching one off at a time.

    python benchmarks/step_speed.py                        # 4 windows of 5 s per variant
    python benchmarks/step_speed.py --seconds 8 --repeats 5

For the seed preset at batch 16 and the cdcgan preset at batch 64 (fp32, CPU, tiny fake data:
speed does not depend on the pixels), four variants of the same step take turns in timed
windows, so a slow spell of a shared machine lands on all alike: everything on (as shipped); G's
step back-propagating through a D that is *not* frozen (D's weight gradients computed for
nothing); contiguous instead of channels-last convolutions; Adam without its fused kernel. Each
figure is the median window's images/s, and the gain is what switching the change back on buys.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from mnistgan.bench import describe_device, trainer, trainer_steps
from mnistgan.data import load_dataset
from mnistgan.data.idx import write_idx
from mnistgan.data.sources import SPLIT_FILES


def step_module():
    """The module whose training step calls `frozen` and `adam` by name (steps.py, or train.py
    before the Trainer was split)."""
    for name in ("mnistgan.steps", "mnistgan.train"):
        with contextlib.suppress(ImportError):
            module = importlib.import_module(name)
            if hasattr(module, "frozen") and hasattr(module, "adam"):
                return module
    raise SystemExit("no module of mnistgan defines the training step's frozen() and adam()")


@contextlib.contextmanager
def patched(name: str, value) -> Iterator[None]:
    module = step_module()
    old = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, old)


def unfused_adam(model, lr, betas, device):
    return torch.optim.Adam(model.parameters(), lr=lr, betas=betas, fused=False)


# variant -> (extra train config, context active while it is built and while it runs)
VARIANTS: dict[str, tuple[dict, Callable[[], contextlib.AbstractContextManager]]] = {
    "as shipped": ({}, contextlib.nullcontext),
    "D not frozen in G's step": ({}, lambda: patched("frozen", lambda _: contextlib.nullcontext())),
    "contiguous, not channels-last": ({"memory_format": "contiguous"}, contextlib.nullcontext),
    "Adam not fused": ({}, lambda: patched("adam", unfused_adam)),
}


def fake_data(folder: str):
    rng = np.random.default_rng(0)
    for key, name in SPLIT_FILES.items():
        n = 1024 if key.startswith("train") else 64
        shape = (n, 28, 28) if key.endswith("images") else (n,)
        write_idx(Path(folder) / name, rng.integers(0, 256 if key.endswith("images") else 10,
                                                    shape).astype(np.uint8))
    return load_dataset("idx", folder, cache=False)


def measure(preset: str, batch: int, data, seconds: float, repeats: int) -> dict[str, float]:
    """Median images/s of each variant, in interleaved windows."""
    runs = {}
    for name, (train, context) in VARIANTS.items():
        with context():
            t = trainer(preset, data, torch.device("cpu"), batch_size=batch, precision="fp32",
                        compile=False, **train)
            steps = trainer_steps(t)
            next(steps)  # warm-up: allocations, first-call overheads
        runs[name] = (steps, context, [])
    for _ in range(repeats):
        for steps, context, rates in runs.values():
            with context():
                images, start = 0, time.perf_counter()
                while time.perf_counter() - start < seconds:
                    images += next(steps)
                rates.append(images / (time.perf_counter() - start))
    return {name: statistics.median(rates) for name, (_, _, rates) in runs.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="seconds a window (default 5)")
    p.add_argument("--repeats", type=int, default=4, help="windows per variant (default 4)")
    a = p.parse_args()
    print(f"{describe_device(torch.device('cpu'))}, {torch.get_num_threads()} threads, fp32")
    print("| preset | batch | variant | images/s | gain from the change |\n"
          "| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        data = fake_data(tmp)
        for preset, batch in (("seed", 16), ("cdcgan", 64)):
            rates = measure(preset, batch, data, a.seconds, a.repeats)
            base = rates["as shipped"]
            for name, rate in rates.items():
                gain = "" if name == "as shipped" else f"{base / rate - 1:+.0%}"
                print(f"| {preset} | {batch} | {name} | {rate:,.0f} | {gain} |", flush=True)


if __name__ == "__main__":
    main()
