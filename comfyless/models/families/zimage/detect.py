"""Z-Image detection (model-families.md §3.1): the NextDiT config from a {key: shape} map (a
safetensors header is enough), the diffusers-layout name mapping, and clear refusals of the
NextDiT relatives this network does not run (Lumina 2, Z-Image Omni, pixel-space Z-Image).

Every width is read off the file: dim from `cap_embedder.1` rows, the head width from
`attention.q_norm`, the SwiGLU width from `feed_forward.w1`, the adaLN width from
`t_embedder.mlp.2`, layer counts by counting. Real files give dim 3840, 30 heads x 128,
FFN 10240, 30 layers; reduced test files keep the key layout with other widths.
"""

from __future__ import annotations

import re

from ...quant import plain_keys
from ..base import DetectionError, Shapes
from . import names
from .config import ZImageConfig, axes_for_head_dim

TRIGGER_KEY = "cap_embedder.1.weight"  # with noise_refiner.0.attention.k_norm.weight
_K_NORM = "noise_refiner.0.attention.k_norm.weight"
LUMINA2_DIM = 2304
LATENT_CHANNELS = 16
# keys of NextDiT variants that share the trigger but need parts this network lacks
_OTHER_VARIANTS = {
    "siglip_embedder.0.weight": "Z-Image Omni (SigLIP image conditioning)",
    "dec_net.cond_embed.weight": "pixel-space Z-Image (dec_net pixel decoder)",
}
_SUPPORTED = "supported: Z-Image Turbo / Base (NextDiT, dim 3840)"


def comfy_shapes(shapes: Shapes, prefix: str) -> dict[str, tuple[int, ...]] | None:
    """The NextDiT parameters under `prefix` by ComfyUI name (prefix stripped; a diffusers
    layout renamed and its q/k/v fused); None if the trigger keys are not there. Scaled-fp8
    scale keys are left out (the loader dequantises them)."""
    shapes = plain_keys(shapes)
    if f"{prefix}{TRIGGER_KEY}" not in shapes:
        return None
    own = {k[len(prefix):]: tuple(int(d) for d in v) for k, v in shapes.items()
           if k.startswith(prefix)}
    if _K_NORM in own:
        return own
    if names.DIFFUSERS_MARKER in own:
        return {k: _fused_shape(own, parts) for k, parts in names.comfy_plan(list(own)).items()}
    return None


def _fused_shape(shapes: dict[str, tuple[int, ...]], parts: list[str]) -> tuple[int, ...]:
    if not all(parts):
        raise DetectionError(f"diffusers Z-Image transformer: a fused q/k/v weight lacks some "
                             f"of its pieces (found only {[p for p in parts if p]})")
    first = shapes[parts[0]]
    return (sum(shapes[p][0] for p in parts), *first[1:])


def _count(found: dict[str, tuple[int, ...]], group: str) -> int:
    """Number of consecutive `group.N` blocks (0, 1, ...)."""
    present = {int(m.group(1)) for k in found if (m := re.match(rf"{group}\.(\d+)\.", k))}
    n = 0
    while n in present:
        n += 1
    if n != len(present):
        raise DetectionError(f"NextDiT {group} blocks are not numbered 0..N-1 "
                             f"(found {sorted(present)})")
    return n


def _shape(found: dict[str, tuple[int, ...]], key: str, ndim: int) -> tuple[int, ...]:
    shape = found.get(key)
    if shape is None:
        raise DetectionError(f"NextDiT layout (has '{TRIGGER_KEY}') without '{key}'")
    if len(shape) != ndim:
        raise DetectionError(f"NextDiT key '{key}' has shape {list(shape)}, expected {ndim} "
                             "dims")
    return shape


