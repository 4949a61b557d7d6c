"""The FLUX.1 network config (ComfyUI's FluxParams fields), torch-free."""

from __future__ import annotations

from dataclasses import dataclass

# Flux.1 values (model-families.md §1.1): 24 heads x 128, rotary axes (index, row, col)
REAL_HEAD_DIM = 128
REAL_AXES_DIM = (16, 56, 56)
THETA = 10000
PATCH_SIZE = 2


@dataclass(frozen=True)
class FluxConfig:
    """Shapes and switches of one FLUX.1 transformer (dev: guidance_embed, schnell: not)."""

    hidden_size: int = 3072
    num_heads: int = 24
    depth: int = 19  # double-stream blocks
    depth_single_blocks: int = 38
    in_channels: int = 16  # latent channels (img_in takes in_channels x 2 x 2 features)
    out_channels: int = 16
    context_in_dim: int = 4096  # T5-XXL hidden width
    vec_in_dim: int = 768  # CLIP-L pooled width
    mlp_ratio: float = 4.0
    guidance_embed: bool = True
    qkv_bias: bool = True
    axes_dim: tuple[int, ...] = REAL_AXES_DIM
    theta: int = THETA
    patch_size: int = PATCH_SIZE

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def mlp_hidden(self) -> int:
        return int(self.hidden_size * self.mlp_ratio)


def axes_for_head_dim(head_dim: int) -> tuple[int, ...] | None:
    """The rotary axes split of a head: the real [16, 56, 56] for 128, and for smaller test
    heads the same proportions (first axis ~ head/8, the other two equal), every axis even so
    it holds whole rotation pairs. None when no such split exists."""
    first = max(2, (head_dim // 8) // 2 * 2)
    while first < head_dim:
        rest = head_dim - first
        if rest % 4 == 0:
            return (first, rest // 2, rest // 2)
        first += 2
    return None
