"""Which CPU a number was measured on: parsing /proc/cpuinfo and what its flags allow."""

from __future__ import annotations

from pathlib import Path

from lockgate.optimize.cpu import CpuInfo, cpu_info, parse_cpuinfo

_SAPPHIRE = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni avx512_bf16 amx_bf16 amx_tile amx_int8
"""

_OLDER = """processor\t: 0
model name\t: Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz
flags\t\t: fpu sse2 avx avx2 fma
"""


def test_flags_that_decide_the_candidates() -> None:
    amx = parse_cpuinfo(_SAPPHIRE)
    assert amx.model == "Intel(R) Xeon(R) Platinum 8480+"
    assert amx.cores == 2
    assert amx.has_bf16 and amx.has_int8_dot
    assert amx.flags == (
        "avx2",
        "fma",
        "avx512f",
        "avx512_vnni",
        "avx512_bf16",
        "amx_bf16",
        "amx_int8",
        "amx_tile",
    )
    older = parse_cpuinfo(_OLDER)
    assert not older.has_bf16 and not older.has_int8_dot
    assert older.describe() == "Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz (1 cores; avx2 fma)"


def test_no_cpuinfo_still_names_something(tmp_path: Path) -> None:
    info = cpu_info(tmp_path / "missing")
    assert isinstance(info, CpuInfo) and info.model and info.cores >= 1 and info.flags == ()
    assert parse_cpuinfo("", fallback_model="arm64").model == "arm64"


def test_this_machine() -> None:
    info = cpu_info()
    assert info.cores >= 1
    assert info.to_dict()["model"] == info.model
