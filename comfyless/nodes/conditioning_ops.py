"""Conditioning and sigma operations (ComfyUI's schemas): ConditioningCombine, ConditioningConcat,
ConditioningAverage, ConditioningSetTimestepRange, ConditioningSetArea,
ConditioningSetAreaPercentage, ConditioningSetMask (nodes.py) and SetFirstSigma, ManualSigmas
(comfy_extras nodes_custom_sampler).

The option-setting nodes write ComfyUI's option keys into every entry: `start_percent` /
`end_percent` (the sampler honours them, models/guidance.py), `area` / `strength` /
`set_area_to_bounds` and `mask` / `mask_strength` (the sampler crops and weights area and mask
entries as ComfyUI: models/cond_areas.py).
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import COMBO, CONDITIONING, FLOAT, INT, MASK, SIGMAS, STRING
from .latent import MAX_RESOLUTION

_IMPL = "comfyless.nodes.impl.conditioning_ops"
_OUT = (Output("CONDITIONING", CONDITIONING),)


class ConditioningCombine(Node):
    """Both conditioning lists as one: the sampler averages their entries' predictions."""

    schema = NodeSchema(
        "ConditioningCombine",
        display_name="Conditioning (Combine)",
        category="conditioning",
        inputs=(Input("conditioning_1", CONDITIONING), Input("conditioning_2", CONDITIONING)),
        outputs=_OUT,
    )

    execute = implemented_by(f"{_IMPL}:conditioning_combine")


class ConditioningConcat(Node):
    """Append the first `conditioning_from` context's tokens to every `conditioning_to` entry."""

    schema = NodeSchema(
        "ConditioningConcat",
        display_name="Conditioning (Concat)",
        category="conditioning",
        inputs=(Input("conditioning_to", CONDITIONING), Input("conditioning_from", CONDITIONING)),
        outputs=_OUT,
    )

    execute = implemented_by(f"{_IMPL}:conditioning_concat")


class ConditioningAverage(Node):
    """Blend every `conditioning_to` entry with the first `conditioning_from` entry.

    No display name: ComfyUI's display-name table spells the key "ConditioningAverage " (with a
    trailing space), so the UI shows the class name.
    """

    schema = NodeSchema(
        "ConditioningAverage",
        category="conditioning",
        inputs=(
            Input("conditioning_to", CONDITIONING),
            Input("conditioning_from", CONDITIONING),
            Input("conditioning_to_strength", FLOAT, default=1.0, min=0.0, max=1.0, step=0.01),
        ),
        outputs=_OUT,
    )

    execute = implemented_by(f"{_IMPL}:conditioning_average")


class ConditioningSetTimestepRange(Node):
    """Use the conditioning only between `start` and `end` (fractions of the sampling)."""

    schema = NodeSchema(
        "ConditioningSetTimestepRange",
        category="advanced/conditioning",
        inputs=(
            Input("conditioning", CONDITIONING),
            Input("start", FLOAT, default=0.0, min=0.0, max=1.0, step=0.001),
            Input("end", FLOAT, default=1.0, min=0.0, max=1.0, step=0.001),
        ),
        outputs=_OUT,
    )

    execute = implemented_by(f"{_IMPL}:conditioning_set_timestep_range")


def _strength() -> Input:
    return Input("strength", FLOAT, default=1.0, min=0.0, max=10.0, step=0.01)


class ConditioningSetArea(Node):
    """Restrict the conditioning to a pixel rectangle (stored in latent units, pixels // 8)."""

    schema = NodeSchema(
        "ConditioningSetArea",
        display_name="Conditioning (Set Area)",
        category="conditioning",
        inputs=(
            Input("conditioning", CONDITIONING),
            Input("width", INT, default=64, min=64, max=MAX_RESOLUTION, step=8),
            Input("height", INT, default=64, min=64, max=MAX_RESOLUTION, step=8),
            Input("x", INT, default=0, min=0, max=MAX_RESOLUTION, step=8),
            Input("y", INT, default=0, min=0, max=MAX_RESOLUTION, step=8),
            _strength(),
        ),
        outputs=_OUT,
    )

    execute = implemented_by(f"{_IMPL}:conditioning_set_area")


class ConditioningSetAreaPercentage(Node):
    """Restrict the conditioning to a rectangle given as fractions of the image."""

    schema = NodeSchema(
        "ConditioningSetAreaPercentage",
        display_name="Conditioning (Set Area with Percentage)",
        category="conditioning",
        inputs=(
            Input("conditioning", CONDITIONING),
            Input("width", FLOAT, default=1.0, min=0, max=1.0, step=0.01),
            Input("height", FLOAT, default=1.0, min=0, max=1.0, step=0.01),
            Input("x", FLOAT, default=0, min=0, max=1.0, step=0.01),
            Input("y", FLOAT, default=0, min=0, max=1.0, step=0.01),
            _strength(),
        ),
        outputs=_OUT,
    )

    execute = implemented_by(f"{_IMPL}:conditioning_set_area_percentage")


# ConditioningSetMask `set_cond_area`: "mask bounds" crops the cond's area to the mask's bounds
SET_COND_AREA = ("default", "mask bounds")


class ConditioningSetMask(Node):
    """Weight the conditioning by a mask (`mask_strength`)."""

    schema = NodeSchema(
        "ConditioningSetMask",
        display_name="Conditioning (Set Mask)",
        category="conditioning",
        inputs=(
            Input("conditioning", CONDITIONING),
            Input("mask", MASK),
            _strength(),
            Input("set_cond_area", COMBO, choices=SET_COND_AREA),
        ),
        outputs=_OUT,
    )

    execute = implemented_by(f"{_IMPL}:conditioning_set_mask")


class SetFirstSigma(Node):
    """A copy of the schedule with its first sigma replaced."""

    schema = NodeSchema(
        "SetFirstSigma",
        category="sampling/custom_sampling/sigmas",
        inputs=(
            Input("sigmas", SIGMAS),
            Input("sigma", FLOAT, default=136.0, min=0.0, max=20000.0, step=0.001, round=False),
        ),
        outputs=(Output("SIGMAS", SIGMAS),),
    )

    execute = implemented_by(f"{_IMPL}:set_first_sigma")


class ManualSigmas(Node):
    """A schedule typed in as text: every number found in the string, in order."""

    schema = NodeSchema(
        "ManualSigmas",
        category="experimental/custom_sampling",
        experimental=True,
        inputs=(Input("sigmas", STRING, default="1, 0.5"),),
        outputs=(Output("SIGMAS", SIGMAS),),
    )

    execute = implemented_by(f"{_IMPL}:manual_sigmas")


NODES = [ConditioningCombine, ConditioningConcat, ConditioningAverage, SetFirstSigma,
         ManualSigmas, ConditioningSetTimestepRange, ConditioningSetArea,
         ConditioningSetAreaPercentage, ConditioningSetMask]
