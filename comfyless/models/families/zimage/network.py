"""The Z-Image transformer (ComfyUI's NextDiT with Z-Image modulation; model-families.md §0,
§3.2) with ComfyUI parameter names.

`ZImageNetwork(config)(x, timesteps, context)`: x [B, 16, H, W] latents (model space),
timesteps [B] = σ (embedded as 1000·(1 − σ)), context [B, L, cap_feat_dim] (Qwen3-4B hidden
states). Returns [B, 16, H, W]: the network's own output negated, as ComfyUI returns it (the
velocity of the CONST parametrisation). Text masks and token counts are accepted and ignored,
as ComfyUI's network ignores them.

Token sequence: [caption (padded with `cap_pad_token` to a multiple of 32), image patches
(padded with `x_pad_token` to a multiple of 32)]; 3-axis RoPE ids (k, 0, 0), k = 1…L_cap for
the caption, (L_cap + 1, row, col) for the image and (0, 0, 0) for the image padding. The
caption runs through `context_refiner` (unmodulated), the image through `noise_refiner`, both
through `layers`. Weights may stay float8 as stored (`keeps_fp8`): Linears and RMSNorms cast
their parameters to the activation dtype per call.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ....lora.keys import Target
from ...tensor_files import TensorFile
from ...unet import timestep_embedding
from ..flux.network import Fp8StoredNetwork, apply_rope, image_ids, pad_to_patches, rope_tables
from . import names
from .config import FREQ_DIM, NORM_EPS, ZImageConfig

FINAL_NORM_EPS = 1e-6  # the final LayerNorm (no affine)
FP16_MAX = 65504.0
# q/k norms are built without an eps: ComfyUI then uses float32's machine epsilon
QK_NORM_EPS = torch.finfo(torch.float32).eps


def _cast(t: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    return t if t is None or t.dtype == dtype else t.to(dtype)


class Linear(nn.Linear):
    """nn.Linear whose stored weight may be float8: cast to the input's dtype per call."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, _cast(self.weight, x.dtype), _cast(self.bias, x.dtype))


class RMSNorm(nn.RMSNorm):
    """RMSNorm with a learned scale, as ComfyUI's RMSNorm op (an nn.RMSNorm, so the trainer
    gives its scale a `diff`: model-families.md §3.6). eps None: float32's machine epsilon."""

    def __init__(self, dim: int, eps: float | None) -> None:
        super().__init__(dim, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        eps = QK_NORM_EPS if self.eps is None else self.eps
        return F.rms_norm(x, self.weight.shape, _cast(self.weight, x.dtype), eps)


def _fp16_safe(x: Tensor) -> Tensor:
    """fp16 activations: NaN -> 0 and ±inf -> ±65504 (ComfyUI clamps the branch outputs)."""
    if x.dtype != torch.float16:
        return x
    return torch.nan_to_num(x, nan=0.0, posinf=FP16_MAX, neginf=-FP16_MAX)


# -- layers (names are ComfyUI's parameter names) ----------------------------------------------

class TimestepEmbedder(nn.Module):
    """`mlp.0` Linear -> SiLU -> `mlp.2` Linear: emb(t) (256) -> the adaLN input."""

    def __init__(self, hidden: int, out: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(Linear(FREQ_DIM, hidden), nn.SiLU(), Linear(hidden, out))

    def forward(self, t: Tensor, dtype: torch.dtype) -> Tensor:
        return self.mlp(timestep_embedding(t, FREQ_DIM).to(dtype))


class Attention(nn.Module):
    """`qkv` (rows [q | k | v], no bias), per-head `q_norm` / `k_norm`, `out` (no bias)."""

    def __init__(self, dim: int, head_dim: int) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.qkv = Linear(dim, 3 * dim, bias=False)
        self.out = Linear(dim, dim, bias=False)
        self.q_norm = RMSNorm(head_dim, eps=None)
        self.k_norm = RMSNorm(head_dim, eps=None)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor]) -> Tensor:
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, -1, self.head_dim).unbind(2)  # [B, L, heads, d]
        q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, heads, L, d]
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        out = F.scaled_dot_product_attention(q, k, v)  # full attention, no mask
        return self.out(out.transpose(1, 2).flatten(2))


