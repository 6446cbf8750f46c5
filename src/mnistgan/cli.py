"""The `mnistgan` command: parse flags, build the config, call the library. Nothing else.

Every mistake a user can make (`UserError`, or a flag click rejects) ends as one line on stderr
and exit status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from mnistgan.config import DEFAULT_PRESET, preset_names, preset_summary
from mnistgan.errors import UserError



@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="mnistgan")
def cli() -> None:
    """Train GANs on MNIST and generate synthetic MNIST, offline, on a CPU or GPU.

    \b
    Examples:
      mnistgan train --preset seed --epochs 1     # the tutorial's GAN, one epoch
      mnistgan train --resume runs/seed-000       # continue a stopped run exactly
      mnistgan data                               # where MNIST comes from, verified
    """


TRAIN_EXAMPLES = """Train a GAN and write a run folder (config, log, grids, checkpoints).

\b
Examples:
  mnistgan train --preset seed --epochs 1 --out runs/seed
  mnistgan train --preset seed --max-steps 500 --batch-size 64
  mnistgan train --resume runs/seed --epochs 5     # continue, now to epoch 5
  mnistgan train --preset seed --dry-run           # print the resolved config
  mnistgan train --preset cdcgan --print-config > my.toml   # write a run down as TOML ...
  mnistgan train --config my.toml --seed 1 --tensorboard   # ... rerun it; flags override it
"""


@cli.command(help=TRAIN_EXAMPLES)
@click.option("--preset", type=str, default=None, help=f"Preset name (default {DEFAULT_PRESET}); see `mnistgan presets`.")
@click.option("--out", type=click.Path(path_type=Path), default=None, help="Run folder (default runs/PRESET-NNN, a new number each run).")
@click.option("--resume", type=click.Path(path_type=Path), default=None, help="Continue the run in this folder from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run folder given by --out (the old run is set aside, and deleted only once the new run has its first checkpoint).")
@click.option("--epochs", type=int, default=None, help="Number of epochs (a pass over the training set each).")
@click.option("--max-steps", type=int, default=None, help="Stop at this total step count of the run (across resumes).")
@click.option("--max-minutes", type=float, default=None, help="Stop after this many minutes of training (across resumes).")
@click.option("--batch-size", type=int, default=None, help="Images per batch, for D and for G.")
@click.option("--lr", type=float, default=None, help="Adam learning rate of both G and D.")
@click.option("--seed", type=int, default=None, help="Seed of weights, noise and data order.")
@click.option("--device", type=str, default=None, help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")
@click.option("--dataset", type=str, default=None, help="mnist, fashion-mnist, or idx (any folder of MNIST-format IDX files).")
@click.option("--data-dir", type=str, default=None, help="Folder with IDX files, and where found data is cached (default ./data).")
@click.option("--normalize", type=click.Choice(["symmetric", "tutorial"]), default=None, help="Pixel scaling: symmetric [-1,1] (default) or the tutorial's mean/std (its bug).")
@click.option("--log-every", type=int, default=None, help="Steps between log lines (default 100, as the tutorial).")
@click.option("--checkpoint-every", type=int, default=None, help="Steps between checkpoints (each epoch end also saves one).")
@click.option("--snapshot-every", type=int, default=None, help="Epochs between kept snapshots in checkpoints/.")
@click.option("--eval-every", type=int, default=None, help="Steps between FID evaluations (kept in log.jsonl; best.pt keeps the best). 0: off.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default=None, help="auto (bf16 where the hardware has it: AMX/AVX-512-BF16 CPUs, Ampere+ GPUs; else fp32), fp32, bf16 autocast, or fp16 autocast with loss scaling (GPUs).")
@click.option("--memory-format", type=click.Choice(["auto", "channels_last", "contiguous"]), default=None, help="Layout of G's and D's convolutions; auto: channels-last on CPUs, and on GPUs in bf16/fp16.")
@click.option("--compile/--no-compile", default=None, help="torch.compile G and D for training (minutes of compiling first; see README, Speed).")
@click.option("--on-nan", type=click.Choice(["stop", "rollback"]), default=None, help="A NaN or inf loss or gradient: stop (default; the last good checkpoint is kept), or roll back to it with halved learning rates (at most 3 times).")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit without training.")
@click.option("--config", type=click.Path(path_type=Path), default=None, help="A TOML (or YAML) file with the keys of RUN/config.json (preset, [data], [model], [optim], [train]); flags override it.")
@click.option("--print-config", is_flag=True, help="Print the resolved config as TOML (a file --config reads back) and exit without training.")
@click.option("--tensorboard", is_flag=True, help="Also write scalars and the fixed-noise grids to RUN/tensorboard/ (needs the tensorboard package); a resume keeps writing there.")
def train(**opts: Any) -> None:
    from mnistgan import session  # lazy: torch, for this command only

    outputs = {k: opts.pop(k) for k in ("dry_run", "print_config", "tensorboard")}
    if outputs["dry_run"] or outputs["print_config"]:
        cfg = session.plan(**opts, create=False).cfg
        if outputs["print_config"]:
            from mnistgan.config_file import to_toml  # lazy: tomli-w, for this flag only

            click.echo(to_toml(cfg), nl=False)
        else:
            click.echo(json.dumps(cfg.to_dict(), indent=2))
        return
    result = session.train(**opts, tensorboard=outputs["tensorboard"], log=click.echo)
    if result.outcome.ended == "interrupted":
        if result.run is not None:
            click.echo(session.interrupted_message(result), err=True)
        sys.exit(result.exit_status)


@cli.command()
@click.option("--dataset", type=str, default="mnist", show_default=True, help="mnist, fashion-mnist or idx.")
@click.option("--data-dir", type=str, default="data", show_default=True, help="Folder searched first, and where found data is cached.")
def data(dataset: str, data_dir: str) -> None:
    """Show where the data comes from, verify it, and count it.

    \b
    Example:
      mnistgan data --data-dir data
    """
    from mnistgan.data import load_dataset

    ds = load_dataset(dataset, data_dir, log=click.echo)
    for split, labels in (("train", ds.train_labels), ("test", ds.test_labels)):
        if labels is not None:
            counts = " ".join(str(c) for c in labels.bincount(minlength=10).tolist())
            click.echo(f"{split}: {len(labels)} images; per digit 0-9: {counts}")
    click.echo(f"fingerprint: {ds.fingerprint}")


SAMPLE_HELP = """Draw a grid of samples to a PNG, or a latent walk (--interpolate).

