"""Text-encoder sets with T5-XXL: ComfyUI's CLIP types `flux` (CLIP-L + T5-XXL) and `sd3`
(any of CLIP-L, CLIP-G, T5-XXL), as one CLIP payload (`TextSetClip`); the single-file Qwen
encoders of types `lumina2` (Qwen3-4B) and `qwen_image` (Qwen2.5-VL-7B) are routed to
models/qwen_text.py (`QwenTextClip`) by the same entry points.

Facts (model-families.md §1.4, §2.3, §7):
* flux: tokens {"l": CLIP windows, "t5xxl": one T5 sequence, min_length 256};
  cond = T5 last hidden state (after the final norm) [1, L ≥ 256, 4096];
  pooled = CLIP-L's unprojected pooled output of the first window [1, 768].
* sd3: tokens {"g", "l", "t5xxl" (min_length 77)}; l and g = penultimate layer without the
  final norm, concatenated on the feature axis (cut to the shorter length), zero-padded to
  4096 (only g: 768 zeros in front first); cond = [lg ; t5] on the sequence axis; pooled =
  [l pooled unprojected (768) | g pooled projected (1280)]; a missing encoder gives zeros,
  nothing at all gives zeros [1, 77, 4096]. Empty token lists (CLIPTextEncodeSD3 with
  empty_padding "none") drop that encoder's tokens.
* Prompt weights for every encoder as ComfyUI: with any weight ≠ 1, the empty sequence of the
  same length is encoded too and a weighted token's vector becomes (z − z_empty)·w + z_empty.
* CLIPSetLastLayer applies to every encoder of the set (T5 included, with its final norm).

The stack holds the encoders under ComfyUI's roots `clip_l.transformer.…`,
`clip_g.transformer.…`, `t5xxl.transformer.{shared,encoder}.…`, so LoRA keys
`text_encoders.<root…>` and the kohya names of lora/keys.py land on them.

Widths: real weights give exactly the shapes above. Small test encoders keep their own
widths (pooled = their pooled widths; missing encoders still contribute 768 / 1280 zeros) and
sd3 pads every part to max(4096, lg width, T5 width), so the sd3 context is 4096 wide.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import clip as clip_mod
from .clip import (
    CONFIGS,
    ClipModel,
    ClipStack,
    _random_hf,
    _root_of,
    _take,
    _to_hf,
    assign_weights,
    default_text_dtype,
    find_family,
    infer_config,
)
from .families import FAMILIES, EncoderSpec
from .families.sd.text import clip_layer_count
from .qwen_text import (
    QWEN_TEXT_ENCODERS,
    QwenTextClip,
    build_qwen_text,
    describe_qwen,
    encoder_keys,
    is_encoder_file,
    qwen_kind,
    qwen_state_dict,
    qwen_text_dtype,
    qwen_text_encoder,
)
from .t5 import CONFIGS as T5_CONFIGS
from .t5 import (
    T5Config,
    T5Encoder,
    T5Tokenizer,
    empty_t5_tokens,
    infer_t5_config,
    is_t5,
    t5_root,
    t5_state_dict,
)
from .tokenizer import END_TOKEN, START_TOKEN, ClipTokenizer, TokenWeights

T5_KEY = "t5xxl"  # ComfyUI's token-dict key and module root for T5-XXL
SD3_CONTEXT_WIDTH = 4096
POOLED_WIDTHS = {"l": 768, "g": 1280}  # zeros a missing sd3 encoder contributes
CHECKPOINT_PREFIXES = {"l": "text_encoders.clip_l.transformer.",
                       "g": "text_encoders.clip_g.transformer.",
                       T5_KEY: "text_encoders.t5xxl.transformer."}
ENCODER_NAMES = {"l": "CLIP-L", "g": "CLIP-G (OpenCLIP bigG)", "h": "CLIP-H (OpenCLIP ViT-H)",
                 T5_KEY: "T5-XXL"}


class TextSetError(ValueError):
    """Files that do not make the requested text set; `input_name` names the offending one."""

    def __init__(self, message: str, input_name: str | None = None):
        super().__init__(message)
        self.input_name = input_name


@dataclass(frozen=True)
class TextSet:
    """One ComfyUI CLIP type built from CLIP-L/G and T5-XXL."""

    clip_type: str
    clip_specs: tuple[EncoderSpec, ...]  # the CLIP encoders it may hold, in ComfyUI's order
    project_pooled: frozenset[str]  # CLIP encoders whose pooled output is projected
    t5_min_length: int
    required: frozenset[str]  # encoders that must be present ("l", "g", T5_KEY)
    expects: str  # what the files must be, for errors
    combine: Callable[[TextSetClip, dict], tuple[Tensor, Tensor]]

    @property
    def allowed(self) -> tuple[str, ...]:
        return (*(s.name for s in self.clip_specs), T5_KEY)


# --- the payload ---------------------------------------------------------------------------

class TextSetStack(ClipStack):
    """`clip_l` / `clip_g` (CLIP text towers) and `t5xxl` (T5Encoder), each `.transformer`."""

    def __init__(self, clip_configs: Mapping, t5: T5Config | None):
        super().__init__(clip_configs)
        if t5 is not None:
            holder = nn.Module()
            holder.transformer = T5Encoder(t5)
            self.add_module(T5_KEY, holder)

    def t5(self) -> T5Encoder | None:
        holder = getattr(self, T5_KEY, None)
        return None if holder is None else holder.transformer


@dataclass
class TextSetClip(ClipModel):
    """CLIP payload of a flux / sd3 text-encoder set (same interface as ClipModel)."""

    text_set: TextSet | None = field(default=None, kw_only=True)

    def tokenize(self, text: str) -> dict[str, list[TokenWeights]]:
        """{"l"/"g": 77-token windows, "t5xxl": [one sequence]} for every encoder the set
        type tokenizes (missing encoders included, as ComfyUI's tokenizers do)."""
        ts = self.text_set
        out = {s.name: ClipTokenizer(pad_token=s.pad_token).tokenize_with_weights(text)
               for s in ts.clip_specs}
        opts = dict(self.tokenizer_options)
        t5 = T5Tokenizer(min_length=opts.get(f"{T5_KEY}_min_length", ts.t5_min_length),
                         min_padding=opts.get(f"{T5_KEY}_min_padding"))
        out[T5_KEY] = t5.tokenize_with_weights(text)
        return out

    def encode_from_tokens(self, tokens: Mapping[str, list[TokenWeights]],
                           return_pooled: bool = True) -> tuple[Tensor, Tensor | None]:
        """(cond [1, L, D], pooled [1, P]) float32 on the CPU, combined as the set type says."""
        from ..lora.apply import loras_applied

        self.ensure_weights()
        with torch.no_grad(), loras_applied(self.stack, list(self.patches), target="clip"):
            cond, pooled = self.text_set.combine(self, dict(tokens))
        return cond, (pooled if return_pooled else None)

    # -- per-encoder encoding (used by the combine functions) --------------------------------
    def has(self, name: str) -> bool:
        return any(s.name == name for s in self.specs) if name != T5_KEY else \
            self.stack.t5() is not None

    def encode_clip(self, name: str, windows: list[TokenWeights]) -> tuple[Tensor, Tensor]:
        """(weighted hidden [1, 77·n, W], first window's pooled [1, P]) of CLIP `name`."""
        spec = next(s for s in self.specs if s.name == name)
        enc = self.stack.encoder(name)
        layer_idx, norm_hidden = self._layer(spec, enc.config.layers)
        project = name in self.text_set.project_pooled

        def run(ids: Tensor) -> tuple[Tensor, Tensor]:
            hidden, pooled = enc.text_model(ids, layer_idx, norm_hidden)
            if project and enc.text_projection is not None:
                pooled = enc.text_projection(pooled)
            return hidden, pooled

        def empty(n: int) -> list[int]:
            return ([START_TOKEN, END_TOKEN] + [spec.pad_token] * n)[:max(n, 2)]

        return _encode_weighted(run, windows, empty, self.device)

    def encode_t5(self, windows: list[TokenWeights]) -> Tensor:
        """Weighted T5 hidden states [1, L, d_model]."""
        t5 = self.stack.t5()
        layer_idx = self.layer_idx
        if layer_idx is not None and abs(layer_idx) > t5.config.layers:
            layer_idx = None  # ComfyUI falls back to the last layer

        def run(ids: Tensor) -> tuple[Tensor, None]:
            return t5(ids, layer_idx, norm_hidden=True), None

        return _encode_weighted(run, windows, empty_t5_tokens, self.device)[0]


def _encode_weighted(run, windows: list[TokenWeights], empty: Callable[[int], list[int]],
                     device: torch.device) -> tuple[Tensor, Tensor | None]:
    """ComfyUI's token weighting over windows of equal length (float32 on the CPU).

    With any weight ≠ 1 (or no window at all) the empty sequence of the same length is
    encoded as the last batch row: weighted vectors become (z − z_empty)·w + z_empty.
    pooled = the first row's pooled output.
    """
    ids = [[t for t, _ in w] for w in windows]
    weighted = any(w != 1.0 for win in windows for _, w in win)
    if weighted or not ids:
        ids.append(empty(max((len(i) for i in ids), default=0)))
    z, pooled = run(torch.tensor(ids, dtype=torch.long, device=device))
    z = z.float().cpu()
    pooled = None if pooled is None else pooled[0:1].float().cpu()
    if not windows:
        return z[-1:], pooled
    sections = []
    for k, window in enumerate(windows):
        zk = z[k]
        if weighted:
            w = torch.tensor([wt for _, wt in window], dtype=torch.float32)[:, None]
            zk = torch.where(w != 1.0, (zk - z[-1]) * w + z[-1], zk)
        sections.append(zk)
    return torch.cat(sections, dim=0)[None], pooled


# --- combination rules ---------------------------------------------------------------------

def _combine_flux(clip: TextSetClip, tokens: dict) -> tuple[Tensor, Tensor]:
    """cond = T5 hidden states; pooled = CLIP-L pooled (unprojected) of the first window."""
    cond = clip.encode_t5(tokens[T5_KEY])
    windows = tokens["l"][:1]  # only the first window's pooled output is used
    return cond, clip.encode_clip("l", [[(t, 1.0) for t, _ in w] for w in windows])[1]


def _pad_features(x: Tensor, width: int, front: int = 0) -> Tensor:
    return F.pad(x, (front, width - front - x.shape[-1]))


def _combine_sd3(clip: TextSetClip, tokens: dict) -> tuple[Tensor, Tensor]:
    """ComfyUI's SD3 rule (module docstring); widths padded to max(4096, parts)."""
    lg, pooled, parts = None, None, []
    if tokens.get("l") or tokens.get("g"):
        pools = []
        for name in ("l", "g"):
            if clip.has(name):
                hidden, pool = clip.encode_clip(name, tokens.get(name, []))
                parts.append((name, hidden))
                pools.append(pool)
            else:
                pools.append(torch.zeros(1, POOLED_WIDTHS[name]))
        pooled = torch.cat(pools, dim=-1)
        if parts:
            n = min(h.shape[1] for _, h in parts)
            front = POOLED_WIDTHS["l"] if [p for p, _ in parts] == ["g"] else 0
            lg = torch.cat([h[:, :n] for _, h in parts], dim=-1)
            lg = F.pad(lg, (front, 0))
    t5 = clip.encode_t5(tokens.get(T5_KEY, [])) if clip.has(T5_KEY) else None
    present = [x for x in (lg, t5) if x is not None]
    width = max([SD3_CONTEXT_WIDTH, *(x.shape[-1] for x in present)])
    cond = (torch.cat([_pad_features(x, width) for x in present], dim=1) if present
            else torch.zeros(1, 77, SD3_CONTEXT_WIDTH))
    if pooled is None:
        pooled = torch.zeros(1, sum(POOLED_WIDTHS.values()))
    return cond, pooled


_CLIP_L = EncoderSpec("l", END_TOKEN, None, True, "quick_gelu")
TEXT_SETS: dict[str, TextSet] = {s.clip_type: s for s in (
    TextSet(clip_type="flux", clip_specs=(_CLIP_L,), project_pooled=frozenset(),
            t5_min_length=256, required=frozenset({"l", T5_KEY}),
            expects="one CLIP-L and one T5-XXL file (clip_l + t5xxl, in either order)",
            combine=_combine_flux),
    TextSet(clip_type="sd3",
            clip_specs=(EncoderSpec("l", END_TOKEN, -2, False, "quick_gelu"),
                        EncoderSpec("g", 0, -2, False, "gelu")),
            project_pooled=frozenset({"g"}), t5_min_length=77, required=frozenset(),
            expects="at most one each of CLIP-L, CLIP-G and T5-XXL (in any order)",
            combine=_combine_sd3),
)}


def text_set(clip_type: str) -> TextSet:
    """The TextSet of a CLIP type (ValueError naming the known ones)."""
    if clip_type not in TEXT_SETS:
        raise ValueError(f"CLIP type {clip_type!r} has no T5 text set; "
                         f"expected one of {sorted(TEXT_SETS)}")
    return TEXT_SETS[clip_type]


# --- recognising encoders ------------------------------------------------------------------

_LAYER = "text_model.encoder.layers.{}.mlp.fc1.weight"


def clip_kind(sd: Mapping[str, Tensor]) -> str:
    """"g", "h" or "l" for HF-layout CLIP text-tower keys.

    Real files by ComfyUI's rule (`layers.30` ⇒ bigG, `layers.22` ⇒ ViT-H, else CLIP-L);
    smaller files are bigG when they have the width and depth of the bigG test shapes of
    models/clip.py CONFIGS (tiny ViT-H and CLIP-L share their shapes, so those stay "l").
    """
    if _LAYER.format(30) in sd:
        return "g"
    if _LAYER.format(22) in sd:
        return "h"
    width = sd["text_model.embeddings.token_embedding.weight"].shape[1]
    small_g = {(c.width, c.layers) for (kind, size), c in CONFIGS.items()
               if kind == "g" and size != "full"}
    return "g" if (width, clip_layer_count(sd)) in small_g else "l"


def split_encoder(sd: Mapping[str, Tensor]) -> tuple[str, dict[str, Tensor]]:
    """(kind, encoder keys without prefix) of one text-encoder file's tensors:
    T5 keys in T5EncoderModel layout, CLIP keys in HF CLIPTextModel layout."""
    if is_t5(sd):
        return T5_KEY, t5_root(sd)
    part = _root_of(sd)
    return clip_kind(part), part


def _read_file(path: str | Path, dtype: torch.dtype = torch.float32
               ) -> tuple[str, dict[str, Tensor]]:
    from .tensor_files import open_tensor_file

    # scaled-fp8 files (t5xxl_fp8_e4m3fn_scaled) come dequantised in the load dtype
    with open_tensor_file(path, dequantize_dtype=dtype) as tensors:
        return split_encoder({k: tensors[k] for k in tensors})


# --- building and loading ------------------------------------------------------------------

def _family_name(clip_type: str) -> str:
    """The first registered family whose CLIP type this is (else the type itself)."""
    return next((f.name for f in FAMILIES if f.clip_type == clip_type), clip_type)


def build_text_set(encoders: Mapping[str, Mapping[str, Tensor]], clip_type: str,
                   dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                   family: str | None = None) -> TextSetClip:
    """A TextSetClip from {"l"/"g": HF CLIP keys, "t5xxl": T5 keys} (meta-built, assigned)."""
    ts = text_set(clip_type)
    device = torch.device(device)
    specs = tuple(s for s in ts.clip_specs if s.name in encoders)
    configs = {s.name: infer_config(encoders[s.name], s.act) for s in specs}
    t5_sd = encoders.get(T5_KEY)
    with torch.device("meta"):
        stack = TextSetStack(configs, infer_t5_config(t5_sd) if t5_sd is not None else None)
    sources = {f"clip_{s.name}.transformer.": encoders[s.name] for s in specs}
    if t5_sd is not None:
        sources[f"{T5_KEY}.transformer."] = t5_sd
    assign_weights(stack, sources, dtype, device)
    return TextSetClip(stack, specs, family or _family_name(clip_type), dtype, device,
                       text_set=ts)


def assign_files(kinds: Sequence[str], clip_type: str, names: Sequence[str]) -> None:
    """Check that files of these kinds make the set; TextSetError naming the input if not."""
    ts = text_set(clip_type)
    seen: dict[str, str] = {}
    for kind, name in zip(kinds, names, strict=True):
        if kind not in ts.allowed:
            raise TextSetError(f"{name}: found a {ENCODER_NAMES[kind]} text encoder; CLIP type "
                               f"{clip_type!r} expects {ts.expects}", input_name=name)
        if kind in seen:
            raise TextSetError(f"{name}: a second {ENCODER_NAMES[kind]} text encoder ({seen[kind]}"
                               f" is one too); CLIP type {clip_type!r} expects {ts.expects}",
                               input_name=name)
        seen[kind] = name
    missing = [ENCODER_NAMES[k] for k in sorted(ts.required - set(seen))]
    if missing or not seen:
        raise TextSetError(f"{', '.join(names) or 'no files'}: no {' or '.join(missing) or 'text'}"
                           f" encoder; CLIP type {clip_type!r} expects {ts.expects}",
                           input_name=names[-1] if names else None)


def load_text_set_files(paths: Sequence[str | Path], clip_type: str,
                        device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                        names: Sequence[str] | None = None) -> TextSetClip:
    """DualCLIPLoader / TripleCLIPLoader / CLIPLoader for a text-set type: each file routed
    by its keys (T5 by `encoder.block.*`, CLIP by `layers.30` ⇒ G, `layers.22` ⇒ H, else L)."""
    names = list(names) if names is not None else [Path(p).name for p in paths]
    files = [_read_file(p, dtype) for p in paths]
    assign_files([k for k, _ in files], clip_type, names)
    return build_text_set(dict(files), clip_type, dtype=dtype, device=device)


def load_text_set(state_dict: Mapping[str, Tensor], clip_type: str,
                  dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu",
                  family: str | None = None) -> TextSetClip | None:
    """The text set of an all-in-one checkpoint (keys under `text_encoders.clip_l.transformer.`,
    `…clip_g…`, `…t5xxl…`); None if it holds none of them."""
    ts = text_set(clip_type)
    encoders: dict[str, dict[str, Tensor]] = {}
    for kind in ts.allowed:
        part = _take(state_dict, CHECKPOINT_PREFIXES[kind])
        if part:
            encoders[kind] = t5_root(part) if kind == T5_KEY else _to_hf(part)
    if not encoders:
        return None
    missing = [ENCODER_NAMES[k] for k in sorted(ts.required - set(encoders))]
    if missing:
        found = ", ".join(ENCODER_NAMES[k] for k in encoders)
        raise TextSetError(f"checkpoint text encoders: found {found} but no {', '.join(missing)};"
                           f" CLIP type {clip_type!r} expects {ts.expects}")
    return build_text_set(encoders, clip_type, dtype=dtype, device=device, family=family)


# --- Qwen text encoders (lumina2, qwen_image): one file each ---------------------------------

def _found_in(shapes: Mapping[str, tuple[int, ...]]) -> str:
    """What a text-encoder file or checkpoint part holds, for error messages."""
    if (qwen := describe_qwen(shapes)) is not None:
        return qwen
    if is_t5(shapes):
        return "a T5-XXL text encoder"
    if any(k.endswith("token_embedding.weight") for k in shapes):
        return "a CLIP text encoder"
    return f"no known text-encoder keys ({len(shapes)} keys, e.g. {sorted(shapes)[:3]})"


def _qwen_expects(clip_type: str) -> str:
    enc = qwen_text_encoder(clip_type)
    return f"CLIP type {clip_type!r} expects one {enc.title} file (e.g. {enc.file_name})"


def load_qwen_text_files(paths: Sequence[str | Path], clip_type: str,
                         device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                         names: Sequence[str] | None = None) -> QwenTextClip:
    """CLIPLoader for `lumina2` / `qwen_image`: exactly one file holding that Qwen LM (with
    Qwen2.5-VL's vision tower when the file has it; an lm_head is not read); TextSetError
    naming the input otherwise."""
    from .tensor_files import open_tensor_file

    enc = qwen_text_encoder(clip_type)
    names = list(names) if names is not None else [Path(p).name for p in paths]
    if len(paths) != 1:
        raise TextSetError(f"{', '.join(names) or 'no files'}: {len(paths)} files; "
                           f"{_qwen_expects(clip_type)}", input_name=names[-1] if names else None)
    dtype = dtype or qwen_text_dtype(device)
    with open_tensor_file(paths[0], dequantize_dtype=dtype) as tensors:
        if not is_encoder_file(tensors.shapes, enc):
            raise TextSetError(f"{names[0]}: found {_found_in(tensors.shapes)}; "
                               f"{_qwen_expects(clip_type)}", input_name=names[0])
        sd = {k: tensors[k] for k in encoder_keys(tensors.shapes, enc)}
    return build_qwen_text(sd, enc, dtype=dtype, device=device, family=_family_name(clip_type),
                           source=names[0])


def _refuse_qwen_files(paths: Sequence[str | Path], clip_type: str,
                       names: Sequence[str] | None) -> None:
    """A Qwen LM file given with another CLIP type: TextSetError naming the input and the type
    that loads it (its keys would otherwise read as 'not a CLIP text encoder')."""
    from .tensor_files import open_tensor_file

    names = list(names) if names is not None else [Path(p).name for p in paths]
    for path, name in zip(paths, names, strict=True):
        with open_tensor_file(path) as tensors:
            kind = qwen_kind(tensors.shapes)
            if kind is None:
                continue
            found = _found_in(tensors.shapes)
        right = [e.clip_type for e in QWEN_TEXT_ENCODERS.values() if e.kind == kind]
        raise TextSetError(f"{name}: found {found}; it loads alone with CLIPLoader type "
                           f"{right[0]!r}, not as CLIP type {clip_type!r}", input_name=name)


def load_qwen_checkpoint_text(state_dict: Mapping[str, Tensor], clip_type: str,
                              dtype: torch.dtype = torch.float32,
                              device: str | torch.device = "cpu",
                              family: str | None = None) -> QwenTextClip | None:
    """The Qwen encoder of an all-in-one checkpoint (`text_encoders.qwen3_4b.transformer.…` /
    `text_encoders.qwen25_7b.transformer.…`); None if it has no keys there."""
    enc = qwen_text_encoder(clip_type)
    part = _take(state_dict, enc.checkpoint_prefix)
    if not part:
        return None
    shapes = {k: tuple(v.shape) for k, v in part.items()}
    if not is_encoder_file(shapes, enc):
        raise TextSetError(f"checkpoint text encoder under {enc.checkpoint_prefix!r}: found "
                           f"{_found_in(shapes)}; CLIP type {clip_type!r} expects {enc.title}")
    return build_qwen_text(part, enc, dtype=dtype, device=device, family=family,
                           source=f"checkpoint text encoder {enc.checkpoint_prefix!r}")


# --- entry points for every CLIP type (the loaders and the checkpoint loader call these) ----

def clip_file_types() -> tuple[str, ...]:
    """Every CLIPLoader / DualCLIPLoader `type` comfyless loads: the families', the T5 sets' and
    the Qwen encoders'."""
    return tuple(dict.fromkeys([*clip_mod.clip_file_types(), *TEXT_SETS, *QWEN_TEXT_ENCODERS]))


def load_text_encoder_files(paths: Sequence[str | Path], clip_type: str,
                            device: str | torch.device = "cpu", dtype: torch.dtype | None = None,
                            names: Sequence[str] | None = None) -> ClipModel:
    """CLIPLoader / DualCLIPLoader / TripleCLIPLoader for any type: a Qwen encoder (lumina2,
    qwen_image), a T5 set (flux, sd3) or clip.load_clip_files (SD types). `names` label the
    files in errors (the node's input names); a set error is a TextSetError carrying the
    offending `input_name`."""
    if clip_type in QWEN_TEXT_ENCODERS:
        return load_qwen_text_files(paths, clip_type, device=device, dtype=dtype, names=names)
    _refuse_qwen_files(paths, clip_type, names)
    if dtype is None:
        dtype = default_text_dtype(device)
    if clip_type in TEXT_SETS:
        return load_text_set_files(paths, clip_type, device=device, dtype=dtype, names=names)
    return clip_mod.load_clip_files(paths, clip_type, device=device, dtype=dtype)


def load_checkpoint_text_encoders(state_dict: Mapping[str, Tensor], family: str,
                                  dtype: torch.dtype = torch.float32,
                                  device: str | torch.device = "cpu") -> ClipModel | None:
    """The text encoders of a single-file checkpoint of `family`: its Qwen encoder or T5 set
    when the family's `clip_type` is one (keys under `text_encoders.`; None if there are none),
    else clip.load_clip."""
    record = find_family(family)
    if record is not None and record.clip_type in QWEN_TEXT_ENCODERS:
        return load_qwen_checkpoint_text(state_dict, record.clip_type, dtype, device,
                                         family=record.name)
    if record is not None and record.clip_type in TEXT_SETS:
        return load_text_set(state_dict, record.clip_type, dtype, device, family=record.name)
    return clip_mod.load_clip(state_dict, family, dtype=dtype, device=device)


# --- random standalone files for tests -----------------------------------------------------

STANDALONE_NAMES = {"l": "clip_l.safetensors", "g": "clip_g.safetensors",
                    T5_KEY: "t5xxl_fp16.safetensors"}


def text_encoder_files(clip_type: str, size: str = "tiny",
                       generator: torch.Generator | None = None) -> dict[str, dict[str, Tensor]]:
    """{file name: state dict} of random standalone encoders (float32) in the real layouts:
    clip_l / clip_g in HF CLIPTextModel keys (`text_model.…`, G with `text_projection`),
    T5 in T5EncoderModel keys (`encoder.…`, `shared.weight`), the Qwen encoders (lumina2,
    qwen_image) in their `model.…` layout under their reference names. Sizes: "tiny" ("full"
    is billions of parameters: use t5.t5_state_dict / qwen_text.qwen_state_dict("full") for
    shapes, full_text_encoder_files to write them)."""
    if size not in T5_CONFIGS or size == "full":
        raise ValueError(f"text-encoder file size {size!r}: expected 'tiny'")
    if clip_type in QWEN_TEXT_ENCODERS:
        enc = QWEN_TEXT_ENCODERS[clip_type]
        return {enc.file_name: qwen_state_dict(enc, size, generator)}
    ts = text_set(clip_type)
    out = {}
    for spec in ts.clip_specs:
        sd = _random_hf(CONFIGS[(spec.name, size)], generator)
        if spec.name == "l":
            sd["text_model.embeddings.position_ids"] = torch.arange(77)[None]
        out[STANDALONE_NAMES[spec.name]] = sd
    out[STANDALONE_NAMES[T5_KEY]] = t5_state_dict(size, generator)
    return out


def full_text_encoder_files(clip_type: str, seed: int = 0) -> dict[str, object]:
    """The real-size standalone files: CLIP-L / CLIP-G as state dicts, T5-XXL (4.76 B
    parameters) and the Qwen LMs (4.0 B / 7.1 B) as `checkpoint_writer.StreamedFile`s that
    write them tensor by tensor."""
    from .random_weights import streamed_random, write_streamed

    if clip_type in QWEN_TEXT_ENCODERS:
        enc = QWEN_TEXT_ENCODERS[clip_type]
        qwen_shapes = {k: tuple(v.shape) for k, v in qwen_state_dict(enc, "full").items()}
        return {enc.file_name: lambda path, dtype: write_streamed(
            path, qwen_shapes, streamed_random(qwen_shapes, seed), dtype)}
    ts = text_set(clip_type)
    generator = torch.Generator().manual_seed(seed)
    out: dict[str, object] = {}
    for spec in ts.clip_specs:
        sd = _random_hf(CONFIGS[(spec.name, "full")], generator)
        if spec.name == "l":
            sd["text_model.embeddings.position_ids"] = torch.arange(77)[None]
        out[STANDALONE_NAMES[spec.name]] = sd
    shapes = {k: tuple(v.shape) for k, v in t5_state_dict("full").items()}
    out[STANDALONE_NAMES[T5_KEY]] = lambda path, dtype: write_streamed(
        path, shapes, streamed_random(shapes, seed), dtype)
    return out


def checkpoint_text_state_dict(clip_type: str, size: str = "tiny",
                               generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """The same random encoders under the all-in-one checkpoint prefixes (`text_encoders.…`)."""
    files = text_encoder_files(clip_type, size, generator)
    if clip_type in QWEN_TEXT_ENCODERS:
        enc = QWEN_TEXT_ENCODERS[clip_type]
        return {enc.checkpoint_prefix + k: v for k, v in files[enc.file_name].items()}
    by_kind = {kind: files[name] for kind, name in STANDALONE_NAMES.items() if name in files}
    return {CHECKPOINT_PREFIXES[kind] + k: v for kind, sd in by_kind.items()
            for k, v in sd.items()}

