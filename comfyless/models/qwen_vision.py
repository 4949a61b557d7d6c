"""Qwen2.5-VL's vision transformer (the `visual.*` part of qwen_2.5_vl_7b*.safetensors), as
ComfyUI's Qwen-Image edit nodes use it, and ComfyUI's image preprocessing for it.

Facts (ComfyUI comfy/text_encoders/qwen_vl.py and llama.py `Qwen25_7BVLI`; transformers
Qwen2_5_VisionTransformerPretrainedModel agrees, tests/models/test_qwen_vision.py checks it):

* Real shape: 32 blocks, width 1280, 16 heads × 80, SwiGLU MLP 3420 (with biases), patches of
  14 × 14 pixels × 2 frames (Conv3d without bias, stride = kernel), 2 × 2 patch merger to the
  LM width 3584. Blocks 7, 15, 23 and 31 attend over the whole image; every other block only
  inside windows of 112 × 112 pixels (4 × 4 merged patches). RMSNorm eps 1e-6 (`norm1`,
  `norm2`, `merger.ln_q`); the merger MLP is Linear → exact GELU → Linear on 4 neighbouring
  patches concatenated.
* Keys: `visual.patch_embed.proj.weight` [1280, 3, 2, 14, 14], `visual.blocks.N.{norm1,norm2}.
  weight`, `visual.blocks.N.attn.{qkv,proj}.{weight,bias}` (qkv = q, k, v stacked, each heads ×
  head width), `visual.blocks.N.mlp.{gate,up,down}_proj.{weight,bias}`, `visual.merger.ln_q.
  weight`, `visual.merger.mlp.{0,2}.{weight,bias}`.
* Patch order: patches come grouped by 2 × 2 merge unit (row-major over merge units, then
  row-major inside a unit); each patch is flattened as (channel, frame, y, x). The rotary
  angles of a patch are (row · f_i, column · f_i) with f_i = 1 / 10000^(2i / (head/2)), i <
  head/4, concatenated and repeated twice (rotate-half pairs). For windowed attention the merge
  units are reordered window by window (windows row-major; a window holds up to 4 × 4 merge
  units, fewer at the right and bottom edges); the merger output is put back in patch order.
* Preprocessing (ComfyUI's process_qwen2vl_images; only the first image of a batch): resize
  bilinearly (half-pixel centres, no antialiasing) to height and width rounded to multiples of
  28; if that exceeds 12 845 056 pixels, scale down by sqrt(h·w / max) and floor to multiples
  of 28 (at least 28); if under 3136, scale up by sqrt(3136 / (h·w)) and ceil. Normalise with
  CLIP's mean (0.48145466, 0.4578275, 0.40821073) and std (0.26862954, 0.26130258,
  0.27577711) from [0, 1] pixels; the one frame is repeated for the 2-frame patch.
  transformers' Qwen2VLImageProcessor resizes with bicubic and other pixel limits: only its
  normalisation and patch order are shared.

Compute is float32 whatever the storage dtype (weights cast per call), as the text LM.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
MIN_PIXELS = 3136  # 56 × 56
MAX_PIXELS = 12845056  # 16384 × 28 × 28
FULL_ATTENTION_BLOCKS = (7, 15, 23, 31)  # fixed in ComfyUI (not read from the file)
REAL_HEAD_WIDTH = 80  # 1280 / 16
TEST_HEAD_WIDTH = 16  # towers whose width is not a multiple of 80 (test files)
ROPE_THETA = 10000.0
KEY_PREFIX = "visual."


@dataclass(frozen=True)
class VisionConfig:
    """Shape parameters of a Qwen2.5-VL vision tower (defaults: the real 7B one)."""

    hidden: int = 1280
    out_hidden: int = 3584  # the LM width
    mlp: int = 3420
    heads: int = 16
    depth: int = 32
    patch: int = 14
    temporal_patch: int = 2
    merge: int = 2
    window: int = 112  # pixels
    eps: float = 1e-6

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def factor(self) -> int:
        """Image sides are multiples of this (one merge unit: 28 pixels)."""
        return self.patch * self.merge

    @property
    def window_units(self) -> int:
        """Merge units per window side (4)."""
        return self.window // self.merge // self.patch


QWEN25_VL_VISION = VisionConfig()


def heads_for_width(hidden: int) -> int:
    """Heads of a tower `hidden` wide: 80-wide heads (the real 1280 → 16), else 16-wide ones."""
    width = REAL_HEAD_WIDTH if hidden % REAL_HEAD_WIDTH == 0 else TEST_HEAD_WIDTH
    return max(1, hidden // width)


# --- preprocessing ---------------------------------------------------------------------------

def vision_size(height: int, width: int, factor: int = 28, min_pixels: int = MIN_PIXELS,
                max_pixels: int = MAX_PIXELS) -> tuple[int, int]:
    """(height, width) the image is resized to (module docstring: ComfyUI's rounding rule)."""
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def patchify(pixels: Tensor, cfg: VisionConfig = QWEN25_VL_VISION) -> Tensor:
    """Normalised pixels [C, H, W] (H, W multiples of 28) -> patches [N, C·2·14·14] in the
    tower's order (merge units row-major, 2 × 2 inside; each (channel, frame, y, x))."""
    c, h, w = pixels.shape
    p, m, t = cfg.patch, cfg.merge, cfg.temporal_patch
    x = pixels.reshape(c, h // (p * m), m, p, w // (p * m), m, p)
    # -> [units_h, units_w, m_y, m_x, C, y, x]
    x = x.permute(1, 4, 2, 5, 0, 3, 6)
    x = x.unsqueeze(5).expand(*x.shape[:5], t, p, p)  # the one frame, twice
    return x.reshape((h // p) * (w // p), c * t * p * p)


def preprocess_image(image: Tensor, cfg: VisionConfig = QWEN25_VL_VISION
                     ) -> tuple[Tensor, tuple[int, int, int]]:
    """ComfyUI IMAGE [B, H, W, C] in [0, 1] (first image used, first 3 channels) ->
    (patches [N, 3·2·14·14] float32, grid (1, H/14, W/14))."""
    img = image[0, ..., :3].movedim(-1, 0).float()
    h, w = vision_size(img.shape[1], img.shape[2], cfg.factor)
    img = F.interpolate(img[None], size=(h, w), mode="bilinear", align_corners=False)[0]
    mean = torch.tensor(CLIP_MEAN, device=img.device)[:, None, None]
    std = torch.tensor(CLIP_STD, device=img.device)[:, None, None]
    return patchify((img - mean) / std, cfg), (1, h // cfg.patch, w // cfg.patch)


# --- layout helpers --------------------------------------------------------------------------

def patch_positions(grid: tuple[int, int, int], merge: int, device=None) -> Tensor:
    """(row, column) of every patch [N, 2] in the tower's patch order."""
    t, gh, gw = grid
    rows = torch.arange(gh, device=device)[:, None].expand(gh, gw)
    cols = torch.arange(gw, device=device)[None, :].expand(gh, gw)

    def grouped(a: Tensor) -> Tensor:
        return a.reshape(gh // merge, merge, gw // merge, merge).permute(0, 2, 1, 3).flatten()

    return torch.stack([grouped(rows), grouped(cols)], dim=-1).repeat(t, 1)


def window_order(grid: tuple[int, int, int], merge: int, window_units: int
                 ) -> tuple[Tensor, list[int]]:
    """(merge-unit indices in window order, window lengths in patches)."""
    t, gh, gw = grid
    uh, uw = gh // merge, gw // merge
    order, lengths = [], []
    for frame in range(t):
        base = frame * uh * uw
        for top in range(0, uh, window_units):
            for left in range(0, uw, window_units):
                rows = torch.arange(top, min(top + window_units, uh))
                cols = torch.arange(left, min(left + window_units, uw))
                units = (base + rows[:, None] * uw + cols[None, :]).flatten()
                order.append(units)
                lengths.append(units.numel() * merge * merge)
    return torch.cat(order), lengths


def rotary_tables(positions: Tensor, head_dim: int) -> tuple[Tensor, Tensor]:
    """(cos, sin) [N, head_dim] for (row, column) positions [N, 2]."""
    dim = head_dim // 2
    inv_freq = 1.0 / ROPE_THETA ** (torch.arange(0, dim, 2, device=positions.device).float()
                                    / dim)
    angles = (positions[..., None].float() * inv_freq).flatten(1)  # [N, rows | cols]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x [..., head_dim] rotated: x·cos + rotate_half(x)·sin (the vision tower and the text LM)."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


# --- modules ---------------------------------------------------------------------------------

class CastLinear(nn.Linear):
    """Linear computing in the input's dtype (weight and bias cast per call)."""

    def forward(self, x: Tensor) -> Tensor:
        bias = None if self.bias is None else self.bias.to(x.dtype)
        return F.linear(x, self.weight.to(x.dtype), bias)


class _RMSNorm(nn.RMSNorm):
    """ComfyUI's RMSNorm op (eps 1e-6), weight cast to the input dtype."""

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.normalized_shape, self.weight.to(x.dtype), self.eps)


class PatchEmbed(nn.Module):
    """`patch_embed.proj`: Conv3d with stride = kernel on one patch each, i.e. a matrix."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.proj = nn.Conv3d(3, cfg.hidden, (cfg.temporal_patch, cfg.patch, cfg.patch),
                              stride=(cfg.temporal_patch, cfg.patch, cfg.patch), bias=False)

    def forward(self, patches: Tensor) -> Tensor:
        weight = self.proj.weight.to(patches.dtype).flatten(1)
        return patches @ weight.T


class VisionAttention(nn.Module):
    """`attn`: bidirectional attention inside each span of `lengths` patches."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.heads, self.head_dim = cfg.heads, cfg.head_dim
        self.qkv = CastLinear(cfg.hidden, 3 * cfg.hidden, bias=True)
        self.proj = CastLinear(cfg.hidden, cfg.hidden, bias=True)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], lengths: list[int]) -> Tensor:
        n = x.shape[0]
        q, k, v = self.qkv(x).view(n, 3, self.heads, self.head_dim).unbind(1)
        cos, sin = rope[0][:, None], rope[1][:, None]
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # [heads, N, head_dim], attention span by span
        q, k, v = (a.transpose(0, 1) for a in (q, k, v))
        outs = [F.scaled_dot_product_attention(qs, ks, vs) for qs, ks, vs in
                zip(q.split(lengths, 1), k.split(lengths, 1), v.split(lengths, 1), strict=True)]
        return self.proj(torch.cat(outs, dim=1).transpose(0, 1).reshape(n, -1))


class GatedMLP(nn.Module):
    """`mlp`: down(silu(gate(x)) · up(x)) (with biases in the vision tower, none in the LM)."""

    def __init__(self, hidden: int, mlp: int, bias: bool):
        super().__init__()
        self.gate_proj = CastLinear(hidden, mlp, bias=bias)
        self.up_proj = CastLinear(hidden, mlp, bias=bias)
        self.down_proj = CastLinear(mlp, hidden, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class VisionBlock(nn.Module):
    """`blocks.N`: pre-norm attention and MLP, each with a residual."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.norm1 = _RMSNorm(cfg.hidden, eps=cfg.eps)
        self.norm2 = _RMSNorm(cfg.hidden, eps=cfg.eps)
        self.attn = VisionAttention(cfg)
        self.mlp = GatedMLP(cfg.hidden, cfg.mlp, bias=True)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], lengths: list[int]) -> Tensor:
        x = x + self.attn(self.norm1(x), rope, lengths)
        return x + self.mlp(self.norm2(x))


class PatchMerger(nn.Module):
    """`merger`: RMSNorm, then 2 × 2 neighbouring patches concatenated -> MLP -> LM width."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        width = cfg.hidden * cfg.merge ** 2
        self.ln_q = _RMSNorm(cfg.hidden, eps=cfg.eps)
        self.mlp = nn.Sequential(CastLinear(width, width), nn.GELU(),
                                 CastLinear(width, cfg.out_hidden))

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(self.ln_q(x).reshape(-1, self.mlp[0].in_features))


class QwenVisionTransformer(nn.Module):
    """`visual`: patches [N, 3·2·14·14] of one image -> LM embeddings [N / 4, out_hidden]."""

    def __init__(self, cfg: VisionConfig):
        super().__init__()
        self.config = cfg
        self.patch_embed = PatchEmbed(cfg)
        self.blocks = nn.ModuleList(VisionBlock(cfg) for _ in range(cfg.depth))
        self.merger = PatchMerger(cfg)

    def forward(self, patches: Tensor, grid: tuple[int, int, int]) -> Tensor:
        cfg = self.config
        unit = cfg.merge ** 2
        x = self.patch_embed(patches.float())
        n = x.shape[0]
        order, window_lengths = window_order(grid, cfg.merge, cfg.window_units)
        order = order.to(x.device)

        def by_window(a: Tensor) -> Tensor:  # merge units reordered window by window
            return a.reshape(n // unit, unit, -1)[order].reshape(n, -1)

        x = by_window(x)
        cos, sin = rotary_tables(patch_positions(grid, cfg.merge, x.device), cfg.head_dim)
        rope = (by_window(cos), by_window(sin))
        whole = [grid[1] * grid[2]] * grid[0]  # full attention: frame by frame
        for i, block in enumerate(self.blocks):
            x = block(x, rope, whole if i in FULL_ATTENTION_BLOCKS else window_lengths)
        return self.merger(x)[torch.argsort(order)]

    def encode_image(self, image: Tensor) -> tuple[Tensor, tuple[int, int, int]]:
        """ComfyUI IMAGE [B, H, W, C] -> (embeddings [tokens, out_hidden] float32, grid)."""
        patches, grid = preprocess_image(image, self.config)
        device = self.patch_embed.proj.weight.device
        return self.forward(patches.to(device), grid), grid


# --- keys, config, random weights ------------------------------------------------------------

_BLOCK = re.compile(r"blocks\.(\d+)\.")


def visual_prefix(keys) -> str | None:
    """The prefix ending in `visual.` of a vision tower's keys (`visual.`, `text_encoders.
    qwen25_7b.transformer.visual.`, ...), None without one."""
    for k in keys:
        if k.endswith(KEY_PREFIX + "patch_embed.proj.weight"):
            return k[: -len("patch_embed.proj.weight")]
    return None


def infer_vision_config(sd: Mapping[str, Tensor]) -> VisionConfig:
    """VisionConfig from prefix-free tower keys (`patch_embed.…`, `blocks.N.…`, `merger.…`)."""
    for key in ("patch_embed.proj.weight", "blocks.0.mlp.gate_proj.weight",
                "merger.mlp.0.weight", "merger.mlp.2.weight"):
        if key not in sd:
            raise KeyError(f"not a Qwen2.5-VL vision tower: {key!r} missing")
    hidden, _, temporal, patch, _ = sd["patch_embed.proj.weight"].shape
    merge = math.isqrt(sd["merger.mlp.0.weight"].shape[1] // hidden)
    depth = 1 + max(int(m.group(1)) for k in sd if (m := _BLOCK.match(k)))
    return VisionConfig(hidden=hidden, out_hidden=sd["merger.mlp.2.weight"].shape[0],
                        mlp=sd["blocks.0.mlp.gate_proj.weight"].shape[0],
                        heads=heads_for_width(hidden), depth=depth, patch=patch,
                        temporal_patch=temporal, merge=merge)


def tiny_vision_config(out_hidden: int) -> VisionConfig:
    """The test tower: 32 wide (2 heads × 16), 8 blocks (block 7 attends fully), MLP 48."""
    return VisionConfig(hidden=32, out_hidden=out_hidden, mlp=48, heads=2, depth=8)


def vision_shapes(cfg: VisionConfig) -> dict[str, tuple[int, ...]]:
    """{prefix-free key: shape}, built on the meta device."""
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in QwenVisionTransformer(cfg).state_dict().items()}


def random_vision_state_dict(cfg: VisionConfig, generator: torch.Generator | None = None
                             ) -> dict[str, Tensor]:
    """Random float32 tower weights (prefix-free keys) keeping activations O(1)."""
    out = {}
    for key, shape in vision_shapes(cfg).items():
        t = torch.randn(shape, generator=generator)
        if len(shape) >= 2:
            out[key] = t / math.sqrt(math.prod(shape[1:]))
        elif key.endswith(".bias"):
            out[key] = 0.1 * t
        else:
            out[key] = 1.0 + 0.1 * t  # norm scales
    return out


def build_vision(sd: Mapping[str, Tensor], dtype: torch.dtype = torch.float32,
                 device: str | torch.device = "cpu") -> QwenVisionTransformer:
    """A QwenVisionTransformer from prefix-free keys (shapes checked, naming the key)."""
    cfg = infer_vision_config(sd)
    with torch.device("meta"):
        tower = QwenVisionTransformer(cfg)
    weights = {}
    for name, ref in tower.state_dict().items():
        if name not in sd:
            raise KeyError(f"Qwen2.5-VL vision tower: weight 'visual.{name}' missing")
        if tuple(sd[name].shape) != tuple(ref.shape):
            raise ValueError(f"Qwen2.5-VL vision tower: 'visual.{name}' has shape "
                             f"{tuple(sd[name].shape)}, expected {tuple(ref.shape)}")
        weights[name] = sd[name].to(device=device, dtype=dtype)
    tower.load_state_dict(weights, assign=True)
    return tower.eval().requires_grad_(False)
