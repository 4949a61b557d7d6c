"""FLUX.1 detection (model-detection.md §3, model-families.md §1.1): the network config from a
{key: shape} map, dev vs schnell, and clear refusals of the variants not supported yet.

Works on BFL files (RMSNorm scales named `..._norm.scale` or `..._norm.weight`) and on
diffusers-layout transformers (`x_embedder.weight`, `transformer_blocks.N...`), whose shapes
are first mapped onto BFL names (names.py). Header only: no tensor is read.
"""

from __future__ import annotations

from ...quant import plain_keys
from ..base import DetectionError, Shapes
from . import names
from .config import PATCH_SIZE, FluxConfig, axes_for_head_dim

TRIGGER_KEY = "double_blocks.0.img_attn.norm.key_norm.weight"  # or `.scale` (BFL files)
_KEY_NORM = "double_blocks.0.img_attn.norm.key_norm"
_QUERY_NORM = "double_blocks.0.img_attn.norm.query_norm"
LATENT_CHANNELS = 16
# img_in input channels of the variants that take extra image channels (§1.1, §1.3)
_EXTRA_CHANNEL_VARIANTS = {96: "FLUX.1 Fill (inpainting, 96 input channels)",
                           32: "FLUX.1 Depth/Canny (control image, 32 input channels)"}
# Keys of Flux-like models that share the trigger but are other architectures
_OTHER_MODELS = {
    "double_stream_modulation_img.lin.weight": "FLUX.2",
    "distilled_guidance_layer.norms.0.scale": "Chroma",
    "distilled_guidance_layer.norms.0.weight": "Chroma",
    "double_blocks.0.img_mlp.gate_proj.weight": "Ovis-Image",
    "txt_norm.weight": "Ovis-Image",
    "txt_norm.scale": "Ovis-Image",
}


def bfl_shapes(shapes: Shapes, prefix: str) -> dict[str, tuple[int, ...]] | None:
    """The Flux parameters under `prefix` by ComfyUI name (prefix stripped, `_norm.scale` ->
    `_norm.weight`, a diffusers layout fused); None if the keys are not a Flux transformer.
    Scaled-fp8 scales and markers are left out: the loader dequantises them (quant.py)."""
    shapes = plain_keys(shapes)
    if names.is_diffusers_layout(shapes, prefix):
        plan = names.diffusers_plan(shapes, prefix)
        return {k: names.fused_shape(shapes, v) for k, v in plan.items()}
    if not any(f"{prefix}{_KEY_NORM}.{s}" in shapes for s in ("weight", "scale")):
        return None
    if f"{prefix}img_in.weight" not in shapes:
        return None
    return {names.bfl_name(k[len(prefix):]): tuple(int(d) for d in v)
            for k, v in shapes.items() if k.startswith(prefix)}


def detect_flux_config(shapes: Shapes, prefix: str = "model.diffusion_model.") -> FluxConfig | None:
    """The FluxConfig under `prefix`; None without the Flux trigger keys. Raises
    DetectionError for Flux variants that are recognised but not supported yet."""
    found = bfl_shapes(shapes, prefix)
    if found is None:
        return None
    _refuse_unsupported(found, prefix)
    hidden, patch_features = found["img_in.weight"]
    in_channels = patch_features // (PATCH_SIZE * PATCH_SIZE)
    if in_channels != LATENT_CHANNELS:
        what = _EXTRA_CHANNEL_VARIANTS.get(in_channels, f"{in_channels} input channels")
        raise DetectionError(
            f"{what} is not supported yet: img_in.weight is {list(found['img_in.weight'])}, "
            f"supported is [{hidden}, {LATENT_CHANNELS * 4}] (FLUX.1 dev / schnell / Krea / "
            "Kontext)")
    head_dim = found[f"{_QUERY_NORM}.weight"][0]
    axes = axes_for_head_dim(head_dim)
    if axes is None or hidden % head_dim:
        raise DetectionError(f"Flux layout with hidden size {hidden} and head dim {head_dim}: "
                             "no rotary axes split fits that head")
    return FluxConfig(
        hidden_size=hidden,
        num_heads=hidden // head_dim,
        depth=names.count_blocks(found, "double_blocks."),
        depth_single_blocks=names.count_blocks(found, "single_blocks."),
        in_channels=in_channels,
        out_channels=found["final_layer.linear.weight"][0] // (PATCH_SIZE * PATCH_SIZE),
        context_in_dim=found["txt_in.weight"][1],
        vec_in_dim=found["vector_in.in_layer.weight"][1],
        mlp_ratio=found["double_blocks.0.img_mlp.0.weight"][0] / hidden,
        guidance_embed="guidance_in.in_layer.weight" in found,
        qkv_bias="double_blocks.0.img_attn.qkv.bias" in found,
        axes_dim=axes,
    )


def _refuse_unsupported(found: dict[str, tuple[int, ...]], prefix: str) -> None:
    """Flux-like models and storage formats we cannot run: say which, never a shape error."""
    for key, model in _OTHER_MODELS.items():
        if key in found:
            raise DetectionError(f"{model} (key {prefix}{key}) is not supported yet; supported "
                                 "Flux models: FLUX.1 dev / schnell / Krea / Kontext")
    if "vector_in.in_layer.weight" not in found:
        raise DetectionError("Flux layout without vector_in (LongCat-Image or another "
                             "derivative) is not supported yet")
    missing = [k for k in ("txt_in.weight", f"{_QUERY_NORM}.weight",
                           "double_blocks.0.img_mlp.0.weight", "final_layer.linear.weight")
               if k not in found]
    if missing:
        raise DetectionError(f"Flux layout is incomplete: no {', '.join(missing)} under "
                             f"{prefix!r}")


def matches_dev(cfg: FluxConfig) -> bool:
    """dev / Krea / Kontext: the guidance embedding is there."""
    return cfg.guidance_embed


def matches_schnell(cfg: FluxConfig) -> bool:
    """schnell: no guidance embedding."""
    return not cfg.guidance_embed


def describe(cfg: FluxConfig) -> str:
    return (f"FLUX.1 DiT with hidden_size={cfg.hidden_size}, heads={cfg.num_heads}, "
            f"blocks={cfg.depth}+{cfg.depth_single_blocks}, in_channels={cfg.in_channels}, "
            f"context_in_dim={cfg.context_in_dim}, vec_in_dim={cfg.vec_in_dim}, "
            f"guidance_embed={cfg.guidance_embed}")
