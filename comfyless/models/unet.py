"""The LDM/SGM diffusion UNet (SD1.x, SD2.x, SDXL) with checkpoint-compatible module names.

`UNetModel(config).state_dict()` keys equal the checkpoint keys after stripping
`model.diffusion_model.`, so weights load with `load_state_dict(..., assign=True)` and LoRA keys
map one to one. Shapes: x (B, C, H, W); timesteps (B,) float; context (B, T, context_dim);
y (B, adm_in_channels) for SDXL.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .families.sd.config import UNetConfig

__all__ = ["UNetConfig", "UNetModel", "timestep_embedding"]

# (h, skip) -> (h, skip): changes the two halves an output block is about to join (FreeU)
OutputBlockPatch = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def timestep_embedding(timesteps: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding (B,) -> (B, dim): [cos(t f_i), sin(t f_i)], f_i = P^(-i/half)."""
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device)
        / half
    )
    args = timesteps[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in float32 (LDM does this for fp16 stability)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.float()).type(x.dtype)


def _norm(channels: int, eps: float = 1e-5) -> nn.GroupNorm:
    return GroupNorm32(32, channels, eps=eps)


class ResBlock(nn.Module):
    """Two 3x3 convs with the timestep embedding added in between; 1x1 skip if widths differ."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int) -> None:
        super().__init__()
        self.in_layers = nn.Sequential(
            _norm(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, out_channels))
        self.out_layers = nn.Sequential(
            _norm(out_channels), nn.SiLU(), nn.Dropout(0.0),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        self.skip_connection = (
            nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        )

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.in_layers(x)
        h = h + self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        return self.skip_connection(x) + self.out_layers(h)


class CrossAttention(nn.Module):
    """Multi-head attention via scaled_dot_product_attention; self-attention if context is None."""

    def __init__(self, query_dim: int, context_dim: int | None, heads: int, dim_head: int) -> None:
        super().__init__()
        inner = heads * dim_head
        context_dim = context_dim or query_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(context_dim, inner, bias=False)
        self.to_v = nn.Linear(context_dim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        context = x if context is None else context
        q, k, v = self.to_q(x), self.to_k(context), self.to_v(context)
        b, n, inner = q.shape
        # (B, N, H*D) -> (B, H, N, D): SDPA wants heads as a batch axis
        q, k, v = (t.reshape(b, -1, self.heads, inner // self.heads).transpose(1, 2)
                   for t in (q, k, v))
        out = F.scaled_dot_product_attention(q, k, v)
        return self.to_out(out.transpose(1, 2).reshape(b, n, inner))


class GEGLU(nn.Module):
    """Linear to 2x width, then value * gelu(gate)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: Tensor) -> Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward with 4x inner width (keys ff.net.0.proj, ff.net.2)."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        inner = dim * mult
        self.net = nn.Sequential(GEGLU(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Pre-norm self-attention, cross-attention to the text context, feed-forward."""

    def __init__(self, dim: int, heads: int, dim_head: int, context_dim: int) -> None:
        super().__init__()
        self.attn1 = CrossAttention(dim, None, heads, dim_head)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, context_dim, heads, dim_head)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """Image features -> token sequence -> transformer blocks -> back, plus the residual."""

    def __init__(self, channels: int, heads: int, dim_head: int, depth: int,
                 context_dim: int, use_linear: bool) -> None:
        super().__init__()
        inner = heads * dim_head
        self.use_linear = use_linear
        self.norm = _norm(channels, eps=1e-6)
        make = (lambda i, o: nn.Linear(i, o)) if use_linear else (lambda i, o: nn.Conv2d(i, o, 1))
        self.proj_in = make(channels, inner)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(inner, heads, dim_head, context_dim) for _ in range(depth)
        )
        self.proj_out = make(inner, channels)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        b, _, h, w = x.shape
        x_in = x
        x = self.norm(x)
        if not self.use_linear:
            x = self.proj_in(x)
        x = x.flatten(2).transpose(1, 2)  # (B, H*W, C): attention wants a sequence axis
        if self.use_linear:
            x = self.proj_in(x)
        for block in self.transformer_blocks:
            x = block(x, context)
        if self.use_linear:
            x = self.proj_out(x)
        x = x.transpose(1, 2).reshape(b, -1, h, w)
        if not self.use_linear:
            x = self.proj_out(x)
        return x + x_in


class Downsample(nn.Module):
    """Stride-2 3x3 conv (key `op`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.op(x)


class Upsample(nn.Module):
    """Nearest 2x (or to the skip connection's size) then a 3x3 conv (key `conv`)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor, output_size: tuple[int, int] | None = None) -> Tensor:
        if output_size is None:
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        else:
            x = F.interpolate(x, size=output_size, mode="nearest")
        return self.conv(x)


class TimestepEmbedSequential(nn.Sequential):
    """A container that hands emb to ResBlocks and context to SpatialTransformers."""

    def forward(self, x: Tensor, emb: Tensor, context: Tensor,  # type: ignore[override]
                output_size: tuple[int, int] | None = None) -> Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, SpatialTransformer):
                x = layer(x, context)
            elif isinstance(layer, Upsample):
                x = layer(x, output_size)
            else:
                x = layer(x)
        return x


class UNetModel(nn.Module):
    """The LDM UNet; module names match `model.diffusion_model.*` checkpoint keys."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        mc, ted = config.model_channels, config.time_embed_dim
        self.time_embed = nn.Sequential(nn.Linear(mc, ted), nn.SiLU(), nn.Linear(ted, ted))
        if config.adm_in_channels is not None:
            # label_emb.0.{0,2}: a Sequential inside a Sequential, as in SGM checkpoints
            self.label_emb = nn.Sequential(nn.Sequential(
                nn.Linear(config.adm_in_channels, ted), nn.SiLU(), nn.Linear(ted, ted)
            ))
        skip_chans = self._build_input_blocks(config)
        self._build_middle_block(config)
        self._build_output_blocks(config, skip_chans)
        self.out = nn.Sequential(
            _norm(mc), nn.SiLU(), nn.Conv2d(mc, config.out_channels, 3, padding=1)
        )

    def _transformer(self, ch: int, depth: int) -> SpatialTransformer:
        heads, dim_head = self.config.heads_for(ch)
        c = self.config
        return SpatialTransformer(ch, heads, dim_head, depth, c.context_dim,
                                  c.use_linear_in_transformer)

    def _build_input_blocks(self, c: UNetConfig) -> list[int]:
        depths = list(c.transformer_depth)
        ch = c.model_channels
        self.input_blocks = nn.ModuleList(
            [TimestepEmbedSequential(nn.Conv2d(c.in_channels, ch, 3, padding=1))]
        )
        skip_chans = [ch]
        for level, mult in enumerate(c.channel_mult):
            for _ in range(c.num_res_blocks[level]):
                layers: list[nn.Module] = [ResBlock(ch, c.time_embed_dim, mult * c.model_channels)]
                ch = mult * c.model_channels
                depth = depths.pop(0)
                if depth > 0:
                    layers.append(self._transformer(ch, depth))
                self.input_blocks.append(TimestepEmbedSequential(*layers))
                skip_chans.append(ch)
            if level != len(c.channel_mult) - 1:
                self.input_blocks.append(TimestepEmbedSequential(Downsample(ch)))
                skip_chans.append(ch)
        self._ch = ch
        return skip_chans

    def _build_middle_block(self, c: UNetConfig) -> None:
        ch, ted = self._ch, c.time_embed_dim
        self.middle_block: TimestepEmbedSequential | None = None
        if c.transformer_depth_middle >= 0:
            self.middle_block = TimestepEmbedSequential(
                ResBlock(ch, ted, ch), self._transformer(ch, c.transformer_depth_middle),
                ResBlock(ch, ted, ch),
            )
        elif c.transformer_depth_middle == -1:
            self.middle_block = TimestepEmbedSequential(ResBlock(ch, ted, ch))

    def _build_output_blocks(self, c: UNetConfig, skip_chans: list[int]) -> None:
        depths = list(c.transformer_depth_output)
        ch = self._ch
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(c.channel_mult))[::-1]:
            for i in range(c.num_res_blocks[level] + 1):
                layers: list[nn.Module] = [
                    ResBlock(ch + skip_chans.pop(), c.time_embed_dim, mult * c.model_channels)
                ]
                ch = mult * c.model_channels
                depth = depths.pop()
                if depth > 0:
                    layers.append(self._transformer(ch, depth))
                if level and i == c.num_res_blocks[level]:
                    layers.append(Upsample(ch))
                self.output_blocks.append(TimestepEmbedSequential(*layers))

    @property
    def dtype(self) -> torch.dtype:
        return self.input_blocks[0][0].weight.dtype

    def forward(self, x: Tensor, timesteps: Tensor, context: Tensor,
                y: Tensor | None = None,
                control: dict[str, list[Tensor | None]] | None = None,
                output_block_patches: Sequence[OutputBlockPatch] = ()) -> Tensor:
        """Raw network output F (eps or v) for latents x at integer-valued timesteps.

        `control`: ControlNet residuals in ComfyUI's convention (models/controlnet.py):
        'input' and 'output' lists in input-block order, 'middle' one entry; each list is
        consumed from its end. An 'input' entry is added to an input block's output (before
        it is kept as a skip), 'middle' to the middle block's output, an 'output' entry to the
        skip an output block takes (the deepest skip first).
        `output_block_patches`: ComfyUI's output_block_patch, each `(h, skip) -> (h, skip)`
        called in order before every output block joins h with its skip (FreeU), after the
        skip got its control residual (ComfyUI's order).
        """
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels).to(x.dtype))
        if self.config.adm_in_channels is not None:
            if y is None:
                raise ValueError("this UNet (SDXL-style) needs the adm vector y")
            emb = emb + self.label_emb(y.to(emb.dtype))
        pending = {k: list(v) for k, v in (control or {}).items()}  # popped: copy
        h, skips = x, []
        for block in self.input_blocks:
            h = _add_control(block(h, emb, context), pending, "input")
            skips.append(h)
        if self.middle_block is not None:
            h = _add_control(self.middle_block(h, emb, context), pending, "middle")
        for block in self.output_blocks:
            skip = _add_control(skips.pop(), pending, "output")
            for patch in output_block_patches:
                h, skip = patch(h, skip)
            h = torch.cat([h, skip], dim=1)
            # upsample to the next skip's size so odd latent sizes round-trip
            h = block(h, emb, context, skips[-1].shape[-2:] if skips else None)
        return self.out(h).type(x.dtype)


def _add_control(h: Tensor, pending: dict[str, list[Tensor | None]], name: str) -> Tensor:
    """h plus the last pending control residual of `name` (ComfyUI pops from the end; an
    empty or missing list, or a None entry, adds nothing)."""
    residuals = pending.get(name)
    if not residuals:
        return h
    residual = residuals.pop()
    if residual is None:
        return h
    if residual.shape[1:] != h.shape[1:]:
        raise ValueError(f"control residual for the UNet's {name} block has shape "
                         f"{tuple(residual.shape)}, the block gives {tuple(h.shape)}: the "
                         "ControlNet was made for another model")
    return h + residual.to(h.dtype)
