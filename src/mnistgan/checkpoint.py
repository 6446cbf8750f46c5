"""Checkpoints: the whole training state in one file, written atomically, loaded safely.

A checkpoint is a plain dict of tensors and Python values, so it loads with
`torch.load(weights_only=True)`: a file that needs anything else unpickled (code, classes) is
refused before any of it runs. It carries a format number; a file from a newer mnistgan, or one
missing part of the state, is one clear `UserError`.
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnistgan.atomic import atomic_open
from mnistgan.errors import UserError

FORMAT = 1
REQUIRED = ("format", "config", "progress", "generator", "discriminator", "opt_g", "opt_d", "rng")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write `state` to `path` via a temp file and rename: a crash never leaves half a file."""
    with atomic_open(path) as f:
        torch.save({"format": FORMAT, **state}, f)


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`; `UserError` if it is unsafe, damaged or foreign."""
    state = load_weights(path, map_location)
    if not isinstance(state, dict) or "format" not in state:
        raise UserError(f"{path}: not an mnistgan checkpoint")
    if not isinstance(state["format"], int) or state["format"] > FORMAT:
        raise UserError(
            f"{path}: checkpoint format {state['format']} is newer than this mnistgan reads "
            f"({FORMAT}); upgrade mnistgan"
        )
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise UserError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return state


def load_weights(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """`torch.load(weights_only=True)` with every failure turned into one clear line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else "unsafe content"
        raise UserError(f"{path}: refused, not a plain weights file ({reason[:200]})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path}: unreadable or truncated ({reason[:200]})") from None


def capture_rng(noise: torch.Generator) -> dict[str, Any]:
    """Every random state a run touches: its noise generator, torch's, CUDA's, Python's, numpy's."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "noise": noise.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "gauss": gauss},
    }


def restore_rng(state: dict[str, Any], noise: torch.Generator) -> None:
    """Put back what `capture_rng` took."""
    noise.set_state(state["noise"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, n["pos"], n["has_gauss"], n["gauss"]))
