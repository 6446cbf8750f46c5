"""The offline MNIST evaluator: a small CNN classifier, its shipped weights, and their checksum.

This module owns the evaluator network (`ClassifierNet`, a pure `nn.Module` that takes uint8
images and normalises them itself), the weights file that ships inside the package with its
sha256, verified loading (`load_evaluator`), and `Evaluator`, the feature extractor every metric
uses: one pass gives the penultimate-layer features (128-d) and the class probabilities.

Why our own network and not Inception: Inception-v3 features of 28x28 grey digits say little
(pytorch-fid issue 12), and its weights must be downloaded. TF-GAN scored MNIST with its own small
classifier in the same way. How the shipped weights were trained lives in `training.py`.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
from dataclasses import dataclass, field

import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import nn

from mnistgan.atomic import write_bytes_atomic
from mnistgan.errors import UserError
from mnistgan.runtime import native_bf16

# sha256 of the shipped `evaluator.safetensors`. It changes only when the evaluator is retrained
# on purpose; every cached real-data statistic is keyed to it, so old caches are simply missed.
EVALUATOR_SHA256 = "4b14050460e79cae517be22cc9afbec771503102a9fe1a39a3ac50faa0383699"
WEIGHTS_NAME = "evaluator.safetensors"
FEATURE_DIM = 128

# MNIST training-set pixel mean and standard deviation (of x / 255).
_MEAN, _STD = 0.1307, 0.3081


def normalise(images: torch.Tensor) -> torch.Tensor:
    """uint8 images [N,28,28] or [N,1,28,28] -> float [N,1,28,28], roughly zero mean, unit std."""
    if images.dtype != torch.uint8:
        raise UserError(f"images must be uint8 in 0..255, got dtype {images.dtype}")
    if images.ndim == 3:
        images = images.unsqueeze(1)
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise UserError(f"images must be [N,28,28] or [N,1,28,28], got {list(images.shape)}")
    return (images.float() / 255.0 - _MEAN) / _STD


def _conv(c_in: int, c_out: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, k, padding=k // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class ClassifierNet(nn.Module):
    """Conv-BN-ReLU stack -> global average pool (the features) -> linear (the logits).

    Input: uint8 images [N,28,28] or [N,1,28,28]. About 132k parameters at the default widths.
    """

    def __init__(self, widths: tuple[int, int, int, int] = (32, 64, 64, FEATURE_DIM)) -> None:
        super().__init__()
        w1, w2, w3, w4 = widths
        self.body = nn.Sequential(
            *_conv(1, w1, 5),  # (N, w1, 28, 28)
            nn.MaxPool2d(2),  # (N, w1, 14, 14)
            *_conv(w1, w2, 3),
            *_conv(w2, w3, 3),  # (N, w3, 14, 14)
            nn.MaxPool2d(2),  # (N, w3, 7, 7)
            *_conv(w3, w4, 3),  # (N, w4, 7, 7)
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),  # (N, w4)
        )
        self.head = nn.Linear(w4, 10)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features (N, w4), non-negative."""
        return self.body(normalise(images))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Class logits (N, 10)."""
        return self.head(self.features(images))


@dataclass(frozen=True)
class Embedding:
    """What the evaluator sees in a set of images."""

    features: torch.Tensor  # (N, 128) float32, penultimate layer
    probs: torch.Tensor  # (N, 10) float64, softmax of the logits

    @property
    def predicted(self) -> torch.Tensor:
        """The evaluator's class for each image, (N,) int64."""
        return self.probs.argmax(dim=1)


@dataclass(frozen=True)
class Evaluator:
    """A loaded evaluator network in eval mode plus the sha256 of the weights it came from."""

    net: ClassifierNet = field(repr=False)
    sha256: str
    device: str = "cpu"
    # bf16 convolutions are ~2x faster where bf16 is native (and ~6x slower where it is
    # emulated); features move by ~0.3% and FID, KID and precision/recall of 10k real images by
    # under 0.2% of their values. Statistics stay float64. load_evaluator picks it per device.
    bf16: bool = False

    @torch.inference_mode()
    def embed(self, images: torch.Tensor, batch_size: int = 1000) -> Embedding:
        """Features (float32) and class probabilities (float64) of uint8 images, in batches."""
        feats, probs = [], []
        device_type = torch.device(self.device).type
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size].to(self.device)
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.bf16):
                f = self.net.features(batch)
                logits = self.net.head(f)
            feats.append(f.float().cpu())
            probs.append(torch.softmax(logits.double(), dim=1).cpu())
        if not feats:
            raise UserError("no images to evaluate")
        return Embedding(torch.cat(feats), torch.cat(probs))


def default_weights_path() -> str:
    """Path of the weights file shipped inside the package."""
    return str(importlib.resources.files("mnistgan.metrics").joinpath(WEIGHTS_NAME))


def file_sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def save_weights(net: ClassifierNet, path: str | os.PathLike, info: dict[str, str]) -> str:
    """Write the network's state dict as safetensors, atomically; return the file's sha256.

    `info` is stored as one sorted-JSON metadata entry: safetensors writes several metadata keys
    in no fixed order, which would make the same weights hash differently from run to run.
    """
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    metadata = {"mnistgan": json.dumps(info, sort_keys=True)}
    data = safetensors.torch.save(state, metadata=metadata)
    write_bytes_atomic(path, data)
    return hashlib.sha256(data).hexdigest()


def load_evaluator(
    device: str = "cpu",
    path: str | os.PathLike | None = None,
    sha256: str | None = EVALUATOR_SHA256,
    *,
    bf16: bool | None = None,
) -> Evaluator:
    """Load and verify the evaluator, offline.

    `bf16` (default: where the device has native bf16) runs its convolutions in bf16 autocast.
    `path` defaults to the shipped weights. The file must hash to `sha256` (default: the shipped
    file's checksum); pass `sha256=None` to accept a file you trained yourself unverified.
    """
    path = default_weights_path() if path is None else os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise UserError(f"cannot read evaluator weights {path}: {e.strerror}") from None
    actual = hashlib.sha256(data).hexdigest()
    if sha256 is not None and actual != sha256:
        raise UserError(
            f"evaluator weights {path} are corrupt or not the shipped ones: sha256 "
            f"{actual[:12]}..., "
            f"expected {sha256[:12]}... (reinstall mnistgan or retrain with `mnistgan evaluator "
            f"train`)"
        )
    net = ClassifierNet()
    try:
        net.load_state_dict(safetensors.torch.load(data))
    except (SafetensorError, RuntimeError, KeyError) as e:  # not an evaluator's state dict
        raise UserError(f"evaluator weights {path} do not load: {str(e).splitlines()[0]}") from None
    if bf16 is None:
        bf16 = native_bf16(torch.device(device))
    return Evaluator(net.to(device).eval(), actual, device, bf16)
