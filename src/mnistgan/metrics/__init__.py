"""Offline MNIST quality metrics on a small shipped classifier ("the evaluator").

Every metric takes samples as a sample function `fn(n)` (returning uint8 images [n,28,28], or
`(images, labels)`), a uint8 tensor, or an `(images, labels)` pair; never a model class. Real
data comes from the caller (`mnistgan.data.load_dataset()`); real-data figures are cached.

    evaluation.py   the report: evaluate, evaluate_real, fid_score, format_report
    registry.py     METRICS: label, better-is, format and meaning of each report key
    recipes.py      the classifier-training recipes (the evaluator's, CAS's) and their loop
    evaluator.py    the shipped classifier; fid, kid, inception_score, precision_recall,
                    classes (shares, the collapse alarm), cas: one metric each

    from mnistgan.data import load_dataset
    from mnistgan.metrics import evaluate, format_report
    report = evaluate(sample_fn, load_dataset(), n=10_000)
    print(format_report(report))
"""

from mnistgan.metrics.cas import classification_accuracy_score
from mnistgan.metrics.classes import (
    ALARM_MAX_SHARE,
    ALARM_MIN_SHARE,
    ClassBalance,
    check_collapse,
    class_balance,
    label_agreement,
)
from mnistgan.metrics.evaluation import (
    evaluate,
    evaluate_real,
    fid_score,
    format_report,
    real_baseline,
    real_reference,
)
from mnistgan.metrics.evaluator import (
    EVALUATOR_SHA256,
    ClassifierNet,
    Embedding,
    Evaluator,
    load_evaluator,
)
from mnistgan.metrics.fid import FeatureStats, feature_stats, frechet_distance
from mnistgan.metrics.inception_score import inception_score
from mnistgan.metrics.inputs import RealData, Samples, SampleSource, check_samples, draw_samples
from mnistgan.metrics.kid import kernel_distance
from mnistgan.metrics.precision_recall import knn_radii, precision_recall
from mnistgan.metrics.recipes import (
    CAS_RECIPE,
    EVALUATOR_RECIPE,
    Recipe,
    fit_classifier,
    train_and_save_evaluator,
    train_evaluator,
)
from mnistgan.metrics.registry import METRICS, Metric
from mnistgan.metrics.stats_cache import cache_dir

__all__ = [
    "ALARM_MAX_SHARE",
    "ALARM_MIN_SHARE",
    "CAS_RECIPE",
    "EVALUATOR_RECIPE",
    "EVALUATOR_SHA256",
    "ClassBalance",
    "ClassifierNet",
    "Embedding",
    "Evaluator",
    "FeatureStats",
    "METRICS",
    "Metric",
    "RealData",
    "Recipe",
    "SampleSource",
    "Samples",
    "cache_dir",
    "check_collapse",
    "check_samples",
    "class_balance",
    "classification_accuracy_score",
    "draw_samples",
    "evaluate",
    "evaluate_real",
    "feature_stats",
    "fid_score",
    "fit_classifier",
    "format_report",
    "frechet_distance",
    "inception_score",
    "kernel_distance",
    "knn_radii",
    "label_agreement",
    "load_evaluator",
    "precision_recall",
    "real_baseline",
    "real_reference",
    "train_and_save_evaluator",
    "train_evaluator",
]
