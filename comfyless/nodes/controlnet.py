"""ControlNet nodes (ComfyUI's schemas): ControlNetLoader, DiffControlNetLoader, ControlNetApply
(the old, deprecated one), ControlNetApplyAdvanced (nodes.py) and SetUnionControlNetType
(comfy_extras/nodes_controlnet.py).

Loading and running live in comfyless.models.controlnet (SD1.x/SD2.x/SDXL ControlNets, original
and diffusers file layouts); the apply nodes only record the ControlNet, hint image, strength,
start/end percent and the ControlNet already on each entry (`control` option), and the sampler
runs the chain at every step (models/guidance.py). Files come from models/controlnet and
models/t2i_adapter (ComfyUI's "controlnet" folder).
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import COMBO, CONDITIONING, CONTROL_NET, FLOAT, IMAGE, MODEL, VAE

_IMPL = "comfyless.nodes.impl.controlnet"
# SetUnionControlNetType's choices: "auto" then ComfyUI's UNION_CONTROLNET_TYPES in order
# (comfy/cldm/control_types.py; the value is the ControlNet++ task index).
UNION_CONTROLNET_TYPES = {
    "openpose": 0,
    "depth": 1,
    "hed/pidi/scribble/ted": 2,
    "canny/lineart/anime_lineart/mlsd": 3,
    "normal": 4,
    "segment": 5,
    "tile": 6,
    "repaint": 7,
}


def _strength() -> Input:
    return Input("strength", FLOAT, default=1.0, min=0.0, max=10.0, step=0.01)


def _percent(name: str, default: float) -> Input:
    return Input(name, FLOAT, default=default, min=0.0, max=1.0, step=0.001)


class ControlNetLoader(Node):
    """A ControlNet file (original or diffusers layout) as CONTROL_NET."""

    schema = NodeSchema(
        "ControlNetLoader",
        display_name="Load ControlNet Model",
        category="loaders",
        inputs=(Input("control_net_name", COMBO, choices_from="controlnet"),),
        outputs=(Output("CONTROL_NET", CONTROL_NET),),
    )

    execute = implemented_by(f"{_IMPL}:controlnet_loader")


class DiffControlNetLoader(Node):
    """A ControlNet file; a "difference" file gets the model's UNet weights added back."""

    schema = NodeSchema(
        "DiffControlNetLoader",
        display_name="Load ControlNet Model (diff)",
        category="loaders",
        inputs=(Input("model", MODEL), Input("control_net_name", COMBO, choices_from="controlnet")),
        outputs=(Output("CONTROL_NET", CONTROL_NET),),
    )

    execute = implemented_by(f"{_IMPL}:diff_controlnet_loader")


class ControlNetApply(Node):
    """The old apply node: one conditioning, whole schedule; the sampler also gives the
    ControlNet to the negative pass when the negative has none (control_apply_to_uncond)."""

    schema = NodeSchema(
        "ControlNetApply",
        display_name="Apply ControlNet (OLD)",
        category="conditioning/controlnet",
        deprecated=True,
        inputs=(Input("conditioning", CONDITIONING), Input("control_net", CONTROL_NET),
                Input("image", IMAGE), _strength()),
        outputs=(Output("CONDITIONING", CONDITIONING),),
    )

    execute = implemented_by(f"{_IMPL}:controlnet_apply")


class ControlNetApplyAdvanced(Node):
    """Put a ControlNet with its hint image on both positive and negative conditioning,
    active between start_percent and end_percent of the schedule (strength 0: unchanged)."""

    schema = NodeSchema(
        "ControlNetApplyAdvanced",
        display_name="Apply ControlNet",
        category="conditioning/controlnet",
        inputs=(
            Input("positive", CONDITIONING),
            Input("negative", CONDITIONING),
            Input("control_net", CONTROL_NET),
            Input("image", IMAGE),
            _strength(),
            _percent("start_percent", 0.0),
            _percent("end_percent", 1.0),
            # only ControlNets working in latent space use it (SD3/Flux); SD ones ignore it
            Input("vae", VAE, optional=True),
        ),
        outputs=(Output("positive", CONDITIONING), Output("negative", CONDITIONING)),
    )

    execute = implemented_by(f"{_IMPL}:controlnet_apply_advanced")


class SetUnionControlNetType(Node):
    """Tell a ControlNet++ union ControlNet which kind of hint it gets ("auto": none)."""

    schema = NodeSchema(
        "SetUnionControlNetType",
        category="conditioning/controlnet",
        inputs=(Input("control_net", CONTROL_NET),
                Input("type", COMBO, choices=("auto", *UNION_CONTROLNET_TYPES))),
        outputs=(Output("CONTROL_NET", CONTROL_NET),),
    )

    execute = implemented_by(f"{_IMPL}:set_union_controlnet_type")


NODES = [ControlNetLoader, DiffControlNetLoader, ControlNetApply, ControlNetApplyAdvanced,
         SetUnionControlNetType]
