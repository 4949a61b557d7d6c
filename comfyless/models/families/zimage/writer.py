"""Random-weight Z-Image transformers in the ComfyUI key layout (prefix-free keys), for tests,
benchmarks and make-checkpoint.

Sizes: "tiny" (dim 256, 4 heads x 64, 2 layers + 2 + 2 refiners), "small" (dim 768, 6 heads x
128, 4 layers), "full" (the real 6.16 B-parameter shapes: build it on the meta device,
`diffusion_model_shapes`, or write it tensor by tensor, `write_diffusion_model`; it is never
held in memory). Widths follow ComfyUI's rules for a given dim (t_embedder hidden min(dim,
1024), adaLN input min(dim, 256), SwiGLU int(8/3·dim) rounded up to 256), so tiny files are
what ComfyUI's NextDiT would build for that dim. cap_feat_dim defaults to the real 2560
(Qwen3-4B) so tests can match a tiny text encoder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from ...checkpoint_writer import streamed_random, write_streamed
from .config import ADALN_MAX, T_HIDDEN_MAX, ZImageConfig, axes_for_head_dim, ffn_hidden_for
from .network import ZImageNetwork

NAMES = ("zimage", "z-image", "z-image-turbo", "zimage-turbo")
SIZES = ("tiny", "small", "full")
_LAYOUTS = {  # (dim, head_dim, layers, refiner layers)
    "tiny": (256, 64, 2, 2),
    "small": (768, 128, 4, 2),
    "full": (3840, 128, 30, 2),
}


def network_config(name: str = "zimage", size: str = "tiny", cap_feat_dim: int | None = 2560,
                   adm: int | None = None) -> ZImageConfig:
    """The ZImageConfig written for `size` (`adm` is unused: Z-Image has no pooled vector;
    the argument keeps the family records' test_unet_config signature)."""
    if name not in NAMES or size not in SIZES:
        raise ValueError(f"name must be one of {NAMES} and size one of {SIZES}, "
                         f"got {name!r}, {size!r}")
    dim, head_dim, layers, refiners = _LAYOUTS[size]
    return ZImageConfig(dim=dim, n_layers=layers, n_refiner_layers=refiners, head_dim=head_dim,
                        cap_feat_dim=cap_feat_dim or 2560, ffn_hidden=ffn_hidden_for(dim),
                        t_hidden=min(dim, T_HIDDEN_MAX), adaln_dim=min(dim, ADALN_MAX),
                        axes_dims=axes_for_head_dim(head_dim))


def diffusion_model_shapes(name: str = "zimage", size: str = "tiny", cap_feat_dim: int = 2560
                           ) -> dict[str, torch.Size]:
    """{parameter name: shape} (ComfyUI names, prefix-free), built on the meta device."""
    with torch.device("meta"):
        net = ZImageNetwork(network_config(name, size, cap_feat_dim))
    return {k: v.shape for k, v in net.state_dict().items()}


def _random_tensors(name: str, size: str, seed: int, cap_feat_dim: int
                    ) -> Iterator[tuple[str, Tensor]]:
    """(key, float32 tensor) one at a time, in a fixed order from one generator."""
    return streamed_random(diffusion_model_shapes(name, size, cap_feat_dim), seed)


def diffusion_model_state_dict(name: str = "zimage", size: str = "tiny", seed: int = 0,
                               cap_feat_dim: int = 2560) -> dict[str, Tensor]:
    """Random float32 weights under ComfyUI's keys (prefix-free). "full" is refused here
    (25 GB of float32): use `write_diffusion_model` or `diffusion_model_shapes`."""
    if size == "full":
        raise ValueError("the full Z-Image transformer (6.2 B parameters) is never built in "
                         "memory: use write_diffusion_model(...) or diffusion_model_shapes(...)")
    return dict(_random_tensors(name, size, seed, cap_feat_dim))


def write_diffusion_model(path: str | Path, name: str = "zimage", size: str = "tiny",
                          seed: int = 0, *, dtype: torch.dtype = torch.bfloat16,
                          cap_feat_dim: int = 2560) -> Path:
    """Write a random transformer file tensor by tensor (same numbers as
    `diffusion_model_state_dict`), so "full" never needs the model in memory."""
    shapes = {k: tuple(v) for k, v in diffusion_model_shapes(name, size, cap_feat_dim).items()}
    meta = {"comfyless.random_checkpoint": f"{name}/{size}/seed={seed}"}
    return write_streamed(path, shapes, _random_tensors(name, size, seed, cap_feat_dim), dtype,
                          meta)


# --- whole files (make-checkpoint, tests) -----------------------------------------------------
def _layout():
    from ... import vae
    from ...checkpoint_writer import DiTFiles

    return DiTFiles(
        unet_name="z_image_turbo_bf16.safetensors",  # Turbo and Base share the layout
        text_type="lumina2", vae_name="ae.safetensors",
        shapes=lambda size, width: {k: tuple(v) for k, v in diffusion_model_shapes(
            "zimage", size, width or 2560).items()},
        text_width=lambda files: files["qwen_3_4b.safetensors"][
            "model.embed_tokens.weight"].shape[1],
        vae=lambda size, gen: vae.vae_state_dict(size, gen, kind="kl16", prefix=""))


def checkpoint_state_dict(arch: str, size: str = "tiny", seed: int = 0,
                          prediction: str | None = None) -> dict[str, Tensor]:
    """An all-in-one Z-Image checkpoint (NextDiT, Qwen3-4B, the 16-channel Flux VAE)."""
    from ...checkpoint_writer import dit_checkpoint

    return dit_checkpoint(_layout(), size, seed)


def model_files(arch: str, size: str, seed: int, prediction: str | None) -> dict[str, dict]:
    """diffusion_models/z_image_turbo_bf16, text_encoders/qwen_3_4b, vae/ae (the reference
    workflow's files)."""
    from ...checkpoint_writer import dit_model_files

    return dit_model_files(_layout(), size, seed)
