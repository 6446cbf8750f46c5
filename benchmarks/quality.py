"""Quality at equal CPU time: train each preset for the same minutes, then score 10,000 samples.

    python benchmarks/quality.py --minutes 10 --presets seed dcgan cdcgan --out runs/quality
    python benchmarks/quality.py --minutes 2.5 --n 2000 --presets cdcgan --configs a.toml b.toml

Each preset is trained by `mnistgan train --preset P --max-minutes M` (one command per row, shown
in the output; the minutes count all of training's wall-clock time, logging and checkpoints
included), then the EMA generator (the plain one for seed) of its last checkpoint is scored by
`mnistgan.metrics.evaluate`
against the real test set. Prints a markdown table with the real-data baseline beside it and
writes `OUT/quality.json`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from mnistgan.data import load_dataset
from mnistgan.metrics import evaluate
from mnistgan.sampling import load_generator


def train(source: list[str], minutes: float, out: Path) -> list[str]:
    """Train `--preset P` or `--config FILE` (source) for `minutes`; returns the command."""
    cmd = [sys.executable, "-m", "mnistgan", "train", *source, "--max-minutes",
           str(minutes), "--out", str(out), "--overwrite", "--log-every", "200"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return cmd


def score(run: Path, data, n: int) -> dict:
    # The last checkpoint, not best.pt: best.pt is chosen by FID against the test set.
    sampler = load_generator(run / "checkpoints" / "last.pt")
    report = evaluate(lambda k: sampler.metric_samples(k, seed=0), data, n=n)
    log = [json.loads(x) for x in (run / "log.jsonl").read_text().splitlines()]
    steps = [r for r in log if "images_per_s" in r]
    report["images_per_s"] = steps[-1]["images"] / steps[-1]["seconds"] if steps else None
    report["steps"] = steps[-1]["step"] if steps else 0
    return report


def table(rows: dict[str, dict], minutes: float) -> str:
    real = next(iter(rows.values()))["real"]
    head = ("| preset | FID | IS | precision | recall | label agreement | images/s | steps |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- |")

    def fmt(v, f):
        return "n/a" if v is None else f.format(v)

    lines = [head]
    for name, r in rows.items():
        lines.append(f"| {name} ({minutes:g} min) | {r['fid']:.3f} | {r['is']:.2f} | "
                     f"{r['precision']:.3f} | {r['recall']:.3f} | "
                     f"{fmt(r.get('label_agreement'), '{:.2%}')} | "
                     f"{fmt(r['images_per_s'], '{:.0f}')} | {r['steps']} |")
    lines.append(f"| real data | {real['fid']:.3f} | {real['is']:.2f} | {real['precision']:.3f} | "
                 f"{real['recall']:.3f} | {fmt(real.get('label_agreement'), '{:.2%}')} | | |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0, help="training minutes per preset")
    ap.add_argument("--presets", nargs="*", default=["seed", "dcgan", "cdcgan"])
    ap.add_argument("--configs", nargs="*", type=Path, default=[],
                    help="also rows for these --config files (TOML), named by file stem")
    ap.add_argument("--n", type=int, default=10_000, help="samples scored per preset")
    ap.add_argument("--out", type=Path, default=Path("runs/quality"))
    args = ap.parse_args()
    data = load_dataset("mnist", "data")
    rows = {}
    sources = {p: ["--preset", p] for p in args.presets}
    sources.update({f.stem: ["--config", str(f)] for f in args.configs})
    for name, source in sources.items():
        run = args.out / name
        cmd = train(source, args.minutes, run)
        print("$", " ".join(cmd[2:]), flush=True)
        rows[name] = score(run, data, args.n)
        print(table({name: rows[name]}, args.minutes).splitlines()[2], flush=True)
    print(table(rows, args.minutes))
    (args.out / "quality.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
