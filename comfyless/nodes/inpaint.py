"""Inpaint and InstructPix2Pix conditioning nodes (ComfyUI's schemas): InpaintModelConditioning,
VAEEncodeForInpaint (nodes.py) and InstructPixToPixConditioning (comfy_extras nodes_ip2p).

They write ComfyUI's option keys: `concat_latent_image` / `concat_mask` on every conditioning
entry (an inpaint or InstructPix2Pix UNet gets them beside x, a 4-channel UNet ignores them:
models/families/sd/conditioning.py) and `noise_mask` on the LATENT (the sampler keeps the
input outside it). Rules (pixel fill, 8-pixel crop, mask growth) in nodes/impl/inpaint.py.
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import BOOLEAN, CONDITIONING, IMAGE, INT, LATENT, MASK, VAE

_IMPL = "comfyless.nodes.impl.inpaint"
_COND_OUTS = (Output("positive", CONDITIONING), Output("negative", CONDITIONING),
              Output("latent", LATENT))


class InpaintModelConditioning(Node):
    """Encode the image with the masked area filled grey as the inpaint model's concat latent;
    the LATENT is the untouched image's encoding (with the mask as noise_mask)."""

    schema = NodeSchema(
        "InpaintModelConditioning",
        category="conditioning/inpaint",
        inputs=(
            Input("positive", CONDITIONING),
            Input("negative", CONDITIONING),
            Input("vae", VAE),
            Input("pixels", IMAGE),
            Input("mask", MASK),
            Input("noise_mask", BOOLEAN, default=True,
                  tooltip="Add a noise mask to the latent so sampling will only happen within "
                          "the mask. Might improve results or completely break things "
                          "depending on the model."),
        ),
        outputs=_COND_OUTS,
    )

    execute = implemented_by(f"{_IMPL}:inpaint_model_conditioning")


class VAEEncodeForInpaint(Node):
    """Encode the image with the masked area filled grey; noise_mask = the mask grown by
    `grow_mask_by` pixels (rounded to 0/1)."""

    schema = NodeSchema(
        "VAEEncodeForInpaint",
        display_name="VAE Encode (for Inpainting)",
        category="latent/inpaint",
        inputs=(
            Input("pixels", IMAGE),
            Input("vae", VAE),
            Input("mask", MASK),
            Input("grow_mask_by", INT, default=6, min=0, max=64, step=1),
        ),
        outputs=(Output("LATENT", LATENT),),
    )

    execute = implemented_by(f"{_IMPL}:vae_encode_for_inpaint")


class InstructPixToPixConditioning(Node):
    """The image's latent as concat_latent_image on both conditionings; an empty LATENT of
    its size to sample from."""

    schema = NodeSchema(
        "InstructPixToPixConditioning",
        display_name="Instruct PixToPix Conditioning",
        category="conditioning/instructpix2pix",
        description="Prepares conditioning inputs for InstructPixToPix image editing models by "
                    "combining positive/negative prompts with target image latents.",
        inputs=(
            Input("positive", CONDITIONING),
            Input("negative", CONDITIONING),
            Input("vae", VAE),
            Input("pixels", IMAGE),
        ),
        outputs=_COND_OUTS,
    )

    execute = implemented_by(f"{_IMPL}:instruct_pix_to_pix_conditioning")


NODES = [InpaintModelConditioning, VAEEncodeForInpaint, InstructPixToPixConditioning]
