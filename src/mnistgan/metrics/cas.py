"""Classification Accuracy Score (Ravuri & Vinyals 2019): can the samples teach a classifier?

This module owns `classification_accuracy_score`: train the fixed `CAS_RECIPE` classifier from
scratch on a labelled set (generated images with the labels they were asked for), then measure
its accuracy on the real test set. The report puts it beside the same recipe trained on the same
number of real training images, so a gap means the samples lack something real digits have:
fidelity, diversity, or label correctness. About 30 s for 10,000 images on 2 CPU cores.

`recipe_for(n)` is the recipe at scale: up to `SCALE_FROM` images the recipe's own epochs; above,
fewer epochs, so a classifier on 600,000 samples sees each about once in about the same number of
steps as 60,000 seen 8 times. More data, not more training, is what a larger set then measures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from mnistgan.errors import UserError
from mnistgan.metrics.inputs import Samples
from mnistgan.metrics.recipes import CAS_RECIPE, Recipe, classifier_accuracy, fit_classifier

SCALE_FROM = 60_000  # MNIST's training-set size


def recipe_for(n: int, recipe: Recipe = CAS_RECIPE) -> Recipe:
    """The CAS recipe for n training images: above `SCALE_FROM`, that many images' budget."""
    if n <= SCALE_FROM:
        return recipe
    return dataclasses.replace(recipe, epochs=max(1, round(recipe.epochs * SCALE_FROM / n)))


def classification_accuracy_score(
    train: Samples,
    test_images: torch.Tensor,
    test_labels: torch.Tensor,
    *,
    recipe: Recipe = CAS_RECIPE,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> float:
    """Real-test-set accuracy of the CAS classifier trained on labelled `train` samples."""
    if train.labels is None:
        raise UserError("CAS needs labelled samples (a class-conditional generator or labels)")
    net = fit_classifier(train.images, train.labels, recipe, seed=seed, log=log)
    return classifier_accuracy(net, test_images, test_labels)
