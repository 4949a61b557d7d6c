"""Conditioning nodes: CLIPTextEncode, CLIPSetLastLayer, and the edit-model (Flux Kontext)
reference nodes ReferenceLatent, FluxKontextMultiReferenceLatentMethod (ComfyUI's schemas).

CONDITIONING is ComfyUI's `[[cond Tensor[1, 77k, D], {"pooled_output": Tensor[1, P], ...}]]`;
the reference nodes add `reference_latents` (list of raw latents) / `reference_latents_method`
to every entry's options (model-families.md §1.3).
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import CLIP, COMBO, CONDITIONING, INT, LATENT, STRING


class CLIPTextEncode(Node):
    """Encode a prompt (with ComfyUI's (word:1.2) weights) into CONDITIONING."""

    schema = NodeSchema(
        "CLIPTextEncode",
        display_name="CLIP Text Encode (Prompt)",
        category="conditioning",
        inputs=(
            Input("text", STRING, multiline=True, tooltip="The text to be encoded."),
            Input("clip", CLIP, tooltip="The CLIP model used for encoding the text."),
        ),
        outputs=(Output("CONDITIONING", CONDITIONING),),
    )

    execute = implemented_by("comfyless.nodes.impl.conditioning:clip_text_encode")


class CLIPSetLastLayer(Node):
    """A CLIP that stops at an earlier layer (-1 = last, -2 = penultimate, ...)."""

    schema = NodeSchema(
        "CLIPSetLastLayer",
        display_name="CLIP Set Last Layer",
        category="conditioning",
        inputs=(
            Input("clip", CLIP),
            Input("stop_at_clip_layer", INT, default=-1, min=-24, max=-1, step=1),
        ),
        outputs=(Output("CLIP", CLIP),),
    )

    execute = implemented_by("comfyless.nodes.impl.conditioning:clip_set_last_layer")


class ReferenceLatent(Node):
    """Append a LATENT's samples to every entry's `reference_latents` (edit models, Kontext)."""

    schema = NodeSchema(
        "ReferenceLatent",
        category="advanced/conditioning/edit_models",
        description="This node sets the guiding latent for an edit model. If the model supports "
                    "it you can chain multiple to set multiple reference images.",
        inputs=(
            Input("conditioning", CONDITIONING),
            Input("latent", LATENT, optional=True),
        ),
        outputs=(Output("CONDITIONING", CONDITIONING),),
    )

    execute = implemented_by("comfyless.nodes.impl.conditioning:reference_latent")


# The UI's choices; "uxo/uno" is stored in the conditioning as "uxo" (ComfyUI's mapping).
REFERENCE_LATENTS_METHODS = ("offset", "index", "uxo/uno")


class FluxKontextMultiReferenceLatentMethod(Node):
    """Set how the model places several reference latents (`reference_latents_method`)."""

    schema = NodeSchema(
        "FluxKontextMultiReferenceLatentMethod",
        category="advanced/conditioning/flux",
        inputs=(
            Input("conditioning", CONDITIONING),
            Input("reference_latents_method", COMBO, choices=REFERENCE_LATENTS_METHODS),
        ),
        outputs=(Output("CONDITIONING", CONDITIONING),),
        experimental=True,
    )

    execute = implemented_by(
        "comfyless.nodes.impl.conditioning:flux_kontext_multi_reference_latent_method")


NODES = [CLIPTextEncode, CLIPSetLastLayer, ReferenceLatent, FluxKontextMultiReferenceLatentMethod]
