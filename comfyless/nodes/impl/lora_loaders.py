"""Execute of the LoRA loader nodes (nodes/lora_loaders.py)."""

from __future__ import annotations

import logging

from safetensors.torch import load_file
from torch import nn

from ...lora.formats import read_lora
from ...typesys.errors import ModelLoadError

log = logging.getLogger("comfyless.lora")

_TE_PREFIXES = ("lora_te", "text_encoder", "text_encoders.", "lora_prior_te")


def _clip_module(clip):
    """The torch module holding the CLIP's text-encoder weights (None if not reachable)."""
    for attr in ("lora_module", "text_encoder", "encoder", "model", "cond_stage_model"):
        mod = getattr(clip, attr, None)
        mod = mod() if callable(mod) and not isinstance(mod, nn.Module) else mod
        if isinstance(mod, nn.Module):
            return mod
    return clip if isinstance(clip, nn.Module) else None


def _report(ctx, lora_sd: dict, placed: set[str], with_clip: bool, input_name: str) -> None:
    """Warn about keys no target took; raise if none at all did."""
    if lora_sd and not placed:
        raise ModelLoadError(
            f"node {ctx.node_id} ({ctx.class_type}) input '{input_name}': none of the "
            f"{len(lora_sd)} LoRA keys fits this {'model or clip' if with_clip else 'model'} "
            f"(e.g. {sorted(lora_sd)[0]!r}); is it a LoRA for another model family?",
            node_id=ctx.node_id, input_name=input_name,
        )
    left = [k for k in sorted(lora_sd) if k not in placed]
    if not with_clip:
        left = [k for k in left if not k.startswith(_TE_PREFIXES)]
    if left:
        shown = ", ".join(left[:10]) + (f" (and {len(left) - 10} more)" if len(left) > 10 else "")
        msg = f"input '{input_name}': {len(left)} LoRA key(s) not loaded: {shown}"
        log.warning("node %s: %s", ctx.node_id, msg)
        ctx.message(warning=msg)


def _placed_keys(lora_sd: dict, model, clip) -> set[str]:
    """File keys that land on the model's UNet or (if given) the clip's text encoder(s)."""
    placed: set[str] = set()
    if model is not None:
        _, unplaced = read_lora(lora_sd, "unet", model.diffusion_model)
        placed |= set(lora_sd) - set(unplaced)
    if clip is not None:
        module = _clip_module(clip)
        if module is not None:
            _, unplaced = read_lora(lora_sd, "clip", module)
            placed |= set(lora_sd) - set(unplaced)
    return placed


def _load_file(ctx, lora_name: str) -> dict:
    path = ctx.find("loras", lora_name, input_name="lora_name")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise ModelLoadError(
            f"node {ctx.node_id} ({ctx.class_type}) input 'lora_name': cannot read LoRA file "
            f"{lora_name!r} as safetensors: {e}", node_id=ctx.node_id, input_name="lora_name",
        ) from e


def _apply(ctx, lora_sd, model, clip, strength_model, strength_clip, input_name, bypass=False):
    use_model = model is not None and strength_model != 0
    use_clip = clip is not None and strength_clip != 0
    placed = _placed_keys(lora_sd, model if use_model else None, clip if use_clip else None)
    _report(ctx, lora_sd, placed, use_clip, input_name)
    if use_model:
        model = model.with_lora(lora_sd, strength_model, bypass=bypass)
    if use_clip:
        clip = clip.with_lora(lora_sd, strength_clip)
    return model, clip


def lora_model_loader(ctx, model, lora, strength_model: float = 1.0, bypass: bool = False):
    if strength_model == 0:
        return (model,)
    model, _ = _apply(ctx, lora, model, None, strength_model, 0, "lora", bypass)
    return (model,)


def lora_loader(ctx, model, clip, lora_name: str, strength_model: float = 1.0,
                strength_clip: float = 1.0):
    if strength_model == 0 and strength_clip == 0:
        return (model, clip)
    lora_sd = _load_file(ctx, lora_name)
    return _apply(ctx, lora_sd, model, clip, strength_model, strength_clip, "lora_name")


def lora_loader_model_only(ctx, model, lora_name: str, strength_model: float = 1.0):
    if strength_model == 0:
        return (model,)
    lora_sd = _load_file(ctx, lora_name)
    model, _ = _apply(ctx, lora_sd, model, None, strength_model, 0, "lora_name")
    return (model,)
