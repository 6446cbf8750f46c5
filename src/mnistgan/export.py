"""Synthetic MNIST on disk: the library behind `mnistgan generate`.

This module owns
  * label plans: how many images of each digit a split gets (`plan_counts`, from `--labels`
    balanced | mnist | a list of ten counts);
  * the draw loop (`draw_split`): noise in draws seeded from (seed, split, block, attempt), the
    generator in batches, the evaluator's labels and confidence filter, rejection with a bound;
  * the writers, one per format, each streaming a split block by block: IDX (plain and gzip, as
    torchvision and MNIST's own mirrors lay them out), npz, and a PNG ImageFolder tree;
  * staging and commit: every file is written under `DIR/.mnistgan-export-PID/` and fsynced; only
    when the whole export (and its evaluation) is done are the finished files moved into `DIR`,
    and `manifest.json` is written last. An export is complete exactly when its manifest exists;
    a failure (disk full included) or an interrupt removes the staging folder and leaves `DIR`
    as it was.

Output depends only on the generator, the seed and the options: not on `--batch-size`, not on
the time (gzip with mtime 0 and no file name, zip entries dated 1980-01-01, PNGs without time
chunks), so the same arguments give byte-identical files.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import queue
import shutil
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from mnistgan._version import __version__
from mnistgan.data.idx import idx_header
from mnistgan.errors import UserError
from mnistgan.sampling import Sampler, to_uint8

FORMATS = ("idx", "npz", "png")
SPLITS = ("train", "test")
DEFAULT_N = {"train": 60_000, "test": 10_000}
# MNIST's own label counts per digit 0-9, which `--labels mnist` scales to the split size.
MNIST_COUNTS = {
    "train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    "test": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
}
IDX_PREFIX = {"train": "train", "test": "t10k"}
BLOCK = 1000  # output images per block: the unit of streaming, noise seeding and rejection
MAX_DRAW = 4 * BLOCK  # most candidates drawn at once when rejection needs extra
MIN_EVIDENCE = 2000  # candidates of a digit tried before its acceptance is judged hopeless
MIN_ACCEPTANCE = 0.01  # below this share accepted, a digit would need > 100 draws per image
GZIP_LEVEL = 1  # chosen by benchmarks/export_speed.py: level 6 is ~10% smaller, far slower
EVAL_N = 10_000  # train images scored by --evaluate (all of them when the split is smaller)
MANIFEST = "manifest.json"
ENTRIES = {"idx": ["MNIST"], "npz": ["train.npz", "test.npz"], "png": ["train", "test"]}
Log = Callable[[str], None]


@dataclass(frozen=True)
class ExportOptions:
    """Everything that decides an export's content, besides the generator."""

    n_train: int | None = None  # None: 60,000, or the sum of a LIST of counts
    n_test: int = 10_000
    labels: str = "balanced"  # balanced | mnist | ten comma-separated counts
    format: str = "idx"
    seed: int = 0
    min_confidence: float | None = None  # keep samples the evaluator gives >= P for their label
    batch_size: int = 1000  # images per generator pass: speed and memory only, never output
    overwrite: bool = False


# -- label plans -------------------------------------------------------------------------------