A conditional generator gives a 10x10 grid, one row per digit (or --digit D for one digit); an
unconditional one gives an 8x8 grid. --interpolate writes a walk instead: each row slerps between
two random latents (a conditional row keeps its digit: row r is digit r), columns are steps; the
animated GIF beside the PNG (OUT with .gif) plays every walk at once.

\b
Examples:
  mnistgan sample --checkpoint runs/cdcgan-000 --out grid.png
  mnistgan sample --checkpoint runs/cdcgan-000/checkpoints/best.pt --digit 7 --seed 3 --out sevens.png
  mnistgan sample --checkpoint runs/cdcgan-000 --interpolate --out walk.png   # + walk.gif
  mnistgan sample --checkpoint runs/cdcgan-000 --interpolate --digit 3 --walks 6 --steps 16 --out walk3.png
"""


@cli.command(help=SAMPLE_HELP)
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, help="Run folder or checkpoint file.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="PNG file to write.")
@click.option("--digit", type=int, default=None, help="Draw only this digit (conditional generators).")
@click.option("--seed", type=int, default=0, show_default=True, help="Noise seed.")
@click.option("--device", type=str, default="cpu", show_default=True, help="Device to sample on.")
@click.option("--interpolate", is_flag=True, help="Write a latent walk (grid PNG + animated GIF beside it) instead of a grid.")
@click.option("--walks", type=int, default=None, help="With --interpolate: walks, one per row (default 10, one per digit, or 8 unconditional).")
@click.option("--steps", type=int, default=None, help="With --interpolate: steps per walk, the columns (default 10).")
def sample(checkpoint: Path | None, out: Path, digit: int | None, seed: int, device: str,
           interpolate: bool, walks: int | None, steps: int | None) -> None:
    from mnistgan.runtime import resolve_device
    from mnistgan.sampling import load_generator, save_grid

    if not interpolate and (walks is not None or steps is not None):
        raise UserError("--walks and --steps go with --interpolate")
    sampler = load_generator(checkpoint, device=str(resolve_device(device)))
    if interpolate:
        _sample_walk(sampler, out, digit, seed, walks, steps or 10)
        return
    if sampler.num_classes:
        labels = _grid_labels(digit)
        images, nrow = sampler.sample(len(labels), labels, seed=seed), 10
    elif digit is not None:
        raise UserError("--digit needs a conditional generator; this one is unconditional")
    else:
        images, nrow = sampler.sample(64, seed=seed), 8
    _check_writable(out)
    save_grid(out, images, nrow)
    click.echo(f"wrote {out} ({len(images)} samples from {sampler.source})")


def _sample_walk(sampler, out: Path, digit: int | None, seed: int, walks: int | None,
                 steps: int) -> None:
    from mnistgan.sampling import latent_walk, save_walk

    if digit is not None and not 0 <= digit <= 9:
        raise UserError(f"--digit must be 0-9, got {digit}")
    walks = (10 if sampler.num_classes else 8) if walks is None else walks
    _check_writable(out)
    png, gif = save_walk(out, latent_walk(sampler, walks, steps, seed=seed, digit=digit))
    click.echo(f"wrote {png} and {gif} ({walks} walks x {steps} steps, slerp, from {sampler.source})")


def _grid_labels(digit: int | None):
    """Labels of a 10x10 grid: row r is digit r, or every cell `digit`."""
    import torch

    if digit is not None and not 0 <= digit <= 9:
        raise UserError(f"--digit must be 0-9, got {digit}")
    return torch.full((100,), digit) if digit is not None else torch.arange(100) // 10


def _check_writable(path: Path, flag: str = "--out") -> None:
    if not path.parent.exists():
        raise UserError(f"{flag} {path}: folder {path.parent} does not exist")
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a directory")


def _write_json(path: Path, data: dict) -> None:
    from mnistgan.atomic import write_text_atomic

    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
    click.echo(f"wrote {path}")


EVALUATE_HELP = """Score samples with the offline MNIST evaluator, beside real data's figures.

