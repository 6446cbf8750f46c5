"""Writes examples/quickstart.ipynb from the cells below (outputs empty): edit here, then run
`python examples/make_quickstart.py`. tests/test_tools.py executes the notebook."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    new_markdown_cell("""# mnistgan quick start

Draw digits from the generator bundled with mnistgan, train a small GAN of your own, score it
with the offline MNIST evaluator, and write a synthetic MNIST you can load like the real one.
Everything runs offline on a laptop CPU in a few minutes.

The settings below come from environment variables so CI can run this notebook small and fast
(`tests/test_tools.py`); by hand, just run it as it is (genuine MNIST, 300 steps)."""),
    new_code_cell("""import os
from pathlib import Path

import torch
from IPython.display import Image, display

import mnistgan
from mnistgan.data import load_dataset
from mnistgan.errors import UserError
from mnistgan.export import ExportOptions, export_dataset
from mnistgan.metrics import evaluate, format_report
from mnistgan.sampling import grid_png, load_generator, sample_grid

STEPS = int(os.environ.get("MNISTGAN_NB_STEPS", "300"))       # training steps
DATASET = os.environ.get("MNISTGAN_NB_DATASET", "mnist")       # mnist, or idx for a folder
DATA_DIR = os.environ.get("MNISTGAN_NB_DATA_DIR", "data")
EVAL_N = int(os.environ.get("MNISTGAN_NB_EVAL_N", "2000"))     # samples scored
WORK = Path(os.environ.get("MNISTGAN_NB_WORK", "quickstart"))  # where this notebook writes
WORK.mkdir(parents=True, exist_ok=True)
_ = torch.manual_seed(0)"""),
    new_markdown_cell("""## 1. Digits at once: the bundled generator

mnistgan ships a trained class-conditional generator. `load_generator()` with no argument loads
it (its sha256 is checked); a 10x10 grid has one row per digit.

**If this mnistgan has no bundled generator** (a development checkout before one is made),
the cell says so and the grid is drawn in section 2 from the small run trained there instead."""),
    new_code_cell("""def show_grid(sampler, seed=0):
    images, nrow = sample_grid(sampler, seed)  # 10x10, row r digit r (8x8 if unconditional)
    display(Image(grid_png(images, nrow)))

try:
    bundled = load_generator()
    print("loaded", bundled.source)
    show_grid(bundled)
except UserError as e:
    bundled = None
    print(f"no bundled generator ({e}); section 2 trains one")"""),
    new_markdown_cell("""## 2. Train a small GAN

The `cdcgan` preset (class-conditional DCGAN, hinge loss, EMA), here in fp32 with a short run.
The run folder holds the config, `log.jsonl`, grids and a checkpoint that `--resume` continues:
the same as `mnistgan train --preset cdcgan --max-steps STEPS`, and the same code."""),
    new_code_cell("""data = load_dataset(DATASET, DATA_DIR, log=print)
result = mnistgan.train("cdcgan", out=WORK / "run", overwrite=True, data=data,
                        dataset=DATASET, data_dir=DATA_DIR, max_steps=STEPS, batch_size=64,
                        precision="fp32", device="cpu", log_every=max(STEPS // 5, 1))
print(result.outcome)  # resume with mnistgan.train(resume=result.run, max_steps=...)

mine = load_generator(result.run)
show_grid(mine)
sampler = bundled or mine  # what the next sections score and export"""),
    new_markdown_cell("""## 3. How good are the digits?

FID, KID, Inception score, precision/recall and each digit's share, every figure beside the same
figure for real data (`mnistgan evaluate`). A few hundred steps give poor digits: that is the
point of the comparison."""),
    new_code_cell("""report = evaluate(sampler.metric_samples, data, n=EVAL_N)
print(format_report(report))"""),
    new_markdown_cell("""## 4. A synthetic MNIST

Balanced labels, written as an `.npz` of `images` (uint8, N x 28 x 28) and `labels` with a
manifest beside it (`mnistgan generate`; IDX and PNG folders work too)."""),
    new_code_cell("""import numpy as np

out = WORK / "synthetic"
export_dataset(sampler, out, ExportOptions(n_train=200, n_test=50, format="npz", overwrite=True),
               log=print)
files = sorted(p.name for p in out.iterdir())
print(files)"""),
]


def main() -> None:
    nb = new_notebook(cells=CELLS, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })
    path = Path(__file__).with_name("quickstart.ipynb")
    nbformat.validate(nb)
    path.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
