"""LoRA loader nodes: LoraModelLoader (a LORA_MODEL value), LoraLoader and LoraLoaderModelOnly
(a file from the `loras` folders, which include `output/loras/`).

Schemas as ComfyUI (workflow-formats.md §8, train-nodes.md §5). Keys are placed as
lora-format.md §4 says (ComfyUI, kohya, diffusers/PEFT and LyCORIS names). Like ComfyUI, keys
that fit no layer are reported as a warning (listing them) rather than an error; unlike ComfyUI,
a LoRA of which NOT ONE key fits the model (and clip) is an error naming the input, since it
can only be the wrong file for this model. Text-encoder keys are not reported when no CLIP is
being patched (LoraModelLoader, LoraLoaderModelOnly, or strength_clip 0).
"""

from __future__ import annotations

import logging

from ..typesys.errors import ModelLoadError
from ..typesys.schema import Input, Node, NodeSchema, Output
from ..typesys.types import BOOLEAN, CLIP, COMBO, FLOAT, LORA_MODEL, MODEL

log = logging.getLogger("comfyless.lora")

_TE_PREFIXES = ("lora_te", "text_encoder", "text_encoders.", "lora_prior_te")


def _strength(name: str, step: float | None = 0.01) -> Input:
    return Input(name, FLOAT, default=1.0, min=-100.0, max=100.0, step=step)


def _clip_module(clip):
    """The torch module holding the CLIP's text-encoder weights (None if not reachable)."""
    from torch import nn

    for attr in ("lora_module", "text_encoder", "encoder", "model", "cond_stage_model"):
        mod = getattr(clip, attr, None)
        mod = mod() if callable(mod) and not isinstance(mod, nn.Module) else mod
        if isinstance(mod, nn.Module):
            return mod
    return clip if isinstance(clip, nn.Module) else None


def _report(ctx, lora_sd: dict, placed: set[str], with_clip: bool, input_name: str) -> None:
    """Warn about keys no target took; raise if none at all did."""
    from ..engine.context import ProgressEvent

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
        ctx.emit(ProgressEvent("message", ctx.node_id, ctx.class_type, info={"warning": msg}))


def _placed_keys(lora_sd: dict, model, clip) -> set[str]:
    """File keys that land on the model's UNet or (if given) the clip's text encoder(s)."""
    from ..lora.formats import read_lora

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
    from safetensors.torch import load_file

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


class LoraModelLoader(Node):
    """Apply a LORA_MODEL value (e.g. fresh from TrainLoraNode) to a model."""

    schema = NodeSchema(
        "LoraModelLoader",
        display_name="Load LoRA Model",
        category="model/loaders",
        inputs=(
            Input("model", MODEL, tooltip="The diffusion model the LoRA will be applied to."),
            Input("lora", LORA_MODEL, tooltip="The LoRA model to apply to the diffusion model."),
            _strength("strength_model", step=None),
            Input("bypass", BOOLEAN, default=False, added_in="2026-01-25",
                  tooltip="Run the adapters as forward hooks instead of merging them."),
        ),
        outputs=(Output("model", MODEL),),
    )

    @staticmethod
    def execute(ctx, model, lora, strength_model: float = 1.0, bypass: bool = False):
        if strength_model == 0:
            return (model,)
        model, _ = _apply(ctx, lora, model, None, strength_model, 0, "lora", bypass)
        return (model,)


class LoraLoader(Node):
    """Apply a LoRA file from the loras folder to a model and its CLIP."""

    schema = NodeSchema(
        "LoraLoader",
        display_name="Load LoRA (Model and CLIP)",
        category="loaders",
        inputs=(
            Input("model", MODEL),
            Input("clip", CLIP),
            Input("lora_name", COMBO, choices_from="loras"),
            _strength("strength_model"),
            _strength("strength_clip"),
        ),
        outputs=(Output("MODEL", MODEL), Output("CLIP", CLIP)),
    )

    @staticmethod
    def execute(ctx, model, clip, lora_name: str, strength_model: float = 1.0,
                strength_clip: float = 1.0):
        if strength_model == 0 and strength_clip == 0:
            return (model, clip)
        lora_sd = _load_file(ctx, lora_name)
        return _apply(ctx, lora_sd, model, clip, strength_model, strength_clip, "lora_name")


class LoraLoaderModelOnly(Node):
    """Apply a LoRA file from the loras folder to a model only."""

    schema = NodeSchema(
        "LoraLoaderModelOnly",
        display_name="Load LoRA",
        category="loaders",
        inputs=(
            Input("model", MODEL),
            Input("lora_name", COMBO, choices_from="loras"),
            _strength("strength_model"),
        ),
        outputs=(Output("MODEL", MODEL),),
    )

    @staticmethod
    def execute(ctx, model, lora_name: str, strength_model: float = 1.0):
        if strength_model == 0:
            return (model,)
        lora_sd = _load_file(ctx, lora_name)
        model, _ = _apply(ctx, lora_sd, model, None, strength_model, 0, "lora_name")
        return (model,)


NODES = [LoraModelLoader, LoraLoader, LoraLoaderModelOnly]
