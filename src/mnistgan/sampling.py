"""Drawing from generators: uint8 conversion, PNG grids, and `Sampler` / `load_generator`."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import make_grid

from mnistgan.atomic import write_bytes_atomic
from mnistgan.errors import UserError


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1], (N, 1, 28, 28) -> uint8 (N, 28, 28), rounded, on the CPU."""
    x = images.detach().float().add(1.0).mul(127.5).round_().clamp_(0, 255)
    return x.to(torch.uint8).squeeze(1).cpu()


def grid_png(images: torch.Tensor, nrow: int = 8) -> bytes:
    """A PNG of uint8 images (N, 28, 28) laid out `nrow` to a row, 2-pixel black borders."""
    grid = make_grid(images.unsqueeze(1), nrow=nrow, padding=2, pad_value=0)  # (3, H, W) uint8
    buf = io.BytesIO()
    Image.fromarray(grid[0].numpy()).save(buf, format="PNG")
    return buf.getvalue()


def save_grid(path: str | os.PathLike, images: torch.Tensor, nrow: int = 8) -> None:
    """Write `grid_png(images, nrow)` to `path` atomically."""
    write_bytes_atomic(path, grid_png(images, nrow))


@contextlib.contextmanager
def eval_mode(module: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Run `module` in eval mode (batch norm from running statistics), then restore its mode."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


CHUNK = 1000  # samples per noise chunk; each chunk has its own seed, so output ignores batching


class Sampler:
    """A trained generator, ready to draw: `sample(n, labels)` gives uint8 or float images.

    Sampling is deterministic in (seed, n, labels): noise is drawn on the CPU in fixed chunks,
    each seeded from (seed, chunk index), and the generator runs in eval mode.
    """

    def __init__(self, generator: torch.nn.Module, cfg, *, device: torch.device, source: str):
        self.G = generator.to(device)
        self.cfg, self.device, self.source = cfg, device, source
        self.num_classes = int(getattr(generator, "num_classes", 0))
        self.z_dim = cfg.model.z_dim
        bf16 = cfg.train.precision == "bf16"
        self.autocast = torch.autocast(device.type, torch.bfloat16, enabled=bf16)

    def labels_for(self, n: int, labels, seed: int) -> torch.Tensor | None:
        """Labels as an int64 tensor [n]: given ones, one digit repeated, or uniform at random."""
        if self.num_classes == 0:
            if labels is not None:
                raise UserError("this generator is unconditional: it cannot take labels")
            return None
        if labels is None:
            gen = torch.Generator().manual_seed(seed + 7_919)
            return torch.randint(0, self.num_classes, (n,), generator=gen)
        y = torch.as_tensor(labels, dtype=torch.int64).reshape(-1)
        if y.numel() == 1:
            y = y.expand(n).clone()
        if y.numel() != n:
            raise UserError(f"{y.numel()} labels for {n} samples")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
            raise UserError(f"labels must be in 0-{self.num_classes - 1}")
        return y

    @torch.no_grad()
    def sample(self, n: int, labels=None, *, seed: int = 0, output: str = "uint8") -> torch.Tensor:
        """n images: uint8 (n, 28, 28) on the CPU, or float (n, 1, 28, 28) in [-1, 1]."""
        if n < 0:
            raise UserError(f"cannot draw {n} samples")
        y = self.labels_for(n, labels, seed)
        chunks = []
        for i, start in enumerate(range(0, n, CHUNK)):
            m = min(CHUNK, n - start)
            gen = torch.Generator().manual_seed((seed * 1_000_003 + i) % (2**63))
            z = torch.randn(m, self.z_dim, generator=gen).to(self.device)
            yb = None if y is None else y[start : start + m].to(self.device)
            with eval_mode(self.G), self.autocast:
                x = self.G(z, yb).float()
            chunks.append(to_uint8(x) if output == "uint8" else x.cpu())
        if not chunks:
            return torch.empty((0, 28, 28), dtype=torch.uint8)
        return torch.cat(chunks)


def load_generator(source: str | os.PathLike | None = None, device: str = "cpu") -> Sampler:
    """A `Sampler` from a run folder (its best.pt, else last.pt) or a checkpoint file."""
    from mnistgan.checkpoint import load_checkpoint
    from mnistgan.config import RunConfig
    from mnistgan.models import build_models

    if source is None:
        raise UserError("no generator given: pass a run folder or a checkpoint")
    path = Path(source)
    if path.is_dir():
        best, last = path / "checkpoints" / "best.pt", path / "checkpoints" / "last.pt"
        path = best if best.is_file() else last
    state = load_checkpoint(path)
    cfg = RunConfig.from_dict(state["config"])
    g, _ = build_models(cfg.model)
    g.load_state_dict(state.get("ema") or state["generator"])
    return Sampler(g, cfg, device=torch.device(device), source=str(path))
