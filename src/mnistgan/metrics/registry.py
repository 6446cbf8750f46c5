"""The table of metrics: every figure an evaluation report holds, with its label, which way is
better, how it is printed and what it means.

`mnistgan evaluate`'s printed table (`format_report`), the run report's HTML table
(`mnistgan report`), `mnistgan serve`'s model panel and the Trainer's in-training records all
read this table, so a new metric is one `Metric` row here plus the line in
`mnistgan.metrics.evaluation.score` that computes it under the row's key.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    key: str  # its key in the report dict (and in RUN/metrics.json, log.jsonl)
    label: str  # as tables show it
    better: str  # "lower", "higher", or "" (a description, not a score)
    format: str  # str.format spec for one value
    description: str  # what it means, one short phrase

    def show(self, value: object, missing: str = "-") -> str:
        """`value` formatted, or `missing` when there is none."""
        return missing if value is None else self.format.format(value)

    @property
    def note(self) -> str:
        """The description with the direction first: "lower is better; ..."."""
        head = f"{self.better} is better" if self.better else ""
        return "; ".join(part for part in (head, self.description) if part)


METRICS: tuple[Metric, ...] = (
    Metric("fid", "FID", "lower", "{:.3f}", "evaluator features, not Inception"),
    Metric("kid", "KID", "lower", "{:.4f}", "unbiased, so about 0 for real data"),
    Metric("is", "Inception score", "higher", "{:.2f}", "at most 10"),
    Metric("precision", "precision", "higher", "{:.3f}", "share of samples that look real"),
    Metric("recall", "recall", "higher", "{:.3f}", "share of real digits the samples cover"),
    Metric("class_share_min", "class share min", "", "{:.1%}", "fair share is 10%"),
    Metric("class_share_max", "class share max", "", "{:.1%}", ""),
    Metric("class_kl", "KL from uniform", "lower", "{:.4f}",
           "nats; 0 = every digit equally often"),
    Metric("label_agreement", "label agreement", "higher", "{:.2%}",
           "evaluator's digit == requested label"),
    Metric("cas", "CAS", "higher", "{:.2%}",
           "real-test accuracy of a classifier trained on these"),
    Metric("memorisation", "memorisation", "lower", "{:.2%}",
           "share nearer a training image than 99% of real test digits"),
)
BY_KEY = {m.key: m for m in METRICS}


def present(report: dict) -> list[Metric]:
    """The rows of `METRICS` that `report` holds a value for, in table order."""
    return [m for m in METRICS if report.get(m.key) is not None]


__all__ = ["BY_KEY", "METRICS", "Metric", "present"]