class FeedForward(nn.Module):
    """SwiGLU: w2(SiLU(w1·x) ⊙ w3·x), no biases."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.w1 = Linear(dim, hidden, bias=False)
        self.w2 = Linear(hidden, dim, bias=False)
        self.w3 = Linear(dim, hidden, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.w2(_fp16_safe(F.silu(self.w1(x)) * self.w3(x)))


class TransformerBlock(nn.Module):
    """Sandwich-normed attention and SwiGLU; modulated blocks scale the pre-norms by
    (1 + scale) and gate the residual branches by tanh(gate), from `adaLN_modulation.0` on the
    adaLN input without SiLU (no shift terms). `context_refiner` blocks are unmodulated."""

    def __init__(self, cfg: ZImageConfig, modulation: bool) -> None:
        super().__init__()
        dim = cfg.dim
        self.attention = Attention(dim, cfg.head_dim)
        self.feed_forward = FeedForward(dim, cfg.ffn_hidden)
        self.attention_norm1 = RMSNorm(dim, NORM_EPS)
        self.ffn_norm1 = RMSNorm(dim, NORM_EPS)
        self.attention_norm2 = RMSNorm(dim, NORM_EPS)
        self.ffn_norm2 = RMSNorm(dim, NORM_EPS)
        self.modulation = modulation
        if modulation:
            self.adaLN_modulation = nn.Sequential(Linear(cfg.adaln_dim, 4 * dim))

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], adaln: Tensor | None = None
                ) -> Tensor:
        if not self.modulation:
            x = x + self.attention_norm2(_fp16_safe(self.attention(self.attention_norm1(x),
                                                                   rope)))
            return x + self.ffn_norm2(self.feed_forward(self.ffn_norm1(x)))
        scale_msa, gate_msa, scale_mlp, gate_mlp = self.adaLN_modulation(adaln)[:, None].chunk(
            4, dim=-1)
        attn = self.attention(self.attention_norm1(x) * (1 + scale_msa), rope)
        x = x + gate_msa.tanh() * self.attention_norm2(_fp16_safe(attn))
        ffn = self.feed_forward(self.ffn_norm1(x) * (1 + scale_mlp))
        return x + gate_mlp.tanh() * self.ffn_norm2(_fp16_safe(ffn))


class FinalLayer(nn.Module):
    """LayerNorm (no affine) · (1 + scale), scale = `adaLN_modulation.1`(SiLU(adaln)); then
    `linear` to the patch features."""

    def __init__(self, cfg: ZImageConfig) -> None:
        super().__init__()
        p = cfg.patch_size
        self.linear = Linear(cfg.dim, p * p * cfg.out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), Linear(cfg.adaln_dim, cfg.dim))

    def forward(self, x: Tensor, adaln: Tensor) -> Tensor:
        scale = self.adaLN_modulation(adaln)[:, None]
        x = F.layer_norm(x, x.shape[-1:], eps=FINAL_NORM_EPS) * (1 + scale)
        return self.linear(x)


# -- patches, padding and position ids -----------------------------------------------------------

def patchify(x: Tensor, p: int) -> Tensor:
    """[B, C, H, W] (H, W multiples of p) -> [B, (H/p)(W/p), p·p·C]: row-major tokens,
    features ordered (ph, pw, c)."""
    b, c, h, w = x.shape
    x = x.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 3, 5, 1)
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(tokens: Tensor, h_len: int, w_len: int, p: int) -> Tensor:
    """Inverse of `patchify`: [B, h_len·w_len, p·p·C] -> [B, C, h_len·p, w_len·p]."""
    b = tokens.shape[0]
    x = tokens.reshape(b, h_len, w_len, p, p, -1).permute(0, 5, 1, 3, 2, 4)
    return x.reshape(b, -1, h_len * p, w_len * p)


def pad_tokens(tokens: Tensor, pad_token: Tensor, multiple: int) -> Tensor:
    """[B, L, D] -> [B, L', D], L' the next multiple of `multiple`, filled with the learned
    pad token."""
    extra = -tokens.shape[1] % multiple
    if not extra:
        return tokens
    pad = _cast(pad_token, tokens.dtype).expand(tokens.shape[0], extra, -1)
    return torch.cat([tokens, pad], dim=1)


def caption_ids(length: int, device: torch.device) -> Tensor:
    """[1, length, 3] ids (k, 0, 0), k = 1…length (pad tokens included)."""
    ids = torch.zeros(1, length, 3, device=device)
    ids[..., 0] = torch.arange(1, length + 1, dtype=torch.float32, device=device)
    return ids


# -- the network ---------------------------------------------------------------------------------

class ZImageNetwork(Fp8StoredNetwork):
    """Z-Image Turbo / Base; state_dict keys = ComfyUI's (prefix-free file keys)."""

    def __init__(self, config: ZImageConfig) -> None:
        super().__init__()
        self.config = config
        dim, p = config.dim, config.patch_size
        self.x_embedder = Linear(p * p * config.in_channels, dim)
        self.noise_refiner = nn.ModuleList(TransformerBlock(config, modulation=True)
                                           for _ in range(config.n_refiner_layers))
        self.context_refiner = nn.ModuleList(TransformerBlock(config, modulation=False)
                                             for _ in range(config.n_refiner_layers))
        self.t_embedder = TimestepEmbedder(config.t_hidden, config.adaln_dim)
        self.cap_embedder = nn.Sequential(RMSNorm(config.cap_feat_dim, NORM_EPS),
                                          Linear(config.cap_feat_dim, dim))
        self.layers = nn.ModuleList(TransformerBlock(config, modulation=True)
                                    for _ in range(config.n_layers))
        self.final_layer = FinalLayer(config)
        # learned fillers for the padding up to multiples of 32 tokens (not trained by LoRA)
        self.x_pad_token = nn.Parameter(torch.zeros(1, dim))
        self.cap_pad_token = nn.Parameter(torch.zeros(1, dim))

    # -- forward -----------------------------------------------------------------------------
    def forward(self, x: Tensor, timesteps: Tensor, context: Tensor, num_tokens: Any = None,
                attention_mask: Tensor | None = None, **ignored: Any) -> Tensor:
        """[B, C, H, W] for latents x at timesteps σ under the caption context (masks and
        token counts are ignored, as in ComfyUI)."""
        b, _, h, w = x.shape
        cfg, dtype = self.config, x.dtype
        p = cfg.patch_size
        h_len, w_len = -(-h // p), -(-w // p)
        adaln = self.t_embedder((1.0 - timesteps.float()) * cfg.time_scale, dtype)
        cap, cap_rope = self._caption(context.to(dtype))
        img = self.x_embedder(patchify(pad_to_patches(x, p), p))
        n_img = img.shape[1]
        img, img_rope = self._image(img, adaln, cap.shape[1], h_len, w_len)
        seq = torch.cat([cap, img], dim=1)
        rope = tuple(torch.cat(pair, dim=2) for pair in zip(cap_rope, img_rope, strict=True))
        for block in self.layers:
            seq = block(seq, rope, adaln)
        out = self.final_layer(seq[:, cap.shape[1]:cap.shape[1] + n_img], adaln)
        return -unpatchify(out, h_len, w_len, p)[:, :, :h, :w]

    def _caption(self, context: Tensor) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Embedded, padded and refined caption tokens and their rotary tables."""
        cfg = self.config
        cap = pad_tokens(self.cap_embedder(context), self.cap_pad_token, cfg.pad_tokens_multiple)
        rope = rope_tables(caption_ids(cap.shape[1], cap.device), cfg.axes_dims, cfg.rope_theta)
        for block in self.context_refiner:
            cap = block(cap, rope)
        return cap, rope

    def _image(self, img: Tensor, adaln: Tensor, cap_len: int, h_len: int, w_len: int
               ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Padded and refined image tokens and their rotary tables: ids (cap_len + 1, row,
        col), the pad tokens (0, 0, 0)."""
        cfg = self.config
        ids = image_ids(1, h_len, w_len, index=cap_len + 1, device=img.device)
        img = pad_tokens(img, self.x_pad_token, cfg.pad_tokens_multiple)
        ids = F.pad(ids, (0, 0, 0, img.shape[1] - ids.shape[1]))
        rope = rope_tables(ids, cfg.axes_dims, cfg.rope_theta)
        for block in self.noise_refiner:
            img = block(img, rope, adaln)
        return img, rope

    # -- files -------------------------------------------------------------------------------
    @staticmethod
    def file_view(tensors: TensorFile, prefix: str) -> TensorFile:
        """The file's transformer tensors under this network's parameter names (used by
        checkpoint.build_unet): prefix stripped; a diffusers-layout transformer renamed, its
        to_q / to_k / to_v fused into `qkv` on read (model-families.md §3.6)."""
        own = {k[len(prefix):]: k for k in tensors.shapes if k.startswith(prefix)}
        if names.DIFFUSERS_MARKER not in own:
            return TensorFile({k: tensors.shapes[v] for k, v in own.items()},
                              lambda k: tensors[own[k]], tensors.metadata)
        plan = {k: [own[p] for p in parts if p]
                for k, parts in names.comfy_plan(list(own)).items()}

        def read(key: str) -> Tensor:
            parts = [tensors[p] for p in plan[key]]
            return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)

        shapes = {k: (sum(tensors.shapes[p][0] for p in v), *tensors.shapes[v[0]][1:])
                  for k, v in plan.items()}
        return TensorFile(shapes, read, tensors.metadata)

    # -- LoRA --------------------------------------------------------------------------------
    def lora_key_map(self) -> dict[str, Target]:
        """LoRA file prefix -> parameter name or (name, (0, start, rows)) (model-families.md
        §3.6): ComfyUI `diffusion_model.<path>`, kohya `lora_unet_<path _>`, and the diffusers
        names D as `diffusion_model.D` (ai-toolkit), `transformer.D`, `lycoris_<D _>` and bare
        `D`, diffusers' to_q / to_k / to_v being row thirds of the fused `qkv`."""
        key_map: dict[str, Target] = {}
        for name, param in self.named_parameters():
            if not name.endswith(".weight"):  # biases and the pad tokens, by full name
                key_map[f"diffusion_model.{name}"] = name
                continue
            path = name[: -len(".weight")]
            key_map[f"diffusion_model.{path}"] = name
            key_map["lora_unet_" + path.replace(".", "_")] = name
            difs = names.diffusers_modules(path)
            rows = param.shape[0] // len(difs)
            for i, dif in enumerate(difs):
                target: Target = name if len(difs) == 1 else (name, (0, i * rows, rows))
                for spelling in _diffusers_spellings(dif):
                    key_map.setdefault(spelling, target)
        return key_map


def _diffusers_spellings(dif: str) -> tuple[str, ...]:
    """The four file spellings of a diffusers module name D (model-families.md §3.6)."""
    return (f"diffusion_model.{dif}", f"transformer.{dif}",
            "lycoris_" + dif.replace(".", "_"), dif)
