"""mnistgan: train GANs on MNIST and generate synthetic MNIST, offline, on any device.

Public API:
    RunConfig, load_preset      the run configuration and the shipped presets
    load_dataset, Dataset       MNIST-style data, found offline and verified
    Trainer                     the training loop
    build_models                generators and discriminators by architecture name
    load_generator              a trained generator (the bundled one, a run, a checkpoint):
                                `load_generator().sample(64, labels=[...])` gives uint8 digits
"""

__version__ = "0.1.0"

from mnistgan.config import RunConfig, load_preset
from mnistgan.data import Dataset, load_dataset
from mnistgan.models import build_models


def __getattr__(name: str):
    if name == "Trainer":  # imported lazily: tqdm and the loop are not needed to load data
        from mnistgan.train import Trainer

        return Trainer
    if name == "load_generator":
        from mnistgan.sampling import load_generator

        return load_generator
    raise AttributeError(name)


__all__ = ["Dataset", "RunConfig", "Trainer", "build_models", "load_dataset", "load_generator",
    "load_preset"]
