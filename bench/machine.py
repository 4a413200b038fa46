"""The CPU flags every benchmark prints beside its numbers (they decide what `--precision auto` picks)."""

from __future__ import annotations


def cpu_flags() -> str:
    """The flags of /proc/cpuinfo that matter here (avx2, avx512f, avx512_bf16, amx_tile, amx_bf16), or "none"."""
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return "unknown"
    return " ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16") if f in flags) or "none"
