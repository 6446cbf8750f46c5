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

from mnistgan.atomic import check_writable, write_json_atomic
from mnistgan.cli_generator import COMMANDS
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
@click.option("--preset", type=str, default=None, help=f"Preset name (default {DEFAULT_PRESET}); "
                                                       f"see `mnistgan presets`.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run folder (default runs/PRESET-NNN, a new number each run).")
@click.option("--resume", type=click.Path(path_type=Path), default=None,
              help="Continue the run in this folder from its last checkpoint.")
@click.option("--overwrite", is_flag=True, help="Replace an existing run folder given by --out "
                                                "(the old run is set aside, and deleted only once"
                                                " the new run has its first checkpoint).")
@click.option("--epochs", type=int, default=None, help="Number of epochs (a pass over the "
                                                       "training set each).")
@click.option("--max-steps", type=int, default=None, help="Stop at this total step count of the "
                                                          "run (across resumes).")
@click.option("--max-minutes", type=float, default=None, help="Stop after this many minutes of "
                                                              "training (across resumes).")
@click.option("--batch-size", type=int, default=None, help="Images per batch, for D and for G.")
@click.option("--lr", type=float, default=None, help="Adam learning rate of both G and D.")
@click.option("--seed", type=int, default=None, help="Seed of weights, noise and data order.")
@click.option("--device", type=str, default=None, help="auto (cuda, then mps, then cpu), cpu, "
                                                       "cuda, cuda:N or mps.")
@click.option("--dataset", type=str, default=None, help="mnist, fashion-mnist, or idx (any folder"
                                                        " of MNIST-format IDX files).")
@click.option("--data-dir", type=str, default=None, help="Folder with IDX files, and where found "
                                                         "data is cached (default ./data).")
@click.option("--normalize", type=click.Choice(["symmetric", "tutorial"]), default=None,
              help="Pixel scaling: symmetric [-1,1] (default) or the tutorial's mean/std (its "
                   "bug).")
@click.option("--log-every", type=int, default=None, help="Steps between log lines (default 100, "
                                                          "as the tutorial).")
@click.option("--checkpoint-every", type=int, default=None, help="Steps between checkpoints (each"
                                                                 " epoch end also saves one).")
@click.option("--snapshot-every", type=int, default=None, help="Epochs between kept snapshots in "
                                                               "checkpoints/.")
@click.option("--eval-every", type=int, default=None, help="Steps between FID evaluations (kept "
                                                           "in log.jsonl; best.pt keeps the "
                                                           "best). 0: off.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16", "fp16"]), default=None,
              help="auto (bf16 where the hardware has it: AMX/AVX-512-BF16 CPUs, Ampere+ GPUs; "
                   "else fp32), fp32, bf16 autocast, or fp16 autocast with loss scaling (GPUs).")
@click.option("--memory-format", type=click.Choice(["auto", "channels_last", "contiguous"]),
              default=None,
              help="Layout of G's and D's convolutions; auto: channels-last on CPUs, and on GPUs "
                   "in bf16/fp16.")
@click.option("--compile/--no-compile", default=None, help="torch.compile G and D for training "
                                                           "(minutes of compiling first; see "
                                                           "README, Speed).")
@click.option("--on-nan", type=click.Choice(["stop", "rollback"]), default=None,
              help="A NaN or inf loss or gradient: stop (default; the last good checkpoint is "
                   "kept), or roll back to it with halved learning rates (at most 3 times).")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit without "
                                              "training.")
@click.option("--config", type=click.Path(path_type=Path), default=None,
              help="A TOML (or YAML) file with the keys of RUN/config.json (preset, [data], "
                   "[model], [optim], [train]); flags override it.")
@click.option("--print-config", is_flag=True, help="Print the resolved config as TOML (a file "
                                                   "--config reads back) and exit without "
                                                   "training.")
@click.option("--tensorboard", is_flag=True, help="Also write scalars and the fixed-noise grids "
                                                  "to RUN/tensorboard/ (needs the tensorboard "
                                                  "package); a resume keeps writing there.")
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
@click.option("--dataset", type=str, default="mnist", show_default=True,
              help="mnist, fashion-mnist or idx.")
