"""The Hugging Face format: Parquet files and a dataset card that `datasets.load_dataset(OUT)`
reads as a `DatasetDict` with the schema of the Hub's `ylecun/mnist`.

Layout, as the Hub lays out a converted dataset:
    OUT/data/train-00000-of-00001.parquet   image (struct bytes/path: PNG, 28x28 mode L), label
    OUT/data/test-00000-of-00001.parquet
    OUT/README.md                           the card: the Hub's YAML header, how it was made
    OUT/croissant.json                      Croissant JSON-LD (see croissant.py)
Each block of images is one Parquet row group, so a split streams; pyarrow (`mnistgan[hf]`)
writes the files, deterministically (no timestamps in Parquet's metadata).
"""

from __future__ import annotations

import json

import numpy as np

from mnistgan.export.croissant import hf_croissant
from mnistgan.export.writers import Writer, finish_file, png_block, register, write_json

DIGITS = [str(d) for d in range(10)]
# The features `datasets` reads from each file's schema metadata (and the card's header).
HF_FEATURES = {"image": {"_type": "Image"}, "label": {"names": DIGITS, "_type": "ClassLabel"}}
# The Hub's names of the data sets a generator can be trained on; any other folder: "other".
SOURCES = {"mnist": "extended|mnist", "fashion-mnist": "extended|fashion_mnist"}
LICENSE = "mit"  # the license the Hub's ylecun/mnist card gives its source images


def parquet_name(split: str) -> str:
    return f"data/{split}-00000-of-00001.parquet"


def _schema():
    import pyarrow as pa  # lazy: pyarrow is the optional extra mnistgan[hf]

    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    meta = {"huggingface": json.dumps({"info": {"features": HF_FEATURES}}, sort_keys=True)}
    return pa.schema([("image", image), ("label", pa.int64())], metadata=meta)


@register
class HfWriter(Writer):
    """Parquet per split under `data/`, a dataset card and Croissant metadata."""

    name, entries = "hf", ("data", "README.md", "croissant.json")
    help = "Parquet + dataset card for datasets.load_dataset(OUT)"
    extra, needs = "hf", "pyarrow"

    def begin(self, split: str, n: int) -> None:
        import pyarrow.parquet as pq  # lazy: pyarrow is the optional extra mnistgan[hf]

        path = self.staging / parquet_name(split)
        path.parent.mkdir(exist_ok=True)
        self.schema = _schema()
        self.file = open(path, "wb")  # noqa: SIM115 (held across writes)
        self.parquet = pq.ParquetWriter(self.file, self.schema, compression="snappy")

    def write(self, images: np.ndarray, labels: np.ndarray) -> None:
        import pyarrow as pa  # lazy: pyarrow is the optional extra mnistgan[hf]

        pngs = [{"bytes": png, "path": None} for png in png_block(images)]
        table = pa.Table.from_arrays([pa.array(pngs, self.schema.field("image").type),
                                      pa.array(labels.astype(np.int64))], schema=self.schema)
        self.parquet.write_table(table)

    def end(self) -> None:
        self.parquet.close()
        finish_file(self.file)

    def describe(self, info: dict, files: dict[str, str]) -> list[str]:
        with open(self.staging / "README.md", "w", encoding="utf-8") as f:
            f.write(dataset_card(info, files))
            finish_file(f)
        parquet = {split: (parquet_name(split), files[parquet_name(split)])
                   for split in info["splits"]}
        write_json(self.staging / "croissant.json", hf_croissant(info, parquet))
        return ["README.md", "croissant.json"]

    def close(self) -> None:
        if hasattr(self, "parquet"):
            self.parquet.close()
            self.file.close()


def _yaml_header(info: dict, files: dict[str, str]) -> list[str]:
    splits = info["splits"]
    size = sum(s["n"] for s in splits.values())
    category = "n<1K" if size < 1000 else "1K<n<10K" if size < 10_000 else \
        "10K<n<100K" if size < 100_000 else "100K<n<1M" if size < 1_000_000 else "n>1M"
    lines = ["---", "annotations_creators:", "- machine-generated", "language_creators:",
             "- machine-generated", f"license: {LICENSE}", "size_categories:", f"- {category}",
             "source_datasets:",
             f"- {SOURCES.get(info['generator']['config']['data']['dataset'], 'extended|other')}",
             "task_categories:", "- image-classification", "task_ids:",
             "- multi-class-image-classification", "tags:", "- synthetic", "- mnistgan",
             "pretty_name: Synthetic MNIST (mnistgan)", "configs:", "- config_name: default",
             "  data_files:"]
    for split in splits:
        lines += [f"  - split: {split}", f"    path: {parquet_name(split)}"]
    lines += ["dataset_info:", "  features:", "  - name: image", "    dtype: image",
              "  - name: label", "    dtype:", "      class_label:", "        names:"]
    lines += [f"          '{d}': '{d}'" for d in DIGITS]
    lines += ["  splits:"]
    for split, s in splits.items():
        lines += [f"  - name: {split}", f"    num_examples: {s['n']}"]
    return lines + ["---"]


def dataset_card(info: dict, files: dict[str, str]) -> str:
    """The Hub's dataset card: YAML header, then how the set was made."""
    g, splits = info["generator"], info["splits"]
    counts = "\n".join(f"| {split} | {s['n']} | {' '.join(map(str, s['per_digit']))} |"
                       for split, s in splits.items())
    body = [
        "", "# Synthetic MNIST (mnistgan)", "",
        "Machine-generated handwritten digits in the schema of the Hub's `ylecun/mnist` "
        "(`image`: 28x28 greyscale PNG, `label`: class 0-9), written by `mnistgan generate "
        "--format hf`. Load it with `datasets.load_dataset(\"PATH\")`.", "",
        "## How it was made", "",
        f"- mnistgan {info['mnistgan_version']}, seed {info['seed']}",
        f"- generator weights sha256 `{g['weights_sha256']}`"
        + (f", checkpoint sha256 `{g['checkpoint_sha256']}`" if g["checkpoint_sha256"] else ""),
        f"- labels: `{info['labels']['mode']}`, {info['labels']['from']}",
        f"- min confidence: {info['min_confidence']}, acceptance rate "
        f"{info['acceptance_rate']:.4f}", "",
        "| split | images | per digit 0-9 |", "| --- | --- | --- |", counts, "",
        "Generator config:", "", "```json", json.dumps(g["config"], indent=2, sort_keys=True),
        "```", "", "## Files", "",
    ]
    body += [f"- `{name}` sha256 `{digest}`" for name, digest in sorted(files.items())]
    body += ["", "## Evaluation", ""] + _evaluation_lines(info.get("evaluation"))
    return "\n".join(_yaml_header(info, files) + body) + "\n"


def _evaluation_lines(evaluation: dict | None) -> list[str]:
    if evaluation is None:
        return ["Not evaluated (`mnistgan generate --evaluate` scores the training split "
                "against real MNIST)."]
    from mnistgan.metrics import format_report  # lazy: only with --evaluate, metrics loaded

    evaluation = {k: v for k, v in evaluation.items() if k != "seconds"}  # same seed, same card
    return ["The training split scored by `mnistgan.metrics.evaluate` against real MNIST's test "
            "set, each figure beside real data's:", "", "```", format_report(evaluation), "```",
            "", "The whole report:", "", "```json",
            json.dumps(evaluation, indent=2, sort_keys=True, default=str), "```"]
