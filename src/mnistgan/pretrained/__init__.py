"""The pretrained generator that ships inside the package, so a new user gets digits at once.

The bundle is one safetensors file beside this module, `generator.safetensors`: the EMA
generator's weights, with the run's config, its measured metrics and the command that made it
in the file's metadata (plain JSON strings, readable by any safetensors tool). Its sha256 is
recorded here and checked on every load, so a damaged or swapped file is refused.

Re-make it from a finished run with `python -m mnistgan.pretrained RUN [--metrics report.json]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import safetensors.torch

from mnistgan.atomic import write_bytes_atomic
from mnistgan.checkpoint import load_checkpoint
from mnistgan.errors import UserError
from mnistgan.run import RunDir

BUNDLE_NAME = "generator.safetensors"
BUNDLE_SHA256 = "ea1eff1a4703878dc9f9b20ed9900a8c734e52adba49d1b9a8e42bc45d947083"


def bundle_path() -> Path:
    return Path(str(resources.files("mnistgan.pretrained").joinpath(BUNDLE_NAME)))


def read_bundle(path: Path | None = None, sha256: str | None = None) -> tuple[dict, dict[str, Any]]:
    """(state dict, metadata) of a bundle, after checking its sha256."""
    path = bundle_path() if path is None else Path(path)
    expected = BUNDLE_SHA256 if sha256 is None else sha256
    if not expected or not path.is_file():
        raise UserError("no generator is bundled with this mnistgan; pass --checkpoint RUN")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise UserError(f"{path}: sha256 {actual[:16]}... is not the bundled generator's; "
                        f"reinstall")
    state = safetensors.torch.load(data)
    with open(path, "rb") as f:  # the metadata sits in the header, as JSON strings
        header_len = int.from_bytes(f.read(8), "little")
        meta = json.loads(f.read(header_len)).get("__metadata__", {})
    return state, {k: json.loads(v) for k, v in meta.items()}


def write_bundle(run: Path, out: Path, metrics: dict | None = None, command: str = "") -> str:
    """Write the EMA generator of `run` (a checkpoint file, or a run folder's last.pt) as a
    bundle; return its sha256. Not best.pt by default: that one is chosen by FID on test data."""
    run = Path(run)
    state = load_checkpoint(run if run.is_file() else RunDir(run).last)
    weights = state["ema"] or state["generator"]
    weights = {k: v.contiguous() for k, v in weights.items()}
    meta = {"config": state["config"], "progress": state["progress"], "metrics": metrics or {},
            "command": command, "mnistgan_version": state.get("mnistgan_version", "")}
    data = safetensors.torch.save(weights, metadata={k: json.dumps(v, sort_keys=True)
                                                     for k, v in meta.items()})
    write_bytes_atomic(out, data)
    return hashlib.sha256(data).hexdigest()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Bundle a run's EMA generator into the package.")
    ap.add_argument("run", type=Path, help="finished run folder (its last.pt) or checkpoint file")
    ap.add_argument("--metrics", type=Path, help="JSON report from mnistgan evaluate --json")
    ap.add_argument("--command", default="", help="the command that trained the run")
    ap.add_argument("--out", type=Path, default=bundle_path())
    args = ap.parse_args(argv)
    metrics = json.loads(args.metrics.read_text()) if args.metrics else None
    sha = write_bundle(args.run, args.out, metrics, args.command)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes); set BUNDLE_SHA256 = \"{sha}\"")


if __name__ == "__main__":
    main()
