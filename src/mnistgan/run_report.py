"""The page of a run: `write_report(run_dir, data)` writes `RUN/report.html`.

One self-contained file: every picture is a `data:` URI, the style sheet is inline, there is no
script and no link out, so the page opens offline, from an e-mail or a CI artifact. It shows
the run at a glance (preset, steps, time, best FID), the final samples beside real digits, the
metric table with the real-data baseline (`mnistgan.metrics.evaluate` on the run's generator),
the share of each digit, the training curves, the per-epoch grids as an animated GIF, a latent
walk, and the config.

The metrics are cached in `RUN/metrics.json` under a key of everything they depend on (the
checkpoint's sha256, n, CAS, seed, evaluator, data set), so a second report is instant and a
new checkpoint is scored afresh.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from mnistgan._version import __version__
from mnistgan.atomic import write_text_atomic
from mnistgan.errors import UserError
from mnistgan.export import file_sha256
from mnistgan.metrics import ALARM_MAX_SHARE, ALARM_MIN_SHARE, EVALUATOR_SHA256, evaluate
from mnistgan.metrics.registry import METRICS
from mnistgan.plots import save_curves, split_log
from mnistgan.run import RunDir
from mnistgan.sampling import (
    Sampler,
    gif_bytes,
    grid_png,
    latent_walk,
    load_generator,
    sample_grid,
    walk_gif,
)

Log = Callable[[str], None]


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _img(data: bytes, mime: str, alt: str, width: int | None = None, pixelated: bool = True) -> str:
    style = f' style="width:{width}px"' if width else ""
    cls = ' class="px"' if pixelated else ""
    return f'<img{cls}{style} src="{data_uri(data, mime)}" alt="{html.escape(alt)}">'


# -- what goes on the page ---------------------------------------------------------------------


def run_metrics(run: RunDir, sampler: Sampler, data, *, n: int, cas: bool, seed: int,
                log: Log | None = None) -> dict:
    """`mnistgan.metrics.evaluate` on the generator, cached in RUN/metrics.json."""
    source = Path(sampler.source)
    key = {"checkpoint": source.name, "sha256": file_sha256(source) if source.is_file() else None,
           "n": n, "cas": cas, "seed": seed, "evaluator": EVALUATOR_SHA256,
           "dataset": data.fingerprint}
    cached = run.read_metrics(key)
    if cached is not None:
        return cached
    report = evaluate(lambda k: sampler.metric_samples(k, seed), data, n=n, cas=cas, log=log)
    run.write_metrics(key, report)
    return report


def epoch_animation(run: RunDir, total_epochs: int) -> bytes | None:
    """The per-epoch grids as one GIF, each frame captioned with its epoch; the last held."""
    frames = []
    for epoch, path in run.epoch_grids():
        grid = Image.open(path).convert("L")
        frame = Image.new("L", (grid.width, grid.height + 18), 0)
        frame.paste(grid, (0, 0))
        ImageDraw.Draw(frame).text((4, grid.height + 3), f"epoch {epoch}/{total_epochs}", fill=230)
        frames.append(np.asarray(frame))
    if not frames:
        return None
    if len({f.shape for f in frames}) > 1:  # grids of another size (a changed grid_size)
        frames = [f for f in frames if f.shape == frames[-1].shape]
    durations = [300] * (len(frames) - 1) + [2000]
    return gif_bytes(frames, duration_ms=durations)


def final_grid(sampler: Sampler, seed: int) -> bytes:
    """A fresh grid: 10x10, row r digit r, for a conditional generator; else 8x8."""
    images, nrow = sample_grid(sampler, seed)
    return grid_png(images, nrow=nrow)




# -- HTML --------------------------------------------------------------------------------------

CSS = """
:root { --ink:#1c2230; --muted:#5f6b7e; --line:#e4e7ed; --bg:#f4f5f8; --card:#fff;
        --accent:#3451b2; --good:#1e8449; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,
       sans-serif; color:var(--ink); background:var(--bg); }
