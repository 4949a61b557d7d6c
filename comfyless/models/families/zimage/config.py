"""The Z-Image network config (ComfyUI's NextDiT with `z_image_modulation`), torch-free."""

from __future__ import annotations

from dataclasses import dataclass

# Z-Image Turbo / Base (model-families.md §3.1-3.2): 30 heads x 128, rotary axes (t, row, col)
REAL_HEAD_DIM = 128
REAL_AXES_DIMS = (32, 48, 48)
ROPE_THETA = 256.0
TIME_SCALE = 1000.0  # the embedding sees 1000·(1 − σ)
PAD_TOKENS_MULTIPLE = 32  # caption and image sequences are padded to multiples of this
NORM_EPS = 1e-5  # block RMSNorms and cap_embedder.0
FREQ_DIM = 256  # width of the sinusoidal timestep embedding
ADALN_MAX = 256  # the adaLN input is min(dim, 256) wide (z_image_modulation)
T_HIDDEN_MAX = 1024  # t_embedder's hidden width is min(dim, 1024)
FFN_MULTIPLIER = 8.0 / 3.0
FFN_MULTIPLE_OF = 256  # ComfyUI rounds the SwiGLU width up to a multiple of this


@dataclass(frozen=True)
class ZImageConfig:
    """Shapes of one Z-Image transformer; detection reads every width off the file, so reduced
    test files (narrower, fewer layers) keep the real key layout."""

    dim: int = 3840
    n_layers: int = 30
    n_refiner_layers: int = 2  # noise_refiner and context_refiner blocks each
    head_dim: int = REAL_HEAD_DIM
    in_channels: int = 16
    patch_size: int = 2
    cap_feat_dim: int = 2560  # Qwen3-4B hidden width
    ffn_hidden: int = 10240  # feed_forward.w1 rows
    t_hidden: int = 1024  # t_embedder.mlp.0 rows
    adaln_dim: int = 256  # t_embedder output = every adaLN input
    axes_dims: tuple[int, ...] = REAL_AXES_DIMS
    rope_theta: float = ROPE_THETA
    time_scale: float = TIME_SCALE
    pad_tokens_multiple: int = PAD_TOKENS_MULTIPLE

    @property
    def n_heads(self) -> int:
        return self.dim // self.head_dim

    @property
    def out_channels(self) -> int:
        return self.in_channels


def ffn_hidden_for(dim: int) -> int:
    """ComfyUI's SwiGLU width: int(8/3·dim) rounded up to a multiple of 256 (10240 for 3840)."""
    hidden = int(FFN_MULTIPLIER * dim)
    return FFN_MULTIPLE_OF * -(-hidden // FFN_MULTIPLE_OF)


def axes_for_head_dim(head_dim: int) -> tuple[int, ...] | None:
    """The rotary split of a head: the real (32, 48, 48) for 128 and the same proportions
    (1/4, 3/8, 3/8) for narrower test heads, every axis even (whole rotation pairs); None when
    the head width does not split that way."""
    if head_dim <= 0 or head_dim % 16:
        return None
    return (head_dim // 4, 3 * head_dim // 8, 3 * head_dim // 8)
