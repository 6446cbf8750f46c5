"""What a run leaves behind while it trains: each record in RUN/log.jsonl and in TensorBoard,
lines on the console, the real and fixed-noise grids, and the training curves.

The Trainer decides what to record and when; a `Recorder` decides nothing and only writes. With
no run folder (a torchrun rank other than 0, or a Trainer used on its own) it writes no files.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from mnistgan.plots import save_curves
from mnistgan.run import RunDir
from mnistgan.sampling import save_grid

TUTORIAL_LINE = "Epoch [{}/{}], d_loss: {:.6f}, g_loss: {:.6f} D real: {:.6f}, D fake: {:.6f}"


class Recorder:
    """The run folder, the TensorBoard sink (or None) and the console of one training run."""

    def __init__(self, run: RunDir | None, tensorboard=None,
                 echo: Callable[[str], None] = print):
        self.run, self.tensorboard, self.echo = run, tensorboard, echo

    def record(self, record: dict) -> None:
        """One record (a logging window's means, or an evaluation) to log.jsonl and TensorBoard."""
        if self.run is not None:
            self.run.append_log(record)
        if self.tensorboard is not None:
            self.tensorboard.record(record)

    def tutorial_line(self, epoch: int, epochs: int, stats: dict[str, float]) -> None:
        """The seed tutorial's own log line."""
        self.echo(TUTORIAL_LINE.format(epoch, epochs, stats["d_loss"], stats["g_loss"],
                                       stats["d_real"], stats["d_fake"]))

    def real_grid(self, images: torch.Tensor) -> None:
        """uint8 real images (N, 28, 28) as RUN/images/real_images.png."""
        if self.run is not None:
            save_grid(self.run.real_grid, images)

    def fake_grid(self, epoch: int, images: torch.Tensor, nrow: int, step: int) -> None:
        """The fixed-noise grid after `epoch`, as a PNG and in TensorBoard at `step`."""
        if self.run is not None:
            save_grid(self.run.fake_grid(epoch), images, nrow)
            if self.tensorboard is not None:
                self.tensorboard.grid(images, nrow, step)

    def curves(self) -> None:
        """RUN/images/curves.png from the log so far: losses, D's outputs, FID over time."""
        if self.run is not None:
            save_curves(self.run.path)
