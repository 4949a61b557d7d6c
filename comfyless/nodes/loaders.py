"""Model loader nodes: CheckpointLoaderSimple, UNETLoader, VAELoader, CLIPLoader, DualCLIPLoader,
TripleCLIPLoader.

Schemas follow ComfyUI (workflow-formats.md §8 and ComfyUI's node definitions). File combos come
from the model folders (`choices_from`), so a missing file is a validation error. Loading code
lives in comfyless.models, called from nodes/impl/loaders.py (imported at execute time).
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import BOOLEAN, CLIP, COMBO, MODEL, VAE

# UNETLoader weight_dtype -> torch dtype name the weights are rounded through ("default": the
# device's dtype). fp8 weights are rounded to fp8 and then held in the compute dtype, so
# results match ComfyUI's fp8 storage (without its memory saving).
WEIGHT_DTYPES = {
    "default": None,
    "fp8_e4m3fn": "float8_e4m3fn",
    "fp8_e4m3fn_fast": "float8_e4m3fn",
    "fp8_e5m2": "float8_e5m2",
}
# ComfyUI v0.3.64's CLIPLoader / DualCLIPLoader `type` options (model-families.md §7); the ones
# we can load are the family records' `clip_type` and the T5 text sets (models/text_sets.py:
# flux, sd3); the others fail at run time saying they are not supported.
CLIP_TYPES = ("stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv",
              "pixart", "cosmos", "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2",
              "qwen_image", "hunyuan_image")
DUAL_CLIP_TYPES = ("sdxl", "sd3", "flux", "hunyuan_video", "hidream", "hunyuan_image")
CLIP_DEVICES = ("default", "cpu")


class CheckpointLoaderSimple(Node):
    """A single-file SD1.x / SD2.x / SDXL checkpoint as MODEL, CLIP and VAE."""

    schema = NodeSchema(
        "CheckpointLoaderSimple",
        display_name="Load Checkpoint",
        category="loaders",
        inputs=(Input("ckpt_name", COMBO, choices_from="checkpoints",
                      tooltip="The name of the checkpoint (model) to load."),),
        outputs=(Output("MODEL", MODEL), Output("CLIP", CLIP), Output("VAE", VAE)),
    )

    execute = implemented_by("comfyless.nodes.impl.loaders:checkpoint_loader_simple")


class UNETLoader(Node):
    """A diffusion-model-only file (or the UNet of a full checkpoint) as MODEL."""

    schema = NodeSchema(
        "UNETLoader",
        display_name="Load Diffusion Model",
        category="advanced/loaders",
        inputs=(
            Input("unet_name", COMBO, choices_from="diffusion_models"),
            Input("weight_dtype", COMBO, choices=tuple(WEIGHT_DTYPES), default="default"),
        ),
        outputs=(Output("MODEL", MODEL),),
    )

    execute = implemented_by("comfyless.nodes.impl.loaders:unet_loader")


class VAELoader(Node):
    """A standalone VAE file (LDM or diffusers layout) as VAE."""

    schema = NodeSchema(
        "VAELoader",
        display_name="Load VAE",
        category="loaders",
        inputs=(Input("vae_name", COMBO, choices_from="vae"),),
        outputs=(Output("VAE", VAE),),
    )

    execute = implemented_by("comfyless.nodes.impl.loaders:vae_loader")


class CLIPLoader(Node):
    """One text-encoder file as CLIP (stable_diffusion: CLIP-L for SD1.x, ViT-H for SD2.x)."""

    schema = NodeSchema(
        "CLIPLoader",
        display_name="Load CLIP",
        category="advanced/loaders",
        inputs=(
            Input("clip_name", COMBO, choices_from="text_encoders"),
            Input("type", COMBO, choices=CLIP_TYPES, default="stable_diffusion"),
            Input("device", COMBO, choices=CLIP_DEVICES, default="default", optional=True),
        ),
        outputs=(Output("CLIP", CLIP),),
    )

    execute = implemented_by("comfyless.nodes.impl.loaders:clip_loader")


class DualCLIPLoader(Node):
    """Two text-encoder files as one CLIP (sdxl: CLIP-L + bigG; flux: CLIP-L + T5-XXL; sd3:
    any two of CLIP-L, CLIP-G, T5-XXL)."""

    schema = NodeSchema(
        "DualCLIPLoader",
        display_name="DualCLIPLoader",
        category="advanced/loaders",
        inputs=(
            Input("clip_name1", COMBO, choices_from="text_encoders"),
            Input("clip_name2", COMBO, choices_from="text_encoders"),
            Input("type", COMBO, choices=DUAL_CLIP_TYPES, default="sdxl"),
            Input("device", COMBO, choices=CLIP_DEVICES, default="default", optional=True),
        ),
        outputs=(Output("CLIP", CLIP),),
    )

    execute = implemented_by("comfyless.nodes.impl.loaders:dual_clip_loader")


class TripleCLIPLoader(Node):
    """Three text-encoder files as one SD3 CLIP (CLIP-L, CLIP-G, T5-XXL in any order)."""

    schema = NodeSchema(
        "TripleCLIPLoader",
        category="advanced/loaders",
        description="[Recipes]\n\nsd3: clip-l, clip-g, t5",
        inputs=(
            Input("clip_name1", COMBO, choices_from="text_encoders"),
            Input("clip_name2", COMBO, choices_from="text_encoders"),
            Input("clip_name3", COMBO, choices_from="text_encoders"),
        ),
        outputs=(Output("CLIP", CLIP),),
    )

    execute = implemented_by("comfyless.nodes.impl.loaders:triple_clip_loader")


# ModelSamplingDiscrete `sampling` option -> ModelSampling prediction (None: not implemented).
SAMPLING_TYPES = {"eps": "eps", "v_prediction": "v", "lcm": None, "x0": "x0", "img_to_img": None}


class ModelSamplingDiscrete(Node):
    """Override a model's prediction type (e.g. an SD2 file misdetected) and zero-terminal-SNR."""

    schema = NodeSchema(
        "ModelSamplingDiscrete",
        category="advanced/model",
        inputs=(
            Input("model", MODEL),
            Input("sampling", COMBO, choices=tuple(SAMPLING_TYPES), default="eps"),
            Input("zsnr", BOOLEAN, default=False),
        ),
        outputs=(Output("MODEL", MODEL),),
    )

    execute = implemented_by("comfyless.nodes.impl.loaders:model_sampling_discrete")


NODES = [CheckpointLoaderSimple, UNETLoader, VAELoader, CLIPLoader, DualCLIPLoader,
         TripleCLIPLoader, ModelSamplingDiscrete]
