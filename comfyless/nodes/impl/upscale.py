"""Execute of the upscale-model nodes (nodes/upscale.py).

Spec note (ComfyUI's ImageUpscaleWithModel, in our words):
- The IMAGE [B, H, W, C] goes channels-first through the network in tiles of 512 x 512 input
  pixels that overlap by 32; tile starts step by tile - overlap and the last one is moved back
  inside the image; an image that fits one tile is one call. Each tile's output (scale x its
  size) is weighted by a mask that ramps linearly, (t + 1) / f for t < f, over the
  f = round(32 * scale) outer rows/columns of every side, and the weighted sum is divided by
  the summed weights (nodes/impl/latent_ops.tiled_map, the rule VAEDecodeTiled uses too).
- Out of memory during a pass: the tile size is halved and the whole image redone, down to a
  tile of 128 (below that the error is raised). Kept here for torch's OutOfMemoryError (GPU);
  on the CPU an allocation failure is a plain RuntimeError and is not retried.
- The result is clamped to [0, 1].
- Loading: keys of a SwinIR file saved from a DataParallel wrapper (`module.layers.0.
  residual_group.blocks.0.norm1.weight` present) lose their `module.` prefix; the file must be
  a single-image model (spandrel's ImageModelDescriptor), else it is refused.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ...models.tensor_files import PICKLE_EXTENSIONS, open_tensor_file
from ...typesys.errors import ModelLoadError
from .latent_ops import tiled_map

TILE = 512
OVERLAP = 32
MIN_TILE = 128
EXTRA = "pip install comfyless[upscale]"
_SWINIR_DATAPARALLEL_KEY = "module.layers.0.residual_group.blocks.0.norm1.weight"


def _spandrel(ctx):
    """The spandrel module, or a clear error naming the extra that installs it."""
    where = {"node_id": ctx.node_id, "input_name": "model_name"}
    try:
        import spandrel
    except ImportError:
        raise ModelLoadError(
            f"node {ctx.node_id} ({ctx.class_type}): upscale models are read by the optional "
            f"'spandrel' package, which is not installed; install it with `{EXTRA}`",
            **where) from None
    except Exception as exc:  # installed but broken, e.g. a torchvision built for another torch
        raise ModelLoadError(
            f"node {ctx.node_id} ({ctx.class_type}): the 'spandrel' package is installed but "
            f"fails to import ({type(exc).__name__}: {exc}); it needs a torchvision built for "
            f"this torch ({torch.__version__})", **where) from exc
    return spandrel


def _read_state_dict(path: Path, ctx) -> dict:
    """The file's tensors; a pickle keeps its nesting (Real-ESRGAN's `params_ema`), which
    spandrel unwraps as it does for ComfyUI."""
    where = {"node_id": ctx.node_id, "input_name": "model_name"}
    if path.suffix.lower() in PICKLE_EXTENSIONS:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # refused pickles, truncated files
            raise ModelLoadError(f"{path.name}: cannot read as a weights-only torch file "
                                 f"(convert it to .safetensors): {exc}", **where) from exc
        if not isinstance(data, dict):
            raise ModelLoadError(f"{path.name}: expected a state dict, found "
                                 f"{type(data).__name__}", **where)
        return data
    with open_tensor_file(path, **where) as tensors:
        return {k: tensors[k] for k in tensors}


def upscale_model_loader(ctx, model_name: str):
    spandrel = _spandrel(ctx)
    path = ctx.find("upscale_models", model_name, input_name="model_name")
    sd = _read_state_dict(path, ctx)
    if _SWINIR_DATAPARALLEL_KEY in sd:
        sd = {k.removeprefix("module."): v for k, v in sd.items()}
    try:
        model = spandrel.ModelLoader().load_from_state_dict(sd).eval()
    except Exception as exc:  # spandrel's UnsupportedModelError, shape mismatches
        raise ModelLoadError(f"{model_name}: not an upscale model spandrel knows: {exc}",
                             node_id=ctx.node_id, input_name="model_name") from exc
    if not isinstance(model, spandrel.ImageModelDescriptor):
        raise ModelLoadError(f"{model_name}: upscale model must be a single-image model, "
                             f"found {type(model).__name__}",
                             node_id=ctx.node_id, input_name="model_name")
    return (model,)


def upscale_tiled(model, pixels: torch.Tensor, tile: int = TILE, overlap: int = OVERLAP,
                  progress=None) -> torch.Tensor:
    """`model` over channels-first pixels [B, C, H, W], tiled per sample (see module note)."""
    scale = model.scale
    out = []
    for index, sample in enumerate(pixels.split(1)):
        out.append(tiled_map(sample, model, (tile, tile), overlap, scale))
        if progress is not None:
            progress(index + 1, pixels.shape[0])
    return torch.cat(out)


def _check_inputs(ctx, upscale_model, image) -> None:
    if not callable(upscale_model) or not hasattr(upscale_model, "scale"):
        raise ValueError(f"node {ctx.node_id} ({ctx.class_type}) input 'upscale_model': "
                         f"expected an UPSCALE_MODEL, got {type(upscale_model).__name__}")
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        found = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"node {ctx.node_id} ({ctx.class_type}) input 'image': expected an "
                         f"IMAGE [B, H, W, C], got {found}")
    wanted = getattr(upscale_model, "input_channels", image.shape[-1])
    if image.shape[-1] != wanted:
        raise ValueError(f"node {ctx.node_id} ({ctx.class_type}) input 'image': the model "
                         f"takes {wanted} channels, the image has {image.shape[-1]}")


def image_upscale_with_model(ctx, upscale_model, image):
    _check_inputs(ctx, upscale_model, image)
    upscale_model.to(ctx.device)
    pixels = image.movedim(-1, 1).to(ctx.device, upscale_model.dtype)
    tile = TILE
    while True:
        try:
            with torch.inference_mode():
                out = upscale_tiled(upscale_model, pixels, tile, OVERLAP,
                                    lambda done, total: ctx.progress(done, total))
            break
        except torch.OutOfMemoryError:
            tile //= 2
            if tile < MIN_TILE:
                raise
    return (out.float().cpu().movedim(1, -1).clamp(0.0, 1.0),)
