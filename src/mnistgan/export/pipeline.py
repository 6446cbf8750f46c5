"""One export from start to end: options, staging, drawing into the writer, evaluation,
manifest, commit. `export_dataset` is the library behind `mnistgan generate`.

Everything is written under `OUT/.mnistgan-export-PID/` and fsynced; drawing (torch in worker
threads) overlaps writing (gzip, PNG and Parquet encoding, the disk: in a `Background` thread).
Only when the whole export (and its evaluation) is done does `commit` move it into OUT,
`manifest.json` last. The output depends only on the generator, the seed and the options.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from mnistgan.errors import UserError
from mnistgan.export.commit import (
    MANIFEST,
    Log,
    aside_dir,
    check_out,
    commit,
    recover,
    remove_tree,
    staging_dir,
)
from mnistgan.export.draw import Drawer, Judge, Tally, draw_split, drawer
from mnistgan.export.manifest import build_manifest, data_files, file_sha256, summary
from mnistgan.export.plans import SPLITS, plan_counts
from mnistgan.export.writers import WRITERS, Background, Writer, finish_file
from mnistgan.sampling import Sampler

EVAL_N = 10_000  # train images scored by --evaluate (all of them when the split is smaller)


@dataclass(frozen=True)
class ExportOptions:
    """Everything that decides an export's content, besides the generator."""

    n_train: int | None = None  # None: 60,000, or the sum of a LIST of counts
    n_test: int = 10_000
    labels: str = "balanced"  # balanced | mnist | ten comma-separated counts
    format: str = "idx"  # a name in WRITERS: idx | npz | png | hf | keras
    seed: int = 0
    min_confidence: float | None = None  # keep samples the evaluator gives >= P for their label
    batch_size: int = 1000  # images per generator pass: speed and memory only, never output
    overwrite: bool = False


def check_options(options: ExportOptions) -> dict[str, list[int]]:
    """Validate the options (one-line `UserError`s) and return the label plan."""
    if options.format not in WRITERS:
        raise UserError(f"unknown format {options.format!r} (choose from {', '.join(WRITERS)})")
    writer = WRITERS[options.format]
    if writer.needs and importlib.util.find_spec(writer.needs) is None:
        raise UserError(f"--format {options.format} needs {writer.needs}: "
                        f"pip install 'mnistgan[{writer.extra}]'")
    p = options.min_confidence
    if p is not None and not 0 < p < 1:
        raise UserError(f"--min-confidence must be between 0 and 1 (exclusive), got {p}")
    if options.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {options.batch_size}")
    return plan_counts(options.labels, options.n_train, options.n_test)


def _judge(sampler: Sampler, options: ExportOptions) -> Judge:
    """The evaluator is needed to label an unconditional generator's samples or to filter."""
    if sampler.num_classes and options.min_confidence is None:
        return Judge(None, None)
    from mnistgan.metrics import load_evaluator  # lazy: the evaluator only when it judges

    return Judge(load_evaluator(device=str(sampler.device)), options.min_confidence)


def _write_split(drawer: Drawer, writer: Writer, split: str, counts: list[int], seed: int,
                 keep: int, tally: Tally):
    """Draw and write one split; returns up to `keep` of its (images, labels) for evaluation."""
    n, kept = sum(counts), []
    writer.begin(split, n)
    bar = tqdm(total=n, desc=split, unit="img", disable=None, dynamic_ncols=True, leave=False)
    background = Background(writer)
    try:
        for images, labels in draw_split(drawer, split, counts, seed, tally):
            background.write(images, labels)
            if keep > sum(len(i) for i, _ in kept):
                kept.append((images, labels))
            bar.update(len(images))
            if drawer.judge.evaluator is not None:
                bar.set_postfix_str(f"accepted {tally.acceptance:.1%}")
        background.join()
        background.check()
        writer.end()
    finally:
        background.join()
        bar.close()
    if not kept:
        return None
    images = torch.from_numpy(np.concatenate([i for i, _ in kept])[:keep])
    return images, torch.from_numpy(np.concatenate([y for _, y in kept])[:keep].astype(np.int64))


def _evaluate(kept, real_data, log: Log) -> dict:
    from mnistgan.metrics import evaluate, format_report  # lazy: only with --evaluate

    images, labels = kept
    log(f"evaluating the first {len(images)} training images against the real test set (CAS)")
    report = evaluate((images, labels), real_data, n=len(images), cas=True, log=log)
    log(format_report(report))
    return report


def _stage(sampler: Sampler, judge: Judge, options: ExportOptions, plan, staging: Path,
           real_data, log: Log) -> dict:
    """Write the whole export into `staging`, manifest last; returns the manifest."""
    writer = WRITERS[options.format](staging, plan)
    start, tallies, kept = time.perf_counter(), {s: Tally() for s in SPLITS}, None
    try:
        with drawer(sampler, judge, options.batch_size) as draws:
            for split in SPLITS:
                keep = EVAL_N if real_data is not None and split == "train" else 0
                got = _write_split(draws, writer, split, plan[split], options.seed, keep,
                                   tallies[split])
                kept = got if split == "train" else kept
    except BaseException:
        writer.close()
        raise
    seconds = time.perf_counter() - start
    evaluation = _evaluate(kept, real_data, log) if real_data is not None else None
    info = build_manifest(sampler, judge, options, plan, tallies, seconds, evaluation)
    files = data_files(staging, writer)
    files.update({name: file_sha256(staging / name) for name in writer.describe(info, files)})
    manifest = {**info, "files": files}
    with open(staging / MANIFEST, "w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=2) + "\n")
        finish_file(f)
    return manifest


def export_dataset(sampler: Sampler, out: str | os.PathLike,
                   options: ExportOptions = ExportOptions(), *, real_data=None,
                   log: Log | None = None) -> dict:
    """Write a synthetic MNIST to `out` and return its manifest.

    With `real_data` (a `mnistgan.data.Dataset` of real MNIST) the training split is scored by
    `mnistgan.metrics.evaluate` against the real test set, CAS included, and the report goes
    into the manifest. Nothing in `out` changes unless the whole export succeeds; an earlier
    export (with `options.overwrite`) is replaced atomically (see `commit`).
    """
    from mnistgan.metrics.evaluation import MIN_SAMPLES  # lazy: metrics' imports only when run

    plan, out, log = check_options(options), Path(out), log or (lambda _: None)
    if real_data is not None and sum(plan["train"]) < MIN_SAMPLES:
        raise UserError(f"--evaluate needs at least {MIN_SAMPLES} training images")
    recover(out, log)
    old = check_out(out, WRITERS[options.format].entries, options.overwrite)
    judge = _judge(sampler, options)
    if not sampler.num_classes:
        log("the generator is unconditional: each image is labelled by the evaluator's prediction")
    created, staging = not out.exists(), staging_dir(out)
    try:
        staging.mkdir(parents=True)
        manifest = _stage(sampler, judge, options, plan, staging, real_data, log)
        commit(out, staging, WRITERS[options.format].entries, log)
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        kept = (f"{out} still holds the earlier export, unchanged" if old is not None
                else "nothing was written")
        raise UserError(f"export to {out} failed ({where}{e.strerror or e}); {kept}") from None
    finally:
        if not aside_dir(out).exists():  # else a broken replace needs the staged export
            remove_tree(staging, log, "the staging folder")
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
    log(summary(manifest, out))
    return manifest
