"""What the metrics accept as samples, turned into one checked form.

This module owns `Samples` (uint8 images [N,28,28] plus optional int64 labels [N]) and
`draw_samples`, which accepts a sample function `fn(n)` (returning images, or `(images, labels)`),
a uint8 tensor, or an `(images, labels)` pair, and checks dtype, shape and count with clear
`UserError`s. It also owns `RealData`, the shape of a dataset the metrics need from the caller
(`mnistgan.data.load_dataset()` returns one), so the metrics never load data themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from mnistgan.errors import UserError

ImagesAndLabels = tuple[torch.Tensor, torch.Tensor]
SampleFn = Callable[[int], torch.Tensor | ImagesAndLabels]
SampleSource = SampleFn | torch.Tensor | ImagesAndLabels


class RealData(Protocol):
    """The parts of a dataset the metrics use."""

    train_images: torch.Tensor  # (60000, 28, 28) uint8
    train_labels: torch.Tensor  # (60000,) int64
    test_images: torch.Tensor  # (10000, 28, 28) uint8
    test_labels: torch.Tensor  # (10000,) int64
    fingerprint: str


@dataclass(frozen=True)
class Samples:
    """A checked set of samples."""

    images: torch.Tensor  # (N, 28, 28) uint8, on the CPU
    labels: torch.Tensor | None = None  # (N,) int64 in 0..9, the class each image was asked for

    def __len__(self) -> int:
        return len(self.images)


def _as_tensor(x: object, what: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise UserError(f"{what} must be a tensor or array, got {type(x).__name__}")
    return x.detach().cpu()


def check_samples(images: object, labels: object | None = None) -> Samples:
    """Validate images (uint8 [N,28,28] or [N,1,28,28]) and optional labels (ints 0..9, [N])."""
    images = _as_tensor(images, "images")
    if images.dtype != torch.uint8:
        raise UserError(f"images must be uint8 in 0..255, got dtype {images.dtype}")
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3 or tuple(images.shape[1:]) != (28, 28):
        raise UserError(f"images must be [N,28,28] or [N,1,28,28], got {list(images.shape)}")
    if labels is None:
        return Samples(images.contiguous())
    labels = _as_tensor(labels, "labels")
    if labels.shape != (len(images),) or labels.dtype.is_floating_point:
        raise UserError(
            f"labels must be integers of shape [{len(images)}], got "
            f"{labels.dtype} {list(labels.shape)}"
        )
    labels = labels.long()
    if len(labels) and (labels.min() < 0 or labels.max() > 9):
        raise UserError("labels must be digits 0..9")
    return Samples(images.contiguous(), labels)


def draw_samples(source: SampleSource | Samples, n: int | None = None) -> Samples:
    """Turn a sample function, a tensor or an (images, labels) pair into `Samples`.

    A function is called once as `fn(n)` and must return exactly `n` images (it batches itself).
    A tensor or pair is used whole when `n` is None, else its first `n` items (there must be
    at least `n`).
    """
    if isinstance(source, Samples):
        out = source
    elif callable(source):
        if n is None:
            raise UserError("a sample function needs a sample count n")
        drawn = source(n)
        out = check_samples(*drawn) if isinstance(drawn, tuple) else check_samples(drawn)
        if len(out) != n:
            raise UserError(f"the sample function returned {len(out)} images, asked for {n}")
    elif isinstance(source, tuple):
        out = check_samples(*source)
    else:
        out = check_samples(source)
    if n is not None and len(out) < n:
        raise UserError(f"need {n} samples, got {len(out)}")
    if n is not None and len(out) > n:
        out = Samples(out.images[:n], None if out.labels is None else out.labels[:n])
    return out
