"""T5 v1.1 encoder (T5-XXL as Flux and SD3 use it) and its tokenizer.

Weights are held in the transformers `T5EncoderModel` layout, which is also the layout of the
standalone `t5xxl_*.safetensors` files and of ComfyUI's internal `t5xxl.transformer.` roots:
`shared.weight` (token embedding; `encoder.embed_tokens.weight` is the same tensor when a file
stores it), `encoder.block.N.layer.0.SelfAttention.{q,k,v,o}.weight`,
`encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight` [buckets, heads],
`encoder.block.N.layer.0.layer_norm.weight`, `encoder.block.N.layer.1.DenseReluDense.{wi_0,
wi_1,wo}.weight`, `encoder.block.N.layer.1.layer_norm.weight`, `encoder.final_layer_norm.weight`.
Config comes from shapes (model-families.md §1.4: XXL = 24 blocks, d_model 4096, d_ff 10240,
64 heads of 64, 32 buckets / max distance 128, vocab 32128, RMS norm eps 1e-6).

Numerics follow ComfyUI: activations are float32 whatever the storage dtype (each Linear casts
its weight to the input dtype, so fp16/bf16/fp8 weights never overflow in fp16 activations and
no clamping is needed); attention is unscaled (T5 folds 1/sqrt(d) into its weights); the
relative position bias is computed once from block 0's table and added in every block; no
attention mask (pad tokens are attended to, as in ComfyUI).

Tokenizer (ComfyUI's T5XXLTokenizer, §1.4): the shipped `vocab/t5_tokenizer.json.gz`
(Apache-2.0, see vocab/README.md); `(text:1.2)` weights parsed as for CLIP, each weighted
segment encoded on its own without its `</s>`, no start token, one end token 1 appended, then
`min_padding` pad tokens (0) and padding up to `min_length`; one sequence, never split.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .quant import dequantized_state_dict
from .tokenizer import TokenWeights, parse_weights, shipped_tokenizer

PAD_TOKEN = 0
END_TOKEN = 1
VOCAB_SIZE = 32128  # embedding rows: 32100 tokenizer pieces padded to a multiple of 128
TOKENIZER_FILE = Path(__file__).with_name("vocab") / "t5_tokenizer.json.gz"


@dataclass(frozen=True)
class T5Config:
    """Shape parameters of a T5 v1.1 encoder (defaults: T5-XXL)."""

    d_model: int = 4096
    d_ff: int = 10240
    heads: int = 64
    d_kv: int = 64
    layers: int = 24
    vocab: int = VOCAB_SIZE
    buckets: int = 32
    max_distance: int = 128
    eps: float = 1e-6


# size -> config. "tiny" keeps the full vocabulary so every tokenizer id stays valid.
CONFIGS = {
    "tiny": T5Config(d_model=64, d_ff=128, heads=4, d_kv=16, layers=2),
    "full": T5Config(),
}


# --- modules -------------------------------------------------------------------------------

class CastLinear(nn.Linear):
    """Bias-free Linear computing in the input's dtype (the weight is cast per call)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight.to(x.dtype))


class T5LayerNorm(nn.Module):
    """RMS norm without mean subtraction or bias: x / sqrt(mean(x²) + eps) · weight."""

    def __init__(self, width: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight.to(x.dtype) * x


def relative_position_buckets(length: int, buckets: int, max_distance: int,
                              device: torch.device) -> Tensor:
    """[length, length] bucket index of key position j seen from query position i.

    Bidirectional: half the buckets for keys after the query, half for keys at or before it;
    within a half, distances below half its size get a bucket each, larger ones share
    logarithmically wider buckets up to `max_distance` (everything further is the last one).
    """
    pos = torch.arange(length, dtype=torch.long, device=device)
    rel = pos[None, :] - pos[:, None]  # key - query
    half = buckets // 2
    base = (rel > 0).long() * half
    dist = rel.abs()
    exact = half // 2
    log_ratio = torch.log(dist.float().clamp(min=1) / exact) / math.log(max_distance / exact)
    far = (exact + (log_ratio * (half - exact)).long()).clamp(max=half - 1)
    return base + torch.where(dist < exact, dist, far)


class T5Attention(nn.Module):
    """`SelfAttention`: q, k, v, o without bias; unscaled softmax(q·kᵀ + bias)."""

    def __init__(self, cfg: T5Config, has_bias_table: bool):
        super().__init__()
        inner = cfg.heads * cfg.d_kv
        self.heads = cfg.heads
        self.q, self.k, self.v = (CastLinear(cfg.d_model, inner, bias=False) for _ in range(3))
        self.o = CastLinear(inner, cfg.d_model, bias=False)
        self.relative_attention_bias = (nn.Embedding(cfg.buckets, cfg.heads)
                                        if has_bias_table else None)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        b, t, _ = x.shape
        # (B, heads, T, d_kv)
        q, k, v = (m(x).view(b, t, self.heads, -1).transpose(1, 2)
                   for m in (self.q, self.k, self.v))
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)
        return self.o(out.transpose(1, 2).reshape(b, t, -1))


