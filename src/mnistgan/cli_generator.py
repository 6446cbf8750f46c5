"""The `mnistgan` commands that take a trained generator: sample, generate, evaluate, report,
serve, export-onnx. Each parses its flags and calls the library; `mnistgan.cli` registers them.
"""

from __future__ import annotations

from pathlib import Path

import click

from mnistgan.atomic import check_writable, write_json_atomic
from mnistgan.errors import UserError

SAMPLE_HELP = """Draw a grid of samples to a PNG, or a latent walk (--interpolate).

A conditional generator gives a 10x10 grid, one row per digit (or --digit D for one digit); an
unconditional one gives an 8x8 grid. --interpolate writes a walk instead: each row slerps between
two random latents (a conditional row keeps its digit: row r is digit r), columns are steps; the
animated GIF beside the PNG (OUT with .gif) plays every walk at once.

\b
Examples:
  mnistgan sample --checkpoint runs/cdcgan-000 --out grid.png
  mnistgan sample --checkpoint runs/cdcgan-000/checkpoints/best.pt --digit 7 --out sevens.png
  mnistgan sample --checkpoint runs/cdcgan-000 --interpolate --out walk.png   # + walk.gif
  mnistgan sample --checkpoint runs/cdcgan-000 --interpolate --digit 3 --walks 6 --out walk3.png
"""


@click.command(help=SAMPLE_HELP)
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Run folder or checkpoint file.")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="PNG file to write.")
@click.option("--digit", type=int, default=None, help="Draw only this digit (conditional "
                                                      "generators).")
@click.option("--seed", type=int, default=0, show_default=True, help="Noise seed.")
@click.option("--device", type=str, default="cpu", show_default=True, help="Device to sample on.")
@click.option("--interpolate", is_flag=True, help="Write a latent walk (grid PNG + animated GIF "
                                                  "beside it) instead of a grid.")
@click.option("--walks", type=int, default=None, help="With --interpolate: walks, one per row "
                                                      "(default 10, one per digit, or 8 "
                                                      "unconditional).")
@click.option("--steps", type=int, default=None, help="With --interpolate: steps per walk, the "
                                                      "columns (default 10).")
def sample(checkpoint: Path | None, out: Path, digit: int | None, seed: int, device: str,
           interpolate: bool, walks: int | None, steps: int | None) -> None:
    from mnistgan.runtime import resolve_device  # lazy: torch, for this command only
    from mnistgan.sampling import load_generator, sample_grid, save_grid

    if not interpolate and (walks is not None or steps is not None):
        raise UserError("--walks and --steps go with --interpolate")
    sampler = load_generator(checkpoint, device=str(resolve_device(device)))
    if interpolate:
        _sample_walk(sampler, out, digit, seed, walks, steps or 10)
        return
    images, nrow = sample_grid(sampler, seed, digit)
    check_writable(out)
    save_grid(out, images, nrow)
    click.echo(f"wrote {out} ({len(images)} samples from {sampler.source})")


def _sample_walk(sampler, out: Path, digit: int | None, seed: int, walks: int | None,
                 steps: int) -> None:
    # lazy: torch and the library, for this command only (mnistgan --help stays fast)
    from mnistgan.sampling import latent_walk, save_walk

    if digit is not None and not 0 <= digit <= 9:
        raise UserError(f"--digit must be 0-9, got {digit}")
    walks = (10 if sampler.num_classes else 8) if walks is None else walks
    check_writable(out)
    png, gif = save_walk(out, latent_walk(sampler, walks, steps, seed=seed, digit=digit))
    click.echo(f"wrote {png} and {gif} ({walks} walks x {steps} steps, slerp, from "
               f"{sampler.source})")


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


@click.command(help=EVALUATE_HELP)
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Run folder or checkpoint to sample from (default: the bundled generator).")
@click.option("--samples", type=click.Path(path_type=Path), default=None,
              help="An .npz (images, labels) or a folder of IDX files.")
@click.option("--real", is_flag=True, help="Score real training images: the baseline itself.")
@click.option("--n", type=int, default=10_000, show_default=True, help="Number of samples.")
@click.option("--cas", is_flag=True, help="Also train a classifier on the samples (CAS; needs "
                                          "labels).")
