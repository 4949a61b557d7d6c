"""The SD3 family's network config (torch-free: detection fills it from key shapes)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MMDiTConfig:
    """MMDiT hyper-parameters (model-families.md §2.1-2.2), inferred from keys and shapes.

    Real files: hidden = 64·depth, heads = depth, head_dim 64. Reduced test files keep the key
    layout but may use other widths; then the head width is read off `ln_q` (3.5 layouts) or
    stays 64 (see detect.py).
    """

    hidden_size: int  # H = x_embedder.proj rows
    depth: int  # number of joint_blocks (the last one's context block is pre-only)
    head_dim: int = 64
    in_channels: int = 16
    out_channels: int = 16
    patch_size: int = 2
    adm_in_channels: int | None = 2048  # pooled CLIP-L 768 + CLIP-G 1280; None: no y_embedder
    context_in: int = 4096  # context_embedder in-features (T5-XXL width)
    mlp_ratio: float = 4.0
    qk_norm: str | None = None  # "rms" (SD3.5: ln_q/ln_k RMSNorm over each head) or None
    dual_attention_layers: tuple[int, ...] = ()  # SD3.5 Medium: x_block.attn2 in blocks 0-12
    pos_embed_max_size: int = 192  # side of the stored [1, side², H] position table

    @property
    def num_heads(self) -> int:
        return self.hidden_size // self.head_dim

    @property
    def mlp_hidden(self) -> int:
        return int(self.hidden_size * self.mlp_ratio)
