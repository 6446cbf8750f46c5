"""`mnistgan train` under torchrun with the generator's loss made NaN on one rank only.

Used by `tests/test_distributed.py::test_a_nan_on_one_rank_stops_every_rank`: torchrun starts
this file on every rank; the rank named by $POISON_RANK has every loss in the registry return a
NaN generator loss from its $POISON_CALL-th call on (1-based), the others train untouched. Then
it runs the CLI with this script's arguments, so each rank exits as `mnistgan train` would.
Not a test module itself (pytest collects only test_*.py).
"""

from __future__ import annotations

import os
import sys

from mnistgan import losses
from mnistgan.cli import main


def poison(at_call: int) -> None:
    """Every loss's g_loss returns NaN from call `at_call` on (counted across the losses)."""
    calls = [0]

    def wrap(real):
        def g_loss(*args, **kwargs):
            calls[0] += 1
            out = real(*args, **kwargs)
            return out * float("nan") if calls[0] >= at_call else out

        return g_loss

    for name, loss in list(losses.LOSSES.items()):
        losses.LOSSES[name] = losses.GanLoss(loss.d_loss, wrap(loss.g_loss))


if __name__ == "__main__":
    if os.environ["RANK"] == os.environ["POISON_RANK"]:
        poison(int(os.environ["POISON_CALL"]))
    main(sys.argv[1:])