def _refuse_relatives(found: dict[str, tuple[int, ...]], dim: int) -> None:
    """Lumina 2, Omni and pixel-space variants: name them, never a shape error later."""
    for key, what in _OTHER_VARIANTS.items():
        if key in found:
            raise DetectionError(f"{what} is not supported (found '{key}'); {_SUPPORTED}")
    qkv = _shape(found, "layers.0.attention.qkv.weight", 2)
    if dim == LUMINA2_DIM or qkv[0] != 3 * dim:
        raise DetectionError(
            f"Lumina 2 is not supported: NextDiT with dim {dim} and qkv rows {qkv[0]} "
            f"(grouped-query when not 3·dim = {3 * dim}); {_SUPPORTED}")
    if "layers.0.adaLN_modulation.1.weight" in found or "cap_pad_token" not in found:
        raise DetectionError(
            "Lumina 2 is not supported: NextDiT without Z-Image's modulation and pad tokens "
            f"(no 'layers.0.adaLN_modulation.0.weight' / 'cap_pad_token'); {_SUPPORTED}")


def _head_dim(found: dict[str, tuple[int, ...]], dim: int) -> tuple[int, tuple[int, ...]]:
    (head_dim,) = _shape(found, "layers.0.attention.q_norm.weight", 1)
    axes = axes_for_head_dim(head_dim)
    if dim % head_dim or axes is None:
        raise DetectionError(f"NextDiT q_norm width {head_dim} does not fit dim {dim} (heads "
                             "must divide dim and split into rotary axes of 1/4, 3/8, 3/8)")
    return head_dim, axes


def detect_zimage_config(shapes: Shapes, prefix: str = "model.diffusion_model."
                         ) -> ZImageConfig | None:
    """The ZImageConfig under `prefix`; None without the NextDiT trigger keys; DetectionError
    for a NextDiT relative or a layout this network cannot build."""
    found = comfy_shapes(shapes, prefix)
    if found is None:
        return None
    dim, cap_feat_dim = _shape(found, TRIGGER_KEY, 2)
    _refuse_relatives(found, dim)
    head_dim, axes = _head_dim(found, dim)
    t_hidden, _ = _shape(found, "t_embedder.mlp.0.weight", 2)
    adaln_dim, _ = _shape(found, "t_embedder.mlp.2.weight", 2)
    mod_rows, mod_in = _shape(found, "layers.0.adaLN_modulation.0.weight", 2)
    x_rows, patch_features = _shape(found, "x_embedder.weight", 2)
    out_features, _ = _shape(found, "final_layer.linear.weight", 2)
    if mod_rows != 4 * dim or mod_in != adaln_dim or x_rows != dim:
        raise DetectionError(
            f"NextDiT widths do not fit dim {dim}: adaLN_modulation.0 {[mod_rows, mod_in]} "
            f"(expected [{4 * dim}, {adaln_dim}]), x_embedder rows {x_rows}")
    in_channels = patch_features // 4
    if in_channels != LATENT_CHANNELS or out_features != patch_features:
        raise DetectionError(
            f"NextDiT with {patch_features} patch features in and {out_features} out is not "
            f"supported (Z-Image takes {LATENT_CHANNELS}-channel latents, 2x2 patches: 64)")
    n_refiners = _count(found, "noise_refiner")
    if _count(found, "context_refiner") != n_refiners:
        raise DetectionError("NextDiT noise_refiner and context_refiner block counts differ")
    return ZImageConfig(
        dim=dim, n_layers=_count(found, "layers"), n_refiner_layers=n_refiners,
        head_dim=head_dim, in_channels=in_channels, cap_feat_dim=cap_feat_dim,
        ffn_hidden=_shape(found, "layers.0.feed_forward.w1.weight", 2)[0],
        t_hidden=t_hidden, adaln_dim=adaln_dim, axes_dims=axes,
    )


def matches_zimage(cfg: ZImageConfig) -> bool:
    """Every NextDiT config detection returns is a Z-Image (relatives are refused there)."""
    return True


def describe(cfg: ZImageConfig) -> str:
    return (f"Z-Image NextDiT with dim={cfg.dim}, heads={cfg.n_heads}x{cfg.head_dim}, "
            f"layers={cfg.n_layers} (+{cfg.n_refiner_layers} refiners each), "
            f"cap_feat_dim={cfg.cap_feat_dim}, ffn={cfg.ffn_hidden}")
