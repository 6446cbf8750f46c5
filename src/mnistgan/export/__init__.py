"""Synthetic MNIST on disk: the library behind `mnistgan generate`.

    plans.py      label plans: images per digit and split (`--labels`)
    draw.py       drawing: seeded noise, the generator in threads, labels, rejection
    writers.py    one `Writer` class per format in `WRITERS` (idx, npz, keras, png), the
                  background writer thread
    hf.py         the Hugging Face format: Parquet + dataset card (`mnistgan[hf]`)
    croissant.py  Croissant JSON-LD for the formats it fits (hf, png)
    manifest.py   manifest.json: what made the export and the sha256 of what it holds
    commit.py     what may be replaced, the atomic replace, recovery after a kill
    pipeline.py   `export_dataset`: staging, drawing into the writer, evaluation, commit
"""

from __future__ import annotations

from mnistgan.export import hf  # registers the hf format (pyarrow is imported only when used)
from mnistgan.export.commit import MANIFEST, recover
from mnistgan.export.manifest import file_sha256, summary, verify, weights_sha256
from mnistgan.export.pipeline import ExportOptions, check_options, export_dataset
from mnistgan.export.plans import MNIST_COUNTS, SPLITS, plan_counts, scale_counts
from mnistgan.export.writers import WRITERS, Writer, register

FORMATS = tuple(WRITERS)

__all__ = [
    "FORMATS", "MANIFEST", "MNIST_COUNTS", "SPLITS", "WRITERS", "ExportOptions", "Writer",
    "check_options", "export_dataset", "file_sha256", "hf", "plan_counts", "recover",
    "register", "scale_counts", "summary", "verify", "weights_sha256",
]
