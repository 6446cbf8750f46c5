"""TensorBoard output of a run (`mnistgan train --tensorboard`), in `RUN/tensorboard/`.

A sink the Trainer hands what it already writes: each log.jsonl record (losses, D's outputs,
images/s, FID) becomes scalars at its step, and each epoch's fixed-noise grid an image. Nothing
here decides what to log. On resume the writer starts a new event file in the same folder with
`purge_step` just past the resumed step, so TensorBoard drops whatever an interrupted process had
logged past its last checkpoint, which the resumed run logs again: the curves show one history.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torchvision.utils import make_grid

from mnistgan.errors import UserError
from mnistgan.run import RunDir

# log.jsonl key -> TensorBoard tag; records' other keys (epoch, images, seconds, ...) are not
# curves worth a chart of their own.
TAGS = {
    "d_loss": "loss/d",
    "g_loss": "loss/g",
    "d_real": "D/real",
    "d_fake": "D/fake",
    "images_per_s": "speed/images_per_s",
    "fid": "eval/fid",
}
GRID_TAG = "samples/fixed_noise"
MISSING = "--tensorboard needs the tensorboard package: pip install 'mnistgan[tensorboard]'"


def require_tensorboard() -> None:
    """Raise a one-line `UserError` if the tensorboard package is missing: before a run starts."""
    try:
        # lazy: the tensorboard extra
        import tensorboard  # noqa: F401
    except ImportError:
        raise UserError(MISSING) from None


class TensorBoardSink:
    """Scalars and grids of one run into `logdir`, through `torch.utils.tensorboard`."""

    def __init__(self, logdir: str | os.PathLike, *, purge_step: int | None = None):
        try:
            # lazy: the tensorboard extra
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError(MISSING) from None
        self.logdir = Path(logdir)
        # Events at purge_step and later, left by an earlier process, are dropped by TensorBoard.
        self.writer = SummaryWriter(str(self.logdir), purge_step=purge_step)

    def record(self, record: dict) -> None:
        """One log.jsonl record: each known numeric key as a scalar at the record's step."""
        step = int(record["step"])
        for key, tag in TAGS.items():
            value = record.get(key)
            if isinstance(value, int | float):
                self.writer.add_scalar(tag, float(value), step)
        self.writer.flush()  # a record every log_every steps: cheap, and nothing is lost to a kill

    def grid(self, images: torch.Tensor, nrow: int, step: int) -> None:
        """uint8 images (N, 28, 28) as one grid image at `step`, laid out as the PNG grids."""
        grid = make_grid(images.unsqueeze(1), nrow=nrow, padding=2, pad_value=0)  # (3, H, W)
        self.writer.add_image(GRID_TAG, grid[:1], step, dataformats="CHW")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def open_sink(run: RunDir | None, resumed_step: int | None, asked: bool) -> TensorBoardSink | None:
    """A sink into RUN/tensorboard/ when asked, or on a resume of a run that has one; None
    otherwise (and with no run folder: a torchrun rank other than 0)."""
    if run is None or not (asked or (resumed_step is not None and run.tensorboard.is_dir())):
        return None
    # Steps after the checkpoint's are logged again by the resumed run, as log.jsonl's are.
    purge = None if resumed_step is None else resumed_step + 1
    return TensorBoardSink(run.tensorboard, purge_step=purge)


__all__ = ["GRID_TAG", "TAGS", "TensorBoardSink", "open_sink", "require_tensorboard"]
