"""Model nodes of ComfyUI's comfy_extras/nodes_model_merging.py (ModelMergeSimple,
CheckpointSave) and nodes_freelunch.py (FreeU_V2). Code in nodes/impl/model_merge.py."""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import CLIP, FLOAT, MODEL, STRING, VAE

_IMPL = "comfyless.nodes.impl.model_merge"


class ModelMergeSimple(Node):
    """ratio * model1 + (1 - ratio) * model2, weight by weight (ratio 1: model1 unchanged)."""

    schema = NodeSchema(
        "ModelMergeSimple",
        category="advanced/model_merging",
        inputs=(
            Input("model1", MODEL),
            Input("model2", MODEL),
            Input("ratio", FLOAT, default=1.0, min=0.0, max=1.0, step=0.01),
        ),
        outputs=(Output("MODEL", MODEL),),
    )
    execute = implemented_by(f"{_IMPL}:model_merge_simple")


class CheckpointSave(Node):
    """MODEL, CLIP and VAE as one .safetensors checkpoint in the family's file layout,
    `output/<prefix>_<counter:05>_.safetensors` (loadable by CheckpointLoaderSimple)."""

    schema = NodeSchema(
        "CheckpointSave",
        display_name="Save Checkpoint",
        category="advanced/model_merging",
        inputs=(
            Input("model", MODEL),
            Input("clip", CLIP),
            Input("vae", VAE),
            Input("filename_prefix", STRING, default="checkpoints/ComfyUI", save_to="output"),
        ),
        outputs=(),
        output_node=True,
    )
    execute = implemented_by(f"{_IMPL}:checkpoint_save")


_FACTOR = {"min": 0.0, "max": 10.0, "step": 0.01}


class FreeU_V2(Node):  # noqa: N801 (ComfyUI's class_type)
    """FreeU v2: in the UNet's output blocks, boost the backbone features (by their channel
    mean) and damp the low frequencies of the skip features, at 4x and 2x model_channels."""

    schema = NodeSchema(
        "FreeU_V2",
        display_name="FreeU (v2)",
        category="model_patches/unet",
        description="Applies version 2 of the FreeU patch to the UNet model, featuring adaptive "
                    "modulation based on channel feature statistics for improved generation "
                    "quality.",
        inputs=(
            Input("model", MODEL, tooltip="The UNet model to apply the FreeU v2 patch to."),
            Input("b1", FLOAT, default=1.3, **_FACTOR,
                  tooltip="Backbone factor 1: Scaling factor applied to main backbone features "
                          "in stage 1 with mean feature modulation."),
            Input("b2", FLOAT, default=1.4, **_FACTOR,
                  tooltip="Backbone factor 2: Scaling factor applied to main backbone features "
                          "in stage 2 with mean feature modulation."),
            Input("s1", FLOAT, default=0.9, **_FACTOR,
                  tooltip="Skip factor 1: Attenuation factor applied to skip connection "
                          "features in stage 1 via Fourier filtering."),
            Input("s2", FLOAT, default=0.2, **_FACTOR,
                  tooltip="Skip factor 2: Attenuation factor applied to skip connection "
                          "features in stage 2 via Fourier filtering."),
        ),
        outputs=(Output("MODEL", MODEL, tooltip="The patched UNet model with FreeU v2 enabled."),),
    )
    execute = implemented_by(f"{_IMPL}:freeu_v2")


NODES = [ModelMergeSimple, CheckpointSave, FreeU_V2]