At most one of --checkpoint, --samples or --real; with none, the bundled generator is scored.
Prints a table and, with --json, writes
the report (keys fid, kid, is, precision, recall, class_share, label_agreement, cas, cas_at,
memorisation, nearest_pairs, real). Memorisation is the share of samples nearer (in pixels) to a
training image than 99% of real test digits are: about 1% for new digits.

\b
Examples:
  mnistgan evaluate --real
  mnistgan evaluate --cas                          # the bundled generator
  mnistgan evaluate --checkpoint runs/cdcgan-000 --cas --json report.json
  mnistgan evaluate --samples synth.npz --n 5000
  mnistgan evaluate --cas --cas-n 60000,600000     # CAS at scale, beside all 60,000 real images
"""


@cli.command(help=EVALUATE_HELP)
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, help="Run folder or checkpoint to sample from (default: the bundled generator).")
@click.option("--samples", type=click.Path(path_type=Path), default=None, help="An .npz (images, labels) or a folder of IDX files.")
@click.option("--real", is_flag=True, help="Score real training images: the baseline itself.")
@click.option("--n", type=int, default=10_000, show_default=True, help="Number of samples.")
@click.option("--cas", is_flag=True, help="Also train a classifier on the samples (CAS; needs labels).")
@click.option("--cas-n", type=str, default=None, help="CAS at scale: comma-separated sample counts, e.g. 60000,600000; a classifier trained on each many fresh samples, beside real data's.")
@click.option("--no-memorisation", is_flag=True, help="Skip the memorisation check (nearest training image of every sample).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Write the report as JSON here.")
@click.option("--seed", type=int, default=0, show_default=True, help="Noise seed for --checkpoint.")
@click.option("--data-dir", type=str, default="data", show_default=True, help="Where MNIST is found or cached.")
@click.option("--device", type=str, default="cpu", show_default=True, help="Device to sample on.")
def evaluate(checkpoint, samples, real, n, cas, cas_n, no_memorisation, json_out, seed, data_dir,
             device) -> None:
    from mnistgan.data import load_dataset
    from mnistgan.metrics import evaluate as score
    from mnistgan.metrics import evaluate_real, format_report

    if sum([checkpoint is not None, samples is not None, real]) > 1:
        raise UserError("give at most one of --checkpoint, --samples or --real")
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    sizes = _counts(cas_n, "--cas-n") if cas_n else ()
    if json_out is not None:
        _check_writable(json_out, "--json")
    data = load_dataset("mnist", data_dir, log=click.echo)
    if real:
        report = evaluate_real(data, n=n, cas=cas, log=click.echo)
    else:
        source = _sample_source(checkpoint, samples, seed, device)
        report = score(source, data, n=n, cas=cas, log=click.echo, cas_n=sizes,
                       memorise=not no_memorisation)
    click.echo(format_report(report))
    if json_out is not None:
        _write_json(json_out, report)


def _counts(text: str, flag: str) -> tuple[int, ...]:
    """'60000,600000' -> (60000, 600000); anything else is a one-line error."""
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise UserError(f"{flag} must be comma-separated whole numbers, got {text!r}") from None
    if any(c < 50 for c in counts):
        raise UserError(f"{flag} counts must be at least 50, got {text!r}")
    return counts


def _sample_source(checkpoint: Path | None, samples: Path | None, seed: int, device: str):
    """What `evaluate` scores: a sample function over a generator, or images from a file."""
    from mnistgan.data import load_samples
    from mnistgan.runtime import resolve_device
    from mnistgan.sampling import load_generator

    if samples is not None:
        images, labels = load_samples(samples)
        return images if labels is None else (images, labels)
    sampler = load_generator(checkpoint, device=str(resolve_device(device)))
    return lambda n: sampler.metric_samples(n, seed)  # conditional: every digit equally often


GENERATE_HELP = """Generate a synthetic MNIST: labelled images in MNIST's own file formats.

