"""The FLUX.1 transformer (model-families.md §0, §1.2, §1.3) with ComfyUI/BFL parameter names.

`FluxNetwork(config)(x, timesteps, context, y=None, guidance=None, ref_latents=None)`:
x [B, 16, H, W] latents (model space), timesteps [B] = σ (embedded as 1000·σ), context
[B, L, context_in_dim] (T5), y [B, vec_in_dim] (CLIP-L pooled; zeros if None), guidance [B]
(dev only; None skips the guidance embedding), ref_latents: Kontext reference latents appended
after the image tokens. Returns the velocity [B, 16, H, W].

Weights may stay in a float8 type as stored (`keeps_fp8`, see checkpoint.build_unet): every
Linear and RMSNorm casts its parameters to the activation dtype per call.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ....lora.kinds import LORA_DIALECTS
from ...tensor_files import FLOAT8_DTYPES, TensorFile
from . import names
from .config import FluxConfig

TIME_EMBED_DIM = 256
TIME_FACTOR = 1000.0  # the embedding sees 1000·σ (and 1000·guidance)
LAYER_NORM_EPS = 1e-6
FP16_MAX = 65504.0


def _cast(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return t if t is None or t.dtype == dtype else t.to(dtype)


class Linear(nn.Linear):
    """nn.Linear whose stored weight may have another dtype (fp8) than the activations: the
    weight and bias are cast to the input's dtype for each call (the stored copy is kept)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, _cast(self.weight, x.dtype), _cast(self.bias, x.dtype))


class RMSNorm(nn.RMSNorm):
    """RMSNorm with a learned scale and PyTorch's default eps (the dtype's machine epsilon),
    as ComfyUI builds the Flux q/k norms. An nn.RMSNorm, so the trainer gives its scale a
    `diff` as ComfyUI's RMSNorm op gets (model-families.md §1.6)."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim, eps=None)

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.weight.shape, _cast(self.weight, x.dtype))


def _layer_norm(x: Tensor) -> Tensor:
    """LayerNorm without affine parameters (Flux's pre-norms)."""
    return F.layer_norm(x, x.shape[-1:], eps=LAYER_NORM_EPS)


def timestep_embedding(t: Tensor, dim: int = TIME_EMBED_DIM) -> Tensor:
    """[cos(s·f), sin(s·f)] with s = 1000·t and f_i = 10000^(−i/(dim/2)), float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32,
                                                        device=t.device) / half)
    args = (TIME_FACTOR * t.float())[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


# -- rotary position embedding -----------------------------------------------------------------

def rope_tables(ids: Tensor, axes_dim: Sequence[int], theta: int) -> tuple[Tensor, Tensor]:
    """(cos, sin) [B, 1, L, head_dim/2] float32 for N-axis positions ids [B, L, N].

    Axis a of width d gets angles pos_a·θ^(−2j/d), j < d/2; the axes are concatenated in order.
    Computed in float64 (float32 where the device has no float64).
    """
    wide = torch.float32 if ids.device.type == "mps" else torch.float64
    angles = []
    for a, d in enumerate(axes_dim):
        omega = 1.0 / theta ** (torch.arange(0, d, 2, dtype=wide, device=ids.device) / d)
        angles.append(ids[..., a].to(wide)[..., None] * omega)
    angle = torch.cat(angles, dim=-1).unsqueeze(1)
    return torch.cos(angle).float(), torch.sin(angle).float()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate interleaved pairs (x₂ⱼ, x₂ⱼ₊₁) of every head by the table's angles (float32)."""
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    out = torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
    return out.flatten(-2).to(x.dtype)


def attention(q: Tensor, k: Tensor, v: Tensor, rope: tuple[Tensor, Tensor]) -> Tensor:
    """Joint attention with RoPE on q and k: [B, heads, L, D] -> [B, L, heads·D]."""
    q, k = apply_rope(q, *rope), apply_rope(k, *rope)
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).flatten(2)


