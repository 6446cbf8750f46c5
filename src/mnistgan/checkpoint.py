"""Checkpoints: the whole training state in one file, written atomically, loaded safely.

A checkpoint is a plain dict of tensors and Python values, so it loads with
`torch.load(weights_only=True)`: a file that needs anything else unpickled (code, classes) is
refused before any of it runs. It carries a format number; a file from a newer mnistgan, one
missing part of the state, one whose config this mnistgan cannot build, or whose weights do not
fit that config, is one clear `UserError` naming the file and the mismatch. `Progress`, the
run's position (step, epoch, batch, images, seconds), is part of this format.

A write that fails (a full disk) is one `UserError` too: the temp file is removed and the
previous checkpoint stays in place. Temp files left by a killed writer (`.NAME.tmp-PID` of a
process that no longer exists) are removed before the next write of the same file.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnistgan.atomic import atomic_open
from mnistgan.config import RunConfig
from mnistgan.errors import CheckpointMismatch, UserError
from mnistgan.models import build_models

FORMAT = 1
REQUIRED = ("format", "config", "progress", "generator", "discriminator", "opt_g", "opt_d", "rng")


@dataclasses.dataclass
class Progress:
    """Where a run stands; saved as the checkpoint's `progress` (a plain dict of these fields)."""

    step: int = 0  # optimizer steps done (one D and one G update each)
    epoch: int = 0  # epoch in progress, 0-based
    batch: int = 0  # batches of `epoch` done
    images: int = 0  # real images seen
    seconds: float = 0.0  # training time, summed across resumes
    best_fid: float | None = None  # lowest in-training FID so far (checkpoints/best.pt)
    rollbacks: int = 0  # --on-nan rollback: returns to the last good checkpoint so far


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """Write `state` to `path` via a temp file and rename: a crash never leaves half a file."""
    save_state_dict(path, {"format": FORMAT, **state}, what="checkpoint")


def save_state_dict(path: str | os.PathLike, state: dict[str, Any], what: str = "weights") -> None:
    """`torch.save` to `path` atomically; a failed write is a `UserError`, the old file kept."""
    path = Path(path)
    remove_stale_temps(path)
    try:
        with atomic_open(path) as f:
            torch.save(state, f)
    except OSError as e:
        kept = "; the previous file is kept" if path.is_file() else ""
        reason = os.strerror(e.errno) if e.errno else str(e)
        raise UserError(f"{path}: cannot write {what} ({reason}){kept}") from None
    except RuntimeError as e:  # torch wraps a failed write of its zip container
        if "write" not in str(e).lower():
            raise
        kept = "; the previous file is kept" if path.is_file() else ""
        first = str(e).splitlines()[0][:200]
        raise UserError(f"{path}: cannot write {what} ({first}){kept}") from None


def remove_stale_temps(path: Path) -> None:
    """Remove `.NAME.tmp-PID` files beside `path` whose writer process no longer exists."""
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        pid = tmp.name.rpartition("-")[2]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True`; `UserError` if unsafe, damaged or foreign."""
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
    check_compatible(state, path)
    return state


def check_compatible(state: dict[str, Any], path: str | os.PathLike) -> None:
    """`CheckpointMismatch` unless this mnistgan can build the checkpoint's config, its weights
    fit the models that config builds (names and shapes), and its progress record is known."""
    try:
        cfg = RunConfig.from_dict(state["config"])
    except UserError as e:
        raise CheckpointMismatch(f"{path}: incompatible config ({e})") from None
    unknown = sorted(set(state["progress"]) - {f.name for f in dataclasses.fields(Progress)})
    if unknown:
        raise CheckpointMismatch(f"{path}: progress has unknown field {unknown[0]!r} "
                                 "(written by a newer mnistgan?)")
    with torch.device("meta"):  # shapes only: nothing is allocated or initialised for real
        g, d = build_models(cfg.model)
    for name, model in (("generator", g), ("discriminator", d), ("ema", g)):
        if name == "ema" and state.get("ema") is None:
            continue
        _check_weights(state[name], model.state_dict(), f"{path}: {name}", cfg)


def _check_weights(saved: Any, expected: dict[str, torch.Tensor], where: str, cfg) -> None:
    arch = f"model.arch {cfg.model.arch}"
    if not isinstance(saved, dict):
        raise CheckpointMismatch(f"{where} is not a state dict")
    missing = [k for k in expected if k not in saved]
    extra = [k for k in saved if k not in expected]
    if missing or extra:
        key, how = (missing[0], "lacks") if missing else (extra[0], "has unexpected")
        raise CheckpointMismatch(f"{where} {how} weight {key!r} for its config ({arch})")
    for key, want in expected.items():
        have = saved[key]
        if not isinstance(have, torch.Tensor) or have.shape != want.shape:
            shape = tuple(have.shape) if isinstance(have, torch.Tensor) else type(have).__name__
            raise CheckpointMismatch(
                f"{where} weight {key!r} has shape {shape}, its config ({arch}) needs "
                f"{tuple(want.shape)}"
            )


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
