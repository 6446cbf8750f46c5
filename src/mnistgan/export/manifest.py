"""The manifest of an export (`OUT/manifest.json`, written last): what made it, what it holds.

Generator (source, checkpoint and weights sha256, config), seed, label plan and what rejection
cost per split, sha256 of every file, timing, and with `--evaluate` the metric report as
`mnistgan.metrics.evaluate` returns it. Also `verify` (is an export in OUT whole?) and the lines
`mnistgan generate` prints when done.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path, PurePosixPath

import torch

from mnistgan._version import __version__
from mnistgan.errors import UserError
from mnistgan.export.commit import MANIFEST, manifest_entries
from mnistgan.export.draw import Judge, Tally
from mnistgan.export.plans import SPLITS
from mnistgan.export.writers import WRITERS, Writer
from mnistgan.sampling import Sampler


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_sha256(module: torch.nn.Module) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes, bytes): names the weights
    whatever file they came in."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def data_files(staging: Path, writer: Writer) -> dict[str, str]:
    """sha256 of each data file written, by path relative to the staging folder (PNG trees:
    the count of files per split)."""
    if not writer.hashes_files:
        return {f"{split}/": f"{sum(n)} PNG files" for split, n in writer.plan.items()}
    paths = sorted(p for p in staging.rglob("*") if p.is_file())
    return {p.relative_to(staging).as_posix(): file_sha256(p) for p in paths}


def generator_info(sampler: Sampler) -> dict:
    source = Path(sampler.source)
    return {
        "source": sampler.source,
        "checkpoint_sha256": file_sha256(source) if source.is_file() else None,
        "weights_sha256": weights_sha256(sampler.G),
        "conditional": bool(sampler.num_classes),
        "config": sampler.cfg.to_dict(),
    }


def build_manifest(sampler: Sampler, judge: Judge, options, plan: dict[str, list[int]],
                   tallies: dict[str, Tally], seconds: float, evaluation: dict | None) -> dict:
    """Everything but `files`, which the caller adds once every file is written."""
    total = sum(sum(c) for c in plan.values())
    candidates = sum(t.candidates for t in tallies.values())
    passed = sum(t.passed_total for t in tallies.values())
    labels_from = ("requested from the class-conditional generator" if sampler.num_classes
                   else "the evaluator's prediction (the generator is unconditional)")
    manifest = {
        "created_by": "mnistgan generate",
        "mnistgan_version": __version__,
        "format": options.format,
        "entries": list(WRITERS[options.format].entries),
        "generator": generator_info(sampler),
        "seed": options.seed,
        "labels": {"mode": options.labels, "from": labels_from},
        "min_confidence": options.min_confidence,
        "splits": {
            split: {"n": sum(plan[split]), "per_digit": plan[split],
                    "candidates": tallies[split].candidates,
                    "acceptance_rate": tallies[split].acceptance,
                    "kept_share": tallies[split].kept_share}
            for split in SPLITS
        },
        "candidates": candidates,
        "acceptance_rate": passed / candidates if candidates else 1.0,
        "kept_share": total / candidates if candidates else 1.0,
        "evaluator_sha256": None if judge.evaluator is None else judge.evaluator.sha256,
        "timing": {"seconds": round(seconds, 3), "images_per_s": round(total / max(seconds, 1e-9)),
                   "device": str(sampler.device), "threads": torch.get_num_threads()},
    }
    if evaluation is not None:
        manifest["evaluation"] = evaluation
    return manifest


def summary(manifest: dict, out: Path) -> str:
    """The lines `mnistgan generate` prints when done."""
    t, splits = manifest["timing"], manifest["splits"]
    lines = [
        (f"wrote {splits['train']['n']} train + {splits['test']['n']} test images "
         f"({manifest['format']}) to {out} in {t['seconds']:.1f} s ({t['images_per_s']} images/s)"),
        f"labels: {manifest['labels']['mode']}, {manifest['labels']['from']}",
    ]
    if manifest["evaluator_sha256"] is not None:
        p = manifest["min_confidence"]
        lines.append(f"acceptance rate {manifest['acceptance_rate']:.1%}"
                     f"{f' at --min-confidence {p:g}' if p is not None else ''}; "
                     f"{manifest['candidates']} candidates drawn, "
                     f"{manifest['kept_share']:.1%} of them written")
    lines.append(f"manifest: {out / 'manifest.json'}")
    return "\n".join(lines)


def verify(out: Path) -> dict:
    """The manifest of the export in `out` once every file it lists is there with its sha256
    (PNG trees: with its count of files); else a one-line `UserError`. Reads only: names from
    the manifest are checked to stay inside `out` before any is opened."""
    out = Path(out)
    manifest_entries(out / MANIFEST)  # an mnistgan manifest, or a one-line error
    manifest = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise UserError(f"{out / MANIFEST}: no files listed")
    for name, expected in files.items():
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts or not isinstance(expected, str):
            raise UserError(f"{out / MANIFEST}: {name!r} is not a file inside {out}")
        path = out / rel
        if name.endswith("/"):
            got = f"{sum(1 for p in path.rglob('*.png'))} PNG files" if path.is_dir() else None
        else:
            got = file_sha256(path) if path.is_file() else None
        if got != expected:
            raise UserError(f"{out}: {name} is missing or differs from the manifest")
    return manifest
