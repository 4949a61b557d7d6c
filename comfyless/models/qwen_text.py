"""Qwen decoder-only language models as text encoders, and Qwen's byte-level BPE tokenizer.

Two encoders (model-families.md §3.5, §4.5), both one standalone file loaded by CLIPLoader:
* Qwen3-4B (Z-Image; CLIP type `lumina2`; ComfyUI root `qwen3_4b`): 36 layers, hidden 2560,
  32 q / 8 kv heads × 128, MLP 9728, per-head RMSNorm on q and k, no q/k/v bias, tied
  embeddings, vocab 151936. Template `<|im_start|>user\\n{prompt}<|im_end|>\\n<|im_start|>
  assistant\\n`; output = hidden state after layer index 34 (second-to-last) without the final
  norm; nothing dropped.
* Qwen2.5-VL-7B's language model (Qwen-Image; CLIP type `qwen_image`; root `qwen25_7b`): 28
  layers, hidden 3584, 28 q / 4 kv heads × 128, MLP 18944, q/k/v with bias, no q/k norm,
  vocab 152064. Template with Qwen-Image's system prompt (a prompt already starting with
  `<|im_start|>` or `<|start_header_id|>` is used as is); output = last layer after the final
  norm, then the template head is dropped (§4.5: up to the second `<|im_start|>`, plus `user`
  `\\n` after it: 34 tokens for the default template). Any `lm_head` is ignored. A file with
  the vision tower (`visual.…`, models/qwen_vision.py) also encodes prompts with images (the
  Qwen-Image edit nodes, below); text-only prompts use plain 1-D RoPE (the multimodal RoPE of
  equal positions).

Weights in the HF / ComfyUI layout `model.embed_tokens.weight`, `model.layers.N.self_attn.
{q,k,v,o}_proj.{weight,bias}`, `model.layers.N.self_attn.{q,k}_norm.weight`, `model.layers.N.
mlp.{gate,up,down}_proj.weight`, `model.layers.N.{input,post_attention}_layernorm.weight`,
`model.norm.weight`; held under ComfyUI's module roots `<root>.transformer.model.…` so LoRA
keys `text_encoders.<root>.transformer.model.…` land on them. Config comes from shapes; the
head width is the q_norm width, else Qwen's 128 (a k projection narrower than 128 rows, as in
test files, is one head).

Numerics follow ComfyUI's llama.py: activations float32 whatever the storage dtype (weights
cast per call); RMSNorm eps 1e-6; rotate-half RoPE, θ 1e6, positions 0…L−1; causal attention
with the padding mask as an additive −finfo.min/4 bias on key positions; SiLU-gated MLP.

Tokenizer (ComfyUI's Qwen tokenizers on its `qwen25_tokenizer`): the shipped
`vocab/qwen_tokenizer.json.gz` (Apache-2.0, see vocab/README.md); prompt-weight syntax
disabled (`\\(` / `\\)` still lose their backslash, as in ComfyUI), no BOS/EOS, pad 151643,
min_length 1, no maximum, one sequence (never chunked). Attention mask: 1 up to the first pad
token (`<|endoftext|>`, which a prompt may contain literally), 0 from there on (leading pads
are masked too); it is returned only when it has zeros. No pooled output.

Prompts with images (ComfyUI's QwenImageTokenizer / Qwen25_7BVLI, Qwen-Image only): the token
list carries `({"type": "image", "data": IMAGE}, 1.0)` in place of the first image-pad tokens
(`<|image_pad|>` 151655, one per image, in order; surplus pads stay tokens, surplus images are
dropped). Without an explicit template, a prompt with images uses the edit template (system
text "Describe the key features of the input image …", user part `<|vision_start|>
<|image_pad|><|vision_end|>{prompt}`). When encoding, each image entry becomes that image's
vision-tower rows (attention mask 1), and the LM gets multimodal positions [3, L] (T, H, W):
text before the first image counts 0, 1, …; an image starting at index s with r × c merged
patches (row-major) gets T = s + shift, H = s + shift + row, W = s + shift + column; after it,
text continues at index + shift' with shift' = shift + max(r, c) − r·c (ComfyUI's rule, which
is transformers' get_rope_index for one frame). RoPE frequencies are split in sections
(1/4, 3/8, 3/8) of head_dim / 2 — [16, 24, 24] for the real 128 — taking their angle from the
T, H and W position respectively.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .clip import ClipModel, assign_weights
from .quant import MARKER, dequantized_state_dict
from .qwen_vision import (
    KEY_PREFIX,
    QWEN25_VL_VISION,
    CastLinear,
    GatedMLP,
    QwenVisionTransformer,
    VisionConfig,
    apply_rope,
    infer_vision_config,
    random_vision_state_dict,
    tiny_vision_config,
    vision_shapes,
    visual_prefix,
)
from .tokenizer import TokenWeights, _escape, _unescape, shipped_tokenizer

TOKENIZER_FILE = Path(__file__).with_name("vocab") / "qwen_tokenizer.json.gz"
PAD_TOKEN = 151643  # <|endoftext|>
IM_START = 151644  # <|im_start|>
USER_TOKEN = 872  # "user"
NEWLINE_TOKEN = 198  # "\n"
IMAGE_PAD = 151655  # <|image_pad|>
HEAD_WIDTH = 128  # every Qwen model's attention head width
TEST_MAX_WIDTH = 512  # hidden widths up to this are test encoders (real ones: 2560, 3584)


@dataclass(frozen=True)
class QwenConfig:
    """Shape parameters of a Qwen decoder (defaults: Qwen3-4B)."""

    hidden: int = 2560
    layers: int = 36
    heads: int = 32
    kv_heads: int = 8
    head_dim: int = HEAD_WIDTH
    mlp: int = 9728
    vocab: int = 151936
    qkv_bias: bool = False
    qk_norm: bool = True
    rope_theta: float = 1e6
    eps: float = 1e-6


QWEN3_4B = QwenConfig()
QWEN25_7B_LM = QwenConfig(hidden=3584, layers=28, heads=28, kv_heads=4, mlp=18944, vocab=152064,
                          qkv_bias=True, qk_norm=False)


@dataclass(frozen=True)
class QwenTextEncoder:
    """One Qwen text encoder as ComfyUI uses it (what differs between Z-Image and Qwen-Image)."""

    clip_type: str  # CLIPLoader type
    root: str  # ComfyUI's module root and token-dict key
    title: str  # for messages
    file_name: str  # the standalone file's name in the reference workflows
    template: str
    raw_prefixes: tuple[str, ...]  # prompts starting with one of these skip the template
    layer_idx: int | None  # None: last layer after the final norm; else that layer, no norm
    drop_template_head: bool
    configs: Mapping[str, QwenConfig]  # size -> config; "tiny" keeps the full vocabulary
    image_template: str | None = None  # the template of prompts with images (None: no images)
    vision_configs: Mapping[str, VisionConfig] | None = None  # size -> vision tower of its files

    @property
    def checkpoint_prefix(self) -> str:
        """Key prefix of this encoder in all-in-one checkpoints."""
        return f"text_encoders.{self.root}.transformer."

    @property
    def kind(self) -> str:
        """`qwen_kind` of its files: "qwen3" or "qwen25"."""
        return "qwen3" if self.configs["full"].qk_norm else "qwen25"

    @property
    def real_width(self) -> int:
        return self.configs["full"].hidden


_QWEN_IMAGE_EDIT_SYSTEM = (
    "Describe the key features of the input image (color, shape, size, texture, objects, "
    "background), then explain how the user's text instruction should alter or modify the "
    "image. Generate a new image that meets the user's requirements while maintaining "
    "consistency with the original input where appropriate.")
VISION_TOKENS = "<|vision_start|><|image_pad|><|vision_end|>"  # one image in a prompt


def chat_template(system: str, user_prefix: str = "") -> str:
    """ComfyUI's Qwen chat template around a prompt `{}`."""
    return (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user_prefix}{{}}"
            "<|im_end|>\n<|im_start|>assistant\n")


