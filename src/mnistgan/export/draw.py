"""Drawing an export's images: seeded noise, the generator in worker threads, labels and the
confidence filter, rejection with a bound.

`draw_split` yields a split block by block (uint8 images and labels); each block's noise is
seeded from (seed, split, block, attempt), so the output depends on neither `--batch-size` nor
the number of threads. `Tally` keeps what rejection cost for the manifest.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from mnistgan.errors import UserError
from mnistgan.sampling import Sampler, to_uint8

BLOCK = 1000  # output images per block: the unit of streaming, noise seeding and rejection
MAX_DRAW = 4 * BLOCK  # most candidates drawn at once when rejection needs extra
MIN_EVIDENCE = 2000  # candidates of a digit tried before its acceptance is judged hopeless
MIN_ACCEPTANCE = 0.01  # below this share accepted, a digit would need > 100 draws per image


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
        seeds = functools.partial(draw_seed, seed, split, b)  # attempt -> that draw's seed
        if conditional:
            want = planned[start : start + k]
            images, labels = labelled_block(drawer, want, seeds, tally), want
        else:
            images, labels = unlabelled_block(drawer, k, left, seeds, tally)
        tally.kept += k
        yield images.numpy(), labels.numpy().astype(np.uint8)