@click.option("--cas-n", type=str, default=None, help="CAS at scale: comma-separated sample "
                                                      "counts, e.g. 60000,600000; a classifier "
                                                      "trained on each many fresh samples, beside"
                                                      " real data's.")
@click.option("--no-memorisation", is_flag=True, help="Skip the memorisation check (nearest "
                                                      "training image of every sample).")
@click.option("--json", "json_out", type=click.Path(path_type=Path), default=None,
              help="Write the report as JSON here.")
@click.option("--seed", type=int, default=0, show_default=True, help="Noise seed for --checkpoint.")
@click.option("--data-dir", type=str, default="data", show_default=True,
              help="Where MNIST is found or cached.")
@click.option("--device", type=str, default="cpu", show_default=True, help="Device to sample on.")
def evaluate(checkpoint, samples, real, n, cas, cas_n, no_memorisation, json_out, seed, data_dir,
             device) -> None:
    # lazy: torch and the library, for this command only (mnistgan --help stays fast)
    from mnistgan.data import load_dataset
    from mnistgan.metrics import evaluate as score
    from mnistgan.metrics import evaluate_real, format_report

    if sum([checkpoint is not None, samples is not None, real]) > 1:
        raise UserError("give at most one of --checkpoint, --samples or --real")
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    sizes = _counts(cas_n, "--cas-n") if cas_n else ()
    if json_out is not None:
        check_writable(json_out, "--json")
    data = load_dataset("mnist", data_dir, log=click.echo)
    if real:
        report = evaluate_real(data, n=n, cas=cas, log=click.echo)
    else:
        source = _sample_source(checkpoint, samples, seed, device)
        report = score(source, data, n=n, cas=cas, log=click.echo, cas_n=sizes,
                       memorise=not no_memorisation)
    click.echo(format_report(report))
    if json_out is not None:
        write_json_atomic(json_out, report)
        click.echo(f"wrote {json_out}")


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
    # lazy: torch and the library, for this command only (mnistgan --help stays fast)
    from mnistgan.data import load_samples
    from mnistgan.runtime import resolve_device
    from mnistgan.sampling import load_generator

    if samples is not None:
        images, labels = load_samples(samples)
        return images if labels is None else (images, labels)
    sampler = load_generator(checkpoint, device=str(resolve_device(device)))
    return lambda n: sampler.metric_samples(n, seed)  # conditional: every digit equally often


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


@click.command("export-onnx", help=EXPORT_ONNX_HELP)
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Run folder or checkpoint file (default: the generator bundled with mnistgan).")
@click.option("--out", type=click.Path(path_type=Path), required=True, help="ONNX file to write.")
def export_onnx(checkpoint: Path | None, out: Path) -> None:
    # lazy: torch and the library, for this command only (mnistgan --help stays fast)
    from mnistgan.onnx import export_generator, require_onnx
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


@click.command(help=SERVE_HELP)
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Run folder or checkpoint file (default: the bundled generator).")
@click.option("--host", type=str, default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 opens it to the network.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
              help="Port to listen on (0: any free port, printed at start).")
@click.option("--device", type=str, default="cpu", show_default=True, help="Device to sample on.")
def serve(checkpoint: Path | None, host: str, port: int, device: str) -> None:
    # lazy: torch and the library, for this command only (mnistgan --help stays fast)
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


@click.command(help=REPORT_HELP)
@click.argument("run", type=click.Path(path_type=Path))
@click.option("--n", type=int, default=10_000, show_default=True,
              help="Samples for the metrics (0: leave the metrics out).")
@click.option("--cas", is_flag=True, help="Add CAS to the metrics (trains a small classifier, "
                                          "about 30 s).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Noise seed of the samples shown and scored.")
@click.option("--dataset", type=click.Choice(["mnist", "idx"]), default="mnist", show_default=True,
              help="The real data the metrics compare against.")
@click.option("--data-dir", type=str, default="data", show_default=True,
              help="Where the real data is found or cached.")
@click.option("--device", type=str, default="cpu", show_default=True, help="Device to sample on.")
def report(run: Path, n: int, cas: bool, seed: int, dataset: str, data_dir: str,
           device: str) -> None:
    # lazy: torch and the library, for this command only (mnistgan --help stays fast)
    from mnistgan.data import load_dataset
    from mnistgan.run_report import write_report
    from mnistgan.runtime import resolve_device

    if n < 0:
        raise UserError(f"--n must be at least 0, got {n}")
    data = load_dataset(dataset, data_dir, log=click.echo) if n else None
    path = write_report(run, data, n=n, cas=cas, seed=seed, device=str(resolve_device(device)),
                        log=click.echo)
    click.echo(f"wrote {path}")


