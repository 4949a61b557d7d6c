"""What this CPU computes fast, for advice to the user. Imports nothing of ours; torch only
inside the probe.

Why: ComfyUI's training default is bf16. A CPU with bf16 units (x86 flags avx512_bf16 or
amx_bf16) runs a bf16 matmul at least as fast as fp32; one without them emulates it and, on the
2-core AVX2 EPYC this project was measured on, ran bf16 training about 100x slower than fp32.
`bf16_slowdown` says which case this is, with the measured factor for the message.

Detection: the x86 flags in /proc/cpuinfo when readable (no probe needed on a capable CPU);
otherwise (other platforms, no /proc), or when an environment variable keeps torch's kernels
below what the CPU has (ISA_LIMITS: then the flags overstate what torch runs), a timed matmul of
bf16 against fp32, run once per process.
"""

from __future__ import annotations

import functools
import os
import time

BF16_FLAGS = ("avx512_bf16", "amx_bf16")
# Set to e.g. avx2 / AVX2, these restrict ATen's and oneDNN's kernels: on a CPU with bf16 units,
# bf16 matmuls then run emulated (measured here: 166 ms against 5.4 ms in fp32 at 512x512).
ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")
# Below this fp32/bf16 time ratio bf16 is not worth a warning (timing noise, or a fast CPU).
SLOW_RATIO = 1.5
PROBE_SIZE = 256  # matmul side: ~1 ms in fp32 on one core, long enough to time


def x86_flags(path: str = "/proc/cpuinfo") -> frozenset[str] | None:
    """The `flags` of the first processor in /proc/cpuinfo; None if there is no such line
    (not x86, or not Linux) or the file cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        return None
    return None


def native_bf16(flags: frozenset[str] | None = None) -> bool | None:
    """True/False from the x86 flags; None when they are unknown (then only a probe tells)."""
    flags = x86_flags() if flags is None else flags
    if flags is None:
        return None
    return any(flag in flags for flag in BF16_FLAGS)


@functools.cache
def bf16_matmul_ratio() -> float:
    """How many times longer a bf16 matmul takes than the same fp32 one here (once per process;
    uses torch's current thread count)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    a = torch.randn(PROBE_SIZE, PROBE_SIZE, generator=gen)
    b = torch.randn(PROBE_SIZE, PROBE_SIZE, generator=gen)
    fp32 = _best_seconds(lambda: a @ b)
    a16, b16 = a.bfloat16(), b.bfloat16()
    bf16 = _best_seconds(lambda: a16 @ b16)
    return bf16 / max(fp32, 1e-9)


def _best_seconds(fn, repeats: int = 3) -> float:
    """Fastest of `repeats` timed calls after one warm-up (the first call sets up kernels)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bf16_slowdown() -> float | None:
    """The factor by which bf16 matmuls are slower than fp32 on this CPU, when it lacks native
    bf16 and the difference is worth telling (>= SLOW_RATIO); None on a CPU with bf16 units."""
    if native_bf16() and not any(os.environ.get(name) for name in ISA_LIMITS):
        return None
    ratio = bf16_matmul_ratio()
    return ratio if ratio >= SLOW_RATIO else None
