"""The on-disk cache of real-data figures, keyed by a hash of everything they depend on.

This module owns where the cache lives (`cache_dir`: an argument, else `$MNISTGAN_CACHE`, else
`~/.cache/mnistgan`), how a key is made (sha256 of the sorted JSON of its parts: dataset
fingerprint, evaluator sha256, sample count, and so on, plus `CACHE_VERSION`), and reading and
writing entries: tensors as safetensors, figures as JSON, each written atomically (temp file +
`os.replace`) so a crash never leaves a half-written entry that a later run would trust.
A changed dataset, evaluator or count is a different key, so it simply misses.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError

from mnistgan.atomic import write_bytes_atomic, write_text_atomic

# Bump when what is cached changes meaning (a metric's definition, the feature layer).
CACHE_VERSION = 1


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The cache folder: `override`, else `$MNISTGAN_CACHE`, else `~/.cache/mnistgan`."""
    if override is not None:
        return Path(override)
    env = os.environ.get("MNISTGAN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "mnistgan"


def cache_key(kind: str, **parts: Any) -> str:
    """A file stem naming one cache entry: `kind-<16 hex digits of the parts' hash>`."""
    text = json.dumps({"kind": kind, "version": CACHE_VERSION, **parts}, sort_keys=True)
    return f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def cached_tensors(
    folder: Path, key: str, compute: Callable[[], dict[str, torch.Tensor]]
) -> dict[str, torch.Tensor]:
    """Load the tensors stored under `key`, or compute, store and return them."""
    path = folder / f"{key}.safetensors"
    if path.exists():
        try:
            return safetensors.torch.load_file(path)
        except (SafetensorError, OSError):
            pass  # an unreadable entry is recomputed and overwritten, never trusted
    tensors = compute()
    folder.mkdir(parents=True, exist_ok=True)
    data = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    write_bytes_atomic(path, safetensors.torch.save(data))
    return tensors


def cached_json(folder: Path, key: str, compute: Callable[[], dict]) -> dict:
    """Load the JSON object stored under `key`, or compute, store and return it."""
    path = folder / f"{key}.json"
    if path.exists():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    value = compute()
    folder.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(value, indent=1, sort_keys=True))
    return value
