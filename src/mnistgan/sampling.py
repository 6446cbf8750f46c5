"""Sampling from generators, and rendering what they make: `Sampler` / `load_generator`, the
standard grid (`sample_grid`), latent walks (`latent_walk`); uint8 conversion, PNG grids and
GIFs (`grid_png`, `save_grid`, `walk_gif`, `save_walk`)."""

from __future__ import annotations

import contextlib
import copy
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from mnistgan.atomic import write_bytes_atomic
from mnistgan.checkpoint import load_checkpoint
from mnistgan.config import RunConfig
from mnistgan.errors import UserError
from mnistgan.models import build_models
from mnistgan.pretrained import bundle_path, read_bundle
from mnistgan.run import RunDir
from mnistgan.runtime import native_bf16, resolve_precision


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1], (N, 1, 28, 28) -> uint8 (N, 28, 28), rounded, on the CPU."""
    x = images.detach().float().add(1.0).mul(127.5).round_().clamp_(0, 255)
    return x.to(torch.uint8).squeeze(1).cpu()


def grid_png(images: torch.Tensor, nrow: int = 8) -> bytes:
    """A PNG of uint8 images (N, 28, 28) laid out `nrow` to a row, 2-pixel black borders."""
    from torchvision.utils import make_grid  # lazy: torchvision costs `generate` ~1 s to import

    grid = make_grid(images.unsqueeze(1), nrow=nrow, padding=2, pad_value=0)  # (3, H, W) uint8
    buf = io.BytesIO()
    Image.fromarray(grid[0].numpy()).save(buf, format="PNG")
    return buf.getvalue()


def save_grid(path: str | os.PathLike, images: torch.Tensor, nrow: int = 8) -> None:
    """Write `grid_png(images, nrow)` to `path` atomically."""
    write_bytes_atomic(path, grid_png(images, nrow))


def gif_bytes(frames: Sequence[np.ndarray], duration_ms: int | list[int] = 80) -> bytes:
    """An animated GIF, looping forever, of greyscale uint8 frames (H, W), all the same size,
    each shown `duration_ms` (one figure, or one per frame). Lossless for grey images: the
    palette is the 256 grey levels."""
    images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:],
                   duration=duration_ms, loop=0)
    return buf.getvalue()


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
    each seeded from (seed, chunk index). Images come from `generate`, which runs a frozen
    eval-mode copy of the generator: in bfloat16 weights when the run trained in bf16 and the
    device has native bf16 (twice as fast as autocast on a CPU, which re-casts every weight on
    every call), fp32 otherwise; channels-last.
    """

    def __init__(self, generator: torch.nn.Module, cfg, *, device: torch.device, source: str):
        self.G = generator.to(device)
        self.cfg, self.device, self.source = cfg, device, source
        self.num_classes = int(getattr(generator, "num_classes", 0))
        self.z_dim = cfg.model.z_dim
        # bf16 weights only where bf16 is native: emulated, it is several times slower than fp32.
        bf16 = resolve_precision(cfg.train.precision, device) == "bf16" and native_bf16(device)
        self.dtype = torch.bfloat16 if bf16 else torch.float32
        self.net = _frozen_copy(self.G, self.dtype)

    @torch.no_grad()
    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images (N, 1, 28, 28) float32 in [-1, 1], on the device, from noise z (N, z_dim) and
        labels (N,) or None. Each image depends on its own z and label only, not on the batch."""
        y = None if labels is None else labels.to(self.device)
        return self.net(z.to(self.device, self.dtype), y).float()

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
            x = self.generate(z, None if y is None else y[start : start + m])
            chunks.append(to_uint8(x) if output == "uint8" else x.cpu())
        if not chunks:
            return torch.empty((0, 28, 28), dtype=torch.uint8)
        return torch.cat(chunks)

    def metric_samples(self, n: int, seed: int = 0):
        """n samples as the metrics take them: uint8 images, or for a conditional generator
        (images, labels) with every digit equally often."""
        if not self.num_classes:
            return self.sample(n, seed=seed)
        labels = torch.arange(n) % 10
        return self.sample(n, labels, seed=seed), labels


def sample_grid(sampler: Sampler, seed: int = 0,
                digit: int | None = None) -> tuple[torch.Tensor, int]:
    """(uint8 images, images per row) of the standard grid: 10x10 with row r digit r (or every
    cell `digit`) for a conditional generator, 8x8 for an unconditional one."""
    if digit is not None and not 0 <= digit <= 9:
        raise UserError(f"--digit must be 0-9, got {digit}")
    if sampler.num_classes:
        labels = torch.full((100,), digit) if digit is not None else torch.arange(100) // 10
        return sampler.sample(100, labels, seed=seed), 10
    if digit is not None:
        raise UserError("--digit needs a conditional generator; this one is unconditional")
    return sampler.sample(64, seed=seed), 8


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation from a to b (W, D) at fractions t (T,) -> (W, T, D).

    Gaussian noise lives near a sphere; a straight line between two draws dips inside it to
    latents the generator never saw in training, so a walk along the great circle keeps each
    step a typical latent (White 2016, "Sampling generative networks").
    """
    cos = torch.nn.functional.cosine_similarity(a, b, dim=1).clamp(-1.0, 1.0)  # (W,)
    omega = torch.arccos(cos)[:, None, None]  # (W, 1, 1)
    t = t[None, :, None]  # (1, T, 1)
    sin = torch.sin(omega)
    near = sin.abs() < 1e-6  # (almost) the same direction: the line is the arc
    wa = torch.where(near, 1 - t, torch.sin((1 - t) * omega) / torch.where(near, 1, sin))
    wb = torch.where(near, t, torch.sin(t * omega) / torch.where(near, 1, sin))
    return wa * a[:, None] + wb * b[:, None]


