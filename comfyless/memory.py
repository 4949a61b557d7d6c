"""Handing freed memory back to the OS (torch-free: the engine calls it after every node).

glibc keeps freed blocks of up to 32 MiB inside malloc's heap, where they still count as the
process' resident memory until reused: after a checkpoint load or a VAE pass hundreds of MiB of
freed tensors stay resident. `malloc_trim` returns them; elsewhere (musl, macOS, Windows) this
is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache


def return_freed_memory() -> None:
    """Return malloc's free blocks to the OS (glibc's malloc_trim; a no-op elsewhere)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@cache
def _malloc_trim():
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
