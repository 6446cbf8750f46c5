"""ONNX export of a trained generator: noise (and a label) in, images out, any batch size.

The graph is the generator in eval mode (batch norm from its running statistics) in float32,
whatever precision the run trained in: a bf16 run's `Sampler` casts to bf16 for speed, but an
ONNX consumer in another language wants plain fp32 and the checkpoint's weights are fp32.

    inputs   z      float32 (N, z_dim)   standard normal noise
             label  int64   (N,)         the digit 0-9 (conditional generators only)
    output   images float32 (N, 1, 28, 28) in [-1, 1]; (x + 1) * 127.5 gives 0-255 pixels

The graph is built and checked in memory, then written through `atomic.py`: a failure leaves
the old file, if any, whole and no temp file behind.

`onnx` and `onnxruntime` are the optional extra `mnistgan[onnx]`.
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from pathlib import Path

import torch

from mnistgan.atomic import write_bytes_atomic
from mnistgan.errors import UserError

OPSET = 17
MISSING = "ONNX export needs the onnx extra: pip install 'mnistgan[onnx]'"


class _Images(torch.nn.Module):
    """The generator with a fixed signature for export: z (and label) -> images."""

    def __init__(self, g: torch.nn.Module, conditional: bool):
        super().__init__()
        self.g, self.conditional = g, conditional

    def forward(self, z: torch.Tensor, label: torch.Tensor | None = None) -> torch.Tensor:
        return self.g(z, label if self.conditional else None)  # (N, 1, 28, 28)


def require_onnx() -> None:
    """Raise a one-line `UserError` if the onnx extra is not installed."""
    try:
        # lazy: the onnx extra
        import onnx  # noqa: F401
    except ImportError:
        raise UserError(MISSING) from None


def export_generator(sampler, out: str | os.PathLike) -> dict:
    """Write the sampler's generator to `out` as ONNX; returns what the file holds (input and
    output names, shapes, the opset) for the caller to report."""
    require_onnx()
    # lazy: the onnx extra
    import onnx

    out = Path(out)
    if not out.parent.exists():
        raise UserError(f"--out {out}: folder {out.parent} does not exist")
    if out.is_dir():
        raise UserError(f"--out {out}: is a directory")
    conditional = bool(sampler.num_classes)
    g = copy.deepcopy(sampler.G).float().eval().requires_grad_(False).cpu()
    net = _Images(g, conditional).eval()
    z = torch.zeros(2, sampler.z_dim)
    args = (z, torch.zeros(2, dtype=torch.int64)) if conditional else (z,)
    names = ["z", "label"] if conditional else ["z"]
    axes = {name: {0: "batch"} for name in [*names, "images"]}
    buf = io.BytesIO()  # checked whole in memory, then written through atomic.py
    with warnings.catch_warnings():  # the TorchScript exporter's deprecation notice
        warnings.simplefilter("ignore")
        torch.onnx.export(net, args, buf, input_names=names, output_names=["images"],
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    onnx.checker.check_model(onnx.load_model_from_string(buf.getvalue()))
    write_bytes_atomic(out, buf.getvalue())
    return {"path": str(out), "inputs": names, "z_dim": sampler.z_dim,
            "num_classes": sampler.num_classes, "opset": OPSET}


__all__ = ["export_generator", "require_onnx"]