class T5SelfAttentionLayer(nn.Module):
    """`layer.0`: pre-norm self-attention with a residual."""

    def __init__(self, cfg: T5Config, has_bias_table: bool):
        super().__init__()
        self.SelfAttention = T5Attention(cfg, has_bias_table)
        self.layer_norm = T5LayerNorm(cfg.d_model, cfg.eps)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        return x + self.SelfAttention(self.layer_norm(x), bias)


class T5GatedFF(nn.Module):
    """`DenseReluDense` of v1.1: wo(gelu_tanh(wi_0 x) · wi_1 x)."""

    def __init__(self, cfg: T5Config):
        super().__init__()
        self.wi_0 = CastLinear(cfg.d_model, cfg.d_ff, bias=False)
        self.wi_1 = CastLinear(cfg.d_model, cfg.d_ff, bias=False)
        self.wo = CastLinear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.wo(F.gelu(self.wi_0(x), approximate="tanh") * self.wi_1(x))


class T5FFLayer(nn.Module):
    """`layer.1`: pre-norm gated feed-forward with a residual."""

    def __init__(self, cfg: T5Config):
        super().__init__()
        self.DenseReluDense = T5GatedFF(cfg)
        self.layer_norm = T5LayerNorm(cfg.d_model, cfg.eps)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.DenseReluDense(self.layer_norm(x))


class T5Block(nn.Module):
    """`encoder.block.N`: `layer` = [self-attention, feed-forward]."""

    def __init__(self, cfg: T5Config, has_bias_table: bool):
        super().__init__()
        self.layer = nn.ModuleList([T5SelfAttentionLayer(cfg, has_bias_table), T5FFLayer(cfg)])

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        return self.layer[1](self.layer[0](x, bias))


class T5Stack(nn.Module):
    """`encoder`: blocks (the bias table only in block 0) and the final norm."""

    def __init__(self, cfg: T5Config):
        super().__init__()
        self.config = cfg
        self.block = nn.ModuleList(T5Block(cfg, i == 0) for i in range(cfg.layers))
        self.final_layer_norm = T5LayerNorm(cfg.d_model, cfg.eps)

    def position_bias(self, length: int, device: torch.device) -> Tensor:
        """[1, heads, L, L] float32 additive attention bias shared by all blocks."""
        cfg = self.config
        idx = relative_position_buckets(length, cfg.buckets, cfg.max_distance, device)
        table = self.block[0].layer[0].SelfAttention.relative_attention_bias.weight
        return table.float()[idx].permute(2, 0, 1)[None]


class T5Encoder(nn.Module):
    """`shared` token embedding + `encoder` stack (transformers' T5EncoderModel names)."""

    def __init__(self, cfg: T5Config):
        super().__init__()
        self.config = cfg
        self.shared = nn.Embedding(cfg.vocab, cfg.d_model)
        self.encoder = T5Stack(cfg)

    def forward(self, ids: Tensor, layer_idx: int | None = None, norm_hidden: bool = True
                ) -> Tensor:
        """Hidden states [B, L, d_model] float32: after the final norm (layer_idx None), or
        the output of block `layer_idx` (negative counts from the end), normed if
        `norm_hidden` (ComfyUI's CLIPSetLastLayer on T5)."""
        x = self.shared(ids).float()
        bias = self.encoder.position_bias(ids.shape[1], ids.device)
        blocks = self.encoder.block
        stop = None if layer_idx is None else layer_idx % len(blocks)
        hidden = None
        for i, block in enumerate(blocks):
            x = block(x, bias)
            if i == stop:
                hidden = x
        if hidden is None:
            return self.encoder.final_layer_norm(x)
        return self.encoder.final_layer_norm(hidden) if norm_hidden else hidden


# --- config, loading, random weights -------------------------------------------------------

_BLOCK = re.compile(r"^encoder\.block\.(\d+)\.")
Q_KEY = "encoder.block.0.layer.0.SelfAttention.q.weight"
_BIAS_KEY = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight"


def is_t5(keys) -> bool:
    """True if the keys (any prefix) hold a T5 encoder's block 0 attention."""
    return any(k.endswith(Q_KEY) for k in keys)


