"""The Qwen-Image transformer (model-families.md §0, §4.2) with ComfyUI = diffusers parameter names.

`QwenImageNetwork(config)(x, timesteps, context, attention_mask=None, ref_latents=None)`:
x [B, 16, h, w] (comfyless latents) or [B, 16, T, h, w] (ComfyUI's Qwen latents, T = 1 for an
image) in model space; timesteps [B] = σ (embedded as 1000·σ); context [B, L, 3584] (Qwen2.5-VL
hidden states); attention_mask [B, L] 1/0 (text padding; None: every token counts);
ref_latents: edit-model reference latents appended after the image tokens, placed by
ref_latents_method (None: the config's default, "index_timestep_zero" for Qwen-Image-Edit-2511).
Returns the velocity with the rank and shape of x.

`index_timestep_zero` (ComfyUI's rule, model-families.md §4.1): references are placed as with
`index`, and every block modulates the reference tokens (shift, scale and gate of img_mod)
with the timestep embedding of t = 0, while the image tokens use the step's t; the text stream
and the final norm_out use the step's t only. Without references it is `index`.

Shared pieces come from the Flux network (same facts, model-families.md §0): sinusoidal
embedding, RoPE on interleaved pairs, 2x2 patches with features (c, ph, pw), reference
placement. Weights may stay fp8 as stored (`keeps_fp8`): every Linear and RMSNorm casts its
parameters to the activation dtype per call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ...tensor_files import TensorFile
from ..flux.network import (
    Fp8StoredNetwork,
    Linear,
    apply_rope,
    image_ids,
    pad_to_patches,
    patchify,
    reference_placements,
    rope_tables,
    timestep_embedding,
    unpatchify,
)
from .config import TIMESTEP_ZERO_MARKER, TIMESTEP_ZERO_METHOD, QwenImageConfig

NORM_EPS = 1e-6  # the LayerNorms, q/k RMSNorms and txt_norm
FP16_MAX = 65504.0
# ComfyUI's Qwen-Image placement per reference latents method: "index" n+1 / "negative_index"
# -(n+1) (no offsets); every other name (offset, and uxo too) tiles them like Flux's "offset"
REFERENCE_METHODS = ("index", "offset", "uxo", TIMESTEP_ZERO_METHOD, "negative_index")


class RMSNorm(nn.RMSNorm):
    """RMSNorm with a learned scale, eps 1e-6: ComfyUI's RMSNorm op (q/k norms, txt_norm). An
    nn.RMSNorm, so the trainer gives its scale a `diff` as ComfyUI's does (§4.6)."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim, eps=NORM_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, self.weight.shape, self.weight.to(x.dtype), NORM_EPS)


def _layer_norm(x: Tensor) -> Tensor:
    """LayerNorm without affine parameters (img_norm1/2, txt_norm1/2, norm_out)."""
    return F.layer_norm(x, x.shape[-1:], eps=NORM_EPS)


def _fp16_safe(x: Tensor) -> Tensor:
    """fp16 activations clipped to ±65504 after each block (as diffusers does); others as is."""
    return x.clamp(-FP16_MAX, FP16_MAX) if x.dtype == torch.float16 else x


# -- layers (module names are the file's key names) --------------------------------------------

