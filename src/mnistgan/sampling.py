"""Turning generator output into pictures: uint8 conversion and PNG grids."""

from __future__ import annotations

import io
import os

import torch
from PIL import Image
from torchvision.utils import make_grid

from mnistgan.atomic import write_bytes_atomic


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