def t5_root(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The T5 keys without whatever prefix sits before `encoder.block…` (`shared.weight` and
    `encoder.embed_tokens.weight` folded into one `shared.weight`; scaled-fp8 weights
    dequantised)."""
    root = next((k[: -len(Q_KEY)] for k in sd if k.endswith(Q_KEY)), None)
    if root is None:
        raise KeyError(f"not a T5 encoder: no '{Q_KEY}' key")
    # scaled fp8 (t5xxl_fp8_e4m3fn_scaled): files arrive dequantised (tensor_files); a state
    # dict handed in directly is dequantised here (float32), its marker and scales dropped
    out = dequantized_state_dict({k[len(root):]: v for k, v in sd.items() if k.startswith(root)})
    embed = out.pop("encoder.embed_tokens.weight", None)
    if "shared.weight" not in out and embed is not None:
        out["shared.weight"] = embed  # same tensor, stored under the encoder's own name
    return out


def infer_t5_config(sd: Mapping[str, Tensor]) -> T5Config:
    """T5Config from `t5_root` keys and shapes (heads from the bias table [buckets, heads])."""
    for key in ("shared.weight", _BIAS_KEY, "encoder.block.0.layer.1.DenseReluDense.wi_0.weight"):
        if key not in sd:
            raise KeyError(f"not a T5 v1.1 encoder: {key!r} missing")
    vocab, d_model = sd["shared.weight"].shape
    buckets, heads = sd[_BIAS_KEY].shape
    inner = sd[Q_KEY].shape[0]
    layers = 1 + max(int(m.group(1)) for k in sd if (m := _BLOCK.match(k)))
    return T5Config(d_model=d_model, d_ff=sd["encoder.block.0.layer.1.DenseReluDense.wi_0.weight"]
                    .shape[0], heads=heads, d_kv=inner // heads, layers=layers, vocab=vocab,
                    buckets=buckets)


def build_t5(sd: Mapping[str, Tensor], dtype: torch.dtype = torch.float32,
             device: str | torch.device = "cpu") -> T5Encoder:
    """A T5Encoder built on the meta device with `t5_root` tensors assigned (no second copy
    beyond the dtype/device conversion)."""
    cfg = infer_t5_config(sd)
    with torch.device("meta"):
        model = T5Encoder(cfg)
    from .clip import assign_weights

    assign_weights(model, {"": sd}, dtype, torch.device(device), what="T5 encoder")
    return model


def t5_state_dict(size: str, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """Random T5 weights in the standalone file layout (float32). "full" gives meta tensors
    (shapes only: the real model is 4.76 B parameters)."""
    if size not in CONFIGS:
        raise ValueError(f"T5 size {size!r}: expected one of {sorted(CONFIGS)}")
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in T5Encoder(CONFIGS[size]).state_dict().items()}
    if size == "full":
        return {k: torch.empty(s, device="meta") for k, s in shapes.items()}
    return {k: _random_weight(k, s, generator) for k, s in shapes.items()}


def _random_weight(key: str, shape: torch.Size, generator: torch.Generator | None) -> Tensor:
    if key.endswith("layer_norm.weight"):
        return 1.0 + 0.1 * torch.randn(shape, generator=generator)
    if key == "shared.weight":
        return torch.randn(shape, generator=generator)  # T5 embeddings are O(1)
    if key.endswith("relative_attention_bias.weight"):
        return 0.5 * torch.randn(shape, generator=generator)
    return torch.randn(shape, generator=generator) / math.sqrt(shape[1])


# --- tokenizer -----------------------------------------------------------------------------

def t5_tokenizer():
    """The `tokenizers` pipeline of the shipped T5 v1.1 tokenizer.json (built once)."""
    return shipped_tokenizer(TOKENIZER_FILE)


def encode_t5_text(text: str) -> list[int]:
    """Token ids of `text` without the end token T5TokenizerFast appends."""
    return t5_tokenizer().encode(text, add_special_tokens=False).ids


class T5Tokenizer:
    """Prompt -> one sequence of (id, weight): ComfyUI's T5XXLTokenizer."""

    def __init__(self, min_length: int | None = 256, min_padding: int | None = None):
        self.min_length = min_length
        self.min_padding = min_padding

    def tokenize_with_weights(self, text: str) -> list[TokenWeights]:
        """[[(id, weight), ...]]: content, end token, `min_padding` pads, pads to min_length."""
        tokens: TokenWeights = [(t, w) for seg, w in parse_weights(text) if seg
                                for t in encode_t5_text(seg)]
        tokens.append((END_TOKEN, 1.0))
        tokens += [(PAD_TOKEN, 1.0)] * (self.min_padding or 0)
        if self.min_length is not None and len(tokens) < self.min_length:
            tokens += [(PAD_TOKEN, 1.0)] * (self.min_length - len(tokens))
        return [tokens]


def empty_t5_tokens(length: int) -> list[int]:
    """The sequence ComfyUI encodes as the empty reference for prompt weights: end, pads."""
    return ([END_TOKEN] + [PAD_TOKEN] * length)[:max(length, 1)]
