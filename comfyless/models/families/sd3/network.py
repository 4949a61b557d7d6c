"""The MMDiT of SD3 / SD3.5 (model-families.md §2.2), parameter names as in SAI/ComfyUI files.

The state dict is the file's diffusion-model keys without prefix: `x_embedder.proj`,
`pos_embed` (a stored buffer), `t_embedder.mlp.{0,2}`, `y_embedder.mlp.{0,2}`,
`context_embedder`, `joint_blocks.N.{context_block,x_block}.{adaLN_modulation.1, attn.qkv,
attn.proj, attn.ln_q, attn.ln_k, mlp.fc1, mlp.fc2}` (+ `x_block.attn2.*` in SD3.5 Medium's
dual-attention blocks; the last context block is pre-only), `final_layer.{adaLN_modulation.1,
linear}`.

Shapes through forward: x [B, 16, h, w] -> patches [B, (h/2)(w/2), H]; context [B, L, 4096]
-> [B, L, H]; attention runs jointly over [context, x] tokens; output [B, 16, h, w].
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ....lora.keys import Target
from ...unet import timestep_embedding
from . import names
from .config import MMDiTConfig
from .detect import _swap_halves

FREQ_DIM = 256  # width of the sinusoidal timestep embedding
NORM_EPS = 1e-6  # every LayerNorm (no affine) and the ln_q/ln_k RMSNorms


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """LN(x)·(1 + scale) + shift, with per-sample (B, H) modulation over (B, L, H) tokens."""
    return x * (1 + scale.unsqueeze(1)) + shift.unsqueeze(1)


def _layer_norm(x: Tensor) -> Tensor:
    return F.layer_norm(x, x.shape[-1:], eps=NORM_EPS)


class RMSNorm(nn.Module):
    """RMSNorm over one head (SD3.5's ln_q / ln_k), learned scale, eps 1e-6."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return F.rms_norm(x, x.shape[-1:], self.weight.to(x.dtype), NORM_EPS)


class Embedder(nn.Module):
    """`mlp.0` Linear -> SiLU -> `mlp.2` Linear (timestep and pooled-vector embedders)."""

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, x: Tensor) -> Tensor:
        return self.mlp(x)


class PatchEmbed(nn.Module):
    """`proj`: a patch×patch Conv2d with stride patch (latent -> one token per patch)."""

    def __init__(self, in_channels: int, hidden: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, hidden, patch, stride=patch)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, H, gh, gw) -> (B, gh·gw, H)