Writes OUT/MNIST/raw/ (IDX files, plain and .gz, where torchvision.datasets.MNIST(OUT) and
`--dataset idx --data-dir OUT` read them), or OUT/{train,test}.npz (images uint8 [N,28,28],
labels uint8 [N]), or an ImageFolder tree OUT/{train,test}/DIGIT/INDEX.png; then
OUT/manifest.json, last: the export is complete when it exists. Nothing appears in OUT unless
the whole export succeeds. The same generator, seed and flags give byte-identical files.

--labels balanced gives equal counts (the remainder to the lowest digits), mnist MNIST's own
label counts scaled to the split, a list of ten counts (digits 0-9) the training split exactly
(leave out --n-train) and the test split in the same proportions. An unconditional generator's
images are labelled by the evaluator's prediction, and the counts are met by rejection.

\b
Examples:
  mnistgan generate --checkpoint runs/cdcgan-000 --out synth
  python -c "import torchvision; print(torchvision.datasets.MNIST('synth'))"
  mnistgan generate --checkpoint runs/cdcgan-000 --min-confidence 0.9 --evaluate --out synth-clean
  mnistgan generate --checkpoint runs/cdcgan-000 --format png --n-train 1000 --n-test 0 --out synth-png
  mnistgan generate --checkpoint runs/cdcgan-000 --labels 0,0,0,500,0,0,0,0,500,0 --out threes-eights