EDIT_TEMPLATE = chat_template(_QWEN_IMAGE_EDIT_SYSTEM)  # TextEncodeQwenImageEditPlus's
_QWEN_IMAGE_SYSTEM = ("Describe the image by detailing the color, shape, size, texture, quantity, "
                      "text, spatial relationships of the objects and background:")
QWEN_TEXT_ENCODERS: dict[str, QwenTextEncoder] = {e.clip_type: e for e in (
    QwenTextEncoder(
        clip_type="lumina2", root="qwen3_4b", title="Qwen3-4B", file_name="qwen_3_4b.safetensors",
        template="<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n", raw_prefixes=(),
        layer_idx=-2, drop_template_head=False,
        configs={"tiny": QwenConfig(hidden=32, layers=3, heads=4, kv_heads=2, head_dim=16,
                                    mlp=64),
                 "full": QWEN3_4B}),
    QwenTextEncoder(
        clip_type="qwen_image", root="qwen25_7b", title="Qwen2.5-VL-7B",
        file_name="qwen_2.5_vl_7b.safetensors",
        template=chat_template(_QWEN_IMAGE_SYSTEM),
        raw_prefixes=("<|im_start|>", "<|start_header_id|>"), layer_idx=None,
        drop_template_head=True,
        # tiny: 16-wide heads so the multimodal RoPE sections (2, 3, 3) are whole
        configs={"tiny": QwenConfig(hidden=32, layers=3, heads=2, kv_heads=1, head_dim=16,
                                    mlp=64, vocab=152064, qkv_bias=True, qk_norm=False),
                 "full": QWEN25_7B_LM},
        image_template=chat_template(_QWEN_IMAGE_EDIT_SYSTEM, VISION_TOKENS),
        vision_configs={"tiny": tiny_vision_config(out_hidden=32), "full": QWEN25_VL_VISION}),
)}


