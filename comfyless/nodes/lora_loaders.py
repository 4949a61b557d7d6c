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

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import BOOLEAN, CLIP, COMBO, FLOAT, LORA_MODEL, MODEL


def _strength(name: str, step: float | None = 0.01) -> Input:
    return Input(name, FLOAT, default=1.0, min=-100.0, max=100.0, step=step)


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

    execute = implemented_by("comfyless.nodes.impl.lora_loaders:lora_model_loader")


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

    execute = implemented_by("comfyless.nodes.impl.lora_loaders:lora_loader")


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

    execute = implemented_by("comfyless.nodes.impl.lora_loaders:lora_loader_model_only")


NODES = [LoraModelLoader, LoraLoader, LoraLoaderModelOnly]
