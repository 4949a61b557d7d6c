"""ComfyUI's quantised weight files read as plain weights: "scaled fp8" and per-tensor fp8
"mixed precision" layers are dequantised on read, their extra keys hidden.

Facts (ComfyUI, read for names and math only):
* scaled fp8 (`*_fp8_scaled.safetensors`, `t5xxl_fp8_e4m3fn_scaled.safetensors`): a marker
  `<model prefix>scaled_fp8` (an empty tensor whose dtype is the fp8 type; float32 means
  e4m3fn; 2 elements ask for full-precision matmuls), e.g. `model.diffusion_model.scaled_fp8`,
  `text_encoders.t5xxl.transformer.scaled_fp8` or a bare `scaled_fp8` in a standalone text
  encoder. Each scaled Linear has `<layer>.scale_weight` (fp32, one number) and may have
  `<layer>.scale_input`; the weight is `weight.to(compute dtype) * scale_weight`, the bias is
  not scaled (ops.py `scaled_fp8_ops`, Linear only; norms, embeddings, convolutions are
  stored plain). `scale_input` only feeds the fp8 x fp8 matmul fast path (`fp8_linear`).
* mixed precision (newer files; utils.py `convert_old_quants` turns scaled fp8 into it):
  `<layer>.comfy_quant` (uint8 bytes of JSON `{"format": ...}`) or the file metadata
  `_quantization_metadata` (`{"layers": {layer: {"format": ...}}}`), with
  `<layer>.weight_scale` (fp32, per tensor) and optional `<layer>.input_scale`. Formats
  `float8_e4m3fn` / `float8_e5m2` dequantise as `weight.to(dtype) * weight_scale`
  (quant_ops.py `TensorCoreFP8Layout.dequantize`); `nvfp4` (packed uint8 + block scales
  + `weight_scale_2`) and integer formats are refused by name.

Dequantising on load costs the compute dtype's memory (bf16: 2 bytes a weight, twice the fp8
file) but keeps every consumer exact: LoRA merging, bypass hooks and training see the real
weight. Torch-free at import (family detection uses the key predicates).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from torch import Tensor

MARKER = "scaled_fp8"
WEIGHT = ".weight"
WEIGHT_SCALES = (".scale_weight", ".weight_scale")  # scaled fp8, mixed precision
INPUT_SCALES = (".scale_input", ".input_scale")  # only for fp8 matmuls: ignored
QUANT_CONFIG = ".comfy_quant"
NVFP4_TENSOR_SCALE = ".weight_scale_2"
METADATA_KEY = "_quantization_metadata"
FP8_FORMATS = ("float8_e4m3fn", "float8_e5m2")


class QuantFormatError(ValueError):
    """A quantised file comfyless cannot read exactly (the message names the key)."""


def is_quant_key(key: str) -> bool:
    """True for the keys that describe quantisation rather than hold a network weight."""
    return (key == MARKER or key.endswith("." + MARKER)
            or key.endswith((*WEIGHT_SCALES, *INPUT_SCALES, QUANT_CONFIG, NVFP4_TENSOR_SCALE)))


def plain_keys(shapes: Mapping[str, Any]) -> dict[str, Any]:
    """`shapes` without the quantisation keys (what a network's detection should look at)."""
    return {k: v for k, v in shapes.items() if not is_quant_key(k)}


@dataclass(frozen=True)
class ScalePlan:
    """{weight key: its scale key} and every key the dequantised view hides."""

    scales: dict[str, str] = field(default_factory=dict)
    hidden: frozenset[str] = frozenset()


def _layer(key: str, suffixes: tuple[str, ...]) -> str:
    return key[: -len(next(s for s in suffixes if key.endswith(s)))]


def _check_format(fmt: object, where: str) -> None:
    if fmt not in FP8_FORMATS:
        raise QuantFormatError(
            f"{where} is quantised as {fmt!r}; comfyless reads per-tensor fp8 layers "
            f"({', '.join(FP8_FORMATS)}) and ComfyUI's scaled fp8 files, not this format")


def _check_metadata_formats(metadata: Mapping[str, str]) -> None:
    if METADATA_KEY not in metadata:
        return
    try:
        layers = json.loads(metadata[METADATA_KEY]).get("layers", {})
    except (ValueError, AttributeError) as exc:
        raise QuantFormatError(f"metadata {METADATA_KEY!r} is not the expected JSON object "
                               f"{{'layers': {{...}}}}: {exc}") from exc
    for layer, conf in layers.items():
        _check_format(conf.get("format") if isinstance(conf, dict) else conf,
                      f"layer {layer!r} (metadata {METADATA_KEY})")


def _config_format(tensor: Tensor, key: str) -> object:
    """The "format" of a `<layer>.comfy_quant` tensor (uint8 bytes of a JSON object)."""
    try:
        conf = json.loads(bytes(tensor.reshape(-1).tolist()).decode("utf-8"))
    except (ValueError, TypeError) as exc:
        raise QuantFormatError(f"{key!r} is not a JSON quantisation config: {exc}") from exc
    return conf.get("format") if isinstance(conf, dict) else None


def _scale_entry(key: str, shapes: Mapping[str, tuple[int, ...]]) -> tuple[str, str]:
    """(weight key, scale key) of a per-tensor scale, checked against the header."""
    weight = _layer(key, WEIGHT_SCALES) + WEIGHT
    if weight not in shapes:
        raise QuantFormatError(f"{key!r} scales a weight {weight!r} that is not in the file")
    shape = tuple(shapes[key])
    if len(shape) > 1 or (shape and shape[0] != 1):
        raise QuantFormatError(
            f"{key!r} has shape {list(shape)}; a per-tensor fp8 scale is one number "
            f"(shape [] or [1]); block or channel scales are not supported")
    return weight, key


def plan_dequantization(shapes: Mapping[str, tuple[int, ...]], metadata: Mapping[str, str],
                        read: Callable[[str], Tensor]) -> ScalePlan | None:
    """What to dequantise and hide, from the header (and the small `comfy_quant` tensors);
    None for a plain file. Raises QuantFormatError for a layout that cannot be read exactly."""
    quant = [k for k in shapes if is_quant_key(k)]
    if not quant and METADATA_KEY not in metadata:
        return None
    _check_metadata_formats(metadata)
    for key in quant:  # formats first: an nvfp4 file is named as such, not by its scales
        if key.endswith(NVFP4_TENSOR_SCALE):
            _check_format("nvfp4", f"layer {key[: -len(NVFP4_TENSOR_SCALE)]!r}")
        elif key.endswith(QUANT_CONFIG):
            _check_format(_config_format(read(key), key),
                          f"layer {key[: -len(QUANT_CONFIG)]!r}")
    scales: dict[str, str] = {}
    for key in quant:
        if key.endswith(WEIGHT_SCALES):
            weight, scale = _scale_entry(key, shapes)
            if weight in scales:
                raise QuantFormatError(f"{weight!r} has two scales: {scales[weight]!r} and "
                                       f"{scale!r}")
            scales[weight] = scale
    return ScalePlan(scales, frozenset(quant))


def dequantize(weight: Tensor, scale: Tensor, key: str, dtype: torch.dtype) -> Tensor:
    """weight · scale computed in float32, returned in `dtype` (one rounding)."""
    import torch

    if not weight.is_floating_point():
        raise QuantFormatError(f"{key!r} is {weight.dtype} with a scale; only float (fp8) "
                               "weights are read (packed nvfp4 / integer formats are not)")
    return (weight.to(torch.float32) * scale.to(torch.float32).reshape(())).to(dtype)


def dequantized_reader(plan: ScalePlan, read: Callable[[str], Tensor], dtype: torch.dtype
                       ) -> Callable[[str], Tensor]:
    """`read` with the planned weights dequantised to `dtype` (tensor_files builds its view of
    a file on it; a weight's dtype is only known once read, so that check raises here)."""

    def dequantized(key: str) -> Tensor:
        scale = plan.scales.get(key)
        return read(key) if scale is None else dequantize(read(key), read(scale), key, dtype)

    return dequantized


def dequantized_state_dict(sd: Mapping[str, Tensor], dtype: torch.dtype | None = None,
                           metadata: Mapping[str, str] | None = None) -> dict[str, Tensor]:
    """A state dict with scaled weights dequantised (to `dtype`, default float32) and the
    quantisation keys dropped; `sd` copied unchanged when it holds none."""
    import torch

    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    plan = plan_dequantization(shapes, metadata or {}, sd.__getitem__)
    if plan is None:
        return dict(sd)
    dtype = dtype or torch.float32
    return {k: dequantize(v, sd[plan.scales[k]], k, dtype) if k in plan.scales else v
            for k, v in sd.items() if k not in plan.hidden}
