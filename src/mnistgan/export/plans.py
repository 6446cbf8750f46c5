"""Label plans: how many images of each digit each split of an export gets.

`plan_counts` turns `--labels` (balanced | mnist | ten comma-separated counts) and the split
sizes into ten counts per split; nothing here draws or writes.
"""

from __future__ import annotations

from mnistgan.errors import UserError

SPLITS = ("train", "test")
DEFAULT_N = {"train": 60_000, "test": 10_000}
# MNIST's own label counts per digit 0-9, which `--labels mnist` scales to the split size.
MNIST_COUNTS = {
    "train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    "test": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
}


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
