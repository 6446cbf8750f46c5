"""Where a run executes: the device from `--device`, and the per-device choices made for it
(numeric precision, memory format) when the config says `auto`.

The `auto` rules come from measurement (README, "Speed"): bf16 autocast only where the hardware
multiplies bf16 natively, decided from the CPU's own feature flags (AMX-BF16 or AVX512_BF16) or
the GPU's compute capability (Ampere, 8.0, on), never from oneDNN's answer, which is yes on any
AVX-512 CPU: where bf16 is emulated a bf16 training step runs several times slower than fp32.
Channels-last convolutions are faster through oneDNN on the CPU, and on GPUs with tensor cores in
reduced precision.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable

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


# The feature flags (as /proc/cpuinfo spells them) of CPUs that multiply in a precision in
# hardware. AVX-512 alone is not one of them: oneDNN runs bf16 there too (and says it supports
# it), but by converting to fp32, slower than fp32 itself. `bf16` is Arm's (Neoverse V1, N2 on).
CPU_NATIVE_FLAGS = {"bf16": frozenset({"avx512_bf16", "amx_bf16", "bf16"}),
                    "fp16": frozenset({"avx512_fp16", "amx_fp16"})}


def cpu_native(precision: str, flags: Iterable[str]) -> bool:
    """Whether a CPU with these feature flags computes `precision` (fp32, bf16, fp16) natively."""
    return precision == "fp32" or not CPU_NATIVE_FLAGS[precision].isdisjoint(flags)


def cuda_native(precision: str, capability: tuple[int, int]) -> bool:
    """Whether a CUDA GPU of this compute capability computes `precision` natively: bf16 from
    Ampere (8.0) on; fp16 on every GPU PyTorch still builds for."""
    return precision != "bf16" or capability >= (8, 0)


def parse_cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The first `flags` (x86) or `Features` (Arm) line of a /proc/cpuinfo text, as a set."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


@functools.cache
def cpu_flags() -> frozenset[str]:
    """This CPU's feature flags: from /proc/cpuinfo where there is one, else the few that
    torch's CPU probe answers (`torch.backends.cpu.get_cpu_capability()` only names the kernel
    family, AVX2 or AVX512, which does not tell whether bf16 is native)."""
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            return parse_cpu_flags(f.read())
    probes = {"avx512_bf16": "_is_avx512_bf16_supported",
              "amx_bf16": "_is_amx_tile_supported",  # every CPU with AMX tiles has AMX-BF16
              "amx_fp16": "_is_amx_fp16_supported"}
    return frozenset(flag for flag, probe in probes.items()
                     if getattr(torch.cpu, probe, lambda: False)())


def native_precision(precision: str, device: torch.device) -> bool:
    """Whether `device` has hardware arithmetic for `precision` (fp32, bf16 or fp16)."""
    if device.type == "cuda":
        return cuda_native(precision, torch.cuda.get_device_capability(device))
    if device.type == "cpu":
        return cpu_native(precision, cpu_flags())
    return precision != "bf16"  # mps: not every Apple GPU has bf16 arithmetic


def native_bf16(device: torch.device) -> bool:
    """Whether `device` computes bf16 matrix products in hardware rather than emulating them."""
    return native_precision("bf16", device)


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
    auto_fp32 = asked == "auto" and precision == "fp32"
    why = " (auto: no native bf16 on this device)" if auto_fp32 else ""
    return f"{precision}{why}, {layout}"