"""


@cli.command(help=GENERATE_HELP)
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, help="Run folder or checkpoint file (default: the bundled generator).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="Folder to write the data set into.")
@click.option("--n-train", type=int, default=None, help="Training images (default 60000; a --labels list sets it).")
@click.option("--n-test", type=int, default=10_000, show_default=True, help="Test images (0: none).")
@click.option("--labels", type=str, default="balanced", show_default=True, help="balanced, mnist, or ten comma-separated counts for digits 0-9.")
@click.option("--format", "fmt", type=click.Choice(["idx", "npz", "png"]), default="idx", show_default=True, help="idx (MNIST's files), npz, or png (ImageFolder tree).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of noise and label order.")
@click.option("--min-confidence", type=float, default=None, help="Keep only images the evaluator gives at least this probability (0-1) for their label.")
@click.option("--evaluate", is_flag=True, help="Score the training split against real MNIST (metrics and CAS) into the manifest.")
@click.option("--data-dir", type=str, default="data", show_default=True, help="Where real MNIST is found or cached (for --evaluate).")
@click.option("--batch-size", type=int, default=1000, show_default=True, help="Images per generator pass (speed and memory; never changes the output).")
@click.option("--device", type=str, default="cpu", show_default=True, help="Device to generate on.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier export in --out.")
def generate(checkpoint, out, n_train, n_test, labels, fmt, seed, min_confidence, evaluate,
             data_dir, batch_size, device, overwrite) -> None:
    from mnistgan.data import load_dataset
    from mnistgan.export import ExportOptions, check_options, export_dataset
    from mnistgan.runtime import resolve_device
    from mnistgan.sampling import load_generator

    options = ExportOptions(n_train=n_train, n_test=n_test, labels=labels, format=fmt, seed=seed,
                            min_confidence=min_confidence, batch_size=batch_size,
                            overwrite=overwrite)
    check_options(options)  # flag mistakes before anything is loaded
    sampler = load_generator(checkpoint, device=str(resolve_device(device)))
    click.echo(f"generator: {sampler.source}")
    real = load_dataset("mnist", data_dir, log=click.echo) if evaluate else None
    export_dataset(sampler, out, options, real_data=real, log=click.echo)


EXPORT_ONNX_HELP = """Export the generator to ONNX, for onnxruntime in any language.

Inputs `z` float32 (N, z_dim) and, for a conditional generator, `label` int64 (N,); output
`images` float32 (N, 1, 28, 28) in [-1, 1]; N is free. The graph is the generator in eval mode
in float32 (the EMA weights when the run kept them), whatever precision it trained in. Needs the
onnx extra: pip install 'mnistgan[onnx]'.

\b
Examples:
  mnistgan export-onnx --checkpoint runs/cdcgan-000 --out generator.onnx
  mnistgan export-onnx --out generator.onnx      # the bundled generator
"""


@cli.command("export-onnx", help=EXPORT_ONNX_HELP)
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, help="Run folder or checkpoint file (default: the generator bundled with mnistgan).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="ONNX file to write.")
def export_onnx(checkpoint: Path | None, out: Path) -> None:
    from mnistgan.onnx_export import export_generator, require_onnx
    from mnistgan.sampling import load_generator

    require_onnx()  # before any weights are read
    sampler = load_generator(checkpoint, device="cpu")
    info = export_generator(sampler, out)
    inputs = "z (N, {})".format(info["z_dim"]) + (", label (N,)" if info["num_classes"] else "")
    click.echo(f"wrote {out}: {inputs} -> images (N, 1, 28, 28) in [-1, 1], "
               f"opset {info['opset']}, from {sampler.source}")


SERVE_HELP = """Serve a page to play with a generator, and its JSON/PNG API, on localhost.

The page: pick a digit, a seed and a count and see the grid at once, a latent interpolation
between two seeds, a download link, and the model's config and metrics. The API:
GET /api/sample?digit=D&n=N&seed=S (a PNG grid), /api/walk (a GIF), /api/model (JSON),
described in /openapi.json. It binds to 127.0.0.1 unless --host says otherwise.

\b
Examples:
  mnistgan serve                                   # the bundled generator, http://127.0.0.1:8000/
  mnistgan serve --checkpoint runs/cdcgan-000 --port 8080
  curl -o sevens.png 'http://127.0.0.1:8000/api/sample?digit=7&n=64&seed=3'
