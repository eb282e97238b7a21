"""The CPU a measurement was made on: a number measured on one CPU is not claimed for another.

Which optimization wins depends on the instructions the CPU has: with AMX or AVX-512 BF16, PyTorch
runs bfloat16 matrix products in hardware and fp32 kernels are fast too; with AVX-512 VNNI (or AVX-VNNI)
int8 products are fast; without them int8 may lose to fp32. :func:`parse_cpuinfo` is the pure part
(text of ``/proc/cpuinfo`` in, :class:`CpuInfo` out); :func:`cpu_info` reads this machine's.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RELEVANT_FLAGS", "CpuInfo", "cpu_info", "parse_cpuinfo"]

# the flags that decide which candidates can win, in the order they are reported
RELEVANT_FLAGS = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_bf16",
    "amx_int8",
    "amx_tile",
    "avx512_fp16",
)


@dataclass(frozen=True)
class CpuInfo:
    """A CPU's model name, logical core count and the :data:`RELEVANT_FLAGS` it has."""

    model: str
    cores: int
    flags: tuple[str, ...]

    @property
    def has_bf16(self) -> bool:
        """bfloat16 matrix products in hardware (AMX or AVX-512 BF16)."""
        return "amx_bf16" in self.flags or "avx512_bf16" in self.flags

    @property
    def has_int8_dot(self) -> bool:
        """int8 dot products in hardware (VNNI or AMX int8)."""
        return any(f in self.flags for f in ("avx512_vnni", "avx_vnni", "amx_int8"))

    def describe(self) -> str:
        """One line for tables and tags: ``Intel(R) Xeon(R) ... (2 cores; avx2 avx512f amx_bf16)``."""
        flags = " ".join(self.flags) or "no AVX2"
        return f"{self.model} ({self.cores} cores; {flags})"

    def to_dict(self) -> dict[str, object]:
        return {"model": self.model, "cores": self.cores, "flags": list(self.flags)}


def parse_cpuinfo(text: str, *, fallback_model: str = "unknown CPU") -> CpuInfo:
    """The first processor's model and relevant flags, and the number of processors, from
    ``/proc/cpuinfo`` text (x86 ``flags`` or Arm ``Features``)."""
    model = ""
    flags: set[str] = set()
    cores = 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "processor":
            cores += 1
        elif key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    ordered = tuple(f for f in RELEVANT_FLAGS if f in flags)
    return CpuInfo(model or fallback_model, max(cores, 1), ordered)


def cpu_info(path: Path = Path("/proc/cpuinfo")) -> CpuInfo:
    """This machine's CPU (``platform.processor()`` where there is no ``/proc/cpuinfo``); cores are
    the ones this process may run on, not all the host has."""
    fallback = platform.processor() or platform.machine() or "unknown CPU"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return CpuInfo(fallback, usable, ())
    parsed = parse_cpuinfo(text, fallback_model=fallback)
    return CpuInfo(parsed.model, usable, parsed.flags)
