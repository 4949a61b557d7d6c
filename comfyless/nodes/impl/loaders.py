"""Execute of the model loader nodes (nodes/loaders.py); loading code is in comfyless.models."""

from __future__ import annotations

import torch

from ...models import text_sets
from ...models import vae as vae_mod
from ...models.checkpoint import (
    VAE_PREFIX,
    default_vae_dtype,
    load_checkpoint,
    load_diffusion_model,
)
from ...models.residency import Reloadable
from ...models.sampling import ModelSampling
from ...models.tensor_files import open_tensor_file
from ...typesys.errors import ModelLoadError
from ..loaders import SAMPLING_TYPES, WEIGHT_DTYPES

SD3_TEXT_SET = "sd3"  # TripleCLIPLoader's fixed CLIP type (ComfyUI)


def checkpoint_loader_simple(ctx, ckpt_name: str):
    path = ctx.find("checkpoints", ckpt_name, input_name="ckpt_name")
    # As in ComfyUI, a file without text-encoder or VAE weights gives None for that output
    # (a consumer then reports the missing input).
    model, clip, vae = load_checkpoint(path, device=ctx.device, node_id=ctx.node_id,
                                       input_name="ckpt_name")
    model.source["name"] = ckpt_name
    return (model, clip, vae)


def unet_loader(ctx, unet_name: str, weight_dtype: str = "default"):
    path = ctx.find("diffusion_models", unet_name, input_name="unet_name")
    model = load_diffusion_model(path, device=ctx.device, node_id=ctx.node_id,
                                 input_name="unet_name")
    storage = WEIGHT_DTYPES[weight_dtype]
    if storage is not None:
        _round_weights(model.diffusion_model, getattr(torch, storage))
    model.source["name"] = unet_name
    return (model,)


def _round_weights(module, storage_dtype) -> None:
    """Round every floating weight through `storage_dtype` (fp8), keeping the compute dtype."""
    with torch.no_grad():
        for p in module.parameters():
            if p.ndim >= 2:  # ComfyUI keeps norms and biases in the compute dtype
                p.copy_(p.to(storage_dtype).to(p.dtype))


def vae_loader(ctx, vae_name: str):
    path = ctx.find("vae", vae_name, input_name="vae_name")
    vae = _read_vae(ctx, path, vae_name)
    vae.residency = Reloadable(vae.model, lambda: _read_vae(ctx, path, vae_name).model,
                               f"the VAE {vae_name}")
    return (vae,)


def _read_vae(ctx, path, vae_name: str):
    with open_tensor_file(path, node_id=ctx.node_id, input_name="vae_name") as tensors:
        sd = {k[len(VAE_PREFIX):] if k.startswith(VAE_PREFIX) else k: tensors[k]
              for k in tensors
              if not k.startswith(("model.", "cond_stage_model.", "text_encoders."))}
    try:
        vae = vae_mod.load_vae(sd, dtype=default_vae_dtype(ctx.device), device=ctx.device)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{vae_name}: not a supported VAE file: {exc}",
                             node_id=ctx.node_id, input_name="vae_name") from exc
    return vae


def _load_text_encoders(ctx, names: dict[str, str], clip_type: str, device: str):
    """Resolve text-encoder file inputs and load them through models/clip.py."""
    paths = [ctx.find("text_encoders", name, input_name=inp) for inp, name in names.items()]
    target = "cpu" if device == "cpu" else ctx.device
    if clip_type not in text_sets.clip_file_types():
        raise ModelLoadError(
            f"node {ctx.node_id} ({ctx.class_type}) input 'type': CLIP type {clip_type!r} is "
            f"not supported by comfyless (supported: {', '.join(text_sets.clip_file_types())})",
            node_id=ctx.node_id, input_name="type")

    def load():
        return text_sets.load_text_encoder_files(paths, clip_type, device=target,
                                                 names=list(names))

    try:
        clip = load()
    except (KeyError, ValueError, RuntimeError) as exc:
        # a text-set error names the offending input; otherwise blame the first file input
        input_name = getattr(exc, "input_name", None) or next(iter(names))
        raise ModelLoadError(f"cannot load {', '.join(names.values())} as {clip_type!r}: {exc}",
                             node_id=ctx.node_id, input_name=input_name) from exc
    clip.residency = Reloadable(clip.stack, lambda: load().stack,
                                f"the text encoders {', '.join(names.values())}")
    return clip


def clip_loader(ctx, clip_name: str, type: str = "stable_diffusion", device: str = "default"):
    return (_load_text_encoders(ctx, {"clip_name": clip_name}, type, device),)


def dual_clip_loader(ctx, clip_name1: str, clip_name2: str, type: str = "sdxl",
                     device: str = "default"):
    names = {"clip_name1": clip_name1, "clip_name2": clip_name2}
    return (_load_text_encoders(ctx, names, type, device),)


def triple_clip_loader(ctx, clip_name1: str, clip_name2: str, clip_name3: str):
    """Always the SD3 set (ComfyUI's TripleCLIPLoader has no type input)."""
    names = {"clip_name1": clip_name1, "clip_name2": clip_name2, "clip_name3": clip_name3}
    return (_load_text_encoders(ctx, names, SD3_TEXT_SET, "default"),)


def model_sampling_discrete(ctx, model, sampling: str = "eps", zsnr: bool = False):
    prediction = SAMPLING_TYPES[sampling]
    if prediction is None:
        supported = ", ".join(k for k, v in SAMPLING_TYPES.items() if v)
        raise ValueError(f"input 'sampling': {sampling!r} is not implemented; "
                         f"supported: {supported}")
    return (model.with_sampling(ModelSampling(prediction, zsnr=zsnr)),)
