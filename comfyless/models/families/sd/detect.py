"""SD family detection (model-detection.md §2): the LDM UNet config from key names and shapes,
which variant (sd15 / sd2 / sdxl) and which prediction type. Works on {key: shape} only, so it
runs on a safetensors header without reading any tensor data (SD2's v-prediction check reads
one bias).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..base import DetectionError, Shapes
from .config import UNetConfig

TRIGGER_KEY = "input_blocks.0.0.weight"
# The std above which SD2's last-output-transformer norm1 bias means v-prediction (ComfyUI).
V_PRED_NORM_BIAS_STD = 0.09


def _count_indices(shapes: Shapes, prefix: str) -> int:
    """Number of consecutive indices N with some key starting `prefix + N + '.'`."""
    found = {int(m.group(1)) for k in shapes
             if k.startswith(prefix) and (m := re.match(r"(\d+)\.", k[len(prefix):]))}
    n = 0
    while n in found:
        n += 1
    return n


def _depth(shapes: Shapes, block: str) -> int:
    """Transformer depth of a block (e.g. 'p.input_blocks.4'): count of `1.transformer_blocks.N`."""
    return _count_indices(shapes, f"{block}.1.transformer_blocks.")


def detect_unet_config(shapes: Shapes, prefix: str = "model.diffusion_model.") -> UNetConfig | None:
    """The LDM UNet config under `prefix`; None without `<prefix>input_blocks.0.0.weight`."""
    conv_in = shapes.get(f"{prefix}{TRIGGER_KEY}")
    if conv_in is None:
        return None
    mc = int(conv_in[0])
    label = shapes.get(f"{prefix}label_emb.0.0.weight")
    out = shapes.get(f"{prefix}out.2.weight")
    cfg = UNetConfig(
        in_channels=int(conv_in[1]), out_channels=int(out[0]) if out else 4, model_channels=mc,
        num_res_blocks=[], channel_mult=[], transformer_depth=[], transformer_depth_output=[],
        adm_in_channels=int(label[1]) if label else None,
    )
    _walk_input_blocks(shapes, prefix, cfg)
    n_out = _count_indices(shapes, f"{prefix}output_blocks.")
    # stored in reverse output order: ComfyUI pops from the end while building output blocks
    cfg.transformer_depth_output = [
        _depth(shapes, f"{prefix}output_blocks.{i}") for i in reversed(range(n_out))
    ]
    _attention_fields(shapes, prefix, cfg)
    return cfg


def _walk_input_blocks(shapes: Shapes, prefix: str, cfg: UNetConfig) -> None:
    """Fill num_res_blocks, channel_mult, transformer_depth from input_blocks.1..K-1."""
    res_count, mult = 0, 1
    for k in range(1, _count_indices(shapes, f"{prefix}input_blocks.")):
        block = f"{prefix}input_blocks.{k}"
        if f"{block}.0.op.weight" in shapes:  # downsampler closes a level
            cfg.num_res_blocks.append(res_count)
            cfg.channel_mult.append(mult)
            res_count = 0
        elif f"{block}.0.in_layers.0.weight" in shapes:
            res_count += 1
            mult = int(shapes[f"{block}.0.out_layers.3.weight"][0]) // cfg.model_channels
            cfg.transformer_depth.append(_depth(shapes, block))
    cfg.num_res_blocks.append(res_count)
    cfg.channel_mult.append(mult)


def _attention_fields(shapes: Shapes, prefix: str, cfg: UNetConfig) -> None:
    """context_dim, use_linear_in_transformer, transformer_depth_middle, head layout."""
    blocks = [k[: -len(".1.transformer_blocks.0.attn2.to_k.weight")] for k in shapes
              if k.startswith(prefix) and k.endswith(".1.transformer_blocks.0.attn2.to_k.weight")]
    cfg.context_dim = int(shapes[blocks[0] + ".1.transformer_blocks.0.attn2.to_k.weight"][1]) \
        if blocks else 0
    if blocks:
        cfg.use_linear_in_transformer = len(shapes[blocks[0] + ".1.proj_in.weight"]) == 2
    if f"{prefix}middle_block.1.proj_in.weight" in shapes:
        cfg.transformer_depth_middle = _count_indices(
            shapes, f"{prefix}middle_block.1.transformer_blocks.")
    elif f"{prefix}middle_block.0.in_layers.0.weight" in shapes:
        cfg.transformer_depth_middle = -1
    else:
        cfg.transformer_depth_middle = -2
    # SD1.x: 8 heads of varying width; SD2.x/SDXL (linear projections): 64-channel heads
    if cfg.use_linear_in_transformer:
        cfg.num_heads, cfg.num_head_channels = -1, 64
    else:
        cfg.num_heads, cfg.num_head_channels = 8, -1


# -- which variant (works for reduced test sizes too) ----------------------------------------

# input channels: 4 (text-to-image), 9 (inpaint: x + mask + masked-image latent), 8
# (InstructPix2Pix: x + image latent); ComfyUI builds all three from the same model configs
INPAINT_IN_CHANNELS = 9
IP2P_IN_CHANNELS = 8
_IN_CHANNELS = (4, IP2P_IN_CHANNELS, INPAINT_IN_CHANNELS)


def _text_to_image(cfg: UNetConfig) -> bool:
    """A 4-channel-latent UNet (also the inpaint / InstructPix2Pix variants)."""
    return cfg.in_channels in _IN_CHANNELS and cfg.out_channels == 4


def matches_sd15(cfg: UNetConfig) -> bool:
    """SD1.x: conv attention projections, no adm vector."""
    return _text_to_image(cfg) and cfg.adm_in_channels is None \
        and not cfg.use_linear_in_transformer


def matches_sd2(cfg: UNetConfig) -> bool:
    """SD2.x: linear attention projections, no adm vector."""
    return _text_to_image(cfg) and cfg.adm_in_channels is None and cfg.use_linear_in_transformer


def matches_sdxl(cfg: UNetConfig) -> bool:
    """SDXL: linear attention projections and the adm (pooled + size) vector."""
    return _text_to_image(cfg) and cfg.adm_in_channels is not None \
        and cfg.use_linear_in_transformer


def describe(cfg: UNetConfig) -> str:
    return (f"LDM UNet with in_channels={cfg.in_channels}, model_channels={cfg.model_channels}, "
            f"channel_mult={cfg.channel_mult}, context_dim={cfg.context_dim}, "
            f"linear_proj={cfg.use_linear_in_transformer}, adm_in_channels={cfg.adm_in_channels}")


# -- prediction type ---------------------------------------------------------------------------

def _refuse_edm(shapes: Shapes) -> None:
    if "edm_mean" in shapes or "edm_vpred.sigma_max" in shapes:
        raise DetectionError("EDM-parameterised SDXL (Playground 2.5 / edm_vpred) is not supported")


def _sd2_is_v_prediction(cfg: UNetConfig, prefix: str, shapes: Shapes,
                         read: Callable[[str], object] | None) -> bool:
    """ComfyUI's heuristic: std of the last output transformer's norm1 bias > 0.09.

    ComfyUI reads `output_blocks.11.1...` (the last output block of a real SD2 UNet); we read
    the last output block that has a transformer, which is the same block in real files.
    """
    if read is None or cfg.in_channels != 4:
        return False
    n_out = _count_indices(shapes, f"{prefix}output_blocks.")
    for i in reversed(range(n_out)):
        key = f"{prefix}output_blocks.{i}.1.transformer_blocks.0.norm1.bias"
        if key in shapes:
            bias = read(key)
            return float(bias.float().std(unbiased=False)) > V_PRED_NORM_BIAS_STD  # type: ignore[attr-defined]
    return False


def prediction_eps(cfg: UNetConfig, shapes: Shapes, prefix: str,
                   read: Callable[[str], object] | None) -> tuple[str, bool]:
    """SD1.x: always eps."""
    _refuse_edm(shapes)
    return "eps", False


def prediction_sd2(cfg: UNetConfig, shapes: Shapes, prefix: str,
                   read: Callable[[str], object] | None) -> tuple[str, bool]:
    """SD2.x: v when the norm1-bias heuristic says so (SD2.x-768-v), else eps."""
    v = _sd2_is_v_prediction(cfg, prefix, shapes, read)
    _refuse_edm(shapes)
    return ("v" if v else "eps"), False


# SDXL refiner (model-detection.md §2: context 1280, adm 2560): its context is OpenCLIP bigG
# alone and its adm vector bigG's pooled projection (the same width) + 5 x 256 Fourier features
# (4 sizes and the aesthetic score), where the base has CLIP-L + bigG and 6 x 256.
REFINER_FOURIER_WIDTH = 5 * 256


def _refuse_refiner(cfg: UNetConfig) -> None:
    if cfg.adm_in_channels is not None and cfg.context_dim is not None \
            and cfg.adm_in_channels == cfg.context_dim + REFINER_FOURIER_WIDTH:
        raise DetectionError(
            f"SDXL refiner UNet (context {cfg.context_dim} = OpenCLIP bigG alone, adm "
            f"{cfg.adm_in_channels} = pooled + 5 x 256) is not supported; the SDXL base model "
            "is")


def prediction_sdxl(cfg: UNetConfig, shapes: Shapes, prefix: str,
                    read: Callable[[str], object] | None) -> tuple[str, bool]:
    """SDXL: eps, or v (+ zero-terminal SNR) with ComfyUI's marker keys `v_pred` / `ztsnr`.
    The refiner is refused by name."""
    _refuse_refiner(cfg)
    prediction, zsnr = "eps", False
    if "v_pred" in shapes:
        prediction, zsnr = "v", "ztsnr" in shapes
    _refuse_edm(shapes)
    return prediction, zsnr