class Attention(nn.Module):
    """`qkv` (rows [q|k|v]), optional per-head `ln_q`/`ln_k`, `proj` (absent when pre-only)."""

    def __init__(self, cfg: MMDiTConfig, pre_only: bool = False) -> None:
        super().__init__()
        self.head_dim = cfg.head_dim
        self.qkv = nn.Linear(cfg.hidden_size, 3 * cfg.hidden_size)
        if not pre_only:
            self.proj = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        if cfg.qk_norm == "rms":
            self.ln_q = RMSNorm(cfg.head_dim)
            self.ln_k = RMSNorm(cfg.head_dim)

    def qkv_heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q, k, v as (B, L, heads, head_dim), q and k normalised per head when ln_q exists."""
        b, length, _ = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, -1, self.head_dim).unbind(2)
        if hasattr(self, "ln_q"):
            q, k = self.ln_q(q), self.ln_k(k)
        return q, k, v


def attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Softmax attention of (B, L, heads, d) tensors -> (B, L, heads·d); no mask."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2).flatten(2)


class Mlp(nn.Module):
    """`fc1` -> GELU(tanh) -> `fc2`."""

    def __init__(self, hidden: int, inner: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(hidden, inner)
        self.fc2 = nn.Linear(inner, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class DismantledBlock(nn.Module):
    """One stream (context or x) of a joint block: adaLN, attention projections, MLP.

    adaLN_modulation.1 gives 6 chunks (shift/scale/gate for attention and MLP), 2 for a
    pre-only block (shift/scale: it only feeds keys and values to the last joint attention),
    9 with the dual attention (`attn2`, + shift/scale/gate of the image-only attention).
    """

    def __init__(self, cfg: MMDiTConfig, pre_only: bool = False, dual: bool = False) -> None:
        super().__init__()
        h = cfg.hidden_size
        self.pre_only, self.dual = pre_only, dual
        self.attn = Attention(cfg, pre_only)
        if dual:
            self.attn2 = Attention(cfg)
        if not pre_only:
            self.mlp = Mlp(h, cfg.mlp_hidden)
        self.n_mods = 2 if pre_only else 9 if dual else 6
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(h, self.n_mods * h))

    def pre_attention(self, x: Tensor, c: Tensor) -> tuple[tuple[Tensor, ...], list[Tensor]]:
        """(q, k, v) for the joint attention and the modulation chunks kept for after it."""
        mods = list(self.adaLN_modulation(c).chunk(self.n_mods, dim=1))
        return self.attn.qkv_heads(modulate(_layer_norm(x), mods[0], mods[1])), mods

    def post_attention(self, x: Tensor, attn: Tensor, mods: list[Tensor]) -> Tensor:
        """Residual updates: gated joint-attention output (+ the gated image-only attention,
        which reads the same block input x), then the gated MLP."""
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods[:6]
        update = gate_msa.unsqueeze(1) * self.attn.proj(attn)
        if self.dual:
            shift2, scale2, gate2 = mods[6:]
            q, k, v = self.attn2.qkv_heads(modulate(_layer_norm(x), shift2, scale2))
            update = update + gate2.unsqueeze(1) * self.attn2.proj(attention(q, k, v))
        x = x + update
        return x + gate_mlp.unsqueeze(1) * self.mlp(modulate(_layer_norm(x), shift_mlp,
                                                              scale_mlp))


class JointBlock(nn.Module):
    """`context_block` + `x_block`, attending jointly over [context, x] tokens."""

    def __init__(self, cfg: MMDiTConfig, pre_only: bool, dual: bool) -> None:
        super().__init__()
        self.context_block = DismantledBlock(cfg, pre_only=pre_only)
        self.x_block = DismantledBlock(cfg, dual=dual)

    def forward(self, context: Tensor, x: Tensor, c: Tensor) -> tuple[Tensor | None, Tensor]:
        (cq, ck, cv), c_mods = self.context_block.pre_attention(context, c)
        (xq, xk, xv), x_mods = self.x_block.pre_attention(x, c)
        joint = attention(torch.cat([cq, xq], 1), torch.cat([ck, xk], 1), torch.cat([cv, xv], 1))
        n_ctx = context.shape[1]
        x = self.x_block.post_attention(x, joint[:, n_ctx:], x_mods)
        if self.context_block.pre_only:
            return None, x  # the last block's context output is never used
        return self.context_block.post_attention(context, joint[:, :n_ctx], c_mods), x


class FinalLayer(nn.Module):
    """adaLN (shift, scale) on the no-affine LayerNorm, then `linear` to patch²·out features."""

    def __init__(self, cfg: MMDiTConfig) -> None:
        super().__init__()
        h, p = cfg.hidden_size, cfg.patch_size
        self.linear = nn.Linear(h, p * p * cfg.out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(h, 2 * h))

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)
        return self.linear(modulate(_layer_norm(x), shift, scale))


class MMDiT(nn.Module):
    """The SD3 / SD3.5 diffusion transformer; module names match the checkpoint keys."""

    def __init__(self, config: MMDiTConfig) -> None:
        super().__init__()
        self.config = config
        h, side = config.hidden_size, config.pos_embed_max_size
        self.x_embedder = PatchEmbed(config.in_channels, h, config.patch_size)
        # a fixed 2-D sin-cos table stored in the file (not trained): a buffer, as in ComfyUI
        self.register_buffer("pos_embed", torch.zeros(1, side * side, h))
        self.t_embedder = Embedder(FREQ_DIM, h)
        if config.adm_in_channels is not None:
            self.y_embedder = Embedder(config.adm_in_channels, h)
        self.context_embedder = nn.Linear(config.context_in, h)
        dual = set(config.dual_attention_layers)
        self.joint_blocks = nn.ModuleList(
            JointBlock(config, pre_only=i == config.depth - 1, dual=i in dual)
            for i in range(config.depth))
        self.final_layer = FinalLayer(config)

    @property
    def dtype(self) -> torch.dtype:
        return self.x_embedder.proj.weight.dtype

    # -- forward ----------------------------------------------------------------------------
    def forward(self, x: Tensor, timesteps: Tensor, context: Tensor, y: Tensor | None = None,
                **ignored: Any) -> Tensor:
        """The velocity for latents x [B, C, h, w] at model timesteps [B] (SD3: 1000σ, used as
        given), text context [B, L, context_in] and pooled vector y [B, adm] (None: zeros)."""
        h, w = x.shape[-2:]
        p = self.config.patch_size
        x = _pad_to_patches(x, p)
        grid = (x.shape[-2] // p, x.shape[-1] // p)
        tokens = self.x_embedder(x) + self.cropped_pos_embed(*grid).to(x.dtype)
        c = self._conditioning(timesteps, y, x)
        context = self.context_embedder(context)
        for block in self.joint_blocks:
            context, tokens = block(context, tokens, c)
        out = self.final_layer(tokens, c)
        return self.unpatchify(out, *grid)[..., :h, :w]

    def _conditioning(self, timesteps: Tensor, y: Tensor | None, x: Tensor) -> Tensor:
        """c = t_embedder(emb(t)) + y_embedder(y): the vector every adaLN reads."""
        c = self.t_embedder(timestep_embedding(timesteps, FREQ_DIM).to(x.dtype))
        if hasattr(self, "y_embedder"):
            if y is None:  # ComfyUI feeds zeros when the conditioning has no pooled output
                y = x.new_zeros(x.shape[0], self.config.adm_in_channels)
            c = c + self.y_embedder(y.to(x.dtype))
        return c

    def cropped_pos_embed(self, gh: int, gw: int) -> Tensor:
        """The centre gh×gw window of the side×side position table, as (1, gh·gw, H)."""
        side = self.config.pos_embed_max_size
        if gh > side or gw > side:
            p, f = self.config.patch_size, 8  # latent pixels per patch side, VAE factor
            raise ValueError(
                f"latent grid of {gh}x{gw} patches is larger than this model's {side}x{side} "
                f"position table (images up to {side * p * f}x{side * p * f} pixels)")
        top, left = (side - gh) // 2, (side - gw) // 2
        table = self.pos_embed.view(1, side, side, -1)[:, top:top + gh, left:left + gw]
        return table.reshape(1, gh * gw, -1)

    def unpatchify(self, x: Tensor, gh: int, gw: int) -> Tensor:
        """(B, gh·gw, p·p·C) tokens, features ordered (ph, pw, c) -> (B, C, gh·p, gw·p)."""
        p, c = self.config.patch_size, self.config.out_channels
        x = x.view(x.shape[0], gh, gw, p, p, c)
        return x.permute(0, 5, 1, 3, 2, 4).reshape(x.shape[0], c, gh * p, gw * p)

    # -- LoRA files -------------------------------------------------------------------------
    @staticmethod
    def file_view(tensors: Any, prefix: str) -> Any:
        """The file's tensors under this network's names (checkpoint.build_unet): as they are
        for the SAI layout; a diffusers-layout transformer is converted (q/k/v fused, halves
        swapped) in memory first, since fusing needs the tensors."""
        from ...tensor_files import TensorFile
        from .detect import convert_diffusers_transformer, is_diffusers_transformer

        if not is_diffusers_transformer(tensors.shapes, prefix):
            return TensorFile({k[len(prefix):]: s for k, s in tensors.shapes.items()
                               if k.startswith(prefix)},
                              lambda k: tensors[prefix + k], tensors.metadata)
        sd = convert_diffusers_transformer({k[len(prefix):]: tensors[k] for k in tensors.shapes
                                            if k.startswith(prefix)})
        return TensorFile({k: tuple(v.shape) for k, v in sd.items()}, sd.__getitem__,
                          tensors.metadata)

    def lora_key_map(self) -> dict[str, Target]:
        """File prefix -> parameter name (or a q/k/v row slice of a fused qkv), for ComfyUI
        (`diffusion_model.<path>`), kohya (`lora_unet_<path _>`) and diffusers names D as
        `transformer.D`, `base_model.model.D`, `lora_transformer_<D _>`, `lycoris_<D _>`
        (lora-format.md §4.1, model-families.md §2.5)."""
        key_map: dict[str, Target] = {}
        for name, param in self.named_parameters():
            if not name.endswith(".weight"):
                key_map[f"diffusion_model.{name}"] = name  # biases under their full name
                continue
            path = name[: -len(".weight")]
            key_map[f"diffusion_model.{path}"] = name
            key_map["lora_unet_" + path.replace(".", "_")] = name
            difs = names.diffusers_modules(path)
            rows = param.shape[0] // len(difs) if difs else 0
            for i, dif in enumerate(difs):
                target: Target = name if len(difs) == 1 else (name, (0, i * rows, rows))
                for spelling in _diffusers_spellings(dif):
                    key_map[spelling] = target
        return key_map

    def convert_lora_file(self, sd: dict[str, Tensor]) -> dict[str, Tensor]:
        """Swap the row halves of the diffusers-named `norm_out.linear` and last-block
        `norm1_context.linear` patches ((scale, shift) -> SAI's (shift, scale)); `sd` itself
        when the file has none. Handles LoRA (every up/B dialect), LoHa, diff/diff_b/set."""
        prefixes = tuple(s for dif in names.swapped_diffusers_modules(self.config.depth)
                         for s in _diffusers_spellings(dif))
        hits = {k: _swapped_rows(k, prefixes) for k in sd}
        if not any(hits.values()):
            return sd
        return {k: _swap_halves(v) if hits[k] else v for k, v in sd.items()}


def _diffusers_spellings(dif: str) -> tuple[str, ...]:
    """The four file spellings of a diffusers module name D (model-families.md §2.5)."""
    flat = dif.replace(".", "_")
    return (f"transformer.{dif}", f"base_model.model.{dif}", f"lora_transformer_{flat}",
            f"lycoris_{flat}")


# file suffixes whose rows are the output rows of the patched weight (swap them in halves)
_ROW_SUFFIXES = ("lora_up.weight", "lora.up.weight", "lora_B.weight", "lora_B",
                 "lora_linear_layer.up.weight", "lora_B.default.weight", "hada_w1_a",
                 "hada_w2_a", "diff", "diff_b", "w_norm", "b_norm", "set_weight")


def _swapped_rows(key: str, prefixes: tuple[str, ...]) -> bool:
    """Whether `key` is a row-carrying tensor of a patch on one of the swapped modules."""
    for prefix in prefixes:
        if key == f"{prefix}_lora.up.weight":
            return True
        if key.startswith(prefix + ".") and key[len(prefix) + 1:] in _ROW_SUFFIXES:
            return True
    return False


def _pad_to_patches(x: Tensor, p: int) -> Tensor:
    """Pad h, w up to multiples of the patch size, circularly (bottom/right), as ComfyUI does
    (model-families.md §0); the output is cropped back."""
    ph, pw = -x.shape[-2] % p, -x.shape[-1] % p
    return F.pad(x, (0, pw, 0, ph), mode="circular") if ph or pw else x
