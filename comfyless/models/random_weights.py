"""Random weights and safetensors files written tensor by tensor (no torch model needed).

`random_init` fills shapes by role so activations stay O(1); `streamed_random` draws the same
numbers one tensor at a time; `write_streamed` writes a file bigger than memory (the full
FLUX.1 transformer, T5-XXL) from such a stream. Used by models/checkpoint_writer.py, the family
writers and models/text_sets.py.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch
from torch import Tensor

from .tensor_files import FLOAT8_DTYPES


def random_init(shapes: dict[str, torch.Size], generator: torch.Generator,
                bias_std: Callable[[str], float] = lambda key: 0.02) -> dict[str, Tensor]:
    """Fill each key by its role: weights N(0, 1/fan_in), norm scales 1 + N(0, 0.02), biases."""
    out: dict[str, Tensor] = {}
    for key, shape in shapes.items():
        t = torch.randn(shape, generator=generator)
        if len(shape) >= 2:
            fan_in = shape[1:].numel()
            t.mul_(fan_in**-0.5)
        elif key.endswith(".weight"):
            t.mul_(0.02).add_(1.0)  # GroupNorm / LayerNorm scale
        else:
            t.mul_(bias_std(key))
        out[key] = t
    return out


_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
                       **dict(zip(FLOAT8_DTYPES, ("F8_E4M3", "F8_E5M2"), strict=False))}


def write_streamed(path: str | Path, shapes: dict[str, tuple[int, ...]],
                   tensors: Iterable[tuple[str, Tensor]], dtype: torch.dtype,
                   metadata: dict[str, str] | None = None) -> Path:
    """Write a safetensors file tensor by tensor, so a model bigger than memory (the full
    FLUX.1 transformer, T5-XXL) never exists as a whole: the header is computed from `shapes`,
    then `tensors` (same keys, same order) are cast to `dtype` and appended one at a time."""
    from ..files import write_atomic

    itemsize = torch.empty((), dtype=dtype).element_size()
    header: dict[str, object] = {"__metadata__": dict(metadata or {})}
    offset = 0
    for key, shape in shapes.items():
        n = itemsize * int(torch.Size(shape).numel())
        header[key] = {"dtype": _SAFETENSORS_DTYPES[dtype], "shape": list(shape),
                       "data_offsets": [offset, offset + n]}
        offset += n
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)  # the data starts 8-byte aligned

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(head)) + head)
            for (key, t), want in zip(tensors, shapes, strict=True):
                if key != want or tuple(t.shape) != tuple(shapes[key]):
                    raise ValueError(f"streamed tensor {key} {tuple(t.shape)} does not match "
                                     f"the header's {want} {tuple(shapes[want])}")
                f.write(t.to(dtype).contiguous().view(torch.uint8).numpy().tobytes())

    write_atomic(Path(path), write)
    return Path(path)


def streamed_random(shapes: dict[str, tuple[int, ...]], seed: int
                    ) -> Iterator[tuple[str, Tensor]]:
    """(key, random_init tensor) one at a time, from one generator, in `shapes` order."""
    gen = torch.Generator().manual_seed(seed)
    for key, shape in shapes.items():
        yield key, random_init({key: torch.Size(shape)}, gen)[key]


# A file too big to build in memory: written by `write(path, dtype)` (see write_streamed).
StreamedFile = Callable[[Path, torch.dtype], object]
