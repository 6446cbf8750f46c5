"""Training curves: `save_curves(run_dir)` draws `RUN/log.jsonl` as `RUN/images/curves.png`.

Panels over training steps: the losses (d_loss, g_loss); D's outputs (the mean sigmoid of its
logits on real and on fake batches, where 0.5 means D cannot tell them apart); and FID when the
log holds evaluation records (`--eval-every`). Faint vertical lines mark epoch ends.

matplotlib is driven through its object API on an Agg canvas: no pyplot, no global state, no
display, so the Trainer can call this at every epoch end, headless, from any thread.
"""

from __future__ import annotations

import io
import itertools
import os
from pathlib import Path
from typing import Any

from mnistgan.atomic import write_bytes_atomic
from mnistgan.run import RunDir

Record = dict[str, Any]
COLOURS = {"d_loss": "#c0392b", "g_loss": "#2471a3", "d_real": "#1e8449", "d_fake": "#b9770e",
           "fid": "#6c3483"}


def split_log(records: list[Record]) -> tuple[list[Record], list[Record]]:
    """(training records with losses, evaluation records with FID), each in step order."""
    steps = sorted((r for r in records if "d_loss" in r), key=lambda r: r["step"])
    evals = sorted((r for r in records if "fid" in r), key=lambda r: r["step"])
    return steps, evals


def _epoch_ends(steps: list[Record]) -> list[int]:
    """The step of the last record of each finished epoch: where the epoch counter moves on."""
    return [a["step"] for a, b in itertools.pairwise(steps) if b["epoch"] > a["epoch"]]


def _panel(ax, steps: list[Record], keys: tuple[str, ...], labels: tuple[str, ...], title: str):
    x = [r["step"] for r in steps]
    for key, label in zip(keys, labels, strict=True):
        ax.plot(x, [r[key] for r in steps], color=COLOURS[key], linewidth=1.4, label=label)
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel("step")
    ax.legend(frameon=False, fontsize=9)


def curves_png(records: list[Record]) -> bytes | None:
    """The curves as PNG bytes, or None when the log has no training records yet."""
    # lazy: matplotlib (about a second), only when curves are drawn
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps, evals = split_log(records)
    if not steps:
        return None
    panels = 3 if evals else 2
    fig = Figure(figsize=(4.2 * panels, 3.3), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels)
    _panel(axes[0], steps, ("d_loss", "g_loss"), ("D loss", "G loss"), "Losses")
    _panel(axes[1], steps, ("d_real", "d_fake"), ("D(real)", "D(fake)"), "D's outputs (sigmoid)")
    axes[1].axhline(0.5, color="#999999", linewidth=0.8, linestyle=":")
    axes[1].set_ylim(-0.02, 1.02)
    if evals:
        x, fid = [r["step"] for r in evals], [r["fid"] for r in evals]
        axes[2].plot(x, fid, color=COLOURS["fid"], marker="o", markersize=3.5, linewidth=1.4)
        axes[2].set_title(f"FID ({evals[-1].get('eval_samples', '?')} samples; best "
                          f"{min(fid):.2f})", fontsize=11, loc="left")
        axes[2].set_xlabel("step")
        if max(fid) > 10 * min(fid) > 0:
            axes[2].set_yscale("log")
    last = max(steps[-1]["step"], evals[-1]["step"] if evals else 0)
    for ax in axes:
        ax.set_xlim(0, last * 1.02)
        for step in _epoch_ends(steps):
            ax.axvline(step, color="#dddddd", linewidth=0.8, zorder=0)
        ax.grid(axis="y", color="#eeeeee")
        ax.spines[["top", "right"]].set_visible(False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def save_curves(run_dir: str | os.PathLike) -> Path | None:
    """Write `RUN/images/curves.png` from `RUN/log.jsonl` (atomically); returns its path, or
    None, writing nothing, when there is nothing to draw yet."""
    run = RunDir(run_dir)
    png = curves_png(run.read_log())
    if png is None:
        return None
    run.images.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(run.curves, png)
    return run.curves
