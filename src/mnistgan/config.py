"""Run configuration: one frozen dataclass per component, gathered in `RunConfig`.

A run's config is written to `RUN/config.json` and embedded in every checkpoint, so a resume
rebuilds exactly the same run. Presets are TOML files in `mnistgan/presets/` with the same keys.
`RunConfig.from_dict` is the one way in: unknown keys and wrong types are a `UserError` naming
the key, and every value is range-checked by `validate`.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from mnistgan.errors import UserError

DEFAULT_PRESET = "cdcgan"  # what `mnistgan train` and `mnistgan.train()` train without a preset


@dataclass(frozen=True)
class DataConfig:
    dataset: str = "mnist"  # mnist | fashion-mnist | idx
    data_dir: str = "data"
    # "symmetric": pixels to [-1, 1], the range of a tanh generator. "tutorial": the seed
    # tutorial's Normalize(0.1307, 0.3081), which maps pixels to [-0.42, 2.82]: a bug kept
    # reachable so its effect can be shown (D can tell real from fake by range alone).
    normalize: str = "symmetric"


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "seed"  # a name in mnistgan.models.ARCHS
    z_dim: int = 100
    ch: int = 64  # base channel width (dcgan)
    num_classes: int = 0  # 0: unconditional; 10: class-conditional G and projection D (dcgan)
    spectral_norm: bool = False  # spectral normalisation of D's weights (dcgan)
    aux_classifier: bool = False  # D also predicts the digit, an AC-GAN head (conditional dcgan)
    twin_classifier: bool = False  # a twin head taught on fakes (TAC-GAN); needs aux_classifier
    mbstd: int = 0  # group size of D's minibatch standard-deviation channel (0: off)
    depth: int = 0  # extra 3x3 convs per resolution in G and D (dcgan; 0: the plain DCGAN)


@dataclass(frozen=True)
class OptimConfig:
    loss: str = "bce"  # a name in mnistgan.losses.LOSSES
    lr_g: float = 3e-4
    lr_d: float = 3e-4
    beta1: float = 0.9
    beta2: float = 0.999
    r1_gamma: float = 0.0  # R1 penalty weight on real data (0: off)
    gp_weight: float = 10.0  # gradient-penalty weight, used by loss wgan-gp
    ema_decay: float = 0.0  # EMA of G's weights for sampling and evaluation (0: off)
    aux_weight: float = 1.0  # weight of the class head's cross entropy (model.aux_classifier)
    aux_weight_g: float | None = None  # the class term's weight in G's loss (None: aux_weight)
    augment: str = ""  # DiffAugment policy for D's inputs: "", "translation", "translation,cutout"
    lr_decay: float = 0.0  # last fraction of the run's steps over which both lrs fall linearly
    lr_floor: float = 0.0  # ... to this fraction of their value (0: to zero)


@dataclass(frozen=True)
class TrainConfig:
    batch_size: int = 16
    epochs: int = 50
    max_steps: int | None = None  # total optimizer steps of the run, across resumes
    max_minutes: float | None = None  # stop after this much training time, across resumes
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    log_every: int = 100
    checkpoint_every: int = 2000  # steps; every epoch end also checkpoints
    snapshot_every: int = 10  # epochs between kept snapshots in checkpoints/
    grid_size: int = 64  # fixed-noise samples drawn each epoch
    precision: str = "fp32"  # auto | fp32 | bf16 | fp16 (autocast; fp16 with a loss scaler)
    memory_format: str = "auto"  # auto | channels_last | contiguous (G's and D's convolutions)
    compile: bool = False  # torch.compile G and D for the training steps
    eval_every: int = 0  # steps between FID evaluations, which keep checkpoints/best.pt (0: off)
    eval_samples: int = 2000  # samples per in-training evaluation
    on_nan: str = "stop"  # a NaN/inf loss or gradient: stop, or rollback to the last checkpoint


@dataclass(frozen=True)
class RunConfig:
    preset: str = "seed"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        cfg = _build(cls, d, "")
        validate(cfg)
        return cfg

    def replace(self, **sections: dict[str, Any]) -> RunConfig:
        """A copy with some fields of some sections changed, e.g. `replace(train={"seed": 1})`."""
        d = self.to_dict()
        for section, values in sections.items():
            d[section] = {**d[section], **values}
        return RunConfig.from_dict(d)


def _build(cls: type, d: Any, prefix: str) -> Any:
    if not isinstance(d, dict):
        raise UserError(f"config: {prefix.rstrip('.') or 'top level'} must be a table")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise UserError(f"config: unknown key {prefix}{unknown[0]}")
    kwargs = {}
    for name, value in d.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, hint, f"{prefix}{name}")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str) -> Any:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in options:
        return None
    for t in options:
        if t is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t in (str, bool) and isinstance(value, t):
            return value
    names = " or ".join("null" if t is type(None) else t.__name__ for t in options)
    raise UserError(f"config: {key} must be {names}, got {value!r}")


def validate(cfg: RunConfig) -> None:
    """Range checks that types alone cannot express."""
    # lazy: the registries live with their torch modules, imported only when a config is built
    from mnistgan.data import SPECS
    from mnistgan.losses import LOSSES
    from mnistgan.models import ARCHS

    _choice("data.dataset", cfg.data.dataset, SPECS)
    _choice("data.normalize", cfg.data.normalize, ("symmetric", "tutorial"))
    _choice("model.arch", cfg.model.arch, ARCHS)
    _choice("optim.loss", cfg.optim.loss, LOSSES)
    _validate_model(cfg.model)
    _validate_optim(cfg.optim, cfg.train)
    _validate_train(cfg.train)


def _validate_model(m: ModelConfig) -> None:
    if m.aux_classifier and not m.num_classes:
        raise UserError("model.aux_classifier needs a conditional model (model.num_classes 10)")
    if m.twin_classifier and not m.aux_classifier:
        raise UserError("model.twin_classifier needs the class head (model.aux_classifier true)")
    if m.mbstd < 0:
        raise UserError(f"model.mbstd must be at least 0, got {m.mbstd}")
    if m.depth < 0:
        raise UserError(f"model.depth must be at least 0, got {m.depth}")
    if m.arch == "seed" and (m.num_classes or m.spectral_norm or m.aux_classifier or m.mbstd
                             or m.depth):
        raise UserError("model.arch seed is the tutorial's: unconditional, no spectral norm, "
                        "no minibatch std, no extra depth")
    if m.num_classes not in (0, 10):
        raise UserError(f"model.num_classes must be 0 or 10 (digits), got {m.num_classes}")
    _at_least_1([("model.z_dim", m.z_dim), ("model.ch", m.ch)])


def _at_least_1(pairs: list[tuple[str, int]]) -> None:
    for key, value in pairs:
        if value < 1:
            raise UserError(f"{key} must be at least 1, got {value}")


def _validate_optim(o: OptimConfig, t: TrainConfig) -> None:
    from mnistgan.augment import parse_policy  # lazy: augment imports torch

    for key, value in [("optim.lr_g", o.lr_g), ("optim.lr_d", o.lr_d)]:
        if not value > 0:
            raise UserError(f"{key} must be positive, got {value}")
    for key, value in [("optim.beta1", o.beta1), ("optim.beta2", o.beta2),
                       ("optim.ema_decay", o.ema_decay)]:
        if not 0 <= value < 1:
            raise UserError(f"{key} must be in [0, 1), got {value}")
    for key, value in [("optim.lr_decay", o.lr_decay), ("optim.lr_floor", o.lr_floor)]:
        if not 0 <= value <= 1:
            raise UserError(f"{key} must be in [0, 1], got {value}")
    if o.aux_weight_g is not None and not o.aux_weight_g >= 0:
        raise UserError(f"optim.aux_weight_g must be at least 0, got {o.aux_weight_g}")
    try:
        parse_policy(o.augment)
    except ValueError as e:
        raise UserError(f"optim.augment: {e}") from None
    for key, value in [("optim.r1_gamma", o.r1_gamma), ("optim.gp_weight", o.gp_weight),
                       ("optim.aux_weight", o.aux_weight)]:
        if not value >= 0:
            raise UserError(f"{key} must be at least 0, got {value}")
    if t.precision == "fp16" and (o.r1_gamma > 0 or o.loss == "wgan-gp"):
        raise UserError("train.precision fp16 does not scale the gradient penalties of R1 and "
                        "wgan-gp: use bf16 or fp32 with them")


def _validate_train(t: TrainConfig) -> None:
    # lazy: runtime and metrics import torch, needed only when a config is built
    from mnistgan.metrics.classes import MIN_ALARM_SAMPLES
    from mnistgan.runtime import MEMORY_FORMATS, PRECISIONS

    _at_least_1([("train.batch_size", t.batch_size), ("train.epochs", t.epochs),
                 ("train.log_every", t.log_every), ("train.checkpoint_every", t.checkpoint_every),
                 ("train.snapshot_every", t.snapshot_every), ("train.grid_size", t.grid_size),
                 ("train.eval_samples", t.eval_samples)])
    if t.eval_every < 0:
        raise UserError(f"train.eval_every must be at least 0, got {t.eval_every}")
    if t.eval_every and t.eval_samples < MIN_ALARM_SAMPLES:
        raise UserError(f"train.eval_samples must be at least {MIN_ALARM_SAMPLES} for the "
                        f"collapse alarm, got {t.eval_samples}")
    if t.max_minutes is not None and not t.max_minutes > 0:
        raise UserError(f"train.max_minutes must be positive, got {t.max_minutes}")
    if t.max_steps is not None and t.max_steps < 1:
        raise UserError(f"train.max_steps must be at least 1, got {t.max_steps}")
    _choice("train.precision", t.precision, PRECISIONS)
    _choice("train.memory_format", t.memory_format, MEMORY_FORMATS)
    _choice("train.on_nan", t.on_nan, ("stop", "rollback"))
    dev = t.device
    if not (dev in ("auto", "cpu", "cuda", "mps") or _is_cuda_index(dev)):
        raise UserError(f"train.device must be auto, cpu, cuda, cuda:N or mps, got {dev!r}")


def _choice(key: str, value: str, allowed: Any) -> None:
    if value not in allowed:
        raise UserError(f"{key} {value!r} is not one of: {', '.join(allowed)}")


def _is_cuda_index(dev: str) -> bool:
    head, _, index = dev.partition(":")
    return head == "cuda" and index.isdigit()


def preset_names() -> list[str]:
    """The shipped presets, by name."""
    files = resources.files("mnistgan.presets").iterdir()
    return sorted(f.name.removesuffix(".toml") for f in files if f.name.endswith(".toml"))


def preset_summary(name: str) -> str:
    """The one-line description at the top of a preset file."""
    text = resources.files("mnistgan.presets").joinpath(f"{name}.toml").read_text()
    first = text.splitlines()[0] if text else ""
    return first.lstrip("# ").strip()


def load_preset(name: str) -> RunConfig:
    """The `RunConfig` of a shipped preset."""
    if name not in preset_names():
        raise UserError(f"unknown preset {name!r} (choose from {', '.join(preset_names())})")
    text = resources.files("mnistgan.presets").joinpath(f"{name}.toml").read_text()
    return RunConfig.from_dict({"preset": name, **tomllib.loads(text)})


__all__ = [
    "DEFAULT_PRESET",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "load_preset",
    "preset_names",
    "preset_summary",
    "validate",
]