class TimestepEmbedder(nn.Module):
    """`linear_1` -> SiLU -> `linear_2` on the 256-wide sinusoidal embedding."""

    def __init__(self, hidden: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.linear_1 = Linear(freq_dim, hidden)
        self.linear_2 = Linear(hidden, hidden)

    def forward(self, emb: Tensor) -> Tensor:
        return self.linear_2(F.silu(self.linear_1(emb)))


class TimeTextEmbed(nn.Module):
    """`time_text_embed`: only the timestep embedder (no pooled text, no guidance)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.timestep_embedder = TimestepEmbedder(hidden)

    def forward(self, timesteps: Tensor, dtype: torch.dtype) -> Tensor:
        return self.timestep_embedder(timestep_embedding(timesteps).to(dtype))


class GeluProjection(nn.Module):
    """`net.0`: `proj` then GELU (tanh approximation)."""

    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.proj = Linear(dim, inner)

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(self.proj(x), approximate="tanh")


class FeedForward(nn.Module):
    """`net.0.proj` -> GELU(tanh) -> `net.2` (`net.1` is diffusers' dropout: nothing to run)."""

    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.net = nn.ModuleList([GeluProjection(dim, inner), nn.Identity(), Linear(inner, dim)])

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.net:
            x = layer(x)
        return x


class JointAttention(nn.Module):
    """`attn`: separate q/k/v projections per stream (`to_*` image, `add_*_proj` text), per-head
    RMSNorm on q and k, RoPE, one attention over [text, image], projections back per stream."""

    def __init__(self, hidden: int, num_heads: int) -> None:
        super().__init__()
        head_dim = hidden // num_heads
        self.num_heads = num_heads
        for name in ("to_q", "to_k", "to_v", "add_q_proj", "add_k_proj", "add_v_proj"):
            self.add_module(name, Linear(hidden, hidden))
        for name in ("norm_q", "norm_k", "norm_added_q", "norm_added_k"):
            self.add_module(name, RMSNorm(head_dim))
        self.to_out = nn.ModuleList([Linear(hidden, hidden), nn.Identity()])  # 1: dropout
        self.to_add_out = Linear(hidden, hidden)

    def _heads(self, t: Tensor) -> Tensor:
        return t.unflatten(-1, (self.num_heads, -1))  # [B, L, heads, head_dim]

    def forward(self, img: Tensor, txt: Tensor, rope: tuple[Tensor, Tensor],
                bias: Tensor | None) -> tuple[Tensor, Tensor]:
        q = torch.cat([self.norm_added_q(self._heads(self.add_q_proj(txt))),
                       self.norm_q(self._heads(self.to_q(img)))], dim=1).transpose(1, 2)
        k = torch.cat([self.norm_added_k(self._heads(self.add_k_proj(txt))),
                       self.norm_k(self._heads(self.to_k(img)))], dim=1).transpose(1, 2)
        v = torch.cat([self._heads(self.add_v_proj(txt)),
                       self._heads(self.to_v(img))], dim=1).transpose(1, 2)
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        out = out.transpose(1, 2).flatten(2)  # [B, L_txt + L_img, hidden]
        n_txt = txt.shape[1]
        return self.to_out[0](out[:, n_txt:]), self.to_add_out(out[:, :n_txt])


def _modulated(x: Tensor, mod: Tensor) -> tuple[Tensor, Tensor]:
    """(LN(x)·(1 + scale) + shift, gate) from one [B, 1, 3H] chunk ordered shift, scale, gate."""
    shift, scale, gate = mod.chunk(3, dim=-1)
    return _layer_norm(x) * (1 + scale) + shift, gate


class ZeroTimestep:
    """`index_timestep_zero`: image tokens from `first_ref` on (the references) are modulated
    with `temb0`, the embedding of t = 0, instead of the step's temb."""

    def __init__(self, first_ref: int, temb0: Tensor) -> None:
        self.first_ref = first_ref
        self.temb0 = temb0


def _modulated_image(x: Tensor, mod: Tensor, ref_mod: Tensor | None,
                     zero: ZeroTimestep | None) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
    """_modulated on the image stream; with `zero`, tokens from `zero.first_ref` on get
    `ref_mod` (LayerNorm is per token, so the two parts are normed apart) and the gate comes
    back as the pair (image gate, reference gate)."""
    if zero is None or ref_mod is None:
        return _modulated(x, mod)
    head, gate = _modulated(x[:, :zero.first_ref], mod)
    tail, ref_gate = _modulated(x[:, zero.first_ref:], ref_mod)
    return torch.cat([head, tail], dim=1), (gate, ref_gate)


def _gated(out: Tensor, gate: Tensor | tuple[Tensor, Tensor], zero: ZeroTimestep | None
           ) -> Tensor:
    """gate·out; a (gate, ref_gate) pair from _modulated_image splits at `zero.first_ref`."""
    if isinstance(gate, Tensor) or zero is None:
        return gate * out
    n = zero.first_ref
    return torch.cat([gate[0] * out[:, :n], gate[1] * out[:, n:]], dim=1)


class QwenImageBlock(nn.Module):
    """`transformer_blocks.N`: two streams with their own weights, joint attention."""

    def __init__(self, hidden: int, num_heads: int, mlp_hidden: int) -> None:
        super().__init__()
        self.img_mod = nn.Sequential(nn.SiLU(), Linear(hidden, 6 * hidden))
        self.txt_mod = nn.Sequential(nn.SiLU(), Linear(hidden, 6 * hidden))
        self.attn = JointAttention(hidden, num_heads)
        self.img_mlp = FeedForward(hidden, mlp_hidden)
        self.txt_mlp = FeedForward(hidden, mlp_hidden)

    def forward(self, img: Tensor, txt: Tensor, temb: Tensor, rope: tuple[Tensor, Tensor],
                bias: Tensor | None, zero: ZeroTimestep | None = None) -> tuple[Tensor, Tensor]:
        img_mod1, img_mod2 = self.img_mod(temb)[:, None].chunk(2, dim=-1)
        txt_mod1, txt_mod2 = self.txt_mod(temb)[:, None].chunk(2, dim=-1)
        ref_mod1 = ref_mod2 = None
        if zero is not None:  # the reference tokens' img_mod, from the t = 0 embedding
            ref_mod1, ref_mod2 = self.img_mod(zero.temb0)[:, None].chunk(2, dim=-1)
        img_in, img_gate1 = _modulated_image(img, img_mod1, ref_mod1, zero)
        txt_in, txt_gate1 = _modulated(txt, txt_mod1)
        img_attn, txt_attn = self.attn(img_in, txt_in, rope, bias)
        img = img + _gated(img_attn, img_gate1, zero)
        txt = txt + txt_gate1 * txt_attn
        img_in, img_gate2 = _modulated_image(img, img_mod2, ref_mod2, zero)
        txt_in, txt_gate2 = _modulated(txt, txt_mod2)
        img = img + _gated(self.img_mlp(img_in), img_gate2, zero)
        txt = txt + txt_gate2 * self.txt_mlp(txt_in)
        return _fp16_safe(img), _fp16_safe(txt)


class OutputNorm(nn.Module):
    """`norm_out`: `linear`(SiLU(temb)) gives (scale, shift) — scale first — on a LayerNorm."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.linear = Linear(hidden, 2 * hidden)

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        scale, shift = self.linear(F.silu(temb))[:, None].chunk(2, dim=-1)
        return _layer_norm(x) * (1 + scale) + shift


# -- positions -----------------------------------------------------------------------------------

def centred_image_ids(batch: int, frames: int, h_len: int, w_len: int, index: int = 0,
                      h_offset: int = 0, w_offset: int = 0,
                      device: torch.device | None = None) -> Tensor:
    """[B, frames·h_len·w_len, 3] ids (index + frame, row − ⌊h_len/2⌋ + h_offset,
    col − ⌊w_len/2⌋ + w_offset) in (frame, row, col) order: ComfyUI's centred grid (§4.2)."""
    return torch.cat([image_ids(batch, h_len, w_len, index + t, h_offset - h_len // 2,
                                w_offset - w_len // 2, device=device)
                      for t in range(frames)], dim=1)


def text_ids(batch: int, length: int, h_len: int, w_len: int,
             device: torch.device | None = None) -> Tensor:
    """[B, L, 3]: text token k at (s + k) on every axis, s = max(⌊w_len/2⌋, ⌊h_len/2⌋), i.e.
    just past the centred image grid (diffusers' `scale_rope` layout)."""
    start = max(w_len // 2, h_len // 2)
    pos = torch.arange(start, start + length, dtype=torch.float32, device=device)
    return pos[None, :, None].expand(batch, length, 3)


def text_mask_bias(mask: Tensor, batch: int, n_txt: int, n_img: int, dtype: torch.dtype
                   ) -> Tensor:
    """The additive attention bias [B, 1, 1, L_txt + L_img] of a 1/0 text mask [B|1, L_txt]:
    0 where a text key counts, −max(dtype) on padding keys, 0 on every image key."""
    mask = mask.reshape(mask.shape[0], -1)
    if mask.shape[1] != n_txt or mask.shape[0] not in (1, batch):
        raise ValueError(f"Qwen-Image attention_mask has shape {list(mask.shape)}, expected "
                         f"[{batch}, {n_txt}] (one 1/0 per text token of the context)")
    padding = mask.to(torch.float32) <= 0.5
    text = torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
        padding, -torch.finfo(dtype).max)
    image = torch.zeros(mask.shape[0], n_img, dtype=dtype, device=mask.device)
    return torch.cat([text, image], dim=1).expand(batch, -1)[:, None, None, :]


# -- the network -----------------------------------------------------------------------------

class QwenImageNetwork(Fp8StoredNetwork):
    """Qwen-Image / 2512 transformer; state_dict keys = ComfyUI's = diffusers' file keys."""

    def __init__(self, config: QwenImageConfig) -> None:
        super().__init__()
        self.config = config
        h = config.hidden_size
        self.img_in = Linear(config.in_channels, h)
        self.txt_norm = RMSNorm(config.joint_attention_dim)
        self.txt_in = Linear(config.joint_attention_dim, h)
        self.time_text_embed = TimeTextEmbed(h)
        self.transformer_blocks = nn.ModuleList(
            QwenImageBlock(h, config.num_heads, config.mlp_hidden)
            for _ in range(config.num_layers))
        self.norm_out = OutputNorm(h)
        p = config.patch_size
        self.proj_out = Linear(h, p * p * config.out_channels)
        if config.default_ref_method == TIMESTEP_ZERO_METHOD:
            # Qwen-Image-Edit-2511 files carry this empty tensor (ComfyUI's marker): kept as a
            # buffer so a saved model is detected as 2511 again
            self.register_buffer(TIMESTEP_ZERO_MARKER, torch.empty(0))

    # -- forward ---------------------------------------------------------------------------
    def forward(self, x: Tensor, timesteps: Tensor, context: Tensor,
                attention_mask: Tensor | None = None, ref_latents: Sequence[Tensor] | None = None,
                ref_latents_method: str | None = None, **ignored: Any) -> Tensor:
        """Velocity with x's shape ([B, 16, h, w] or [B, 16, T, h, w]) at timesteps σ [B]."""
        method = ref_latents_method or self.config.default_ref_method
        frames = self._frames(x)  # [B, T, C, h, w]
        self._check_context(context)
        b, t, c, h, w = frames.shape
        p = self.config.patch_size
        h_len, w_len = -(-h // p), -(-w // p)
        img = patchify(pad_to_patches(frames.flatten(0, 1), p), p).reshape(b, t * h_len * w_len,
                                                                           -1)
        ids = centred_image_ids(b, t, h_len, w_len, device=x.device)
        n_img = img.shape[1]
        zero_from = None  # first token modulated at t = 0 (index_timestep_zero with references)
        if ref_latents:
            img, ids = self._append_references(img, ids, ref_latents, method)
            zero_from = n_img if method == TIMESTEP_ZERO_METHOD else None
        txt_ids = text_ids(b, context.shape[1], h_len, w_len, device=x.device)
        rope = rope_tables(torch.cat([txt_ids, ids], dim=1), self.config.axes_dim,
                           self.config.theta)
        bias = None if attention_mask is None else text_mask_bias(
            attention_mask.to(x.device), b, context.shape[1], img.shape[1], img.dtype)
        out = self._transformer(img, context, timesteps, rope, bias, zero_from)[:, :n_img]
        out = unpatchify(out.reshape(b * t, h_len * w_len, -1), h_len, w_len, p)
        out = out[:, :, :h, :w].reshape(b, t, -1, h, w)
        return out[:, 0] if x.ndim == 4 else out.transpose(1, 2)

    def _frames(self, x: Tensor) -> Tensor:
        """x as [B, T, C, h, w] (a 4-D latent is one frame); other ranks or channel counts are
        refused with what was found."""
        channels = self.config.out_channels
        if x.ndim not in (4, 5) or x.shape[1] != channels:
            raise ValueError(f"Qwen-Image takes {channels}-channel latents [B, {channels}, h, w] "
                             f"or [B, {channels}, T, h, w], got shape {list(x.shape)}")
        return x[:, None] if x.ndim == 4 else x.transpose(1, 2)

    def _check_context(self, context: Tensor) -> None:
        width = self.config.joint_attention_dim
        if context.ndim != 3 or context.shape[-1] != width:
            raise ValueError(f"Qwen-Image conditioning must be [B, L, {width}] (Qwen2.5-VL hidden "
                             f"states), got shape {list(context.shape)}")

    def _append_references(self, img: Tensor, ids: Tensor, refs: Sequence[Tensor],
                           method: str) -> tuple[Tensor, Tensor]:
        """Edit-model reference latents as extra tokens after the image, with their own ids:
        `index` / `index_timestep_zero` put reference n at frame index n (1, 2, ...),
        `negative_index` at -1, -2, ...; `offset` (and `uxo`, as ComfyUI's Qwen-Image does)
        tile them at index 1."""
        if method not in REFERENCE_METHODS:
            raise ValueError(f"reference latents method {method!r} is not supported for "
                             f"Qwen-Image (expected one of {REFERENCE_METHODS})")
        p, b = self.config.patch_size, img.shape[0]
        refs = [self._reference_frame(r) for r in refs]
        by_index = method in ("index", TIMESTEP_ZERO_METHOD, "negative_index")
        place = reference_placements([tuple(r.shape[-2:]) for r in refs],
                                     "index" if by_index else "offset")
        if method == "negative_index":
            place = [(-index, h_off, w_off) for index, h_off, w_off in place]
        tokens, all_ids = [img], [ids]
        for ref, (index, h_off, w_off) in zip(refs, place, strict=True):
            rh, rw = -(-ref.shape[-2] // p), -(-ref.shape[-1] // p)
            tokens.append(patchify(pad_to_patches(ref.to(img.dtype), p), p).expand(b, -1, -1))
            all_ids.append(centred_image_ids(b, 1, rh, rw, int(index), (h_off + p // 2) // p,
                                             (w_off + p // 2) // p, device=img.device))
        return torch.cat(tokens, dim=1), torch.cat(all_ids, dim=1)

    def _reference_frame(self, ref: Tensor) -> Tensor:
        """A reference latent as [B|1, C, h, w] (a 5-D one must hold one frame)."""
        if ref.ndim == 5 and ref.shape[2] == 1:
            ref = ref[:, :, 0]
        if ref.ndim != 4 or ref.shape[1] != self.config.out_channels:
            raise ValueError(f"Qwen-Image reference latents must be [B, 16, h, w] or "
                             f"[B, 16, 1, h, w], got shape {list(ref.shape)}")
        return ref

    def _transformer(self, img: Tensor, context: Tensor, timesteps: Tensor,
                     rope: tuple[Tensor, Tensor], bias: Tensor | None,
                     zero_from: int | None = None) -> Tensor:
        """Patch tokens [B, N, 64] -> output patch features for the same tokens; tokens from
        `zero_from` on are modulated at t = 0 (index_timestep_zero)."""
        dtype = img.dtype
        temb = self.time_text_embed(timesteps, dtype)
        zero = None if zero_from is None else ZeroTimestep(
            zero_from, self.time_text_embed(torch.zeros_like(timesteps), dtype))
        img = self.img_in(img)
        txt = self.txt_in(self.txt_norm(context.to(dtype)))
        for block in self.transformer_blocks:
            img, txt = block(img, txt, temb, rope, bias, zero)
        return self.proj_out(self.norm_out(img, temb))

    @staticmethod
    def file_view(tensors: TensorFile, prefix: str) -> TensorFile:
        """The file's tensors under this network's names (checkpoint.build_unet): prefix
        stripped; the 2511 marker read as the empty buffer whatever its stored shape (ComfyUI
        writes [0], some repacks a 0-dim scalar): it is a flag, its value is never used."""
        own = {k[len(prefix):]: k for k in tensors.shapes if k.startswith(prefix)}
        shapes = {k: tensors.shapes[v] for k, v in own.items()}
        if TIMESTEP_ZERO_MARKER in shapes:
            shapes[TIMESTEP_ZERO_MARKER] = (0,)

        def read(key: str) -> Tensor:
            return torch.empty(0) if key == TIMESTEP_ZERO_MARKER else tensors[own[key]]
        return TensorFile(shapes, read, tensors.metadata)

    # -- LoRA ------------------------------------------------------------------------------
    def lora_key_map(self) -> dict[str, str]:
        """LoRA file prefix -> parameter name (model-families.md §4.6, no slicing: the file
        names are the parameter paths): `diffusion_model.<path>` (ComfyUI, ai-toolkit),
        `transformer.<path>` (diffusers/PEFT), bare `<path>`, `lycoris_<path _>` and kohya
        `lora_unet_<path _>`; biases (`diff_b` targets) under `diffusion_model.<name>`."""
        key_map: dict[str, str] = {}
        for name, _ in self.named_parameters():
            if not name.endswith(".weight"):
                key_map[f"diffusion_model.{name}"] = name
                continue
            path = name[: -len(".weight")]
            flat = path.replace(".", "_")
            for spelling in (f"diffusion_model.{path}", f"transformer.{path}", path,
                             f"lycoris_{flat}", f"lora_unet_{flat}"):
                key_map[spelling] = name
        return key_map
