"""Flow-matching model sampling nodes and the 16-channel empty latent (ComfyUI's schemas).

ModelSamplingSD3 / ModelSamplingAuraFlow: discrete flow sampling (σ = s·t / (1 + (s−1)·t)) with
timestep multiplier 1000 / 1; ModelSamplingFlux: Flux's exponential shift with μ from the image
size (model-families.md §6). Each returns a new MODEL; the input model is never changed.
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import COMBO, FLOAT, INT, LATENT, MODEL
from .latent import MAX_RESOLUTION


class ModelSamplingSD3(Node):
    """Flow sampling with shift `shift` and timestep σ·1000 (SD3, SD3.5; any model)."""

    schema = NodeSchema(
        "ModelSamplingSD3",
        category="advanced/model",
        inputs=(
            Input("model", MODEL),
            Input("shift", FLOAT, default=3.0, min=0.0, max=100.0, step=0.01),
        ),
        outputs=(Output("MODEL", MODEL),),
    )

    execute = implemented_by("comfyless.nodes.impl.model_sampling:model_sampling_sd3")


# ModelSamplingAuraFlow's `sampling` (newer ComfyUI, an advanced input): "flow" is the plain
# rectified flow; "img_to_img_velocity" (Marigold v2's deterministic image-to-image
# parameterisation) is not implemented here and is refused at validation.
AURA_FLOW_SAMPLING = ("flow", "img_to_img_velocity")


class ModelSamplingAuraFlow(Node):
    """Flow sampling with shift `shift` and timestep σ (multiplier 1)."""

    schema = NodeSchema(
        "ModelSamplingAuraFlow",
        category="advanced/model",
        inputs=(
            Input("model", MODEL),
            Input("shift", FLOAT, default=1.73, min=0.0, max=100.0, step=0.01),
            # date unknown: templates saved by recent ComfyUI carry it, older ones do not
            Input("sampling", COMBO, choices=AURA_FLOW_SAMPLING, default="flow", optional=True,
                  added_in="2026-01-01"),
        ),
        outputs=(Output("MODEL", MODEL),),
        older_widget_layouts=(("sampling",),),  # saved before `sampling` existed: [shift]
    )

    @staticmethod
    def check(**constants) -> dict[str, str]:
        if constants.get("sampling") == "img_to_img_velocity":
            return {"sampling": "'img_to_img_velocity' (Marigold v2's image-to-image velocity) "
                                "is not supported by comfyless yet; use 'flow'"}
        return {}

    execute = implemented_by("comfyless.nodes.impl.model_sampling:model_sampling_aura_flow")


class ModelSamplingFlux(Node):
    """Flux sampling with μ linear in the token count between base_shift (256 tokens) and
    max_shift (4096 tokens, 1024×1024)."""

    schema = NodeSchema(
        "ModelSamplingFlux",
        category="advanced/model",
        inputs=(
            Input("model", MODEL),
            Input("max_shift", FLOAT, default=1.15, min=0.0, max=100.0, step=0.01),
            Input("base_shift", FLOAT, default=0.5, min=0.0, max=100.0, step=0.01),
            Input("width", INT, default=1024, min=16, max=MAX_RESOLUTION, step=8),
            Input("height", INT, default=1024, min=16, max=MAX_RESOLUTION, step=8),
        ),
        outputs=(Output("MODEL", MODEL),),
    )

    execute = implemented_by("comfyless.nodes.impl.model_sampling:model_sampling_flux")


class EmptySD3LatentImage(Node):
    """A batch of zero 16-channel latents [batch_size, 16, height/8, width/8] (SD3, Flux)."""

    schema = NodeSchema(
        "EmptySD3LatentImage",
        category="latent/sd3",
        inputs=(
            Input("width", INT, default=1024, min=16, max=MAX_RESOLUTION, step=16),
            Input("height", INT, default=1024, min=16, max=MAX_RESOLUTION, step=16),
            Input("batch_size", INT, default=1, min=1, max=4096),
        ),
        outputs=(Output("LATENT", LATENT),),
    )

    execute = implemented_by("comfyless.nodes.impl.model_sampling:empty_sd3_latent_image")


NODES = [ModelSamplingSD3, ModelSamplingAuraFlow, ModelSamplingFlux, EmptySD3LatentImage]
