"""Float comparisons that hold on every CPU, thread count and memory layout.

Two computations of the same value by different code paths (another load of the same weights,
another batch shape, a merged weight instead of a hook, a crop done elsewhere) differ in their
last bits: the CPU's vector width, the alignment of the tensors and the thread count choose
different kernels and summation orders. Such results are compared with a relative tolerance
plus an absolute one scaled to the largest magnitude involved, because an element near zero in
a tensor of large values carries the rounding error of its large neighbours (a difference of
4e-4 on values near 340 is float32 rounding, not a bug).

Bitwise comparisons (`torch.equal`) stay where a test is about bitwise determinism of one code
path in one process (same seed twice, weights restored after a patch, a file round trip).
"""

from __future__ import annotations

import torch


def magnitude(*tensors: torch.Tensor) -> float:
    """The largest absolute finite value among `tensors` (0.0 when all are empty)."""
    return max((float(t.detach().abs().max()) for t in tensors if t.numel()), default=0.0)


def assert_close_scaled(actual: torch.Tensor, expected: torch.Tensor, *, rtol: float = 1e-4,
                        atol_rel: float = 1e-5, scale: float | None = None,
                        msg: str | None = None) -> None:
    """`actual` ≈ `expected` elementwise within `rtol` of each value plus `atol_rel` times the
    largest magnitude of either tensor (shapes and dtypes must match).

    `scale` replaces that magnitude when the tensor is one part of a larger computation whose
    rounding it carries (e.g. a gradient that is ~0 next to the other parameters' gradients).
    """
    atol = atol_rel * (magnitude(actual, expected) if scale is None else scale)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol, msg=msg)

