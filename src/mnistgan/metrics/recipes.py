"""Fixed, seeded classifier-training recipes: the evaluator's and the one CAS uses.

This module owns `Recipe` (every knob of a training run, frozen), the two recipes the project
uses (`EVALUATOR_RECIPE`, `CAS_RECIPE`), one training loop for both (`fit_classifier`), test
accuracy, and `train_and_save_evaluator`, the body of `mnistgan evaluator train`.

Reproducibility: a seed fixes the initial weights, the batch order and the augmentation. The same
seed, torch version and thread count give the same weights bit for bit on the same CPU; other
hardware or thread counts may differ in the last bits, and so in the file's sha256; the
evaluator is therefore always trained on `EVALUATOR_THREADS` threads.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from mnistgan.metrics.evaluator import EVALUATOR_SHA256, ClassifierNet, Evaluator, save_weights
from mnistgan.metrics.inputs import RealData
from mnistgan.runtime import native_bf16


@dataclass(frozen=True)
class Recipe:
    """How a classifier is trained: AdamW with a one-cycle learning rate, bf16 autocast on CPUs
    with native bf16."""

    epochs: int
    batch_size: int = 128
    max_lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    max_shift: int = 0  # random translation of each image by up to this many pixels; 0 = none
    # Autocast convs and matmuls to bfloat16: ~1.5x faster steps where bf16 is native, several
    # times slower where it is emulated. None: where it is native.
    bf16: bool | None = None


# No label smoothing: it would cap the confidence of every prediction and so the Inception
# score of real digits (about 7.5 instead of near 10 at smoothing 0.05).
EVALUATOR_RECIPE = Recipe(epochs=10, max_shift=2, bf16=True)  # as the shipped file was made
# Float sums split across threads round differently: the shipped file was made on 2 threads, and
# `train_and_save_evaluator` uses 2 whatever the machine, so seed 0 reproduces it bit for bit.
EVALUATOR_THREADS = 2
# CAS judges the training data, so its recipe adds no augmentation of its own.
CAS_RECIPE = Recipe(epochs=8)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """PyTorch's intra-op thread count set to `n` inside, restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def random_shift(images: torch.Tensor, max_shift: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each uint8 image [N,28,28] by its own random offset in -max_shift..max_shift."""
    if max_shift == 0:
        return images
    n, h, w = images.shape
    padded = F.pad(images, (max_shift,) * 4)  # (N, h + 2s, w + 2s), zeros outside
    dy, dx = (torch.randint(0, 2 * max_shift + 1, (2, n, 1), generator=gen)).unbind(0)
    rows = (dy + torch.arange(h))[:, :, None]  # (N, h, 1)
    cols = (dx + torch.arange(w))[:, None, :]  # (N, 1, w)
    return padded[torch.arange(n)[:, None, None], rows, cols]


def resolved_bf16(recipe: Recipe) -> bool:
    """Whether `recipe` trains in bf16 on this CPU."""
    return native_bf16(torch.device("cpu")) if recipe.bf16 is None else recipe.bf16


def fit_classifier(
    images: torch.Tensor,
    labels: torch.Tensor,
    recipe: Recipe,
    *,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> ClassifierNet:
    """Train a fresh `ClassifierNet` on uint8 images [N,28,28] with int labels [N]; eval mode."""
    labels = labels.long()
    bf16 = resolved_bf16(recipe)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ClassifierNet()
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(images) / recipe.batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=recipe.max_lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=recipe.max_lr, total_steps=recipe.epochs * steps_per_epoch
    )
    net.train()
    for epoch in range(recipe.epochs):
        start, total = time.perf_counter(), 0.0
        for idx in torch.randperm(len(images), generator=gen).split(recipe.batch_size):
            batch = random_shift(images[idx], recipe.max_shift, gen)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = net(batch)
            loss = F.cross_entropy(
                logits.float(), labels[idx], label_smoothing=recipe.label_smoothing
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        if log is not None:
            log(
                f"epoch {epoch + 1}/{recipe.epochs}  loss {total / steps_per_epoch:.4f}  "
                f"{time.perf_counter() - start:.1f}s"
            )
    return net.eval()


def classifier_accuracy(net: ClassifierNet, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of images the network classifies as their label."""
    predicted = Evaluator(net, sha256="").embed(images).predicted
    return (predicted == labels.long()).double().mean().item()


def train_evaluator(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    seed: int = 0,
    recipe: Recipe = EVALUATOR_RECIPE,
    log: Callable[[str], None] | None = print,
) -> tuple[ClassifierNet, float]:
    """Train the evaluator on MNIST's training set; return it and its test accuracy."""
    net = fit_classifier(train_images, train_labels, recipe, seed=seed, log=log)
    return net, classifier_accuracy(net, test_images, test_labels)


def train_and_save_evaluator(
    dataset: RealData, out_path: str, seed: int = 0, log: Callable[[str], None] = print
) -> tuple[float, str]:
    """`mnistgan evaluator train`: train on `dataset`, write safetensors, print accuracy and sha256.

    `dataset` is anything with `train_images`, `train_labels`, `test_images` and `test_labels`
    (e.g. `mnistgan.data.load_dataset()`). Returns (test accuracy, file sha256).
    """
    start = time.perf_counter()
    with torch_threads(EVALUATOR_THREADS):  # the shipped weights were made with 2 threads
        net, acc = train_evaluator(dataset.train_images, dataset.train_labels,
                                   dataset.test_images, dataset.test_labels, seed=seed, log=log)
    info = {
        "recipe": repr(asdict(EVALUATOR_RECIPE)),
        "seed": str(seed),
        "test_accuracy": f"{acc:.4f}",
    }
    sha = save_weights(net, out_path, info)
    log(f"test accuracy {acc:.4%}  ({time.perf_counter() - start:.0f}s)")
    log(f"wrote {out_path}  sha256 {sha}")
    if sha == EVALUATOR_SHA256:
        log("bit for bit the shipped evaluator")
    else:
        log(
            "differs from the shipped evaluator; to ship it, copy it over "
            "src/mnistgan/metrics/evaluator.safetensors and set EVALUATOR_SHA256 to its sha256"
        )
    return acc, sha
