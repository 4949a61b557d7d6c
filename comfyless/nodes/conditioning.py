"""Conditioning nodes (ComfyUI's schemas): CLIPTextEncode, CLIPSetLastLayer, the Flux / SD3
text nodes (CLIPTextEncodeFlux, CLIPTextEncodeSD3, FluxGuidance, FluxDisableGuidance),
T5TokenizerOptions, and the edit-model (Flux Kontext) reference nodes ReferenceLatent,
FluxKontextMultiReferenceLatentMethod.

CONDITIONING is ComfyUI's `[[cond Tensor[1, 77k, D], {"pooled_output": Tensor[1, P], ...}]]`;
Flux entries may carry "guidance" (float, or None to skip the guidance embedding); the reference
nodes add `reference_latents` (list of raw latents) / `reference_latents_method` to every
entry's options (model-families.md §1.3).
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import CLIP, COMBO, CONDITIONING, FLOAT, INT, LATENT, STRING


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
# "index_timestep_zero" = "index" placement with the reference tokens modulated at timestep 0
# (Qwen-Image-Edit-2511's default; models/families/qwen_image/network.py).
REFERENCE_LATENTS_METHODS = ("offset", "index", "uxo/uno", "index_timestep_zero")


class FluxKontextMultiReferenceLatentMethod(Node):
    """Set how the model places several reference latents (`reference_latents_method`)."""

    schema = NodeSchema(
        "FluxKontextMultiReferenceLatentMethod",
        display_name="Edit Model Reference Method",
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


def _guidance_input() -> Input:
    return Input("guidance", FLOAT, default=3.5, min=0.0, max=100.0, step=0.1)


class CLIPTextEncodeFlux(Node):
    """Encode separate CLIP-L and T5-XXL prompts for Flux, with the guidance value."""

    schema = NodeSchema(
        "CLIPTextEncodeFlux",
        category="advanced/conditioning/flux",
        inputs=(
            Input("clip", CLIP),
            Input("clip_l", STRING, multiline=True),
            Input("t5xxl", STRING, multiline=True),
            _guidance_input(),
        ),
        outputs=(Output("CONDITIONING", CONDITIONING),),
    )

    execute = implemented_by("comfyless.nodes.impl.conditioning:clip_text_encode_flux")


# CLIPTextEncodeSD3 `empty_padding`: "none" drops an empty field's tokens
EMPTY_PADDING = ("none", "empty_prompt")


class CLIPTextEncodeSD3(Node):
    """Encode separate CLIP-L, CLIP-G and T5-XXL prompts for SD3."""

    schema = NodeSchema(
        "CLIPTextEncodeSD3",
        category="advanced/conditioning",
        inputs=(
            Input("clip", CLIP),
            Input("clip_l", STRING, multiline=True),
            Input("clip_g", STRING, multiline=True),
            Input("t5xxl", STRING, multiline=True),
            Input("empty_padding", COMBO, choices=EMPTY_PADDING, default="none"),
        ),
        outputs=(Output("CONDITIONING", CONDITIONING),),
    )

    execute = implemented_by("comfyless.nodes.impl.conditioning:clip_text_encode_sd3")


class FluxGuidance(Node):
    """Set the Flux guidance value on every conditioning entry."""

    schema = NodeSchema(
        "FluxGuidance",
        category="advanced/conditioning/flux",
        inputs=(Input("conditioning", CONDITIONING), _guidance_input()),
        outputs=(Output("CONDITIONING", CONDITIONING),),
    )

    execute = implemented_by("comfyless.nodes.impl.conditioning:flux_guidance")


class FluxDisableGuidance(Node):
    """Set guidance to None on every entry: the guidance embedding is skipped."""

    schema = NodeSchema(
        "FluxDisableGuidance",
        category="advanced/conditioning/flux",
        description="This node completely disables the guidance embed on Flux and Flux like "
                    "models",
        inputs=(Input("conditioning", CONDITIONING),),
        outputs=(Output("CONDITIONING", CONDITIONING),),
    )

    execute = implemented_by("comfyless.nodes.impl.conditioning:flux_disable_guidance")


class T5TokenizerOptions(Node):
    """A CLIP whose T5 tokenizers pad with `min_padding` extra pads and to `min_length`."""

    schema = NodeSchema(
        "T5TokenizerOptions",
        category="_for_testing/conditioning",
        experimental=True,
        inputs=(
            Input("clip", CLIP),
            Input("min_padding", INT, default=0, min=0, max=10000, step=1),
            Input("min_length", INT, default=0, min=0, max=10000, step=1),
        ),
        outputs=(Output("CLIP", CLIP),),
    )

    execute = implemented_by("comfyless.nodes.impl.conditioning:t5_tokenizer_options")


NODES = [CLIPTextEncode, CLIPSetLastLayer, CLIPTextEncodeFlux, CLIPTextEncodeSD3, FluxGuidance,
         FluxDisableGuidance, T5TokenizerOptions, ReferenceLatent,
         FluxKontextMultiReferenceLatentMethod]