def scale_counts(weights: tuple[int, ...] | list[int], n: int) -> list[int]:
    """Integer counts proportional to `weights` summing to n (largest remainder, ties to the
    lower digit), so MNIST's counts at n = 60,000 come back exactly."""
    total = sum(weights)
    if n and not total:
        raise UserError(f"cannot spread {n} images over digits that all have count 0")
    if not n:
        return [0] * len(weights)
    floors = [w * n // total for w in weights]
    by_remainder = sorted(range(len(weights)), key=lambda d: (-(weights[d] * n % total), d))
    for d in by_remainder[: n - sum(floors)]:
        floors[d] += 1
    return floors


def parse_label_list(text: str) -> list[int]:
    """`--labels 100,100,...` -> ten non-negative counts, or a one-line `UserError`."""
    parts = [p.strip() for p in text.split(",")]
    try:
        counts = [int(p) for p in parts]
    except ValueError:
        counts = []
    if len(counts) != 10 or min(counts) < 0:
        raise UserError(
            f"--labels {text!r}: give balanced, mnist, or ten comma-separated counts >= 0 "
            "(digits 0-9)"
        )
    return counts


def plan_counts(labels: str, n_train: int | None, n_test: int) -> dict[str, list[int]]:
    """Images per digit for each split.

    balanced: n // 10 each, the remainder to the lowest digits; mnist: MNIST's own counts scaled
    to n; LIST: the training split's counts exactly (its sum is the split size; --n-train, if
    given, must equal it) and the test split in the same proportions, scaled to --n-test.
    """
    for name, n in (("--n-train", n_train), ("--n-test", n_test)):
        if n is not None and n < 0:
            raise UserError(f"{name} must be at least 0, got {n}")
    if labels == "balanced":
        sizes = {"train": DEFAULT_N["train"] if n_train is None else n_train, "test": n_test}
        return {s: scale_counts([1] * 10, n) for s, n in sizes.items()}
    if labels == "mnist":
        sizes = {"train": DEFAULT_N["train"] if n_train is None else n_train, "test": n_test}
        return {s: scale_counts(MNIST_COUNTS[s], n) for s, n in sizes.items()}
    counts = parse_label_list(labels)
    if n_train is not None and n_train != sum(counts):
        raise UserError(
            f"--labels gives {sum(counts)} training images but --n-train says {n_train}; "
            "with a list of counts, leave out --n-train"
        )
    return {"train": counts, "test": scale_counts(counts, n_test)}


def check_options(options: ExportOptions) -> dict[str, list[int]]:
    """Validate the options (one-line `UserError`s) and return the label plan."""
    if options.format not in FORMATS:
        raise UserError(f"unknown format {options.format!r} (choose from {', '.join(FORMATS)})")
    p = options.min_confidence
    if p is not None and not 0 < p < 1:
        raise UserError(f"--min-confidence must be between 0 and 1 (exclusive), got {p}")
    if options.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {options.batch_size}")
    return plan_counts(options.labels, options.n_train, options.n_test)


# -- drawing -----------------------------------------------------------------------------------


def draw_seed(*parts: object) -> int:
    """A 63-bit seed from its parts, so every (seed, split, block, attempt) has its own noise."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass
class Tally:
    """What rejection cost in one split: candidates drawn, passed (the evaluator's verdict) and
    kept (passed and needed), and per digit the candidates tried for it and passed for it."""

    candidates: int = 0
    passed_total: int = 0
    kept: int = 0
    tried: list[int] = field(default_factory=lambda: [0] * 10)
    passed: list[int] = field(default_factory=lambda: [0] * 10)

    def count(self, ok: torch.Tensor) -> None:
        """Add a draw of candidates, `ok` (N,) bool where the judge accepted them."""
        self.candidates += len(ok)
        self.passed_total += int(ok.sum())

    @property
    def acceptance(self) -> float:
        """The share of candidates the filter accepted (confident for their label)."""
        return self.passed_total / self.candidates if self.candidates else 1.0

    @property
    def kept_share(self) -> float:
        """The share of candidates written: below `acceptance` where a full quota or a surplus
        of passes for a slot already filled discarded some."""
        return self.kept / self.candidates if self.candidates else 1.0

    def check_hopeless(self, open_digits: list[int], p: float | None, labelled: bool) -> None:
        """Raise a `UserError` when a digit still needed is accepted too rarely to finish."""
        for d in open_digits:
            tried, passed = self.tried[d], self.passed[d]
            if tried < MIN_EVIDENCE or passed >= MIN_ACCEPTANCE * tried:
                continue
            share = f"only {passed} of {tried} candidates ({passed / tried:.2%})"
            if labelled:
                raise UserError(
                    f"digit {d}: {share} reached --min-confidence {p:g}, and at least "
                    f"{MIN_ACCEPTANCE:.0%} must; lower --min-confidence"
                )
            confident = f" with confidence >= {p:g}" if p is not None else ""
            raise UserError(
                f"digit {d}: {share} were classified as a {d}{confident}; this unconditional "
                f"generator cannot fill its quota (at least {MIN_ACCEPTANCE:.0%} must). Choose "
                f"--labels counts it can meet{' or lower --min-confidence' if p else ''}"
            )


@dataclass(frozen=True)
class Judge:
    """The evaluator's verdict on candidates: their digit and whether they are confident."""

    evaluator: object | None  # mnistgan.metrics.Evaluator; None: accept every labelled sample
    min_confidence: float | None

    def __call__(self, images: torch.Tensor, labels: torch.Tensor | None):
        """(labels (N,), ok (N,) bool): the given labels or the evaluator's predictions."""
        if self.evaluator is None:
            return labels, torch.ones(len(images), dtype=torch.bool)
        probs = self.evaluator.embed(images).probs  # (N, 10) float64
        labels = probs.argmax(dim=1) if labels is None else labels
        confidence = probs.gather(1, labels[:, None])[:, 0]
        p = self.min_confidence
        if p is None:
            return labels, torch.ones(len(images), dtype=torch.bool)
        return labels, confidence >= p


@dataclass(frozen=True)
class Drawer:
    """Draws candidates and judges them, a batch per worker thread.

    On a CPU, W Python threads each running torch on one thread give ~1.8x the images/s of one
    thread running torch on W (these convolutions are too small to split well inside one op; a
    batch per thread splits perfectly), with bitwise the same images: each image depends only on
    its own noise and label, not on its batch or thread.
    """

    sampler: Sampler
    judge: Judge
    batch_size: int  # most images per generator pass
    pool: ThreadPoolExecutor | None = None  # None: everything in the caller's thread
    workers: int = 1

    def draw(self, seed: int, m: int, labels: torch.Tensor | None):
        """m candidates from noise seeded `seed`: uint8 images (m, 28, 28), their labels (the
        given ones, or the evaluator's) and the judge's verdict, ok (m,) bool."""
        z = torch.randn(m, self.sampler.z_dim, generator=torch.Generator().manual_seed(seed))
        step = min(self.batch_size, math.ceil(m / self.workers))
        starts = range(0, m, step)

        def one(s: int):
            y = None if labels is None else labels[s : s + step]
            images = to_uint8(self.sampler.generate(z[s : s + step], y))
            return (images, *self.judge(images, y))

        parts = list(self.pool.map(one, starts) if self.pool else map(one, starts))
        return tuple(torch.cat([p[i] for p in parts]) for i in range(3))


@contextlib.contextmanager
def drawer(sampler: Sampler, judge: Judge, batch_size: int) -> Iterator[Drawer]:
    """A `Drawer` with one worker per torch thread on a CPU (torch set to one thread each
    meanwhile, restored after); on other devices, one worker."""
    threads = torch.get_num_threads()
    if sampler.device.type != "cpu" or threads == 1:
        yield Drawer(sampler, judge, batch_size)
        return
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(threads, thread_name_prefix="export-draw") as pool:
            yield Drawer(sampler, judge, batch_size, pool, threads)
    finally:
        torch.set_num_threads(threads)


def _draw_size(pending: int, last_rate: float) -> int:
    # Enough candidates to fill the pending slots at the last draw's acceptance, within bounds.
    return min(MAX_DRAW, math.ceil(pending / max(last_rate, MIN_ACCEPTANCE)))


def labelled_block(drawer: Drawer, want: torch.Tensor, seeds: Callable[[int], int],
                   tally: Tally) -> torch.Tensor:
    """Images for the labels `want` (k,), in order: a conditional generator asked for each
    pending label, the passing candidates of a digit filling that digit's pending slots in
    order, until every slot is filled."""
    k = len(want)
    out, filled = torch.empty((k, 28, 28), dtype=torch.uint8), torch.zeros(k, dtype=torch.bool)
    attempt, rate = 0, 1.0
    while not filled.all():
        slots = (~filled).nonzero()[:, 0]
        m = _draw_size(len(slots), rate)
        y = want[slots].repeat(math.ceil(m / len(slots)))[:m]  # the pending labels, cycled
        images, _, ok = drawer.draw(seeds(attempt), m, y)
        tally.count(ok)
        for d in range(10):
            free = slots[want[slots] == d]
            got = (ok & (y == d)).nonzero()[:, 0]
            tally.tried[d] += int((y == d).sum())
            tally.passed[d] += len(got)
            n = min(len(free), len(got))
            out[free[:n]], filled[free[:n]] = images[got[:n]], True
        rate = int(ok.sum()) / m
        tally.check_hopeless(sorted(set(want[~filled].tolist())), drawer.judge.min_confidence,
                             True)
        attempt += 1
    return out


def unlabelled_block(drawer: Drawer, k: int, left: list[int], seeds: Callable[[int], int],
                     tally: Tally) -> tuple[torch.Tensor, torch.Tensor]:
    """k images from an unconditional generator, labelled by the evaluator's prediction and kept
    in the order drawn while their digit's quota `left` (updated) is open."""
    images_out, labels_out, attempt, rate = [], [], 0, 1.0
    while k > 0:
        m = _draw_size(k, rate)
        images, y, ok = drawer.draw(seeds(attempt), m, None)
        open_digits = [d for d in range(10) if left[d] > 0]
        tally.count(ok)
        quota = torch.tensor(left)[y]
        rank = torch.zeros(m, dtype=torch.long)  # rank of each passing candidate in its digit
        for d in open_digits:
            tally.tried[d] += m
            mine = ok & (y == d)
            tally.passed[d] += int(mine.sum())
            rank[mine] = torch.arange(int(mine.sum()))
        take = (ok & (rank < quota)).nonzero()[:, 0][:k]
        images_out.append(images[take])
        labels_out.append(y[take])
        for d in y[take].tolist():
            left[d] -= 1
        k, rate = k - len(take), len(take) / m
        tally.check_hopeless([d for d in range(10) if left[d] > 0], drawer.judge.min_confidence,
                             False)
        attempt += 1
    return torch.cat(images_out), torch.cat(labels_out)


def draw_split(drawer: Drawer, split: str, counts: list[int], seed: int,
               tally: Tally) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The split's images and labels, block by block: uint8 (k, 28, 28) and uint8 (k,).

    A conditional generator's labels are planned up front, shuffled by the seed, so a file reads
    like MNIST; an unconditional one's come in the order drawn (the rarest digits, whose quota
    fills last, gather towards the end: shuffle before training on a prefix).
    """
    n, conditional = sum(counts), bool(drawer.sampler.num_classes)
    if conditional:
        planned = torch.repeat_interleave(torch.arange(10), torch.tensor(counts))
        order = torch.randperm(n, generator=torch.Generator().manual_seed(draw_seed(seed, split)))
        planned = planned[order]
    left = list(counts)
    for b, start in enumerate(range(0, n, BLOCK)):
        k = min(BLOCK, n - start)
        seeds = lambda attempt, b=b: draw_seed(seed, split, b, attempt)
        if conditional:
            want = planned[start : start + k]
            images, labels = labelled_block(drawer, want, seeds, tally), want
        else:
            images, labels = unlabelled_block(drawer, k, left, seeds, tally)
        tally.kept += k
        yield images.numpy(), labels.numpy().astype(np.uint8)


# -- writers -----------------------------------------------------------------------------------


def _finish_file(f) -> None:
    """Flush, fsync and close: a staged file is on the disk before anything is renamed."""
    f.flush()
    os.fsync(f.fileno())
    f.close()


class _IdxStream:
    """One IDX file written twice as the data streams in: plain (what torchvision reads) and
    gzipped (what MNIST's mirrors ship), header first, since the shape is known up front."""

    def __init__(self, path: Path, shape: tuple[int, ...]):
        self.expected, self.written = int(np.prod(shape)), 0
        # Held open across writes, closed by `finish` or `close`: a streaming writer.
        self.plain = open(path, "wb")  # noqa: SIM115
        self.gz = open(path.with_name(path.name + ".gz"), "wb")  # noqa: SIM115
        self.zip = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)  # gzip: mtime 0, no name
        self._write(idx_header(shape))

    def _write(self, data: bytes) -> None:
        self.plain.write(data)
        self.gz.write(self.zip.compress(data))

    def write(self, array: np.ndarray) -> None:
        self.written += array.size
        self._write(array.tobytes())

    def finish(self) -> None:
        if self.written != self.expected:
            raise RuntimeError(f"IDX stream got {self.written} of {self.expected} bytes")
        self.gz.write(self.zip.flush())
        _finish_file(self.plain)
        _finish_file(self.gz)

    def close(self) -> None:
        self.plain.close()
        self.gz.close()


class IdxWriter:
    """A split as `MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]`."""

    def __init__(self, staging: Path, split: str, n: int):
        raw = staging / "MNIST" / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        self.base = raw / IDX_PREFIX[split]
        self.images = _IdxStream(raw / f"{IDX_PREFIX[split]}-images-idx3-ubyte", (n, 28, 28))
        self.labels: list[np.ndarray] = []

    def write(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images.write(images)
        self.labels.append(labels)

    def finish(self) -> None:
        self.images.finish()
        y = np.concatenate(self.labels) if self.labels else np.zeros(0, np.uint8)
        labels = _IdxStream(self.base.with_name(self.base.name + "-labels-idx1-ubyte"), y.shape)
        labels.write(y)
        labels.finish()

    def close(self) -> None:
        self.images.close()


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # no clock in the file
    info.compress_type, info.external_attr = zipfile.ZIP_STORED, 0o644 << 16
    return info


class NpzWriter:
    """A split as `{split}.npz` with `images` uint8 (N, 28, 28) and `labels` uint8 (N,), stored
    uncompressed as `np.savez` does; the images entry streams after its .npy header."""

    def __init__(self, staging: Path, split: str, n: int):
        self.file = open(staging / f"{split}.npz", "wb")  # noqa: SIM115 (held across writes)
        self.zip = zipfile.ZipFile(self.file, "w", zipfile.ZIP_STORED, allowZip64=True)
        big = n * 28 * 28 + 128 > zipfile.ZIP64_LIMIT
        self.entry = self.zip.open(_zip_info("images.npy"), "w", force_zip64=big)
        header = {"descr": "|u1", "fortran_order": False, "shape": (n, 28, 28)}
        np.lib.format.write_array_header_1_0(self.entry, header)
        self.labels: list[np.ndarray] = []

    def write(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.entry.write(images.tobytes())
        self.labels.append(labels)

    def finish(self) -> None:
        self.entry.close()
        y = np.concatenate(self.labels) if self.labels else np.zeros(0, np.uint8)
        buf = io.BytesIO()
        np.lib.format.write_array(buf, y, allow_pickle=False)
        self.zip.writestr(_zip_info("labels.npy"), buf.getvalue())
        self.zip.close()
        _finish_file(self.file)

    def close(self) -> None:
        # After `finish` these are no-ops; on the way out of a failed export they only release
        # the handles (the staged file is deleted, whatever state it is in).
        with contextlib.suppress(OSError, ValueError):
            self.entry.close()
            self.zip.close()
        self.file.close()


class PngWriter:
    """A split as an ImageFolder tree `{split}/{digit}/{index}.png`, index its place in the
    split, zero-padded so that names sort in order."""

    def __init__(self, staging: Path, split: str, n: int):
        self.root, self.index = staging / split, 0
        self.width = max(5, len(str(max(n - 1, 0))))
        for d in range(10):
            (self.root / str(d)).mkdir(parents=True)

    def write(self, images: np.ndarray, labels: np.ndarray) -> None:
        for image, label in zip(images, labels.tolist()):
            buf = io.BytesIO()
            Image.fromarray(image).save(buf, format="PNG")  # no tIME chunk: no clock in it
            with open(self.root / str(label) / f"{self.index:0{self.width}d}.png", "wb") as f:
                f.write(buf.getvalue())
                f.flush()
                os.fsync(f.fileno())
            self.index += 1

    def finish(self) -> None:
        pass

    def close(self) -> None:
        pass


WRITERS = {"idx": IdxWriter, "npz": NpzWriter, "png": PngWriter}


class Background:
    """A writer's `write` on a worker thread, so gzip and the disk overlap the generator (zlib,
    PNG encoding and file writes release the GIL). At most `depth` blocks wait in the queue, so
    memory stays bounded; the first error is raised in the caller at its next call."""

    def __init__(self, writer, depth: int = 2):
        self.writer, self.error = writer, None
        self.queue: queue.Queue = queue.Queue(depth)
        self.thread = threading.Thread(target=self._run, name="export-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (item := self.queue.get()) is not None:
            if self.error is None:  # after an error, only drain, so the caller never blocks
                try:
                    self.writer.write(*item)
                except BaseException as e:  # handed to the caller's thread, raised there
                    self.error = e

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def write(self, images: np.ndarray, labels: np.ndarray) -> None:
        self._raise()
        self.queue.put((images, labels))

    def join(self) -> None:
        """Wait until every queued block is written (or dropped after an error)."""
        if self.thread.is_alive():
            self.queue.put(None)
            self.thread.join()


# -- the export --------------------------------------------------------------------------------


def _judge(sampler: Sampler, options: ExportOptions) -> Judge:
    """The evaluator is needed to label an unconditional generator's samples or to filter."""
    if sampler.num_classes and options.min_confidence is None:
        return Judge(None, None)
    from mnistgan.metrics import load_evaluator

    return Judge(load_evaluator(device=str(sampler.device)), options.min_confidence)


def _write_split(drawer: Drawer, split: str, counts: list[int], options: ExportOptions,
                 staging: Path, keep: int, tally: Tally):
    """Draw and write one split; returns up to `keep` of its (images, labels) for evaluation."""
    n, kept = sum(counts), []
    writer = WRITERS[options.format](staging, split, n)
    bar = tqdm(total=n, desc=f"{split}", unit="img", disable=None, dynamic_ncols=True, leave=False)
    background = Background(writer)
    try:
        for images, labels in draw_split(drawer, split, counts, options.seed, tally):
            background.write(images, labels)
            if keep > sum(len(i) for i, _ in kept):
                kept.append((images, labels))
            bar.update(len(images))
            if drawer.judge.evaluator is not None:
                bar.set_postfix_str(f"accepted {tally.acceptance:.1%}")
        background.join()
        background._raise()
        writer.finish()
    finally:
        background.join()
        writer.close()
        bar.close()
    if not kept:
        return None
    images = torch.from_numpy(np.concatenate([i for i, _ in kept])[:keep])
    return images, torch.from_numpy(np.concatenate([y for _, y in kept])[:keep].astype(np.int64))


def _existing(out: Path, fmt: str, overwrite: bool) -> list[str]:
    """What of an earlier export in `out` to replace; refuses what is not ours to replace."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a directory")
    manifest, old = out / MANIFEST, []
    if manifest.is_file():
        if not overwrite:
            raise UserError(f"--out {out} already holds an export; use --overwrite to replace it")
        try:
            old = list(json.loads(manifest.read_text(encoding="utf-8"))["entries"])
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"--overwrite: {manifest} is not an mnistgan manifest") from None
    for name in ENTRIES[fmt]:
        if (out / name).exists() and name not in old:
            raise UserError(
                f"--out {out}: {out / name} exists and is not part of an mnistgan export; "
                "not replacing it (choose a new folder)"
            )
    return old


def _commit(staging: Path, out: Path, entries: list[str], replaced: list[str]) -> None:
    """Move the finished files into `out`, the manifest last. Renames only: no new space."""
    from mnistgan.atomic import fsync_dir

    (out / MANIFEST).unlink(missing_ok=True)  # first: from here the old export is unfinished
    for name in replaced:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    for name in entries:
        os.rename(staging / name, out / name)
    fsync_dir(out)
    os.replace(staging / MANIFEST, out / MANIFEST)
    fsync_dir(out)


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


def _files(staging: Path, fmt: str, plan: dict[str, list[int]]) -> dict:
    """sha256 of each file written (PNG trees: the count of files per split)."""
    if fmt == "png":
        return {f"{split}/": f"{sum(plan[split])} PNG files" for split in SPLITS}
    paths = sorted(p for p in staging.rglob("*") if p.is_file())
    return {p.relative_to(staging).as_posix(): file_sha256(p) for p in paths}


def _generator_info(sampler: Sampler) -> dict:
    source = Path(sampler.source)
    return {
        "source": sampler.source,
        "checkpoint_sha256": file_sha256(source) if source.is_file() else None,
        "weights_sha256": weights_sha256(sampler.G),
        "conditional": bool(sampler.num_classes),
        "config": sampler.cfg.to_dict(),
    }


def _manifest(sampler, judge, options, plan, tallies, files, seconds, evaluation) -> dict:
    total = sum(sum(c) for c in plan.values())
    candidates = sum(t.candidates for t in tallies.values())
    passed = sum(t.passed_total for t in tallies.values())
    labels_from = ("requested from the class-conditional generator" if sampler.num_classes
                   else "the evaluator's prediction (the generator is unconditional)")
    manifest = {
        "created_by": "mnistgan generate",
        "mnistgan_version": __version__,
        "format": options.format,
        "entries": ENTRIES[options.format],
        "files": files,
        "generator": _generator_info(sampler),
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


def export_dataset(
    sampler: Sampler,
    out: str | os.PathLike,
    options: ExportOptions = ExportOptions(),
    *,
    real_data=None,
    log: Log | None = None,
) -> dict:
    """Write a synthetic MNIST to `out` and return its manifest.

    With `real_data` (a `mnistgan.data.Dataset` of real MNIST) the training split is scored by
    `mnistgan.metrics.evaluate` against the real test set, CAS included, and the report goes
    into the manifest. Nothing appears in `out` unless the whole export succeeds.
    """
    from mnistgan.metrics.evaluation import MIN_SAMPLES

    plan, out, log = check_options(options), Path(out), log or (lambda _: None)
    if real_data is not None and sum(plan["train"]) < MIN_SAMPLES:
        raise UserError(f"--evaluate needs at least {MIN_SAMPLES} training images")
    replaced = _existing(out, options.format, options.overwrite)
    judge = _judge(sampler, options)
    if not sampler.num_classes:
        log("the generator is unconditional: each image is labelled by the evaluator's prediction")
    created = not out.exists()
    staging = out / f".mnistgan-export-{os.getpid()}"
    try:
        staging.mkdir(parents=True)
        start, tallies, kept = time.perf_counter(), {s: Tally() for s in SPLITS}, None
        with drawer(sampler, judge, options.batch_size) as draws:
            for split in SPLITS:
                keep = EVAL_N if real_data is not None and split == "train" else 0
                got = _write_split(draws, split, plan[split], options, staging, keep,
                                   tallies[split])
                kept = got if split == "train" else kept
        seconds = time.perf_counter() - start
        evaluation = _evaluate(kept, real_data, log) if real_data is not None else None
        files = _files(staging, options.format, plan)
        manifest = _manifest(sampler, judge, options, plan, tallies, files, seconds, evaluation)
        with open(staging / MANIFEST, "w", encoding="utf-8") as f:
            f.write(json.dumps(manifest, indent=2) + "\n")
            _finish_file(f)
        _commit(staging, out, ENTRIES[options.format], replaced)
    except OSError as e:
        where = f"{e.filename}: " if e.filename else ""
        raise UserError(f"export to {out} failed ({where}{e.strerror or e}); nothing was "
                        "written") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
    log(summary(manifest, out))
    return manifest


def _evaluate(kept, real_data, log: Log) -> dict:
    from mnistgan.metrics import evaluate, format_report

    images, labels = kept
    log(f"evaluating the first {len(images)} training images against the real test set (CAS)")
    report = evaluate((images, labels), real_data, n=len(images), cas=True, log=log)
    log(format_report(report))
    return report


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
    lines.append(f"manifest: {out / MANIFEST}")
    return "\n".join(lines)
