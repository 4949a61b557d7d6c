"""The Qwen-Image network config (the arguments of diffusers' transformer), torch-free."""

from __future__ import annotations

from dataclasses import dataclass

# Qwen-Image / 2512 values (model-families.md §4.1): 24 heads x 128, rotary axes (frame, row, col)
REAL_AXES_DIM = (16, 56, 56)
THETA = 10000
PATCH_SIZE = 2
LATENT_CHANNELS = 16  # Wan 2.1 latents
JOINT_ATTENTION_DIM = 3584  # Qwen2.5-VL-7B hidden width
# reference latents method when the conditioning names none: "index" (Qwen-Image, Edit, 2509),
# "index_timestep_zero" for Qwen-Image-Edit-2511 (its file carries the marker key below)
DEFAULT_REF_METHOD = "index"
TIMESTEP_ZERO_METHOD = "index_timestep_zero"
TIMESTEP_ZERO_MARKER = "__index_timestep_zero__"  # an empty tensor in 2511 files


@dataclass(frozen=True)
class QwenImageConfig:
    """Shapes of one Qwen-Image transformer. `in_channels` is img_in's input width (latent
    channels x patch², diffusers' and ComfyUI's convention), `out_channels` the latent channels."""

    hidden_size: int = 3072
    num_heads: int = 24
    num_layers: int = 60
    in_channels: int = LATENT_CHANNELS * PATCH_SIZE * PATCH_SIZE
    out_channels: int = LATENT_CHANNELS
    joint_attention_dim: int = JOINT_ATTENTION_DIM
    mlp_hidden: int = 4 * 3072
    axes_dim: tuple[int, ...] = REAL_AXES_DIM
    theta: int = THETA
    patch_size: int = PATCH_SIZE
    default_ref_method: str = DEFAULT_REF_METHOD

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads
