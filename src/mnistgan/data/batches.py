"""Training batches drawn by index from one uint8 tensor that lives on the device.

The order of epoch `e` is a permutation from a CPU generator seeded by (seed, e), so the data
order is a pure function of the seed and the position (epoch, batch): resuming needs no data
state beyond those two numbers, and it is the same on every device. Pixels stay uint8 until a
batch is scaled, on the device, to the range the models expect. The last incomplete batch of an
epoch is dropped (with the tutorial's batch of 16, 60,000 images divide evenly).
"""

from __future__ import annotations

import torch

TUTORIAL_MEAN, TUTORIAL_STD = 0.1307, 0.3081


def normalize(images: torch.Tensor, mode: str = "symmetric") -> torch.Tensor:
    """uint8 [N, 28, 28] -> float [N, 1, 28, 28]: [-1, 1] ("symmetric") or the tutorial's
    scaling."""
    x = images.unsqueeze(1).float()
    if mode == "symmetric":
        return x.div_(127.5).sub_(1.0)
    return x.div_(255.0).sub_(TUTORIAL_MEAN).div_(TUTORIAL_STD)  # the tutorial's Normalize


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of range(n) used in `epoch` of a run seeded `seed`."""
    gen = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % (2**63))
    return torch.randperm(n, generator=gen)


class DeviceBatches:
    """Shuffled batches of (images in model range, labels) by position (epoch, batch)."""

    def __init__(
        self,
        images: torch.Tensor,  # (N, 28, 28) uint8
        labels: torch.Tensor,  # (N,) int64
        *,
        batch_size: int,
        seed: int,
        device: torch.device,
        normalize: str = "symmetric",
    ):
        if len(images) < batch_size:
            raise ValueError(f"{len(images)} images cannot fill one batch of {batch_size}")
        self.images = images.to(device)
        self.labels = labels.to(device)
        self.batch_size, self.seed, self.device, self.mode = batch_size, seed, device, normalize
        self.steps_per_epoch = len(images) // batch_size
        self._order_epoch, self._order = -1, torch.empty(0)

    def order(self, epoch: int) -> torch.Tensor:
        if epoch != self._order_epoch:
            self._order = epoch_order(len(self.images), self.seed, epoch).to(self.device)
            self._order_epoch = epoch
        return self._order

    def batch(self, epoch: int, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch `index` of `epoch`: ((B, 1, 28, 28) float, (B,) int64)."""
        if not 0 <= index < self.steps_per_epoch:
            raise IndexError(f"batch {index} of an epoch of {self.steps_per_epoch} batches")
        start = index * self.batch_size
        idx = self.order(epoch)[start : start + self.batch_size]
        return normalize(self.images[idx], self.mode), self.labels[idx]
