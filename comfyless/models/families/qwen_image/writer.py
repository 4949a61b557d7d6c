"""Random-weight Qwen-Image transformers in the ComfyUI/diffusers file layout (prefix-free keys),
for tests, benchmarks and make-checkpoint.

Sizes: "tiny" (hidden 64, 2 heads x 32, 2 blocks), "small" (hidden 512, 4 heads x 128,
4 blocks), "full" (the real 20.4 B-parameter shapes: build it on the meta device,
`diffusion_model_shapes`, or write it tensor by tensor, `write_diffusion_model`; it is never
held in memory). joint_attention_dim defaults to the real Qwen2.5-VL-7B width 3584 so tests can
pick a tiny text width instead.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ...checkpoint_writer import streamed_random, write_streamed
from ..flux.config import axes_for_head_dim
from .config import (
    DEFAULT_REF_METHOD,
    JOINT_ATTENTION_DIM,
    TIMESTEP_ZERO_METHOD,
    QwenImageConfig,
)
from .network import QwenImageNetwork

# one layout for all; the 2511 edit model's file adds the empty `__index_timestep_zero__`
NAMES = ("qwen-image", "qwen_image", "qwen-image-2512", "qwen-image-edit-2511")
SIZES = ("tiny", "small", "full")
_LAYOUTS = {  # (hidden, heads, blocks)
    "tiny": (64, 2, 2),
    "small": (512, 4, 4),
    "full": (3072, 24, 60),
}


def network_config(name: str = "qwen-image", size: str = "tiny",
                   joint_attention_dim: int | None = JOINT_ATTENTION_DIM,
                   adm_in_channels: int | None = None) -> QwenImageConfig:
    """The QwenImageConfig written for (name, size); the signature is the family record's
    `test_unet_config` (Qwen-Image has no pooled/adm input: `adm_in_channels` is ignored)."""
    if name not in NAMES or size not in SIZES:
        raise ValueError(f"name must be one of {NAMES} and size one of {SIZES}, "
                         f"got {name!r}, {size!r}")
    hidden, heads, blocks = _LAYOUTS[size]
    return QwenImageConfig(hidden_size=hidden, num_heads=heads, num_layers=blocks,
                           joint_attention_dim=joint_attention_dim or JOINT_ATTENTION_DIM,
                           mlp_hidden=4 * hidden, axes_dim=axes_for_head_dim(hidden // heads),
                           default_ref_method=(TIMESTEP_ZERO_METHOD if name.endswith("2511")
                                               else DEFAULT_REF_METHOD))


def diffusion_model_shapes(name: str = "qwen-image", size: str = "tiny",
                           joint_attention_dim: int = JOINT_ATTENTION_DIM
                           ) -> dict[str, torch.Size]:
    """{file key: shape}, built on the meta device."""
    with torch.device("meta"):
        net = QwenImageNetwork(network_config(name, size, joint_attention_dim))
    return {k: v.shape for k, v in net.state_dict().items()}


def diffusion_model_state_dict(name: str = "qwen-image", size: str = "tiny", seed: int = 0,
                               joint_attention_dim: int = JOINT_ATTENTION_DIM
                               ) -> dict[str, Tensor]:
    """Random float32 weights under the file keys (prefix-free). "full" is refused here
    (82 GB of float32): use `write_diffusion_model` or `diffusion_model_shapes`."""
    if size == "full":
        raise ValueError("the full Qwen-Image transformer (20.4 B parameters) is never built "
                         "in memory: use write_diffusion_model(...) or "
                         "diffusion_model_shapes(...)")
    return dict(streamed_random(diffusion_model_shapes(name, size, joint_attention_dim), seed))


def write_diffusion_model(path: str | Path, name: str = "qwen-image", size: str = "tiny",
                          seed: int = 0, *, dtype: torch.dtype = torch.bfloat16,
                          joint_attention_dim: int = JOINT_ATTENTION_DIM) -> Path:
    """Write a random transformer file tensor by tensor (same numbers as
    `diffusion_model_state_dict`), so "full" never needs the model in memory."""
    shapes = {k: tuple(v) for k, v in
              diffusion_model_shapes(name, size, joint_attention_dim).items()}
    meta = {"comfyless.random_checkpoint": f"{name}/{size}/seed={seed}"}
    return write_streamed(path, shapes, streamed_random(shapes, seed), dtype, meta)


# --- whole files (make-checkpoint, tests) -----------------------------------------------------
def _layout():
    from ... import wan_vae
    from ...checkpoint_writer import DiTFiles

    return DiTFiles(
        # the reference workflow's transformer: fp8-stored, as that file is
        unet_name="qwen_image_fp8_e4m3fn.safetensors", unet_fp8=True,
        text_type="qwen_image", vae_name="qwen_image_vae.safetensors",
        shapes=lambda size, width: {k: tuple(v) for k, v in diffusion_model_shapes(
            "qwen-image", size, width or JOINT_ATTENTION_DIM).items()},
        text_width=lambda files: files["qwen_2.5_vl_7b.safetensors"][
            "model.embed_tokens.weight"].shape[1],
        vae=lambda size, gen: wan_vae.wan_vae_state_dict(size, gen, prefix=""))


def checkpoint_state_dict(arch: str, size: str = "tiny", seed: int = 0,
                          prediction: str | None = None) -> dict[str, Tensor]:
    """An all-in-one Qwen-Image checkpoint (MMDiT, Qwen2.5-VL LM, Wan 2.1 VAE)."""
    from ...checkpoint_writer import dit_checkpoint

    return dit_checkpoint(_layout(), size, seed)


def model_files(arch: str, size: str, seed: int, prediction: str | None) -> dict[str, dict]:
    """diffusion_models/qwen_image_fp8_e4m3fn, text_encoders/qwen_2.5_vl_7b,
    vae/qwen_image_vae (the reference workflow's files)."""
    from ...checkpoint_writer import dit_model_files

    return dit_model_files(_layout(), size, seed)
