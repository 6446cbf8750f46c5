"""Where a run executes: the device from `--device`, and the per-device choices made for it
(numeric precision, memory format) when the config says `auto`.

The `auto` rules come from measurement (README, "Speed"): bf16 autocast only where the hardware
multiplies bf16 natively (AMX or AVX-512 BF16 CPUs, and GPUs from Ampere on): on an AVX2-only CPU
PyTorch emulates it and a bf16 training step runs about 6x slower than fp32. Channels-last
convolutions are faster through oneDNN on the CPU, and on GPUs with tensor cores in reduced precision.
"""

from __future__ import annotations

import torch

from mnistgan.errors import UserError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks cuda, then mps, then cpu; an explicit device must be available."""
    head, _, index = name.partition(":")
    if head not in ("cpu", "cuda", "mps", "auto") or (index and not (head == "cuda"
                                                                     and index.isdigit())):
        raise UserError(f"--device {name}: not one of auto, cpu, cuda, cuda:N, mps")
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {name}: CUDA is not available on this machine")
        index = torch.device(name).index or 0
        if index >= torch.cuda.device_count():
            raise UserError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps: MPS is not available on this machine")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 matrix products in hardware rather than emulating them."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        try:  # oneDNN's own test: AVX-512 (BW/VL/DQ) or AMX, where its bf16 kernels exist
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def native_precision(precision: str, device: torch.device) -> bool:
    """Whether `device` has hardware arithmetic for `precision` (fp32, bf16 or fp16)."""
    if precision == "bf16":
        return native_bf16(device)
    if precision == "fp16" and device.type == "cpu":
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_fp16_supported())
        except (AttributeError, RuntimeError):
            return False
    return True


def resolve_precision(name: str, device: torch.device) -> str:
    """fp32, bf16 or fp16 for `--precision NAME` on `device`; `auto` is bf16 where it is native,
    fp32 elsewhere (fp16 is never chosen for you: it needs a loss scaler and can overflow)."""
    if name == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if name == "fp16" and device.type == "mps":
        raise UserError("--precision fp16: not supported on mps here; use fp32")
    return name


def resolve_memory_format(name: str, device: torch.device, precision: str) -> torch.memory_format:
    """The memory format of G's and D's weights (and so of their activations)."""
    if name == "auto":
        fast = device.type == "cpu" or (device.type == "cuda" and precision != "fp32")
        name = "channels_last" if fast else "contiguous"
    return torch.channels_last if name == "channels_last" else torch.contiguous_format


def describe(asked: str, precision: str, memory_format: torch.memory_format) -> str:
    """A few words for the console: the precision and layout in use, and why `auto` chose fp32."""
    layout = "channels-last" if memory_format == torch.channels_last else "contiguous"
    why = " (auto: no native bf16 on this device)" if asked == "auto" and precision == "fp32" else ""
    return f"{precision}{why}, {layout}"
