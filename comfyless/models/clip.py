"""CLIP text encoders (CLIP-L, OpenCLIP ViT-H, OpenCLIP bigG) and the CLIP payload.

Every encoder is held in the HF CLIPTextModel layout under ComfyUI's internal roots
(`clip_l.` / `clip_h.` / `clip_g.` + `transformer.text_model.…`, `transformer.text_projection`),
so LoRA key maps see one naming. OpenCLIP checkpoint keys are renamed on load, as ComfyUI does
(model-detection.md §5.3): `resblocks.N` -> `encoder.layers.N`, `attn.in_proj_*` split into
q/k/v (views, no copy), `ln_1/ln_2/ln_final` -> `layer_norm1/2`, `final_layer_norm`,
`c_fc/c_proj` -> `fc1/fc2`, `text_projection` [D, P] transposed into a Linear weight [P, D].
Config (width, layers, heads = width/64, MLP width, vocab, positions) comes from shapes.

Which encoders a family has, their layer defaults, padding, checkpoint prefixes and which
standalone files make its set are declared by the family record (models/families/):
`text_encoders` (EncoderSpec per encoder, in output order; pooled = the last one's pooled
output), `text_encoder_prefixes` / `text_encoder_fallbacks`, `clip_type`, `assign_text_encoders`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .families import FAMILIES, EncoderSpec, Family
from .families import family as family_record
from .tokenizer import END_TOKEN, VOCAB_SIZE, ClipTokenizer, TokenWeights


@dataclass(frozen=True)
class TextConfig:
    """Shape parameters of one text transformer (CLIP-L: 768 wide, 12 layers)."""

    width: int = 768
    layers: int = 12
    mlp: int = 3072
    vocab: int = VOCAB_SIZE
    positions: int = 77
    projection: int | None = None  # text_projection output size (None: no projection)
    act: str = "quick_gelu"  # OpenAI CLIP-L; OpenCLIP ViT-H / bigG use "gelu"

    @property
    def heads(self) -> int:
        return max(1, self.width // 64)


def _cfg(width: int, layers: int, projection: int | None, act: str) -> TextConfig:
    return TextConfig(width=width, layers=layers, mlp=4 * width, projection=projection, act=act)


# (encoder, size) -> config; "full" are the real shapes. Tiny widths stay multiples of 64.
CONFIGS = {
    ("l", "tiny"): _cfg(64, 2, None, "quick_gelu"),
    ("h", "tiny"): _cfg(64, 2, 64, "gelu"),
    ("g", "tiny"): _cfg(128, 2, 128, "gelu"),
    ("l", "small"): _cfg(128, 4, None, "quick_gelu"),
    ("h", "small"): _cfg(192, 4, 192, "gelu"),
    ("g", "small"): _cfg(256, 4, 256, "gelu"),
    ("l", "full"): _cfg(768, 12, None, "quick_gelu"),
    ("h", "full"): _cfg(1024, 24, 1024, "gelu"),
    ("g", "full"): _cfg(1280, 32, 1280, "gelu"),
}


# --- modules (HF CLIPTextModel layout) -----------------------------------------------------

class Attention(nn.Module):
    """Causal multi-head self-attention (heads = width / 64)."""

    def __init__(self, cfg: TextConfig):
        super().__init__()
        d = cfg.width
        self.heads = cfg.heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        # (B, heads, T, d/heads)
        q, k, v = (m(x).view(b, t, self.heads, -1).transpose(1, 2)
                   for m in (self.q_proj, self.k_proj, self.v_proj))
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class MLP(nn.Module):
    """fc1 -> quick_gelu (CLIP-L) or gelu (OpenCLIP) -> fc2."""

    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.width, cfg.mlp)
        self.fc2 = nn.Linear(cfg.mlp, cfg.width)
        self.act = cfg.act

    def forward(self, x: Tensor) -> Tensor:
        h = self.fc1(x)
        h = h * torch.sigmoid(1.702 * h) if self.act == "quick_gelu" else F.gelu(h)
        return self.fc2(h)


class EncoderLayer(nn.Module):
    """Pre-LayerNorm transformer block."""

    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.self_attn = Attention(cfg)
        self.layer_norm1 = nn.LayerNorm(cfg.width)
        self.mlp = MLP(cfg)
        self.layer_norm2 = nn.LayerNorm(cfg.width)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class TextTransformer(nn.Module):
    """`text_model`: embeddings, pre-LN causal transformer, final LayerNorm."""

    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.embeddings = nn.Module()
        self.embeddings.token_embedding = nn.Embedding(cfg.vocab, cfg.width)
        self.embeddings.position_embedding = nn.Embedding(cfg.positions, cfg.width)
        self.encoder = nn.Module()
        self.encoder.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.layers))
        self.final_layer_norm = nn.LayerNorm(cfg.width)

    def forward(self, ids: Tensor, layer_idx: int | None, norm_hidden: bool
                ) -> tuple[Tensor, Tensor]:
        """(chosen layer's hidden state, pooled = final-normed state at the first end token)."""
        emb = self.embeddings
        x = emb.token_embedding(ids) + emb.position_embedding.weight[: ids.shape[1]]
        layers = self.encoder.layers
        stop = None if layer_idx is None else layer_idx % len(layers)
        hidden = None
        for i, layer in enumerate(layers):
            x = layer(x)
            if i == stop:
                hidden = x
        x = self.final_layer_norm(x)
        if hidden is None:
            hidden = x
        elif norm_hidden:
            hidden = self.final_layer_norm(hidden)
        eos = (ids == END_TOKEN).int().argmax(dim=-1)
        return hidden, x[torch.arange(x.shape[0], device=x.device), eos]


class TextEncoder(nn.Module):
    """`transformer`: text_model plus the optional `text_projection` (bias-free Linear)."""

    def __init__(self, cfg: TextConfig):
        super().__init__()
        self.config = cfg
        self.text_model = TextTransformer(cfg)
        self.text_projection = (nn.Linear(cfg.width, cfg.projection, bias=False)
                                if cfg.projection else None)

    def forward(self, ids: Tensor, layer_idx: int | None, norm_hidden: bool
                ) -> tuple[Tensor, Tensor]:
        hidden, pooled = self.text_model(ids, layer_idx, norm_hidden)
        if self.text_projection is not None:
            pooled = self.text_projection(pooled)
        return hidden, pooled


class ClipStack(nn.Module):
    """The encoders of one CLIP payload, as `clip_<name>.transformer.…` (ComfyUI's roots)."""

    def __init__(self, configs: Mapping[str, TextConfig]):
        super().__init__()
        for name, cfg in configs.items():
            holder = nn.Module()
            holder.transformer = TextEncoder(cfg)
            self.add_module(f"clip_{name}", holder)

    def encoder(self, name: str) -> TextEncoder:
        """The TextEncoder of "l", "h" or "g"."""
        return getattr(self, f"clip_{name}").transformer


# --- the CLIP payload ----------------------------------------------------------------------

@dataclass
class ClipModel:
    """CLIP payload: tokenizers + encoders + layer choice + LoRA patches (never mutated)."""

    stack: ClipStack
    specs: tuple[EncoderSpec, ...]
    family: str
    dtype: torch.dtype = torch.float32
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    layer_idx: int | None = None  # CLIPSetLastLayer; None: the family's default
    patches: tuple[tuple[dict[str, Tensor], float, bool], ...] = ()
    # T5TokenizerOptions: ComfyUI's tokenizer options ("t5xxl_min_length", ...), sorted pairs
    tokenizer_options: tuple[tuple[str, int], ...] = ()
    # a residency.Reloadable around `stack` when the loader can read it again (copies share it)
    residency: Any = field(default=None, kw_only=True, compare=False, repr=False)

    def ensure_weights(self) -> None:
        """Read the encoders back from their file if they were released while idle."""
        if self.residency is not None:
            self.residency.ensure()

    @property
    def lora_module(self) -> nn.Module:
        """The torch module whose parameter names LoRA key maps target (its weights read back
        first if they were released: key maps read the parameters' shapes)."""
        self.ensure_weights()
        return self.stack

    def clone(self) -> ClipModel:
        """A copy sharing the weights (patches and layer choice are per copy)."""
        return replace(self)

    def clip_layer(self, layer_idx: int) -> ClipModel:
        """A copy that stops at `layer_idx` (negative, -1 = last) for every encoder."""
        return replace(self, layer_idx=layer_idx)

    def with_lora(self, lora_sd: dict[str, Tensor], strength: float,
                  bypass: bool = False) -> ClipModel:
        """A copy with one more LoRA applied at encode time (weights restored after)."""
        return replace(self, patches=self.patches + ((lora_sd, strength, bypass),))

    def with_tokenizer_options(self, **options: int) -> ClipModel:
        """A copy with tokenizer options set (T5TokenizerOptions; CLIP tokenizers ignore
        them, as in ComfyUI)."""
        merged = dict(self.tokenizer_options) | options
        return replace(self, tokenizer_options=tuple(sorted(merged.items())))

    def tokenize(self, text: str) -> dict[str, list[TokenWeights]]:
        """{encoder name: 77-token windows of (id, weight)} (ComfyUI's token dict)."""
        return {s.name: ClipTokenizer(pad_token=s.pad_token).tokenize_with_weights(text)
                for s in self.specs}

    def encode_from_tokens(self, tokens: Mapping[str, list[TokenWeights]],
                           return_pooled: bool = True) -> tuple[Tensor, Tensor | None]:
        """(cond [1, 77*windows, sum of widths], pooled [1, P]) as float32 on the CPU."""
        from ..lora.apply import loras_applied

        self.ensure_weights()
        with torch.no_grad(), loras_applied(self.stack, list(self.patches), target="clip"):
            outs = [self._encode_weighted(s, tokens[s.name]) for s in self.specs]
        n = min(o[0].shape[1] for o in outs)
        cond = torch.cat([o[0][:, :n] for o in outs], dim=-1)
        pooled = outs[-1][1]  # the last encoder's pooled output (two encoders: clip_g's)
        return cond, (pooled if return_pooled else None)

    def encode(self, text: str) -> tuple[Tensor, Tensor | None]:
        """tokenize + encode_from_tokens."""
        return self.encode_from_tokens(self.tokenize(text))

    def _layer(self, spec: EncoderSpec, layers: int) -> tuple[int | None, bool]:
        if self.layer_idx is None:
            return spec.layer_idx, spec.norm_hidden
        if abs(self.layer_idx) > layers:  # ComfyUI falls back to the last layer
            return None, spec.norm_hidden
        return self.layer_idx, spec.norm_hidden

    def _encode_weighted(self, spec: EncoderSpec, windows: list[TokenWeights]
                         ) -> tuple[Tensor, Tensor]:
        """ComfyUI's token weighting: z = (z - z_empty) * w + z_empty per weighted token."""
        enc = self.stack.encoder(spec.name)
        ids = [[t for t, _ in w] for w in windows]
        weighted = any(w != 1.0 for win in windows for _, w in win)
        if weighted or not ids:
            length = max((len(i) for i in ids), default=77)
            ids.append(ClipTokenizer(pad_token=spec.pad_token).empty_tokens(length))
        layer_idx, norm_hidden = self._layer(spec, enc.config.layers)
        batch = torch.tensor(ids, dtype=torch.long, device=self.device)
        z, pooled = enc(batch, layer_idx, norm_hidden)
        z, pooled = z.float().cpu(), pooled.float().cpu()
        sections = []
        for k, window in enumerate(windows):
            zk = z[k].clone()
            if weighted:
                w = torch.tensor([wt for _, wt in window], dtype=torch.float32)[:, None]
                zk = torch.where(w != 1.0, (zk - z[-1]) * w + z[-1], zk)
            sections.append(zk)
        cond = torch.cat(sections, dim=0)[None] if sections else z[-1:]
        return cond, pooled[0:1]


# --- OpenCLIP -> HF names ------------------------------------------------------------------

# (OpenCLIP pattern, HF replacement, HF pattern, OpenCLIP replacement)
_RENAMES = (
    (r"^token_embedding\.weight$", "text_model.embeddings.token_embedding.weight",
     r"^text_model\.embeddings\.token_embedding\.weight$", "token_embedding.weight"),
    (r"^positional_embedding$", "text_model.embeddings.position_embedding.weight",
     r"^text_model\.embeddings\.position_embedding\.weight$", "positional_embedding"),
    (r"^ln_final\.", "text_model.final_layer_norm.",
     r"^text_model\.final_layer_norm\.", "ln_final."),
    (r"^transformer\.resblocks\.(\d+)\.ln_(\d)\.", r"text_model.encoder.layers.\1.layer_norm\2.",
     r"^text_model\.encoder\.layers\.(\d+)\.layer_norm(\d)\.", r"transformer.resblocks.\1.ln_\2."),
    (r"^transformer\.resblocks\.(\d+)\.attn\.out_proj\.",
     r"text_model.encoder.layers.\1.self_attn.out_proj.",
     r"^text_model\.encoder\.layers\.(\d+)\.self_attn\.out_proj\.",
     r"transformer.resblocks.\1.attn.out_proj."),
    (r"^transformer\.resblocks\.(\d+)\.mlp\.c_fc\.", r"text_model.encoder.layers.\1.mlp.fc1.",
     r"^text_model\.encoder\.layers\.(\d+)\.mlp\.fc1\.", r"transformer.resblocks.\1.mlp.c_fc."),
    (r"^transformer\.resblocks\.(\d+)\.mlp\.c_proj\.", r"text_model.encoder.layers.\1.mlp.fc2.",
     r"^text_model\.encoder\.layers\.(\d+)\.mlp\.fc2\.", r"transformer.resblocks.\1.mlp.c_proj."),
)
_IN_PROJ = re.compile(r"^transformer\.resblocks\.(\d+)\.attn\.in_proj_(weight|bias)$")
_HF_QKV = re.compile(
    r"^text_model\.encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$")


def _rename(key: str, to_hf: bool) -> str | None:
    for oc_rx, hf_repl, hf_rx, oc_repl in _RENAMES:
        new, n = re.subn(oc_rx, hf_repl, key) if to_hf else re.subn(hf_rx, oc_repl, key)
        if n:
            return new
    return None


def openclip_to_hf(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """OpenCLIP text-tower keys (no prefix) -> HF CLIPTextModel keys; unknown keys dropped."""
    out: dict[str, Tensor] = {}
    for key, t in sd.items():
        if key == "text_projection":
            out["text_projection.weight"] = t.t()
        elif m := _IN_PROJ.match(key):
            for name, part in zip(("q_proj", "k_proj", "v_proj"), t.chunk(3, dim=0), strict=True):
                out[f"text_model.encoder.layers.{m.group(1)}.self_attn.{name}.{m.group(2)}"] = part
        elif (new := _rename(key, to_hf=True)) is not None:
            out[new] = t
    return out


def hf_to_openclip(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """HF CLIPTextModel keys -> OpenCLIP text-tower keys (the checkpoint layout of ViT-H/bigG)."""
    out: dict[str, Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, Tensor]] = {}
    for key, t in sd.items():
        if key == "text_projection.weight":
            out["text_projection"] = t.t().contiguous()
        elif m := _HF_QKV.match(key):
            qkv.setdefault((m.group(1), m.group(3)), {})[m.group(2)] = t
        elif (new := _rename(key, to_hf=False)) is not None:
            out[new] = t
    for (layer, kind), parts in sorted(qkv.items()):
        out[f"transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat(
            [parts["q"], parts["k"], parts["v"]], dim=0)
    return out


# --- config inference and loading ---------------------------------------------------------

def _count_layers(sd: Mapping[str, Tensor]) -> int:
    n = 0
    while f"text_model.encoder.layers.{n}.layer_norm1.weight" in sd:
        n += 1
    return n


def infer_config(sd: Mapping[str, Tensor], act: str) -> TextConfig:
    """TextConfig from HF-layout keys and shapes."""
    key = "text_model.embeddings.token_embedding.weight"
    if key not in sd:
        raise KeyError(f"not a CLIP text encoder: {key!r} missing")
    vocab, width = sd[key].shape
    layers = _count_layers(sd)
    if layers == 0:
        raise KeyError("not a CLIP text encoder: no 'text_model.encoder.layers.N' blocks")
    proj = sd.get("text_projection.weight")
    return TextConfig(
        width=width, layers=layers,
        mlp=sd["text_model.encoder.layers.0.mlp.fc1.weight"].shape[0], vocab=vocab,
        positions=sd["text_model.embeddings.position_embedding.weight"].shape[0],
        projection=None if proj is None else proj.shape[0], act=act)


def _to_hf(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Bare HF keys from HF (old files without `text_model.` fixed up) or OpenCLIP keys."""
    if any(k.startswith("transformer.resblocks.") for k in sd):
        return openclip_to_hf(sd)
    out = {}
    for k, t in sd.items():
        if not k.startswith(("text_model.", "text_projection")):
            k = "text_model." + k  # old CLIP-L files: `transformer.embeddings…`
        out[k] = t
    return out


def _root_label(root: str) -> str:
    return f" {root.split('.')[0]!r}" if root else ""


def assign_weights(module: nn.Module, sources: Mapping[str, Mapping[str, Tensor]],
                   dtype: torch.dtype, device: torch.device, what: str = "text encoder") -> None:
    """Give a meta-device `module` its weights: parameter `<root><key>` comes from
    `sources[<root>][<key>]` (converted once to dtype/device, then assigned: no second copy).
    Missing keys and shape mismatches raise naming the root and key."""
    weights: dict[str, Tensor] = {}
    for name, ref in module.state_dict().items():
        root = next(r for r in sources if name.startswith(r))
        key = name[len(root):]
        part = sources[root]
        if key not in part:
            raise KeyError(f"{what}{_root_label(root)}: weight {key!r} missing")
        t = part[key]
        if t.shape != ref.shape:
            raise ValueError(f"{what}{_root_label(root)}: {key!r} has shape "
                             f"{tuple(t.shape)}, expected {tuple(ref.shape)}")
        weights[name] = t.to(device=device, dtype=dtype)
    module.load_state_dict(weights, assign=True)
    module.eval().requires_grad_(False)


def _build(encoders: Mapping[str, dict[str, Tensor]], specs: tuple[EncoderSpec, ...],
           family: str, dtype: torch.dtype, device: str | torch.device) -> ClipModel:
    """Meta-device modules with the given tensors assigned (no second copy)."""
    device = torch.device(device)
    configs = {s.name: infer_config(encoders[s.name], s.act) for s in specs}
    with torch.device("meta"):
        stack = ClipStack(configs)
    assign_weights(stack, {f"clip_{s.name}.transformer.": encoders[s.name] for s in specs},
                   dtype, device)
    return ClipModel(stack, specs, family, dtype, device)


def find_family(family: str) -> Family | None:
    """The family record of that name or alias, None if there is none."""
    try:
        return family_record(family)
    except ValueError:
        return None


def _text_family(family: str) -> Family:
    """The record of a family that has text encoders (ValueError naming the known ones)."""
    record = find_family(family)
    if record is None or not record.text_encoders:
        known = sorted(f.name for f in FAMILIES if f.text_encoders)
        raise ValueError(f"text encoders of model family {family!r} are not supported "
                         f"(expected one of {known})")
    return record


def _take(sd: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def load_clip(state_dict: Mapping[str, Tensor], family: str, dtype: torch.dtype = torch.float32,
              device: str | torch.device = "cpu") -> ClipModel:
    """The text encoder(s) of a single-file checkpoint (keys with their checkpoint prefixes).
    (Families with T5 text sets: text_sets.load_checkpoint_text_encoders.)"""
    record = _text_family(family)
    encoders: dict[str, dict[str, Tensor]] = {}
    for spec in record.text_encoders:
        prefix = record.text_encoder_prefixes[spec.name]
        part = _take(state_dict, prefix)
        fallback = record.text_encoder_fallbacks.get(spec.name)
        if not part and fallback:
            part = _take(state_dict, fallback)
        if not part:
            raise KeyError(f"no text-encoder keys under {prefix!r} for a {record.name} checkpoint")
        encoders[spec.name] = _to_hf(part)
    return _build(encoders, record.text_encoders, record.name, dtype, device)


# --- standalone text-encoder files (CLIPLoader / DualCLIPLoader) ---------------------------

def _root_of(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Strip whatever prefix sits before the encoder (`text_model.` or OpenCLIP names)."""
    for k in sd:
        if k.endswith("text_model.embeddings.token_embedding.weight"):
            root = k[: -len("text_model.embeddings.token_embedding.weight")]
            return _take(sd, root)
    for k in sd:
        if k.endswith("token_embedding.weight"):
            root = k[: -len("token_embedding.weight")]
            return openclip_to_hf(_take(sd, root))
    for k in sd:  # old CLIP-L layout without `text_model.`
        if k.endswith("embeddings.token_embedding.weight"):
            root = k[: -len("embeddings.token_embedding.weight")]
            return _to_hf(_take(sd, root))
    raise KeyError("no 'token_embedding.weight' key: not a CLIP text encoder")


def _read(path: str | Path, dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """The encoder keys of a text-encoder file, in HF layout (safetensors read tensor by tensor;
    scaled-fp8 weights dequantised in `dtype`)."""
    from .tensor_files import open_tensor_file

    with open_tensor_file(path, dequantize_dtype=dtype) as tensors:
        return _root_of({k: tensors[k] for k in tensors})


def clip_file_types() -> tuple[str, ...]:
    """The CLIPLoader / DualCLIPLoader `type` values some registered family loads (with the T5
    text sets: text_sets.clip_file_types)."""
    return tuple(dict.fromkeys(f.clip_type for f in FAMILIES if f.clip_type))


def default_text_dtype(device: str | torch.device) -> torch.dtype:
    """float32 on the CPU, float16 on an accelerator."""
    return torch.float32 if torch.device(device).type == "cpu" else torch.float16


def load_clip_files(paths: Sequence[str | Path], type: str, device: str | torch.device = "cpu",
                    dtype: torch.dtype | None = None) -> ClipModel:
    """CLIPLoader / DualCLIPLoader: the first family whose `clip_type` is `type` and whose
    `assign_text_encoders` accepts the files (e.g. `stable_diffusion`: one CLIP-L or ViT-H
    file; `sdxl`: CLIP-L + bigG in either order). The T5 sets (flux, sd3) and every other
    type: text_sets.load_text_encoder_files."""
    if dtype is None:
        dtype = default_text_dtype(device)
    encoders = [_read(p, dtype) for p in paths]
    for record in FAMILIES:
        if record.clip_type != type or record.assign_text_encoders is None:
            continue
        assigned = record.assign_text_encoders(encoders)
        if assigned is not None:
            return _build(assigned, record.text_encoders, record.name, dtype, device)
    expected = " or ".join(dict.fromkeys(
        f"{f.clip_type!r} with {len(f.text_encoders)} file(s)"
        for f in FAMILIES if f.clip_type and f.assign_text_encoders))
    raise ValueError(f"CLIP type {type!r} with {len(encoders)} file(s) is not supported: "
                     f"expected {expected}")


# --- random weights for tests --------------------------------------------------------------

def _random_hf(cfg: TextConfig, generator: torch.Generator) -> dict[str, Tensor]:
    with torch.device("meta"):
        enc = TextEncoder(cfg)
    sd = {}
    for k, ref in enc.state_dict().items():
        shape = ref.shape
        if "embedding" in k:
            t = (0.02 if "token" in k else 0.01) * torch.randn(shape, generator=generator)
        elif len(shape) == 2:
            t = torch.randn(shape, generator=generator) / math.sqrt(shape[1])
        elif k.endswith(".weight"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        else:
            t = 0.02 * torch.randn(shape, generator=generator)
        sd[k] = t
    return sd


def text_encoder_shapes(family: str, size: str) -> dict[str, torch.Size]:
    """Checkpoint key -> shape of the text encoder(s) of a family and size (nothing allocated)."""
    record = _text_family(family)
    out: dict[str, torch.Size] = {}
    for spec in record.text_encoders:
        with torch.device("meta"):
            sd = TextEncoder(CONFIGS[(spec.name, size)]).state_dict()
            if spec.name != "l":
                sd = hf_to_openclip(sd)
        prefix = record.text_encoder_prefixes[spec.name]
        out.update({prefix + k: v.shape for k, v in sd.items()})
    return out


def text_encoder_state_dict(family: str, size: str, generator: torch.Generator
                            ) -> dict[str, Tensor]:
    """Random text-encoder weights with single-file checkpoint keys, float32."""
    record = _text_family(family)
    if ("l", size) not in CONFIGS:
        raise ValueError(f"text-encoder size {size!r}: expected tiny, small or full")
    out: dict[str, Tensor] = {}
    for spec in record.text_encoders:
        prefix = record.text_encoder_prefixes[spec.name]
        sd = _random_hf(CONFIGS[(spec.name, size)], generator)
        if spec.name == "l":
            sd["text_model.embeddings.position_ids"] = torch.arange(77)[None]
        else:
            sd = hf_to_openclip(sd)
        out.update({prefix + k: v for k, v in sd.items()})
    return out