def latent_walk(sampler: Sampler, walks: int, steps: int, *, seed: int = 0,
                digit: int | None = None, end_seed: int | None = None) -> torch.Tensor:
    """uint8 images (walks, steps, 28, 28): each row a slerp between two seeded latents, both
    drawn from `seed`, or from the latents of `seed` to those of `end_seed`.

    A conditional generator keeps each row's label fixed (row r draws digit r % 10, or every row
    `digit`), so the walk shows style changing while the digit stays.
    """
    if walks < 1 or steps < 2:
        raise UserError(f"a latent walk needs at least 1 walk and 2 steps, got {walks}, {steps}")
    if end_seed is None:
        ends = torch.randn(2, walks, sampler.z_dim, generator=torch.Generator().manual_seed(seed))
    else:
        ends = [torch.randn(walks, sampler.z_dim, generator=torch.Generator().manual_seed(s))
                for s in (seed, end_seed)]
    z = slerp(ends[0], ends[1], torch.linspace(0, 1, steps))  # (walks, steps, z_dim)
    labels = None
    if digit is not None or sampler.num_classes:
        row = torch.full((walks,), digit) if digit is not None else torch.arange(walks) % 10
        labels = sampler.labels_for(walks * steps, row.repeat_interleave(steps), seed)
    images = to_uint8(sampler.generate(z.reshape(-1, sampler.z_dim), labels))
    return images.reshape(walks, steps, 28, 28)


def walk_gif(walk: torch.Tensor) -> bytes:
    """A walk (walks, steps, 28, 28) as an animated GIF: frame t shows every walk at step t side
    by side, playing forward then back, so it loops without a jump."""
    from torchvision.utils import make_grid  # lazy: torchvision costs `generate` ~1 s to import

    walks, steps = walk.shape[:2]
    order = list(range(steps)) + list(range(steps - 2, 0, -1))
    frames = [make_grid(walk[:, t].unsqueeze(1), nrow=walks, padding=2)[0].numpy() for t in order]
    return gif_bytes(frames, duration_ms=100)


def save_walk(path: str | os.PathLike, walk: torch.Tensor) -> tuple[Path, Path]:
    """Write a walk (walks, steps, 28, 28) as a grid PNG at `path` (rows = walks, columns =
    steps) and its `walk_gif` beside it (same name, .gif). Returns both paths."""
    path = Path(path)
    gif = path.with_suffix(".gif")
    write_bytes_atomic(path, grid_png(walk.reshape(-1, 28, 28), nrow=walk.shape[1]))
    write_bytes_atomic(gif, walk_gif(walk))
    return path, gif


def _frozen_copy(generator: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """An eval-mode copy without gradients, in `dtype`, channels-last; the original is untouched."""
    net = copy.deepcopy(generator).eval().requires_grad_(False)
    return net.to(dtype=dtype, memory_format=torch.channels_last)


def load_generator(source: str | os.PathLike | None = None, device: str = "cpu") -> Sampler:
    """A `Sampler` from a run folder (its best.pt, else last.pt), a checkpoint file, or, with no
    source, the pretrained generator bundled with the package."""
    if source is None:
        weights, meta = read_bundle()
        cfg = RunConfig.from_dict(meta["config"])
        g, _ = build_models(cfg.model)
        g.load_state_dict(weights)
        return Sampler(g, cfg, device=torch.device(device), source=f"bundled {bundle_path().name}")
    path = Path(source)
    if path.is_dir():
        path = RunDir(path).sample_checkpoint()
    state = load_checkpoint(path)
    cfg = RunConfig.from_dict(state["config"])
    g, _ = build_models(cfg.model)
    g.load_state_dict(state.get("ema") or state["generator"])
    return Sampler(g, cfg, device=torch.device(device), source=str(path))
