"""The optimizer side of training: Adam as the Trainer builds it, the learning-rate schedule,
the EMA of G's weights, and freezing a network for the other's step."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator

import torch


def lr_schedule(step: int, total: int, decay: float, floor: float = 0.0) -> float:
    """The learning-rate multiplier at `step` of `total`: 1, then over the last `decay` fraction
    of the steps a straight line to `floor` (reached at `total`, after the last step)."""
    start = total * (1.0 - decay)
    if decay <= 0 or step < start:
        return 1.0
    return floor + (1.0 - floor) * max(0.0, (total - step) / (total - start))


def adam(model: torch.nn.Module, lr: float, betas: tuple[float, float],
         device: torch.device) -> torch.optim.Adam:
    """Adam with its fused kernel where PyTorch has one for the device (one pass per step over
    all parameters; bitwise repeatable like the default), the foreach one elsewhere."""
    fused = device.type in ("cpu", "cuda")
    return torch.optim.Adam(model.parameters(), lr=lr, betas=betas, fused=fused or None)


@contextlib.contextmanager
def frozen(model: torch.nn.Module) -> Iterator[None]:
    """`model`'s parameters need no gradient inside (G's step back-propagates through D to its
    input only, which skips D's weight gradients)."""
    model.requires_grad_(False)
    try:
        yield
    finally:
        model.requires_grad_(True)


class EMA:
    """An exponential moving average of G's weights, with a warm-up: the decay after k updates
    is min(decay, (1 + k) / (10 + k)), so early averages are not dominated by the random init.
    Buffers (batch-norm statistics) are copied from G, not averaged."""

    def __init__(self, g: torch.nn.Module, decay: float):
        self.module = copy.deepcopy(g).requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, g: torch.nn.Module, updates: int) -> None:
        d = min(self.decay, (1 + updates) / (10 + updates))
        for avg, cur in zip(self.module.parameters(), g.parameters(), strict=True):
            avg.lerp_(cur, 1.0 - d)
        for avg, cur in zip(self.module.buffers(), g.buffers(), strict=True):
            avg.copy_(cur)
