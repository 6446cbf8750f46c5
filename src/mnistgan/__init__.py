"""mnistgan: train GANs on MNIST and generate synthetic MNIST, offline, on any device.

Public API:
    RunConfig, load_preset      the run configuration and the shipped presets
    load_dataset, Dataset       MNIST-style data, found offline and verified
    Trainer                     the training loop
    build_models                generators and discriminators by architecture name
"""

__version__ = "0.1.0"

from mnistgan.config import RunConfig, load_preset  # noqa: E402
from mnistgan.data import Dataset, load_dataset  # noqa: E402
from mnistgan.models import build_models  # noqa: E402


def __getattr__(name: str):
    if name == "Trainer":  # imported lazily: tqdm and the loop are not needed to load data
        from mnistgan.train import Trainer

        return Trainer
    raise AttributeError(name)


__all__ = ["Dataset", "RunConfig", "Trainer", "build_models", "load_dataset", "load_preset"]