"""


@cli.command(help=SERVE_HELP)
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None, help="Run folder or checkpoint file (default: the bundled generator).")
@click.option("--host", type=str, default="127.0.0.1", show_default=True, help="Address to listen on; 0.0.0.0 opens it to the network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to listen on (0: any free port, printed at start).")
@click.option("--device", type=str, default="cpu", show_default=True, help="Device to sample on.")
def serve(checkpoint: Path | None, host: str, port: int, device: str) -> None:
    from mnistgan.runtime import resolve_device
    from mnistgan.serve import serve as run_server

    run_server(checkpoint, host=host, port=port, device=str(resolve_device(device)),
               log=lambda line: click.echo(line, err=line.startswith("warning")))


REPORT_HELP = """Write RUN/report.html: one self-contained page about a run, viewable offline.

The run at a glance, final samples beside real digits, the metric table with real data's
figures (`mnistgan evaluate` on the run's generator, cached in RUN/metrics.json), each digit's
share, training curves (also RUN/images/curves.png), the per-epoch grids as an animation, a
latent walk and the config. Every image is embedded: nothing is fetched when it opens.

\b
Examples:
  mnistgan report runs/cdcgan-000
  mnistgan report runs/cdcgan-000 --n 2000 --cas
  mnistgan report runs/cdcgan-000 --n 0        # no metrics, so no real data needed
"""


@cli.command(help=REPORT_HELP)
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--n", type=int, default=10_000, show_default=True, help="Samples for the metrics (0: leave the metrics out).")
@click.option("--cas", is_flag=True, help="Add CAS to the metrics (trains a small classifier, about 30 s).")
@click.option("--seed", type=int, default=0, show_default=True, help="Noise seed of the samples shown and scored.")
@click.option("--dataset", type=click.Choice(["mnist", "idx"]), default="mnist", show_default=True, help="The real data the metrics compare against.")
@click.option("--data-dir", type=str, default="data", show_default=True, help="Where the real data is found or cached.")
@click.option("--device", type=str, default="cpu", show_default=True, help="Device to sample on.")
def report(run: Path, n: int, cas: bool, seed: int, dataset: str, data_dir: str, device: str) -> None:
    from mnistgan.data import load_dataset
    from mnistgan.run_report import write_report
    from mnistgan.runtime import resolve_device

    if n < 0:
        raise UserError(f"--n must be at least 0, got {n}")
    data = load_dataset(dataset, data_dir, log=click.echo) if n else None
    path = write_report(run, data, n=n, cas=cas, seed=seed, device=str(resolve_device(device)),
                        log=click.echo)
    click.echo(f"wrote {path}")


@cli.group()
def evaluator() -> None:
    """The offline MNIST classifier behind every metric."""


@evaluator.command("train")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="safetensors file to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Training seed.")
@click.option("--data-dir", type=str, default="data", show_default=True, help="Where MNIST is found or cached.")
def evaluator_train(out: Path, seed: int, data_dir: str) -> None:
    """Retrain the evaluator (about 3.5 minutes on 2 CPU cores); seed 0 on 2 threads
    reproduces the shipped weights bit for bit.

    \b
    Example:
      mnistgan evaluator train --out evaluator.safetensors
    """
    import torch

    from mnistgan.data import load_dataset
    from mnistgan.metrics import train_and_save_evaluator

    _check_writable(out)
    torch.set_num_threads(2)  # the shipped weights were made with 2 threads
    train_and_save_evaluator(load_dataset("mnist", data_dir, log=click.echo), out, seed=seed,
                             log=click.echo)


BENCH_EXAMPLES = """Training and sampling speed beside the seed tutorial's own loop, in one run.

Prints a Markdown table: images/s, the ratio to the tutorial's loop, FLOPs per image, GFLOP/s
and the share of this device's measured matmul peak. Rows take turns in timed windows; each
figure is the median of --repeats windows. Needs MNIST as `mnistgan train` does.

\b
Examples:
  mnistgan bench                                  # about 5 minutes on a 2-core CPU
  mnistgan bench --seconds 3 --repeats 1 --no-generation   # a quick look
  mnistgan bench --device cuda --precision fp32,bf16,fp16 --compile both --json gpu.json
"""


def _csv(kind, name: str, text: str, allowed=None) -> tuple:
    try:
        values = tuple(kind(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"{name} {text!r}: expected a comma-separated list") from None
    bad = [v for v in values if allowed is not None and v not in allowed]
    if not values or bad or (kind is int and min(values) < 1):
        raise UserError(f"{name} {text!r}: expected a comma-separated list"
                        + (f" of {', '.join(allowed)}" if allowed else " of positive numbers"))
    return values


def _bench_precisions(text: str, device) -> tuple[str, ...]:
    from mnistgan.runtime import native_bf16

    if text == "auto":
        return ("fp32", "bf16") if native_bf16(device) else ("fp32",)
    return _csv(str, "--precision", text, ("fp32", "bf16", "fp16"))


@cli.command(help=BENCH_EXAMPLES)
@click.option("--seconds", type=click.FloatRange(min=0.1), default=10.0, show_default=True, help="Length of each timed window.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True, help="Timed windows per row, after one warm-up window (the median is shown).")
@click.option("--device", type=str, default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--precision", "precisions", type=str, default="auto", show_default=True, help="Comma-separated precisions for the mnistgan rows (fp32, bf16, fp16); auto: fp32, and bf16 where the device has it natively.")
@click.option("--seed-batch-sizes", type=str, default="16,64", show_default=True, help="Comma-separated batch sizes for the seed preset's rows.")
@click.option("--compile", "compiled", type=click.Choice(["off", "on", "both"]), default="off", show_default=True, help="Default-preset rows eager, compiled (torch.compile), or both.")
@click.option("--generation/--no-generation", default=True, show_default=True, help="Also time generation and the evaluator's report.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None, help="Also write every figure (each window's rate too) to this JSON file.")
@click.option("--report-n", type=click.IntRange(min=50), default=10_000, show_default=True, help="Samples in the timed evaluator report.")
@click.option("--dataset", type=click.Choice(["mnist", "idx"]), default="mnist", show_default=True, help="mnist, or idx (MNIST-format files in --data-dir/MNIST/raw).")
@click.option("--data-dir", type=str, default="data", show_default=True, help="Where MNIST is, or is cached.")
def bench(seconds, repeats, device, precisions, seed_batch_sizes, compiled, generation,
          json_out, report_n, dataset, data_dir) -> None:
    from mnistgan.bench import Options, run, table
    from mnistgan.data import load_dataset
    from mnistgan.runtime import resolve_device

    opts = Options(
        device=resolve_device(device), data_dir=data_dir, seconds=seconds, repeats=repeats,
        precisions=_bench_precisions(precisions, resolve_device(device)),
        seed_batch_sizes=_csv(int, "--seed-batch-sizes", seed_batch_sizes),
        compile={"off": (False,), "on": (True,), "both": (False, True)}[compiled],
        generation=generation, eval_n=report_n,
    )
    if json_out is not None:
        _check_writable(json_out, "--json")
    data = load_dataset(dataset, data_dir, log=click.echo)
    result = run(opts, data, progress=lambda line: click.echo(line, err=True))
    click.echo(table(result))
    if json_out is not None:
        _write_json(json_out, result)


@cli.command()
def presets() -> None:
    """List the shipped presets, one line each."""
    for name in preset_names():
        click.echo(f"{name:10s} {preset_summary(name)}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI, turning user mistakes into one line and exit status 2."""
    try:
        cli.main(args=argv, prog_name="mnistgan", standalone_mode=False)
    except UserError as e:
        click.echo(f"mnistgan: error: {e}", err=True)
        sys.exit(2)
    except click.UsageError as e:
        click.echo(f"mnistgan: error: {e.format_message()}", err=True)
        sys.exit(2)
    except OSError as e:  # a full disk, a read-only folder: the file and the reason, one line
        if e.errno is None:
            raise
        where = f"{e.filename}: " if e.filename else ""
        click.echo(f"mnistgan: error: {where}{e.strerror or e}", err=True)
        sys.exit(2)
    except click.exceptions.Abort:
        click.echo("mnistgan: aborted", err=True)
        sys.exit(130)
