"""Key maps: every name a LoRA file may use for a model weight -> that weight's parameter name.

A key map is `{file prefix: target}` where target is a parameter name of the torch module the
patch will land on, or `(name, (dim, start, length))` for a slice of a fused weight (OpenCLIP's
`in_proj_weight` holds q, k and v). Prefixes follow lora-format.md §4.1-4.2:

UNet (`unet_key_map`, parameter names = checkpoint keys without `model.diffusion_model.`):
  `diffusion_model.<ldm>` (ComfyUI/SaveLoRA), `lora_unet_<ldm _>` (kohya, LDM names),
  `lora_unet_<diffusers _>` (kohya, diffusers names), `lycoris_<diffusers _>`, and dotted
  diffusers/PEFT names with and without `unet.` (attention projections both plain and in the
  `processor` spelling, `to_out.0` also as `to_out`). The diffusers <-> LDM table is computed
  from the UNet's own layout (levels and res blocks per level), so SD1.x/SD2.x/SDXL and tiny
  test UNets all map.
Text encoders (`clip_key_map`): for each encoder found in the module (HF CLIP layout
  `...text_model.encoder.layers.N...` or OpenCLIP `...transformer.resblocks.N...`):
  `text_encoders.<key>` (ComfyUI), `lora_te[1|2]_text_model_encoder_layers_N_<m>` (kohya),
  `text_encoder[_2].text_model.encoder.layers.N.<m>` (diffusers/PEFT); T5-XXL under
  `t5xxl.transformer.`: `lora_te<n>_<path _>` (OneTrainer, n after the CLIP encoders).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

Target = str | tuple[str, tuple[int, int, int]]

_RESNET = {
    "in_layers.0": "norm1",
    "in_layers.2": "conv1",
    "emb_layers.1": "time_emb_proj",
    "out_layers.0": "norm2",
    "out_layers.3": "conv2",
    "skip_connection": "conv_shortcut",
}
_BASIC = {
    "input_blocks.0.0": ("conv_in",),
    "time_embed.0": ("time_embedding.linear_1",),
    "time_embed.2": ("time_embedding.linear_2",),
    "label_emb.0.0": ("add_embedding.linear_1", "class_embedding.linear_1"),
    "label_emb.0.2": ("add_embedding.linear_2", "class_embedding.linear_2"),
    "out.0": ("conv_norm_out",),
    "out.2": ("conv_out",),
}


def _levels_from_keys(keys: set[str]) -> list[int]:
    """Res blocks per level, read off the input blocks (a Downsample `op` ends a level)."""
    counts, n, current = [], 1, 0
    while any(k.startswith(f"input_blocks.{n}.") for k in keys):
        if f"input_blocks.{n}.0.op.weight" in keys:
            counts.append(current)
            current = 0
        else:
            current += 1
        n += 1
    counts.append(current)
    return counts


def _block_table(res: list[int], keys: set[str]) -> list[tuple[str, str, bool]]:
    """(ldm block prefix, diffusers block prefix, is_resnet) for every UNet block."""
    table: list[tuple[str, str, bool]] = []
    n = 1
    for x, count in enumerate(res):
        for i in range(count):
            table.append((f"input_blocks.{n}.0", f"down_blocks.{x}.resnets.{i}", True))
            table.append((f"input_blocks.{n}.1", f"down_blocks.{x}.attentions.{i}", False))
            n += 1
        if x < len(res) - 1:
            table.append((f"input_blocks.{n}.0.op", f"down_blocks.{x}.downsamplers.0.conv", False))
            n += 1
    table.append(("middle_block.0", "mid_block.resnets.0", True))
    table.append(("middle_block.1", "mid_block.attentions.0", False))
    table.append(("middle_block.2", "mid_block.resnets.1", True))
    n = 0
    for x, level in enumerate(reversed(range(len(res)))):
        for i in range(res[level] + 1):
            for j in (1, 2):  # the upsampler follows the attention when there is one
                if f"output_blocks.{n}.{j}.conv.weight" in keys:
                    table.append((f"output_blocks.{n}.{j}.conv", f"up_blocks.{x}.upsamplers.0.conv",
                                  False))
            table.append((f"output_blocks.{n}.0", f"up_blocks.{x}.resnets.{i}", True))
            table.append((f"output_blocks.{n}.1", f"up_blocks.{x}.attentions.{i}", False))
            n += 1
    return table


def diffusers_names(module_paths: Iterable[str], config: Any = None) -> dict[str, list[str]]:
    """LDM module path -> its diffusers module path(s), for the paths that have one."""
    paths = sorted(set(module_paths))
    keys = {p + ".weight" for p in paths}
    res = list(config.num_res_blocks) if config is not None else _levels_from_keys(keys)
    table = _block_table(res, keys)
    out: dict[str, list[str]] = {}
    for path in paths:
        if path in _BASIC:
            out[path] = list(_BASIC[path])
            continue
        for ldm, dif, is_resnet in table:
            if path == ldm:
                out[path] = [dif]
                break
            if path.startswith(ldm + "."):
                rest = path[len(ldm) + 1:]
                if is_resnet:
                    if rest in _RESNET:
                        out[path] = [f"{dif}.{_RESNET[rest]}"]
                else:
                    out[path] = [f"{dif}.{rest}"]
                break
    return out


_ATTN = re.compile(r"(.*\.attn[12])\.(to_q|to_k|to_v|to_out\.0)$")


def _dotted_variants(dif: str) -> list[str]:
    """Dotted diffusers spellings of one module (plain, `processor`, `to_out` without `.0`)."""
    m = _ATTN.match(dif)
    if not m:
        return [dif]
    base, proj = m.groups()
    short = proj.replace("to_out.0", "to_out")
    return [dif, f"{base}.processor.{short}", f"{base}.{short}"] if short != proj else [
        dif, f"{base}.processor.{proj}"]


def unet_key_map(param_names: Iterable[str], config: Any = None) -> dict[str, Target]:
    """File prefix -> UNet parameter name, for every spelling of lora-format.md §4.1."""
    names = list(param_names)
    weights = [n[: -len(".weight")] for n in names if n.endswith(".weight")]
    key_map: dict[str, Target] = {}
    for n in names:
        if not n.endswith(".weight"):
            key_map[f"diffusion_model.{n}"] = n  # e.g. biases under their full name
    for path in weights:
        target = path + ".weight"
        key_map[f"diffusion_model.{path}"] = target
        key_map["lora_unet_" + path.replace(".", "_")] = target
    for path, difs in diffusers_names(weights, config).items():
        target = path + ".weight"
        for dif in difs:
            key_map["lora_unet_" + dif.replace(".", "_")] = target
            key_map["lycoris_" + dif.replace(".", "_")] = target
            for dotted in _dotted_variants(dif):
                key_map[dotted] = target
                key_map["unet." + dotted] = target
    return key_map


# -- text encoders ------------------------------------------------------------------------

_HF_LAYER = re.compile(r"^(.*?)text_model\.encoder\.layers\.(\d+)\.(.+)\.weight$")
_OC_LAYER = re.compile(r"^(.*?)transformer\.resblocks\.(\d+)\.(.+)$")
# kohya's LORA_CLIP_MAP modules, in HF names
CLIP_MODULES = ("mlp.fc1", "mlp.fc2", "self_attn.k_proj", "self_attn.q_proj",
                "self_attn.v_proj", "self_attn.out_proj")
_OC_NAMES = {"mlp.fc1": "mlp.c_fc.weight", "mlp.fc2": "mlp.c_proj.weight",
             "self_attn.out_proj": "attn.out_proj.weight"}
_OC_QKV = {"self_attn.q_proj": 0, "self_attn.k_proj": 1, "self_attn.v_proj": 2}


def _encoder_roots(names: list[str]) -> list[tuple[str, str]]:
    """(root prefix, "hf" | "openclip") of every text encoder: CLIP-L (te1) before bigG (te2).

    Order: module order, except that a root naming clip_l / clip_g is placed by that name.
    """
    roots: list[tuple[str, str]] = []
    for n in names:
        for rx, kind in ((_HF_LAYER, "hf"), (_OC_LAYER, "openclip")):
            m = rx.match(n)
            if m and (m.group(1), kind) not in roots:
                roots.append((m.group(1), kind))
    rank = {"clip_l": 0, "clip_g": 1}
    return sorted(roots, key=lambda r: next((v for k, v in rank.items() if k in r[0]), 0))


def _encoder_targets(root: str, kind: str, names: set[str],
                     shapes: dict[str, tuple[int, ...]]) -> dict[str, Target]:
    """HF module suffix `text_model.encoder.layers.N.<m>` -> target in this encoder."""
    out: dict[str, Target] = {}
    n = 0
    while True:
        hf = f"text_model.encoder.layers.{n}"
        if kind == "hf":
            found = False
            for m in CLIP_MODULES:
                key = f"{root}{hf}.{m}.weight"
                if key in names:
                    out[f"{hf}.{m}"] = key
                    found = True
        else:
            base = f"{root}transformer.resblocks.{n}."
            found = base + "attn.in_proj_weight" in names
            for m, suffix in _OC_NAMES.items():
                if base + suffix in names:
                    out[f"{hf}.{m}"] = base + suffix
            if found:
                width = shapes[base + "attn.in_proj_weight"][0] // 3
                for m, i in _OC_QKV.items():
                    out[f"{hf}.{m}"] = (base + "attn.in_proj_weight", (0, i * width, width))
        if not found:
            return out
        n += 1


def clip_key_map(
    param_shapes: dict[str, tuple[int, ...]], family: str | None = None
) -> dict[str, Target]:
    """File prefix -> text-encoder parameter name (or slice), lora-format.md §4.2.

    `param_shapes`: parameter name -> shape of the whole text-encoder module (all encoders).
    With two encoders (SDXL) the first is `te1`/`text_encoder` (CLIP-L), the second
    `te2`/`text_encoder_2` (bigG); a single encoder also answers to `lora_te_`.
    """
    names = set(param_shapes)
    key_map: dict[str, Target] = {}
    for n in sorted(names):
        if n.endswith(".weight"):
            key_map["text_encoders." + n[: -len(".weight")]] = n
        else:
            key_map["text_encoders." + n] = n
    roots = _encoder_roots(list(param_shapes))
    for idx, (root, kind) in enumerate(roots):
        targets = _encoder_targets(root, kind, names, param_shapes)
        if len(roots) == 1:
            kohya, dotted = ["lora_te_", "lora_te1_", "lora_prior_te_"], ["text_encoder."]
        else:
            kohya = [f"lora_te{idx + 1}_"]
            dotted = ["text_encoder." if idx == 0 else f"text_encoder_{idx + 1}."]
        if f"{root}text_projection.weight" in names:
            targets["text_projection"] = f"{root}text_projection.weight"
        for hf, target in targets.items():
            for k in kohya:
                key_map[k + hf.replace(".", "_")] = target
            for d in dotted:
                key_map[d + hf] = target
    key_map.update(_t5_kohya_names(names, roots))
    key_map.update(_llm_kohya_names(names))
    return key_map


# single-LLM text encoders (Z-Image's Qwen3-4B, Qwen-Image's Qwen2.5-VL): their parameters
# sit under `<root>.transformer.model.`; kohya-style files name `lora_te_<path after it, _>`
_LLM_ROOT = re.compile(r"^[a-z0-9_]+\.transformer\.model\.")


def _llm_kohya_names(names: set[str]) -> dict[str, Target]:
    """`lora_te_<path with _>` for a single LLM encoder (model-families.md §3.6)."""
    out: dict[str, Target] = {}
    for n in names:
        m = _LLM_ROOT.match(n)
        if m and n.endswith(".weight"):
            out["lora_te_" + n[m.end():-len(".weight")].replace(".", "_")] = n
    return out


_T5_ROOT = "t5xxl.transformer."


def _t5_kohya_names(names: set[str], roots: list[tuple[str, str]]) -> dict[str, Target]:
    """OneTrainer's T5-XXL names `lora_te<n>_<T5 path with _>` (model-families.md §1.6, §2.5),
    numbered as ComfyUI does: after CLIP-G and CLIP-L; with CLIP-L but no CLIP-G (Flux) both
    `lora_te2_` and `lora_te3_`."""
    weights = sorted(n for n in names if n.startswith(_T5_ROOT) and n.endswith(".weight"))
    if not weights:
        return {}
    has_l = any("clip_l" in root for root, _ in roots)
    has_g = any("clip_g" in root for root, _ in roots)
    indices = {1 + has_g + has_l} | ({3} if has_l and not has_g else set())
    return {f"lora_te{i}_{n[len(_T5_ROOT):-len('.weight')].replace('.', '_')}": n
            for n in weights for i in sorted(indices)}