def qwen_text_encoder(clip_type: str) -> QwenTextEncoder:
    """The Qwen encoder of a CLIP type (ValueError naming the known ones)."""
    if clip_type not in QWEN_TEXT_ENCODERS:
        raise ValueError(f"CLIP type {clip_type!r} has no Qwen text encoder; expected one of "
                         f"{sorted(QWEN_TEXT_ENCODERS)}")
    return QWEN_TEXT_ENCODERS[clip_type]


# --- modules -------------------------------------------------------------------------------

class QwenRMSNorm(nn.Module):
    """x / sqrt(mean(x²) + eps) · weight (ComfyUI's llama RMSNorm, not its RMSNorm op)."""

    def __init__(self, width: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return x * self.weight.to(x.dtype)


def rope_tables(length: int, head_dim: int, theta: float, device: torch.device,
                positions: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """(cos, sin) [L, head_dim] float32 for positions 0…L−1, or for multimodal positions
    [3, L] (T, H, W; module docstring); each frequency appears twice (first half, second
    half), as rotate-half RoPE pairs x_j with x_{j + head_dim/2}."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim)
    if positions is None:
        angles = torch.arange(length, device=device).float()[:, None] * inv_freq[None, :]
    else:
        per_axis = positions.float()[:, :, None] * inv_freq  # [3, L, head_dim / 2]
        axis = torch.repeat_interleave(torch.arange(3, device=device),
                                       torch.tensor(mrope_sections(head_dim), device=device))
        angles = per_axis.gather(0, axis.expand(1, length, -1))[0]  # frequency j from its axis
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def mrope_sections(head_dim: int) -> tuple[int, int, int]:
    """Frequencies taken from the T, H and W positions: (1/4, 3/8, 3/8) of head_dim / 2,
    ComfyUI's [16, 24, 24] for 128-wide heads."""
    if head_dim % 16:
        raise ValueError(f"multimodal RoPE needs a head width that is a multiple of 16, "
                         f"got {head_dim}")
    return head_dim // 8, 3 * head_dim // 16, 3 * head_dim // 16


def mrope_positions(length: int, images: list[tuple[int, int, int, int]], device=None
                    ) -> Tensor:
    """Multimodal positions [3, L] (T, H, W) of a sequence whose images are
    (start, token count, merged rows, merged columns) in order (module docstring)."""
    positions = torch.arange(length, device=device).float().expand(3, -1).clone()
    shift = 0
    for start, count, rows, cols in images:
        index = torch.arange(count, device=device)
        positions[0, start:start + count] = start + shift
        positions[1, start:start + count] = (start + shift + index // cols).float()
        positions[2, start:start + count] = (start + shift + index % cols).float()
        shift += max(rows, cols) - count
        positions[:, start + count:] = torch.arange(start + count, length, device=device) + shift
    return positions


class QwenAttention(nn.Module):
    """`self_attn`: grouped-query attention with optional q/k/v bias and per-head q/k norms."""

    def __init__(self, cfg: QwenConfig):
        super().__init__()
        self.heads, self.kv_heads, self.head_dim = cfg.heads, cfg.kv_heads, cfg.head_dim
        inner, kv = cfg.heads * cfg.head_dim, cfg.kv_heads * cfg.head_dim
        self.q_proj = CastLinear(cfg.hidden, inner, bias=cfg.qkv_bias)
        self.k_proj = CastLinear(cfg.hidden, kv, bias=cfg.qkv_bias)
        self.v_proj = CastLinear(cfg.hidden, kv, bias=cfg.qkv_bias)
        self.o_proj = CastLinear(inner, cfg.hidden, bias=False)
        if cfg.qk_norm:
            self.q_norm = QwenRMSNorm(cfg.head_dim, cfg.eps)
            self.k_norm = QwenRMSNorm(cfg.head_dim, cfg.eps)
        else:
            self.q_norm = self.k_norm = None

    def qkv(self, x: Tensor, rope: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """q [B, heads, L, head_dim], k and v [B, kv_heads, L, head_dim]: projected, normed and
        rotated (shared with qwen_generate's cached decoding)."""
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        return apply_rope(q, *rope), apply_rope(k, *rope), v

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], bias: Tensor | None) -> Tensor:
        b, t, _ = x.shape
        q, k, v = self.qkv(x, rope)
        groups = self.heads // self.kv_heads  # each kv head serves `groups` q heads in a row
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, is_causal=bias is None)
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


class QwenLayer(nn.Module):
    """`layers.N`: pre-norm attention and MLP, each with a residual."""

    def __init__(self, cfg: QwenConfig):
        super().__init__()
        self.self_attn = QwenAttention(cfg)
        self.mlp = GatedMLP(cfg.hidden, cfg.mlp, bias=False)
        self.input_layernorm = QwenRMSNorm(cfg.hidden, cfg.eps)
        self.post_attention_layernorm = QwenRMSNorm(cfg.hidden, cfg.eps)

    def forward(self, x: Tensor, rope: tuple[Tensor, Tensor], bias: Tensor | None) -> Tensor:
        x = x + self.self_attn(self.input_layernorm(x), rope, bias)
        return x + self.mlp(self.post_attention_layernorm(x))


class QwenBody(nn.Module):
    """`model`: token embedding, decoder layers, final norm."""

    def __init__(self, cfg: QwenConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab, cfg.hidden)
        self.layers = nn.ModuleList(QwenLayer(cfg) for _ in range(cfg.layers))
        self.norm = QwenRMSNorm(cfg.hidden, cfg.eps)


def attention_bias(mask: Tensor | None, length: int) -> Tensor | None:
    """Additive [B, 1, L, L] float32 bias: causal plus masked keys (ComfyUI's −finfo.min/4,
    finite so a fully masked row stays a number); None when nothing is masked (plain causal)."""
    if mask is None or bool(mask.all()):
        return None
    neg = torch.finfo(torch.float32).min / 4
    causal = torch.full((length, length), neg, device=mask.device).triu_(1)
    keys = (mask[:, None, None, :] == 0).float() * neg
    return causal + keys


class QwenLM(nn.Module):
    """`transformer`: the decoder under `model.` (ComfyUI's Qwen3_4B / Qwen25_7BVLI text part)
    and, when its file has one, Qwen2.5-VL's vision tower under `visual.`."""

    def __init__(self, cfg: QwenConfig, vision: VisionConfig | None = None):
        super().__init__()
        self.config = cfg
        self.model = QwenBody(cfg)
        self.visual = None if vision is None else QwenVisionTransformer(vision)

    def forward(self, ids: Tensor | None, mask: Tensor | None = None,
                layer_idx: int | None = None, *, embeds: Tensor | None = None,
                positions: Tensor | None = None) -> Tensor:
        """Hidden states [B, L, hidden] float32: after the final norm (layer_idx None), else
        the output of layer `layer_idx` (negative counts from the end) without it. `mask`
        [B, L] (1 = attend) masks key positions on top of the causal mask. `embeds` [B, L,
        hidden] replace the token embeddings of `ids`; `positions` [3, L] are multimodal
        positions (default 0…L−1 on every axis)."""
        body, cfg = self.model, self.config
        x = body.embed_tokens(ids).float() if embeds is None else embeds.float()
        rope = rope_tables(x.shape[1], cfg.head_dim, cfg.rope_theta, x.device, positions)
        bias = attention_bias(mask, x.shape[1])
        stop = len(body.layers) - 1 if layer_idx is None else layer_idx % len(body.layers)
        for layer in body.layers[: stop + 1]:  # later layers cannot change the chosen output
            x = layer(x, rope, bias)
        return body.norm(x) if layer_idx is None else x


class QwenTextStack(nn.Module):
    """`<root>.transformer` (a QwenLM): ComfyUI's module path for LoRA keys."""

    def __init__(self, root: str, cfg: QwenConfig, vision: VisionConfig | None = None):
        super().__init__()
        holder = nn.Module()
        holder.transformer = QwenLM(cfg, vision)
        self.root = root
        self.add_module(root, holder)

    def lm(self) -> QwenLM:
        return getattr(self, self.root).transformer


# --- tokenizer -----------------------------------------------------------------------------

def qwen_tokenizer():
    """The `tokenizers` pipeline of the shipped Qwen tokenizer.json (built once)."""
    return shipped_tokenizer(TOKENIZER_FILE)


def encode_qwen_text(text: str) -> list[int]:
    """Token ids of `text`: special tokens written in the text become their ids; nothing added."""
    return qwen_tokenizer().encode(text, add_special_tokens=False).ids


class QwenTokenizer:
    """Prompt -> one sequence of (id, 1.0): ComfyUI's Z-Image / Qwen-Image tokenizers."""

    def __init__(self, encoder: QwenTextEncoder):
        self.encoder = encoder

    def prompt_text(self, text: str, template: str | None = None, images: bool = False) -> str:
        """The text actually tokenized: the prompt as is when it starts like a chat, else
        inside `template`, the image template (prompts with images) or the default one."""
        if self.encoder.raw_prefixes and text.startswith(self.encoder.raw_prefixes):
            return text
        if template is None:
            template = self.encoder.image_template if images else self.encoder.template
        return template.format(text)

    def tokenize_with_weights(self, text: str, images: Sequence[Tensor] = (),
                              template: str | None = None) -> list[TokenWeights]:
        """[[(id, 1.0), ...]]: weights disabled (only `\\(`/`\\)` unescaped), padded to 1; the
        first image-pad tokens become `({"type": "image", "data": image}, 1.0)`."""
        if images and self.encoder.image_template is None:
            raise ValueError(f"the {self.encoder.title} text encoder takes no images")
        literal = _unescape(_escape(self.prompt_text(text, template, bool(images))))
        ids = encode_qwen_text(literal) if literal else []
        tokens = [(t, 1.0) for t in ids or [PAD_TOKEN]]
        pending = list(images)
        for i, (t, _) in enumerate(tokens):
            if t == IMAGE_PAD and pending:
                tokens[i] = ({"type": "image", "data": pending.pop(0)}, 1.0)
        return [tokens]


def attention_mask(ids: list[int]) -> list[int]:
    """ComfyUI's mask for a sequence with pad token 151643 and no end token: 1 until the
    first pad token (itself 0), 0 after it; pads at the very start are 0 (left padding)."""
    mask, ended, left_pad = [], False, False
    for i, t in enumerate(ids):
        if i == 0 and t == PAD_TOKEN:
            left_pad = True
        if ended or (left_pad and t == PAD_TOKEN):
            mask.append(0)
        else:
            mask.append(1)
            left_pad = False
        if not ended and t == PAD_TOKEN and not left_pad:
            mask[-1] = 0
            ended = True
    return mask


def template_head_length(ids: list[int], encoded_length: int) -> int:
    """Tokens ComfyUI's Qwen-Image encoder drops from the front (§4.5): up to the second
    `<|im_start|>` (the first if there is one), and `user` `\\n` after it when the output is
    longer than that. Without any `<|im_start|>` this is ComfyUI's −1: only the last token
    is kept (unless `user` `\\n` starts the sequence)."""
    starts = [i for i, t in enumerate(ids) if t == IM_START][:2]
    end = starts[-1] if starts else -1
    if (encoded_length > end + 3 and ids[end + 1:end + 3] == [USER_TOKEN, NEWLINE_TOKEN]):
        end += 3
    return end


# --- the CLIP payload ----------------------------------------------------------------------

@dataclass
class QwenTextClip(ClipModel):
    """CLIP payload of a Qwen text encoder (CLIP types lumina2, qwen_image); same interface as
    ClipModel, with `encode_from_tokens(..., return_dict=True)` for the attention mask."""

    returns_attention_mask = True  # CLIPTextEncode asks for the dict form

    encoder: QwenTextEncoder | None = field(default=None, kw_only=True)
    source: str = field(default="the text encoder", kw_only=True)  # its file, for messages

    def tokenize(self, text: str, images: Sequence[Tensor] = (),
                 llama_template: str | None = None) -> dict[str, list[TokenWeights]]:
        """{root: [one sequence of (id, 1.0)]} (ComfyUI's token dict); `images` (IMAGE
        tensors) take the place of the prompt's image-pad tokens, `llama_template` (with
        `{}`) replaces the encoder's template."""
        if images:
            self.require_vision()
        tokenizer = QwenTokenizer(self.encoder)
        return {self.encoder.root: tokenizer.tokenize_with_weights(text, images, llama_template)}

    @property
    def has_vision(self) -> bool:
        """True if prompts may carry images (a Qwen2.5-VL file with its vision tower)."""
        return self.stack.lm().visual is not None

    def require_vision(self) -> None:
        """ValueError naming the file and what is missing unless images can be encoded."""
        if self.encoder.image_template is None:
            raise ValueError(f"{self.source}: the {self.encoder.title} text encoder (CLIP type "
                             f"{self.encoder.clip_type!r}) takes no images; image prompts need "
                             "Qwen2.5-VL-7B (CLIP type 'qwen_image')")
        if not self.has_vision:
            raise ValueError(f"{self.source}: this {self.encoder.title} file holds no vision "
                             "tower (no 'visual.*' weights), so it cannot encode images; use "
                             f"the full {self.encoder.file_name} (or its fp8_scaled version) "
                             "that includes them")

    def encode_from_tokens(self, tokens: Mapping[str, list[TokenWeights]],
                           return_pooled: bool = True, return_dict: bool = False
                           ) -> tuple[Tensor, None] | dict[str, Tensor | None]:
        """(cond [1, L, hidden], None) float32 on the CPU; with `return_dict`
        {"cond", "pooled_output": None, "attention_mask" [1, L] only when it has zeros}.
        Token weights are ignored (always 1: the weight syntax is disabled)."""
        from ..lora.apply import loras_applied

        windows = [[t for t, _ in w] for w in tokens[self.encoder.root]] or [[PAD_TOKEN]]
        self.ensure_weights()  # read back from the file if released while idle (residency.py)
        with torch.no_grad(), loras_applied(self.stack, list(self.patches), target="clip"):
            cond, mask = self._encode_windows(windows)
        if self.encoder.drop_template_head:
            start = template_head_length(windows[0], cond.shape[1])
            cond, mask = cond[:, start:], mask[:, start:]
        if not return_dict:
            return cond, None
        out = {"cond": cond, "pooled_output": None}
        if not bool(mask.all()):
            out["attention_mask"] = mask
        return out

    def _layer_choice(self, layers: int) -> int | None:
        """The encoder's default layer, or CLIPSetLastLayer's (beyond the depth: the last
        layer after the final norm, as ComfyUI falls back to "last")."""
        if self.layer_idx is None:
            return self.encoder.layer_idx
        return None if abs(self.layer_idx) > layers else self.layer_idx

    def _encode_windows(self, windows: list[list]) -> tuple[Tensor, Tensor]:
        """Each sequence encoded on its own (no attention across them), concatenated:
        (hidden [1, ΣL, D] float32 CPU, mask [1, ΣL] long)."""
        lm = self.stack.lm()
        layer_idx = self._layer_choice(lm.config.layers)
        conds, masks = [], []
        for ids in windows:
            if all(isinstance(t, int) for t in ids):
                mask = torch.tensor([attention_mask(ids)], dtype=torch.long)
                batch = torch.tensor([ids], dtype=torch.long, device=self.device)
                conds.append(lm(batch, mask.to(self.device), layer_idx).float().cpu())
            else:
                embeds, mask, positions = self._multimodal_inputs(lm, ids)
                conds.append(lm(None, mask.to(self.device), layer_idx, embeds=embeds,
                                positions=positions).float().cpu())
            masks.append(mask)
        return torch.cat(conds, dim=1), torch.cat(masks, dim=1)

    def _multimodal_inputs(self, lm: QwenLM, ids: list) -> tuple[Tensor, Tensor, Tensor]:
        """(embeds [1, L, D], mask [1, L], positions [3, L]) of a sequence whose image entries
        expand to their vision-tower rows (ComfyUI's process_tokens: the text mask is
        computed over the tokens alone, image rows attend)."""
        if lm.visual is None:
            self.require_vision()
        text_ids = [t for t in ids if isinstance(t, int)]
        text_mask = attention_mask(text_ids)
        text = lm.model.embed_tokens(torch.tensor(text_ids, dtype=torch.long,
                                                  device=self.device)).float()
        pieces, mask, images, k = [], [], [], 0
        merge = lm.visual.config.merge
        for t in ids:
            if isinstance(t, int):
                pieces.append(text[k:k + 1])
                mask.append(text_mask[k])
                k += 1
                continue
            rows, grid = lm.visual.encode_image(t["data"])
            images.append((len(mask), rows.shape[0], grid[1] // merge, grid[2] // merge))
            pieces.append(rows.float())
            mask.extend([1] * rows.shape[0])
        embeds = torch.cat(pieces)[None]
        positions = mrope_positions(embeds.shape[1], images, embeds.device)
        return embeds, torch.tensor([mask], dtype=torch.long), positions


# --- recognising, loading, random weights --------------------------------------------------

_Q_KEY = "layers.0.self_attn.q_proj.weight"
_LAYER = re.compile(r"layers\.(\d+)\.")


def lm_root(keys) -> str | None:
    """The prefix before `layers.0.self_attn.q_proj.weight` of a decoder LM with a gated MLP
    and a post-attention norm (`model.`, `text_encoders.qwen3_4b.transformer.model.`, ...);
    vision towers and CLIP text towers excluded; None if there is none."""
    keys = list(keys)
    known = set(keys)
    for k in keys:
        root = k[: -len(_Q_KEY)]
        if (k.endswith(_Q_KEY) and "visual" not in root
                and f"{root}layers.0.mlp.gate_proj.weight" in known
                and f"{root}layers.0.post_attention_layernorm.weight" in known):
            return root
    return None


def qwen_kind(keys) -> str | None:
    """"qwen3" (q/k norms, no Gemma feed-forward norms), "qwen25" (q/k/v bias, no q/k norms)
    or None for the keys of a file or checkpoint part."""
    keys = set(keys)
    root = lm_root(keys)
    if root is None or f"{root}layers.0.pre_feedforward_layernorm.weight" in keys:
        return None  # not a decoder LM, or a Gemma one
    if f"{root}layers.0.self_attn.q_norm.weight" in keys:
        return "qwen3"
    if f"{root}layers.0.self_attn.k_proj.bias" in keys:
        return "qwen25"
    return None


def describe_qwen(shapes: Mapping[str, tuple[int, ...]]) -> str | None:
    """"a Qwen3-4B text encoder", "a Qwen3 text encoder 4096 wide", ... for Qwen LM keys."""
    kind = qwen_kind(shapes)
    if kind is None:
        return None
    encoder = next(e for e in QWEN_TEXT_ENCODERS.values() if e.kind == kind)
    if is_encoder_file(shapes, encoder):
        return f"a {encoder.title} text encoder"
    family = "Qwen3" if kind == "qwen3" else "Qwen2.5"
    return (f"a {family} text encoder {qwen_width(shapes)} wide (not {encoder.title}, "
            f"{encoder.real_width})")


def is_encoder_file(shapes: Mapping[str, tuple[int, ...]], encoder: QwenTextEncoder) -> bool:
    """True if the keys hold this encoder: its Qwen kind at its real width (or a test width)."""
    if qwen_kind(shapes) != encoder.kind:
        return False
    width = qwen_width(shapes)
    return width == encoder.real_width or width <= TEST_MAX_WIDTH


def qwen_width(shapes: Mapping[str, tuple[int, ...]]) -> int:
    """Hidden width of the Qwen LM in `shapes` (its layer-0 post-attention norm)."""
    root = lm_root(shapes)
    return int(shapes[f"{root}layers.0.post_attention_layernorm.weight"][0])


def lm_keys(keys) -> list[str]:
    """The keys of a file or checkpoint part that the text encoder reads: the LM's own
    (vision tower, lm_head and others left unread) and a scaled-fp8 marker."""
    root = lm_root(keys)
    return [k for k in keys if (root is not None and k.startswith(root))
            or k == MARKER or k.endswith("." + MARKER)]


def visual_keys(keys) -> list[str]:
    """The vision-tower keys beside the LM (`visual.…` next to its `model.…`), if any."""
    keys = list(keys)
    root = lm_root(keys)
    if root is None or not root.endswith("model."):
        return []
    prefix = root[: -len("model.")] + KEY_PREFIX
    return [k for k in keys if k.startswith(prefix)] if visual_prefix(keys) == prefix else []


def encoder_keys(keys, encoder: QwenTextEncoder) -> list[str]:
    """The keys the encoder reads: lm_keys, plus the vision tower of an encoder that takes
    images (Qwen2.5-VL-7B)."""
    keys = list(keys)
    vision = visual_keys(keys) if encoder.image_template is not None else []
    return lm_keys(keys) + vision


def qwen_lm_state_dict(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The LM keys as `model.…` (whatever prefix they had; scaled fp8 dequantised)."""
    root = lm_root(sd)
    if root is None:
        raise KeyError(f"not a Qwen language model: no '{_Q_KEY}' key")
    part = dequantized_state_dict({k: sd[k] for k in lm_keys(sd)})
    return {"model." + k[len(root):]: v for k, v in part.items() if k.startswith(root)}


def qwen_visual_state_dict(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The vision-tower keys beside the LM, prefix-free (scaled fp8 dequantised); {} if none."""
    keys = visual_keys(sd)
    if not keys:
        return {}
    prefix = visual_prefix(keys)
    markers = [k for k in sd if k == MARKER or k.endswith("." + MARKER)]
    part = dequantized_state_dict({k: sd[k] for k in keys + markers})
    return {k[len(prefix):]: v for k, v in part.items() if k.startswith(prefix)}


def infer_qwen_config(sd: Mapping[str, Tensor]) -> QwenConfig:
    """QwenConfig from `model.…` keys and shapes."""
    base = "model.layers.0."
    for key in ("model.embed_tokens.weight", base + "self_attn.k_proj.weight",
                base + "mlp.gate_proj.weight", "model.norm.weight"):
        if key not in sd:
            raise KeyError(f"not a Qwen language model: {key!r} missing")
    vocab, hidden = sd["model.embed_tokens.weight"].shape
    q_norm = sd.get(base + "self_attn.q_norm.weight")
    kv_rows = sd[base + "self_attn.k_proj.weight"].shape[0]
    head_dim = q_norm.shape[0] if q_norm is not None else min(HEAD_WIDTH, kv_rows)
    layers = 1 + max(int(m.group(1)) for k in sd if (m := _LAYER.match(k[len("model."):])))
    return QwenConfig(hidden=hidden, layers=layers,
                      heads=sd[base + "self_attn.q_proj.weight"].shape[0] // head_dim,
                      kv_heads=kv_rows // head_dim, head_dim=head_dim,
                      mlp=sd[base + "mlp.gate_proj.weight"].shape[0], vocab=vocab,
                      qkv_bias=base + "self_attn.q_proj.bias" in sd, qk_norm=q_norm is not None)


def build_qwen_text(sd: Mapping[str, Tensor], encoder: QwenTextEncoder,
                    dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                    family: str | None = None, source: str | None = None) -> QwenTextClip:
    """A QwenTextClip from LM keys under any prefix (meta-built, tensors assigned), with the
    vision tower beside them when the encoder takes images and `sd` has one. `source` names
    the file in messages."""
    part = qwen_lm_state_dict(sd)
    cfg = infer_qwen_config(part)
    vision = qwen_visual_state_dict(sd) if encoder.image_template is not None else {}
    vision_cfg = infer_vision_config(vision) if vision else None
    source = source or f"the {encoder.title} text encoder"
    if vision_cfg is not None and vision_cfg.out_hidden != cfg.hidden:
        raise ValueError(f"{source}: the vision tower outputs {vision_cfg.out_hidden} features, "
                         f"the language model is {cfg.hidden} wide")
    part.update({KEY_PREFIX + k: v for k, v in vision.items()})
    with torch.device("meta"):
        stack = QwenTextStack(encoder.root, cfg, vision_cfg)
    device = torch.device(device)
    assign_weights(stack, {f"{encoder.root}.transformer.": part}, dtype, device,
                   what=encoder.title)
    return QwenTextClip(stack, (), family or encoder.clip_type, dtype, device, encoder=encoder,
                        source=source)


def qwen_text_dtype(device: str | torch.device) -> torch.dtype:
    """float32 on the CPU; bfloat16 on an accelerator (Qwen's own dtype: fp16 storage would
    cut its range)."""
    return torch.float32 if torch.device(device).type == "cpu" else torch.bfloat16


def qwen_state_dict(encoder: QwenTextEncoder, size: str,
                    generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Random weights in the standalone file layout (`model.…`, then the vision tower
    `visual.…` for Qwen2.5-VL-7B, as its real file has; float32). "full" gives meta tensors
    (shapes only: Qwen3-4B is 4.0 B parameters, the 7B LM 7.1 B plus a 0.68 B tower)."""
    if size not in encoder.configs:
        raise ValueError(f"{encoder.title} size {size!r}: expected one of "
                         f"{sorted(encoder.configs)}")
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in QwenLM(encoder.configs[size]).state_dict().items()}
    vision = (encoder.vision_configs or {}).get(size)
    vision_shapes_ = {} if vision is None else vision_shapes(vision)
    if size == "full":
        return {**{k: torch.empty(s, device="meta") for k, s in shapes.items()},
                **{KEY_PREFIX + k: torch.empty(s, device="meta")
                   for k, s in vision_shapes_.items()}}
    out = {k: _random_weight(k, s, generator) for k, s in shapes.items()}  # LM draws first
    if vision is not None:
        out.update({KEY_PREFIX + k: v for k, v in
                    random_vision_state_dict(vision, generator).items()})
    return out


def _random_weight(key: str, shape: torch.Size, generator: torch.Generator | None) -> Tensor:
    t = torch.randn(shape, generator=generator)
    if key.endswith("embed_tokens.weight"):
        return t  # O(1) embeddings: RMS-normed before use
    if len(shape) == 2:
        return t / math.sqrt(shape[1])
    if key.endswith(".bias"):
        return 0.1 * t
    return 1.0 + 0.1 * t  # norm scales

