"""The SD family's network config (torch-free: detection fills it from key shapes)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class UNetConfig:
    """UNet hyper-parameters, named as in model-detection.md §2 (inferred from keys/shapes)."""

    in_channels: int = 4
    out_channels: int = 4
    model_channels: int = 320
    num_res_blocks: list[int] = field(default_factory=lambda: [2, 2, 2, 2])
    channel_mult: list[int] = field(default_factory=lambda: [1, 2, 4, 4])
    # one entry per input ResBlock, in input order
    transformer_depth: list[int] = field(default_factory=lambda: [1, 1, 1, 1, 1, 1, 0, 0])
    # one entry per output block, stored in reverse output order (ComfyUI pops from the end)
    transformer_depth_output: list[int] = field(
        default_factory=lambda: [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]
    )
    transformer_depth_middle: int = 1  # -1: ResBlock only; -2: no middle block
    context_dim: int = 768
    use_linear_in_transformer: bool = False
    adm_in_channels: int | None = None  # SDXL: pooled text embedding + 6 Fourier sizes
    num_heads: int = 8  # used when num_head_channels == -1
    num_head_channels: int = -1  # SD2/SDXL: 64 channels per head

    def heads_for(self, channels: int) -> tuple[int, int]:
        """(number of heads, channels per head) of an attention layer of width `channels`."""
        if self.num_head_channels == -1:
            return self.num_heads, channels // self.num_heads
        return channels // self.num_head_channels, self.num_head_channels

    @property
    def time_embed_dim(self) -> int:
        return self.model_channels * 4
