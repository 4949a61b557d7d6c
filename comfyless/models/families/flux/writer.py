"""Random-weight FLUX.1 transformers in the BFL file layout (prefix-free keys, RMSNorm scales
stored as `..._norm.scale`), for tests, benchmarks and make-checkpoint.

Sizes: "tiny" (hidden 64, 2 heads x 32, 2 double + 2 single blocks), "small" (hidden 512,
4 heads x 128, 2 + 4 blocks), "full" (the real 11.9 B-parameter shapes: build it on the meta
device, `diffusion_model_shapes`, or write it tensor by tensor, `write_diffusion_model`; it
is never held in memory). context_in_dim / vec_in_dim default to the real T5-XXL / CLIP-L
widths so tests can match tiny text encoders.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from ...checkpoint_writer import random_init
from . import names
from .config import FluxConfig, axes_for_head_dim
from .network import FluxNetwork

NAMES = ("flux", "flux-schnell")
SIZES = ("tiny", "small", "full")
_LAYOUTS = {  # (hidden, heads, double blocks, single blocks)
    "tiny": (64, 2, 2, 2),
    "small": (512, 4, 2, 4),
    "full": (3072, 24, 19, 38),
}


def network_config(name: str, size: str, context_in_dim: int = 4096,
                   vec_in_dim: int = 768) -> FluxConfig:
    """The FluxConfig written for (name, size); dev has the guidance embedding."""
    if name not in NAMES or size not in SIZES:
        raise ValueError(f"name must be one of {NAMES} and size one of {SIZES}, "
                         f"got {name!r}, {size!r}")
    hidden, heads, depth, single = _LAYOUTS[size]
    return FluxConfig(hidden_size=hidden, num_heads=heads, depth=depth,
                      depth_single_blocks=single, context_in_dim=context_in_dim,
                      vec_in_dim=vec_in_dim, guidance_embed=name == "flux",
                      axes_dim=axes_for_head_dim(hidden // heads))


def diffusion_model_shapes(name: str, size: str, context_in_dim: int = 4096,
                           vec_in_dim: int = 768) -> dict[str, torch.Size]:
    """{parameter name (ComfyUI `_norm.weight` spelling): shape}, built on the meta device."""
    with torch.device("meta"):
        net = FluxNetwork(network_config(name, size, context_in_dim, vec_in_dim))
    return {k: v.shape for k, v in net.state_dict().items()}


def _file_key(key: str) -> str:
    """The BFL file spelling of a parameter name (`_norm.weight` -> `_norm.scale`)."""
    if key.endswith(names.NORM_WEIGHT):
        return key[: -len(names.NORM_WEIGHT)] + names.BFL_NORM_SCALE
    return key


def _random_tensors(name: str, size: str, seed: int, context_in_dim: int, vec_in_dim: int
                    ) -> Iterator[tuple[str, Tensor]]:
    """(file key, float32 tensor) one at a time, in a fixed order from one generator."""
    gen = torch.Generator().manual_seed(seed)
    for key, shape in diffusion_model_shapes(name, size, context_in_dim, vec_in_dim).items():
        # one key per call draws the same numbers as one call over all keys
        yield _file_key(key), random_init({key: shape}, gen)[key]


def diffusion_model_state_dict(name: str, size: str, seed: int = 0, context_in_dim: int = 4096,
                               vec_in_dim: int = 768) -> dict[str, Tensor]:
    """Random float32 weights under the BFL file keys (prefix-free, `_norm.scale`).

    "full" is refused here (48 GB of float32): use `write_diffusion_model` or the shapes."""
    if size == "full":
        raise ValueError("the full FLUX.1 transformer (11.9 B parameters) is never built in "
                         "memory: use write_diffusion_model(...) or diffusion_model_shapes(...)")
    return dict(_random_tensors(name, size, seed, context_in_dim, vec_in_dim))


_SAFETENSORS_DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}
for _name, _code in (("float8_e4m3fn", "F8_E4M3"), ("float8_e5m2", "F8_E5M2")):
    if hasattr(torch, _name):
        _SAFETENSORS_DTYPES[getattr(torch, _name)] = _code


def write_diffusion_model(path: str | Path, name: str = "flux", size: str = "tiny",
                          seed: int = 0, *, dtype: torch.dtype = torch.bfloat16,
                          context_in_dim: int = 4096, vec_in_dim: int = 768) -> Path:
    """Write a random transformer file tensor by tensor (safetensors format, same numbers as
    `diffusion_model_state_dict`), so "full" never needs the model in memory: the data are laid
    out in drawing order (safetensors only needs the offsets to tile the data)."""
    from ....files import write_atomic

    path = Path(path)
    shapes = {_file_key(k): tuple(v) for k, v in
              diffusion_model_shapes(name, size, context_in_dim, vec_in_dim).items()}
    itemsize = torch.empty((), dtype=dtype).element_size()
    header: dict[str, object] = {
        "__metadata__": {"comfyless.random_checkpoint": f"{name}/{size}/seed={seed}"}}
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
            for _, t in _random_tensors(name, size, seed, context_in_dim, vec_in_dim):
                f.write(t.to(dtype).contiguous().view(torch.uint8).numpy().tobytes())

    write_atomic(path, write)
    return path