@click.option("--data-dir", type=str, default="data", show_default=True,
              help="Folder searched first, and where found data is cached.")
def data(dataset: str, data_dir: str) -> None:
    """Show where the data comes from, verify it, and count it.

    \b
    Example:
      mnistgan data --data-dir data
    """
    # lazy: torch and the library, for this command only (mnistgan --help stays fast)
    from mnistgan.data import load_dataset

    ds = load_dataset(dataset, data_dir, log=click.echo)
    for split, labels in (("train", ds.train_labels), ("test", ds.test_labels)):
        if labels is not None:
            counts = " ".join(str(c) for c in labels.bincount(minlength=10).tolist())
            click.echo(f"{split}: {len(labels)} images; per digit 0-9: {counts}")
    click.echo(f"fingerprint: {ds.fingerprint}")


@cli.group()
def evaluator() -> None:
    """The offline MNIST classifier behind every metric."""


@evaluator.command("train")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="safetensors file to write.")
@click.option("--seed", type=int, default=0, show_default=True, help="Training seed.")
@click.option("--data-dir", type=str, default="data", show_default=True,
              help="Where MNIST is found or cached.")
def evaluator_train(out: Path, seed: int, data_dir: str) -> None:
    """Retrain the evaluator (about 3.5 minutes on 2 CPU cores); seed 0 on 2 threads
    reproduces the shipped weights bit for bit.

    \b
    Example:
      mnistgan evaluator train --out evaluator.safetensors
    """
    from mnistgan.data import load_dataset  # lazy: torch, for this command only
    from mnistgan.metrics import train_and_save_evaluator

    check_writable(out)
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
    # lazy: torch and the library, for this command only (mnistgan --help stays fast)
    from mnistgan.runtime import native_bf16

    if text == "auto":
        return ("fp32", "bf16") if native_bf16(device) else ("fp32",)
    return _csv(str, "--precision", text, ("fp32", "bf16", "fp16"))


@cli.command(help=BENCH_EXAMPLES)
@click.option("--seconds", type=click.FloatRange(min=0.1), default=10.0, show_default=True,
              help="Length of each timed window.")
@click.option("--repeats", type=click.IntRange(min=1), default=3, show_default=True,
              help="Timed windows per row, after one warm-up window (the median is shown).")
@click.option("--device", type=str, default="auto", show_default=True,
              help="auto, cpu, cuda, cuda:N or mps.")
@click.option("--precision", "precisions", type=str, default="auto", show_default=True,
              help="Comma-separated precisions for the mnistgan rows (fp32, bf16, fp16); auto: "
                   "fp32, and bf16 where the device has it natively.")
@click.option("--seed-batch-sizes", type=str, default="16,64", show_default=True,
              help="Comma-separated batch sizes for the seed preset's rows.")
@click.option("--compile", "compiled", type=click.Choice(["off", "on", "both"]), default="off",
              show_default=True,
              help="Default-preset rows eager, compiled (torch.compile), or both.")
@click.option("--generation/--no-generation", default=True, show_default=True,
              help="Also time generation and the evaluator's report.")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None,
              help="Also write every figure (each window's rate too) to this JSON file.")
@click.option("--report-n", type=click.IntRange(min=50), default=10_000, show_default=True,
              help="Samples in the timed evaluator report.")
@click.option("--dataset", type=click.Choice(["mnist", "idx"]), default="mnist", show_default=True,
              help="mnist, or idx (MNIST-format files in --data-dir/MNIST/raw).")
@click.option("--data-dir", type=str, default="data", show_default=True,
              help="Where MNIST is, or is cached.")
def bench(seconds, repeats, device, precisions, seed_batch_sizes, compiled, generation,
          json_out, report_n, dataset, data_dir) -> None:
    # lazy: torch and the library, for this command only (mnistgan --help stays fast)
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
        check_writable(json_out, "--json")
    data = load_dataset(dataset, data_dir, log=click.echo)
    result = run(opts, data, progress=lambda line: click.echo(line, err=True))
    click.echo(table(result))
    if json_out is not None:
        write_json_atomic(json_out, result)
        click.echo(f"wrote {json_out}")


for command in COMMANDS:
    cli.add_command(command)


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