def _heads(qkv: Tensor, num_heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """[B, L, 3·H] -> q, k, v each [B, heads, L, head_dim] (qkv features are [q | k | v])."""
    b, n, _ = qkv.shape
    q, k, v = qkv.reshape(b, n, 3, num_heads, -1).permute(2, 0, 3, 1, 4)
    return q, k, v


# -- layers (names are the BFL/ComfyUI parameter names) ----------------------------------------

class MLPEmbedder(nn.Module):
    """in_layer -> SiLU -> out_layer."""

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.in_layer = Linear(in_dim, hidden)
        self.out_layer = Linear(hidden, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_layer(F.silu(self.in_layer(x)))


class QKNorm(nn.Module):
    def __init__(self, head_dim: int) -> None:
        super().__init__()
        self.query_norm = RMSNorm(head_dim)
        self.key_norm = RMSNorm(head_dim)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        return self.query_norm(q).to(v.dtype), self.key_norm(k).to(v.dtype)


class SelfAttention(nn.Module):
    """The parameters of one stream's attention (qkv, q/k norms, output projection)."""

    def __init__(self, hidden: int, num_heads: int, qkv_bias: bool) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = Linear(hidden, 3 * hidden, bias=qkv_bias)
        self.norm = QKNorm(hidden // num_heads)
        self.proj = Linear(hidden, hidden)

    def qkv_heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        q, k, v = _heads(self.qkv(x), self.num_heads)
        q, k = self.norm(q, k, v)
        return q, k, v


class Modulation(nn.Module):
    """lin(SiLU(vec)) split into 3 or 6 vectors [B, 1, H] (shift, scale, gate, ...)."""

    def __init__(self, hidden: int, double: bool) -> None:
        super().__init__()
        self.chunks = 6 if double else 3
        self.lin = Linear(hidden, self.chunks * hidden)

    def forward(self, vec: Tensor) -> tuple[Tensor, ...]:
        return self.lin(F.silu(vec))[:, None, :].chunk(self.chunks, dim=-1)


def _modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    return (1 + scale) * _layer_norm(x) + shift


def _fp16_safe(x: Tensor) -> Tensor:
    """fp16 activations: NaN -> 0 and ±inf -> ±65504 (ComfyUI clamps after each block)."""
    if x.dtype != torch.float16:
        return x
    return torch.nan_to_num(x, nan=0.0, posinf=FP16_MAX, neginf=-FP16_MAX)


def _mlp(hidden: int, mlp_hidden: int) -> nn.Sequential:
    return nn.Sequential(Linear(hidden, mlp_hidden), nn.GELU(approximate="tanh"),
                         Linear(mlp_hidden, hidden))


class DoubleStreamBlock(nn.Module):
    """Separate weights for the image and text streams, joint attention over [txt, img]."""

    def __init__(self, hidden: int, num_heads: int, mlp_hidden: int, qkv_bias: bool) -> None:
        super().__init__()
        for s in ("img", "txt"):
            self.add_module(f"{s}_mod", Modulation(hidden, double=True))
            self.add_module(f"{s}_attn", SelfAttention(hidden, num_heads, qkv_bias))
            self.add_module(f"{s}_mlp", _mlp(hidden, mlp_hidden))

    def forward(self, img: Tensor, txt: Tensor, vec: Tensor, rope: tuple[Tensor, Tensor]
                ) -> tuple[Tensor, Tensor]:
        img_mod, txt_mod = self.img_mod(vec), self.txt_mod(vec)
        iq, ik, iv = self.img_attn.qkv_heads(_modulate(img, img_mod[0], img_mod[1]))
        tq, tk, tv = self.txt_attn.qkv_heads(_modulate(txt, txt_mod[0], txt_mod[1]))
        joint = attention(torch.cat([tq, iq], dim=2), torch.cat([tk, ik], dim=2),
                          torch.cat([tv, iv], dim=2), rope)
        txt_out, img_out = joint[:, : txt.shape[1]], joint[:, txt.shape[1]:]
        img = self._residual(img, img_out, img_mod, self.img_attn, self.img_mlp)
        txt = self._residual(txt, txt_out, txt_mod, self.txt_attn, self.txt_mlp)
        return _fp16_safe(img), _fp16_safe(txt)

    @staticmethod
    def _residual(x: Tensor, attn_out: Tensor, mod: tuple[Tensor, ...], attn: SelfAttention,
                  mlp: nn.Sequential) -> Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = mod
        x = x + gate1 * attn.proj(attn_out)
        return x + gate2 * mlp(_modulate(x, shift2, scale2))


class SingleStreamBlock(nn.Module):
    """One weight set over [txt, img]: linear1 gives q|k|v and the MLP input, linear2 takes
    [attention out, GELU(mlp)]."""

    def __init__(self, hidden: int, num_heads: int, mlp_hidden: int) -> None:
        super().__init__()
        self.hidden, self.num_heads = hidden, num_heads
        self.linear1 = Linear(hidden, 3 * hidden + mlp_hidden)
        self.linear2 = Linear(hidden + mlp_hidden, hidden)
        self.norm = QKNorm(hidden // num_heads)
        self.modulation = Modulation(hidden, double=False)

    def forward(self, x: Tensor, vec: Tensor, rope: tuple[Tensor, Tensor]) -> Tensor:
        shift, scale, gate = self.modulation(vec)
        qkv, mlp = self.linear1(_modulate(x, shift, scale)).split(
            [3 * self.hidden, self.linear1.out_features - 3 * self.hidden], dim=-1)
        q, k, v = _heads(qkv, self.num_heads)
        q, k = self.norm(q, k, v)
        out = self.linear2(torch.cat([attention(q, k, v, rope),
                                      F.gelu(mlp, approximate="tanh")], dim=-1))
        return _fp16_safe(x + gate * out)


class LastLayer(nn.Module):
    """adaLN (shift, scale) from vec, LayerNorm, projection to patch features."""

    def __init__(self, hidden: int, out_features: int) -> None:
        super().__init__()
        self.linear = Linear(hidden, out_features)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), Linear(hidden, 2 * hidden))

    def forward(self, x: Tensor, vec: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(vec)[:, None, :].chunk(2, dim=-1)
        return self.linear(_modulate(x, shift, scale))


# -- patches and position ids ----------------------------------------------------------------

def patchify(x: Tensor, p: int) -> Tensor:
    """[B, C, H, W] (H, W even) -> [B, (H/p)·(W/p), C·p·p] tokens: row-major, features
    (c, ph, pw)."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b, (h // p) * (w // p), c * p * p)


def unpatchify(tokens: Tensor, h_len: int, w_len: int, p: int) -> Tensor:
    """Inverse of `patchify`: [B, h_len·w_len, C·p·p] -> [B, C, h_len·p, w_len·p]."""
    b = tokens.shape[0]
    x = tokens.reshape(b, h_len, w_len, -1, p, p).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, -1, h_len * p, w_len * p)


def pad_to_patches(x: Tensor, p: int) -> Tensor:
    """Circular padding of H and W up to multiples of p (the output is cropped back)."""
    pad_h, pad_w = (-x.shape[-2]) % p, (-x.shape[-1]) % p
    if not (pad_h or pad_w):
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="circular")


def image_ids(batch: int, h_len: int, w_len: int, index: float = 0, h_offset: int = 0,
              w_offset: int = 0, device: torch.device | None = None) -> Tensor:
    """[B, h_len·w_len, 3] float32 ids (index, row + h_offset, col + w_offset), row-major."""
    rows = torch.arange(h_len, dtype=torch.float32, device=device) + h_offset
    cols = torch.arange(w_len, dtype=torch.float32, device=device) + w_offset
    ids = torch.stack([torch.full((h_len, w_len), float(index), device=device),
                       rows[:, None].expand(h_len, w_len), cols[None, :].expand(h_len, w_len)],
                      dim=-1)
    return ids.reshape(1, h_len * w_len, 3).expand(batch, -1, -1)


def reference_placements(sizes: Sequence[tuple[int, int]], method: str = "offset"
                         ) -> list[tuple[float, int, int]]:
    """(index, h_offset, w_offset) in latent pixels for each reference latent of (h, w).

    `offset` (Flux.1 default): index 1; refs are tiled, each below the ones before unless its
    height plus the used height exceeds its width plus the used width, then to the right.
    `index`: index 1, 2, ... without offsets. `uxo`: index 0, offsets past the image (the
    caller adds the image extent).
    """
    out: list[tuple[float, int, int]] = []
    used_h = used_w = 0
    for n, (h, w) in enumerate(sizes):
        if method == "index":
            out.append((n + 1, 0, 0))
        elif method == "uxo":
            out.append((0, used_h, used_w))
            used_h, used_w = used_h + h, used_w + w
        elif method == "offset":
            h_off, w_off = (0, used_w) if h + used_h > w + used_w else (used_h, 0)
            used_h, used_w = max(used_h, h + h_off), max(used_w, w + w_off)
            out.append((1, h_off, w_off))
        else:
            raise ValueError(f"reference latents method {method!r} is not supported "
                             "(expected 'offset', 'index' or 'uxo')")
    return out


def _patch_offset(pixels: int, p: int) -> int:
    """A latent-pixel offset in patches (rounded half up, as ComfyUI does)."""
    return (pixels + p // 2) // p


class Fp8StoredNetwork(nn.Module):
    """A DiT whose float8-stored weights stay fp8 (checkpoint.build_unet keeps them) and are
    upcast per call by its Linear layers; `dtype` is the compute dtype."""

    keeps_fp8 = True  # checkpoint.build_unet keeps float8 weights as stored
    compute_dtype: torch.dtype | None = None  # set by the loader when weights stay fp8

    @property
    def dtype(self) -> torch.dtype:
        """The compute dtype: the loader's choice when weights stay fp8, else the weights'."""
        if self.compute_dtype is not None:
            return self.compute_dtype
        for t in self.parameters():
            if t.is_floating_point() and t.dtype not in FLOAT8_DTYPES:
                return t.dtype
        return torch.float32


# -- the network -------------------------------------------------------------------------------

class FluxNetwork(Fp8StoredNetwork):
    """FLUX.1 dev/schnell transformer; state_dict keys = BFL file keys (`_norm.weight`)."""

    def __init__(self, config: FluxConfig) -> None:
        super().__init__()
        self.config = config
        h, p = config.hidden_size, config.patch_size
        self.img_in = Linear(config.in_channels * p * p, h)
        self.time_in = MLPEmbedder(TIME_EMBED_DIM, h)
        self.vector_in = MLPEmbedder(config.vec_in_dim, h)
        if config.guidance_embed:
            self.guidance_in = MLPEmbedder(TIME_EMBED_DIM, h)
        self.txt_in = Linear(config.context_in_dim, h)
        self.double_blocks = nn.ModuleList(
            DoubleStreamBlock(h, config.num_heads, config.mlp_hidden, config.qkv_bias)
            for _ in range(config.depth))
        self.single_blocks = nn.ModuleList(
            SingleStreamBlock(h, config.num_heads, config.mlp_hidden)
            for _ in range(config.depth_single_blocks))
        self.final_layer = LastLayer(h, config.out_channels * p * p)

    # -- forward ---------------------------------------------------------------------------
    def forward(self, x: Tensor, timesteps: Tensor, context: Tensor, y: Tensor | None = None,
                guidance: Tensor | None = None, ref_latents: Sequence[Tensor] | None = None,
                ref_latents_method: str = "offset", **ignored: Any) -> Tensor:
        """Velocity [B, C, H, W] for latents x at timesteps (σ) under the text context."""
        b, _, h, w = x.shape
        p = self.config.patch_size
        h_len, w_len = -(-h // p), -(-w // p)
        img = patchify(pad_to_patches(x, p), p)
        ids = image_ids(b, h_len, w_len, device=x.device)
        n_img = img.shape[1]
        if ref_latents:
            img, ids = self._append_references(img, ids, ref_latents, ref_latents_method,
                                               (h_len, w_len))
        out = self._transformer(img, ids, context, timesteps, y, guidance)
        return unpatchify(out[:, :n_img], h_len, w_len, p)[:, :, :h, :w]

    def _append_references(self, img: Tensor, ids: Tensor, refs: Sequence[Tensor], method: str,
                           image_len: tuple[int, int]) -> tuple[Tensor, Tensor]:
        """Reference latents as extra tokens after the image, with their own position ids."""
        p = self.config.patch_size
        b = img.shape[0]
        place = reference_placements([tuple(r.shape[-2:]) for r in refs], method)
        extent = (image_len[0] * p, image_len[1] * p) if method == "uxo" else (0, 0)
        tokens, all_ids = [img], [ids]
        for ref, (index, h_off, w_off) in zip(refs, place, strict=True):
            ref = ref.to(img.dtype)
            tokens.append(patchify(pad_to_patches(ref, p), p).expand(b, -1, -1))
            all_ids.append(image_ids(
                b, -(-ref.shape[-2] // p), -(-ref.shape[-1] // p), index,
                _patch_offset(h_off + extent[0], p), _patch_offset(w_off + extent[1], p),
                device=img.device))
        return torch.cat(tokens, dim=1), torch.cat(all_ids, dim=1)

    def _conditioning_vector(self, timesteps: Tensor, y: Tensor | None, guidance: Tensor | None,
                             batch: int, dtype: torch.dtype) -> Tensor:
        """vec = time_in(emb(1000σ)) [+ guidance_in(emb(1000g))] + vector_in(y)."""
        vec = self.time_in(timestep_embedding(timesteps).to(dtype))
        if self.config.guidance_embed and guidance is not None:
            vec = vec + self.guidance_in(timestep_embedding(guidance).to(dtype))
        if y is None:
            y = torch.zeros(batch, self.config.vec_in_dim, device=vec.device, dtype=dtype)
        return vec + self.vector_in(y[:, : self.config.vec_in_dim].to(dtype))

    def _transformer(self, img: Tensor, img_ids: Tensor, context: Tensor, timesteps: Tensor,
                     y: Tensor | None, guidance: Tensor | None) -> Tensor:
        """Image tokens [B, N, C·p·p] -> output patch features for the same tokens."""
        b, dtype = img.shape[0], img.dtype
        vec = self._conditioning_vector(timesteps, y, guidance, b, dtype)
        img = self.img_in(img)
        txt = self.txt_in(context.to(dtype))
        txt_ids = torch.zeros(b, txt.shape[1], 3, device=img.device)  # text ids are all 0
        rope = rope_tables(torch.cat([txt_ids, img_ids], dim=1), self.config.axes_dim,
                           self.config.theta)
        for block in self.double_blocks:
            img, txt = block(img, txt, vec, rope)
        x = torch.cat([txt, img], dim=1)
        for block in self.single_blocks:
            x = block(x, vec, rope)
        return self.final_layer(x[:, txt.shape[1]:], vec)

    # -- files -----------------------------------------------------------------------------
    @staticmethod
    def file_view(tensors: TensorFile, prefix: str) -> TensorFile:
        """The file's transformer tensors under this network's parameter names (used by
        checkpoint.build_unet): prefix stripped, BFL `_norm.scale` read as `_norm.weight`, a
        diffusers-layout transformer fused into the BFL layout on read."""
        if names.is_diffusers_layout(tensors.shapes, prefix):
            plan = names.diffusers_plan(tensors.shapes, prefix)
            shapes = {k: names.fused_shape(tensors.shapes, v) for k, v in plan.items()}
            return TensorFile(shapes, lambda k: _fused(tensors, k, plan[k]), tensors.metadata)
        source = {names.bfl_name(k[len(prefix):]): k for k in tensors.shapes
                  if k.startswith(prefix)}
        return TensorFile({k: tensors.shapes[v] for k, v in source.items()},
                          lambda k: tensors[source[k]], tensors.metadata)

    # -- LoRA ------------------------------------------------------------------------------
    def lora_key_map(self) -> dict[str, Any]:
        """LoRA file prefix -> parameter name or (name, (0, start, rows)) (model-families.md
        §1.6, lora-format.md §4.1): `diffusion_model.<BFL>`, kohya `lora_unet_<BFL _>`, the
        diffusers names D as `transformer.D`, `lycoris_<D _>`, `lora_transformer_<D _>` and
        bare `D` (q/k/v and proj_mlp as row slices of the fused weights), and
        `diffusion_model.single_blocks.N.linear1_qkv` (the q|k|v rows of linear1)."""
        cfg = self.config
        key_map: dict[str, Any] = {}
        for n, _ in self.named_parameters():
            if n.endswith(".weight"):
                path = n[: -len(".weight")]
                key_map[f"diffusion_model.{path}"] = n
                key_map["lora_unet_" + path.replace(".", "_")] = n
            else:
                key_map[f"diffusion_model.{n}"] = n
        table = names.diffusers_table(cfg.depth, cfg.depth_single_blocks, cfg.hidden_size,
                                      cfg.mlp_hidden, cfg.guidance_embed)
        for part in table + names.lokr_feed_forward_names(cfg.depth):
            target = f"{part.bfl}.weight"
            if part.rows is not None:
                target = (target, (0, *part.rows))
            flat = part.diffusers.replace(".", "_")
            for spelling in (f"transformer.{part.diffusers}", f"lycoris_{flat}",
                             f"lora_transformer_{flat}", part.diffusers):
                key_map[spelling] = target
        for n in range(cfg.depth_single_blocks):
            key_map[f"diffusion_model.single_blocks.{n}.linear1_qkv"] = (
                f"single_blocks.{n}.linear1.weight", (0, 0, 3 * cfg.hidden_size))
        return key_map

    @staticmethod
    def convert_lora_file(sd: dict[str, Tensor]) -> dict[str, Tensor]:
        """Rewrite what a key map cannot express: diffusers' `norm_out.linear` is (scale,
        shift), BFL's final modulation (shift, scale), so the rows of the output-side tensors
        (LoRA up / lora_B, LoHa w1_a / w2_a, LoKr row factor, diff, diff_b) swap halves.
        Returns `sd` itself when no such key is there."""
        swapped = {k: _swap_halves(k, sd) for k in sd if _final_modulation_suffix(k)}
        swapped = {k: v for k, v in swapped.items() if v is not None}
        return {**sd, **swapped} if swapped else sd


def _fused(tensors: TensorFile, key: str, sources: list[str]) -> Tensor:
    """One BFL tensor from its diffusers parts (rows concatenated; final modulation swapped)."""
    parts = [tensors[s] for s in sources]
    t = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
    return _swap_rows(t) if key.startswith(names.FINAL_MODULATION + ".") else t


def _swap_rows(t: Tensor) -> Tensor:
    """The two halves of dimension 0 exchanged."""
    a, b = t.chunk(2, dim=0)
    return torch.cat([b, a], dim=0)


_FLAT_FINAL = names.DIFFUSERS_FINAL_MODULATION.replace(".", "_")
# the four spellings of diffusers' `norm_out.linear` in LoRA files (as in lora_key_map)
_FINAL_PREFIXES = (f"transformer.{names.DIFFUSERS_FINAL_MODULATION}", f"lycoris_{_FLAT_FINAL}",
                   f"lora_transformer_{_FLAT_FINAL}", names.DIFFUSERS_FINAL_MODULATION)
# Suffixes (after the prefix) whose dimension 0 is the output rows of the final modulation.
_ROW_SUFFIXES = tuple(
    ("" if up.startswith("_") else ".") + up for up, _, _ in LORA_DIALECTS) + (
    ".lora_B.bias", ".diff", ".diff_b", ".w_norm", ".b_norm", ".set_weight",
    ".hada_w1_a", ".hada_w2_a")


def _final_modulation_suffix(key: str) -> str | None:
    for p in _FINAL_PREFIXES:
        if key.startswith(p):
            return key[len(p):]
    return None


def _swap_halves(key: str, sd: Mapping[str, Tensor]) -> Tensor | None:
    """The tensor with its output rows' halves swapped, or None if this key is not one whose
    rows are the output rows (down factors, alpha) or cannot be swapped alone."""
    suffix = _final_modulation_suffix(key) or ""
    t = sd[key]
    if suffix in _ROW_SUFFIXES and t.ndim >= 1 and t.shape[0] % 2 == 0:
        return _swap_rows(t)
    if suffix in (".lokr_w1", ".lokr_w1_a", ".lokr_w2", ".lokr_w2_a"):
        return _swap_kron_rows(key, suffix, sd)
    return None


def _swap_kron_rows(key: str, suffix: str, sd: Mapping[str, Tensor]) -> Tensor | None:
    """LoKr: kron(w1, w2) rows are (i1, i2); swapping halves = swapping w1's halves when w1
    has an even row count, else (w1 one row) swapping w2's halves."""
    base = key[: -len(suffix)]
    w1 = sd.get(base + ".lokr_w1", sd.get(base + ".lokr_w1_a"))
    if w1 is None:
        return None
    rows1 = w1.shape[0]
    t = sd[key]
    if suffix.startswith(".lokr_w1"):
        return _swap_rows(t) if rows1 % 2 == 0 else None
    return _swap_rows(t) if rows1 == 1 and t.shape[0] % 2 == 0 else None


def convert_diffusers_transformer(sd: Mapping[str, Tensor], prefix: str = "") -> dict[str, Tensor]:
    """A diffusers-layout Flux transformer state dict (keys under `prefix`) as BFL/ComfyUI
    parameters (§1.6 table: q/k/v rows fused, proj_mlp appended to linear1, norm_out halves
    swapped). A BFL state dict comes back with `_norm.scale` renamed to `_norm.weight`."""
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    view = FluxNetwork.file_view(TensorFile(shapes, sd.__getitem__, {}), prefix)
    return {k: view[k] for k in view}