.wrap { max-width:1120px; margin:0 auto; padding:0 24px; }
header { background:#141a2a; color:#f3f5f9; padding:28px 0 24px; }
header h1 { margin:0; font-size:26px; font-weight:650; letter-spacing:-0.01em; }
header .sub { color:#aab3c5; margin-top:4px; }
.stats { display:flex; flex-wrap:wrap; gap:14px 36px; margin-top:20px; }
.stat span { display:block; color:#aab3c5; font-size:12px; text-transform:uppercase;
             letter-spacing:.06em; }
.stat b { font-size:21px; font-weight:600; font-variant-numeric:tabular-nums; }
section { background:var(--card); border:1px solid var(--line); border-radius:12px;
          padding:20px 24px 24px; margin:22px 0; }
h2 { margin:0 0 14px; font-size:18px; font-weight:650; }
h3 { margin:0 0 8px; font-size:14px; font-weight:600; color:var(--muted); }
.cols { display:grid; grid-template-columns:1fr 1fr; gap:28px; align-items:start; }
.cols.wide-left { grid-template-columns:3fr 2fr; }
figure { margin:0; }
figcaption, .note { color:var(--muted); font-size:13px; margin-top:6px; }
img { max-width:100%; height:auto; display:block; }
img.px { image-rendering:pixelated; image-rendering:crisp-edges; background:#000;
         border-radius:4px; }
table { border-collapse:collapse; width:100%; font-size:14px; }
th, td { padding:7px 10px; border-bottom:1px solid var(--line); text-align:left;
         vertical-align:top; }
th { color:var(--muted); font-weight:600; font-size:12px; text-transform:uppercase;
     letter-spacing:.05em; }
td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
td.num.run { font-weight:600; }
td.meaning { color:var(--muted); font-size:13px; }
td:first-child { white-space:nowrap; }
.alarm { color:#b03a2e; font-weight:600; }
.bars { display:flex; align-items:flex-end; gap:6px; height:150px; position:relative;
        border-bottom:1px solid var(--line); margin-top:10px; }
.bar { flex:1; display:flex; gap:2px; align-items:flex-end; height:100%; }
.bar div { flex:1; border-radius:3px 3px 0 0; }
.bar .gen { background:var(--accent); } .bar .real { background:#c3cad8; }
.fair { position:absolute; left:0; right:0; border-top:1px dashed #98a1b3; }
.digits { display:flex; gap:6px; font-size:12px; color:var(--muted); }
.digits span { flex:1; text-align:center; }
.legend i { display:inline-block; width:10px; height:10px; border-radius:2px; margin:0 4px 0 10px; }
.config { display:grid; grid-template-columns:repeat(4, 1fr); gap:18px; }
.config td { padding:3px 6px; font-size:13px; }
.config td:last-child { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; }
footer { color:var(--muted); font-size:12px; padding:6px 0 36px; }
code { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size:13px; }
"""


def _stat(label: str, value: str) -> str:
    return f'<div class="stat"><span>{html.escape(label)}</span><b>{html.escape(value)}</b></div>'


def header_html(run: RunDir, cfg, sampler: Sampler, log: list[dict], report: dict | None) -> str:
    steps, evals = split_log(log)
    last = steps[-1] if steps else {}
    m, o, t = cfg.model, cfg.optim, cfg.train
    kind = "class-conditional" if m.num_classes else "unconditional"
    sub = f"preset {cfg.preset} · {m.arch} ch={m.ch}, {kind} · {o.loss} loss · {t.precision}"
    stats = [
        _stat("steps", f"{last.get('step', 0):,}"),
        _stat("epochs", f"{len(run.epoch_grids())} / {t.epochs}"),
        _stat("images seen", f"{last.get('images', 0):,}"),
        _stat("training time", f"{last.get('seconds', 0) / 60:.1f} min"),
    ]
    if last.get("seconds"):
        stats.append(_stat("throughput", f"{last['images'] / last['seconds']:,.0f} img/s"))
    if evals:
        best = min(evals, key=lambda r: r["fid"])
        stats.append(_stat(f"best FID in training (step {best['step']})", f"{best['fid']:.2f}"))
    if report is not None:
        stats.append(_stat(f"FID, {report['n']:,} samples", f"{report['fid']:.2f}"))
    return (f'<header><div class="wrap"><h1>{html.escape(run.path.name)}</h1>'
            f'<div class="sub">{html.escape(sub)}</div>'
            f'<div class="stats">{"".join(stats)}</div></div></header>')


def metrics_html(report: dict) -> str:
    real = report.get("real", {})
    rows = []
    for m in METRICS:
        if m.key in report:
            rows.append(f"<tr><td>{html.escape(m.label)}</td>"
                        f'<td class="num run">{m.show(report[m.key], "–")}</td>'
                        f'<td class="num">{m.show(real.get(m.key), "–")}</td>'
                        f'<td class="meaning">{html.escape(m.note)}</td></tr>')
    alarm = '<span class="alarm">yes</span>' if report["collapse_alarm"] else "no"
    rows.append(f'<tr><td>collapse alarm</td><td class="num run">{alarm}</td><td class="num">'
                f'{"yes" if real.get("collapse_alarm") else "no"}</td><td class="meaning">'
                f"a digit under {ALARM_MIN_SHARE:.1%} or over {ALARM_MAX_SHARE:.0%} of the "
                "samples: check for mode collapse</td></tr>")
    n = report["n"]
    return (f"<table><tr><th>metric</th><th>this run</th><th>real data</th><th>meaning</th></tr>"
            f"{''.join(rows)}</table>"
            f'<p class="note">{n:,} generated samples and, for the baseline, {n:,} real training '
            "images, each against the 10,000 real test images, scored by mnistgan's offline MNIST "
            f"evaluator (sha256 {report['evaluator_sha256'][:12]}…).</p>")


def shares_html(report: dict) -> str:
    """Each digit's share of the samples (and of the real baseline) as bars; 10% is fair."""
    real = report.get("real", {}).get("class_share", [None] * 10)
    top = max([*report["class_share"], *(r for r in real if r is not None), 0.2])
    bars = []
    for share, base in zip(report["class_share"], real, strict=True):
        gen = f'<div class="gen" style="height:{100 * share / top:.1f}%" title="{share:.1%}"></div>'
        ref = "" if base is None else (
            f'<div class="real" style="height:{100 * base / top:.1f}%" title="{base:.1%}"></div>')
        bars.append(f'<div class="bar">{gen}{ref}</div>')
    fair = f'<div class="fair" style="bottom:{100 * 0.1 / top:.1f}%"></div>'
    digits = "".join(f"<span>{d}</span>" for d in range(10))
    legend = ('<div class="note legend"><i style="background:var(--accent)"></i>generated'
              '<i style="background:#c3cad8"></i>real · dashed line: fair share, 10%</div>')
    return (f'<h3>Share of each digit (evaluator\'s prediction)</h3><div class="bars">{fair}'
            f'{"".join(bars)}</div><div class="digits">{digits}</div>{legend}')


def nearest_pairs_html(report: dict, sampler: Sampler, data, seed: int) -> str:
    """The memorisation check made visible: the generated samples nearest to a training image,
    each beside that training image, with their pixel distance and the copy threshold."""
    pairs = report.get("nearest_pairs")
    if not pairs:
        return ""
    images = sampler.metric_samples(report["n"], seed)
    images = images[0] if isinstance(images, tuple) else images
    tiles = torch.stack([torch.stack([images[i], data.train_images[j]]) for i, j, _ in pairs])
    grid = grid_png(tiles.reshape(-1, 28, 28), nrow=2 * len(pairs))
    distances = ", ".join(f"{d:.2f}" for _, _, d in pairs)
    return _figure(_img(grid, "image/png", "nearest pairs", 100 * len(pairs)),
                   f"The {len(pairs)} samples nearest to a training image, each followed by that "
                   f"training image; pixel distances {distances} against a copy threshold of "
                   f"{report['memorisation_threshold']:.2f} (99% of real test digits are farther "
                   f"from their nearest training image). {report['memorisation']:.2%} of the "
                   "samples are nearer than the threshold.")


def config_html(cfg: dict) -> str:
    tables = []
    for section in ("model", "optim", "train", "data"):
        rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(json.dumps(v))}</td></tr>"
                       for k, v in cfg.get(section, {}).items())
        tables.append(f"<div><h3>{section}</h3><table>{rows}</table></div>")
    return f'<div class="config">{"".join(tables)}</div>'


def page(title: str, head: str, sections: list[tuple[str, str]], footer: str) -> str:
    body = "".join(f"<section><h2>{html.escape(h)}</h2>{content}</section>"
                   for h, content in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{CSS}</style></head>"
            f'<body>{head}<main class="wrap">{body}</main>'
            f'<footer class="wrap">{footer}</footer></body></html>\n')


def _figure(img: str, caption: str) -> str:
    return f"<figure>{img}<figcaption>{html.escape(caption)}</figcaption></figure>"


def real_grid(data, conditional: bool, seed: int) -> bytes:
    """Real training images in the generated grid's layout: 10 of each digit, row r digit r
    (conditional), or 64 at random."""
    perm = torch.randperm(len(data.train_images), generator=torch.Generator().manual_seed(seed))
    if not conditional:
        return grid_png(data.train_images[perm[:64]], nrow=8)
    labels = data.train_labels[perm]
    idx = torch.cat([perm[labels == d][:10] for d in range(10)])
    return grid_png(data.train_images[idx], nrow=10)


def samples_html(run: RunDir, sampler: Sampler, data, seed: int) -> str:
    rows = "row r is digit r" if sampler.num_classes else "an unconditional generator"
    source = Path(sampler.source)
    name = f"{source.parent.name}/{source.name}" if source.is_file() else sampler.source
    gen = _figure(_img(final_grid(sampler, seed), "image/png", "generated samples", 500),
                  f"Generated now from {name}, seed {seed}; {rows}.")
    if data is not None:
        real = real_grid(data, bool(sampler.num_classes), seed)
        caption = "Real training images in the same layout."
    elif run.real_grid.is_file():
        real, caption = run.real_grid.read_bytes(), "Real training images."
    else:
        return gen
    real_fig = _figure(_img(real, "image/png", "real training images", 500), caption)
    return f'<div class="cols">{gen}{real_fig}</div>'


def training_html(run: RunDir, cfg, sampler: Sampler, seed: int) -> str:
    parts = []
    curves = save_curves(run.path)
    if curves is not None:
        parts.append(_figure(_img(curves.read_bytes(), "image/png", "training curves",
                                  pixelated=False),
                             "Losses and D's outputs as logged (means over each logging window); "
                             "FID from the evaluations during training (--eval-every)."))
    columns = []
    animation = epoch_animation(run, cfg.train.epochs)
    if animation is not None:
        columns.append(_figure(_img(animation, "image/gif", "grids per epoch", 453),
                               "The fixed-noise grid after each epoch, as an animation."))
    walks = 10 if sampler.num_classes else 8
    walk = latent_walk(sampler, walks, 12, seed=seed)
    kept = "each keeps its digit" if sampler.num_classes else "unconditional"
    animated = _figure(_img(walk_gif(walk), "image/gif", "latent walk animation", 500),
                       f"Latent walks: {walks} at once, slerp between two noise vectors ({kept}).")
    grid = _figure(_img(grid_png(walk.reshape(-1, 28, 28), nrow=12), "image/png",
                        "latent walk grid", 500), "The same walks, one per row.")
    columns.append(f"<div>{animated}<br>{grid}</div>")
    parts.append(f'<div class="cols">{"".join(columns)}</div>')
    return "".join(parts)


def write_report(run_dir: str | os.PathLike, data=None, *, n: int = 10_000, cas: bool = False,
                 seed: int = 0, device: str = "cpu", log: Log | None = None) -> Path:
    """Write `RUN/report.html` and return its path. `data` is the real data set the metrics
    compare against (`mnistgan.data.load_dataset()`); without it the metrics are left out."""
    run = RunDir(run_dir)
    if not run.config.is_file():
        raise UserError(f"{run.path}: not a run folder (no config.json)")
    sampler = load_generator(run.path, device=device)
    cfg = sampler.cfg
    report = None
    if data is not None:
        report = run_metrics(run, sampler, data, n=n, cas=cas, seed=seed, log=log)
    sections = [("Samples", samples_html(run, sampler, data, seed))]
    if report is not None:
        quality = f'<div class="cols wide-left"><div>{metrics_html(report)}</div>' \
                  f"<div>{shares_html(report)}</div></div>"
        sections.append(("Quality against real MNIST", quality))
        if report.get("nearest_pairs"):
            sections.append(("Copied from the training set?",
                             nearest_pairs_html(report, sampler, data, seed)))
    sections.append(("Training", training_html(run, cfg, sampler, seed)))
    sections.append(("Config", config_html(cfg.to_dict())))
    command = html.escape(f"mnistgan report {run.path}")
    footer = (f"Made by mnistgan {__version__} with <code>{command}</code>. Self-contained: "
              "every image is embedded; nothing is fetched.")
    head = header_html(run, cfg, sampler, run.read_log(), report)
    write_text_atomic(run.report, page(f"mnistgan run {run.path.name}", head, sections, footer))
    return run.report