GENERATE_HELP = """Generate a synthetic MNIST: labelled images in the formats MNIST users load.

--format idx: OUT/MNIST/raw/ (IDX files, plain and .gz, where torchvision.datasets.MNIST(OUT)
and `--dataset idx --data-dir OUT` read them); npz: OUT/{train,test}.npz (images uint8
[N,28,28], labels uint8 [N]); keras: OUT/mnist.npz (x_train, y_train, x_test, y_test, as
keras.datasets.mnist.load_data() has them); png: an ImageFolder tree OUT/{train,test}/DIGIT/
INDEX.png and croissant.json; hf: OUT/data/*.parquet, a dataset card README.md and
croissant.json, which datasets.load_dataset(OUT) reads (needs pip install 'mnistgan[hf]').
Then OUT/manifest.json, last: the export is complete when it exists. Nothing in OUT changes
unless the whole export succeeds; --overwrite replaces an earlier export atomically. The same
generator, seed and flags give byte-identical files.

--labels balanced gives equal counts (the remainder to the lowest digits), mnist MNIST's own
label counts scaled to the split, a list of ten counts (digits 0-9) the training split exactly
(leave out --n-train) and the test split in the same proportions. An unconditional generator's
images are labelled by the evaluator's prediction, and the counts are met by rejection.

\b
Examples:
  mnistgan generate --checkpoint runs/cdcgan-000 --out synth
  python -c "import torchvision; print(torchvision.datasets.MNIST('synth'))"
  mnistgan generate --format hf --out synth-hf     # datasets.load_dataset('synth-hf')
  mnistgan generate --format keras --out synth-keras   # np.load('synth-keras/mnist.npz')
  mnistgan generate --checkpoint runs/cdcgan-000 --min-confidence 0.9 --evaluate --out synth-clean
  mnistgan generate --format png --n-train 1000 --n-test 0 --out synth-png
  mnistgan generate --labels 0,0,0,500,0,0,0,0,500,0 --out threes-eights
"""


@click.command(help=GENERATE_HELP)
@click.option("--checkpoint", type=click.Path(path_type=Path), default=None,
              help="Run folder or checkpoint file (default: the bundled generator).")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder to write the data set into.")
@click.option("--n-train", type=int, default=None, help="Training images (default 60000; a "
                                                        "--labels list sets it).")
@click.option("--n-test", type=int, default=10_000, show_default=True,
              help="Test images (0: none).")
@click.option("--labels", type=str, default="balanced", show_default=True,
              help="balanced, mnist, or ten comma-separated counts for digits 0-9.")
@click.option("--format", "fmt", type=click.Choice(["idx", "npz", "png", "hf", "keras"]),
              default="idx", show_default=True,
              help="idx (MNIST's files), npz, png (ImageFolder tree), hf (Parquet for "
                   "datasets.load_dataset), or keras (mnist.npz).")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of noise and label order.")
@click.option("--min-confidence", type=float, default=None, help="Keep only images the evaluator "
                                                                 "gives at least this probability"
                                                                 " (0-1) for their label.")
@click.option("--evaluate", is_flag=True, help="Score the training split against real MNIST "
                                               "(metrics and CAS) into the manifest.")
@click.option("--data-dir", type=str, default="data", show_default=True,
              help="Where real MNIST is found or cached (for --evaluate).")
@click.option("--batch-size", type=int, default=1000, show_default=True,
              help="Images per generator pass (speed and memory; never changes the output).")
@click.option("--device", type=str, default="cpu", show_default=True, help="Device to generate on.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier export in --out (atomically: "
                                                "the old one is set aside, the new one moved in, "
                                                "then the old one removed).")
def generate(checkpoint, out, n_train, n_test, labels, fmt, seed, min_confidence, evaluate,
             data_dir, batch_size, device, overwrite) -> None:
    # lazy: torch and the library, for this command only (mnistgan --help stays fast)
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


COMMANDS = (sample, evaluate, report, serve, export_onnx, generate)
