"""mnistgan: train GANs on MNIST and generate synthetic MNIST, offline, on any device.

Public API:
    train                       train a run, or resume one: `train("seed", max_steps=500)`,
                                `train(resume="runs/seed-000", max_steps=1000)`
    RunConfig, load_preset      the run configuration and the shipped presets
    load_dataset, Dataset       MNIST-style data, found offline and verified
    Trainer                     the training loop itself
    build_models                generators and discriminators by architecture name
    load_generator              a trained generator (the bundled one, a run, a checkpoint):
                                `load_generator().sample(64, labels=[...])` gives uint8 digits

Each name is imported on first use (PEP 562), so `import mnistgan` and `mnistgan --help` do
not pay for PyTorch.
"""

from importlib import import_module

from mnistgan._version import __version__

# name -> the module that defines it
_PUBLIC = {
    "Dataset": "mnistgan.data",
    "RunConfig": "mnistgan.config",
    "Trainer": "mnistgan.trainer",
    "build_models": "mnistgan.models",
    "load_dataset": "mnistgan.data",
    "load_generator": "mnistgan.sampling",
    "load_preset": "mnistgan.config",
    "train": "mnistgan.session",
}


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'mnistgan' has no attribute {name!r}")
    return getattr(import_module(_PUBLIC[name]), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


__all__ = ["Dataset", "RunConfig", "Trainer", "__version__", "build_models", "load_dataset",
           "load_generator", "load_preset", "train"]
