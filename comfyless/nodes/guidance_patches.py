"""Guidance patches and guiders (ComfyUI's schemas): CFGNorm (comfy_extras nodes_cfg),
RescaleCFG (nodes_model_advanced), DifferentialDiffusion (nodes_differential_diffusion) and
DualCFGGuider (nodes_custom_sampler).

The model patches return a clone of the MODEL carrying a sampler hook (ModelPatcher's
sampler_cfg_function / post_cfg_functions / denoise_mask_function, called by
models/guidance.py); the input model is never changed. Formulas: nodes/impl/guidance_patches.py.
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import BOOLEAN, COMBO, CONDITIONING, FLOAT, GUIDER, MODEL

_IMPL = "comfyless.nodes.impl.guidance_patches"
DUAL_CFG_STYLES = ("regular", "nested")


class CFGNorm(Node):
    """Post-CFG: scale the guided x0 down so its channel norm never exceeds the positive
    prediction's, times `strength`. With `pre_cfg` (newer ComfyUI; Lens-style norm-scaled CFG)
    the combined eps is rescaled to the positive eps' channel norm instead, before the
    sampler's CFG combine and without clamping; `strength` blends back towards plain CFG."""

    schema = NodeSchema(
        "CFGNorm",
        category="advanced/guidance",
        experimental=True,
        inputs=(
            Input("model", MODEL),
            Input("strength", FLOAT, default=1.0, min=0.0, max=100.0, step=0.01),
            # the exact date is not known: templates saved by ComfyUI 0.22 have it, older
            # ones do not (they load with the default)
            Input("pre_cfg", BOOLEAN, default=False, optional=True, added_in="2026-01-01"),
        ),
        outputs=(Output("patched_model", MODEL),),
        older_widget_layouts=(("pre_cfg",),),  # saved before pre_cfg existed: [strength]
    )

    execute = implemented_by(f"{_IMPL}:cfg_norm")


class RescaleCFG(Node):
    """CFG with the guided prediction's std rescaled towards the positive one's
    (`multiplier` 1: fully rescaled, 0: plain CFG)."""

    schema = NodeSchema(
        "RescaleCFG",
        category="advanced/model",
        inputs=(
            Input("model", MODEL),
            Input("multiplier", FLOAT, default=0.7, min=0.0, max=1.0, step=0.01),
        ),
        outputs=(Output("MODEL", MODEL),),
    )

    execute = implemented_by(f"{_IMPL}:rescale_cfg")


class DifferentialDiffusion(Node):
    """Per step, only mask elements at or above the step's progress threshold are resampled
    (a soft mask becomes a schedule); `strength` < 1 blends with the soft mask."""

    schema = NodeSchema(
        "DifferentialDiffusion",
        display_name="Differential Diffusion",
        category="_for_testing",
        experimental=True,
        inputs=(
            Input("model", MODEL),
            Input("strength", FLOAT, default=1.0, min=0.0, max=1.0, step=0.01, optional=True),
        ),
        outputs=(Output("MODEL", MODEL),),
    )

    execute = implemented_by(f"{_IMPL}:differential_diffusion")


class DualCFGGuider(Node):
    """A guider with two positive conditionings: cond1 against cond2 at cfg_conds, cond2
    against negative at cfg_cond2_negative (style: added or nested)."""

    schema = NodeSchema(
        "DualCFGGuider",
        category="sampling/custom_sampling/guiders",
        inputs=(
            Input("model", MODEL),
            Input("cond1", CONDITIONING),
            Input("cond2", CONDITIONING),
            Input("negative", CONDITIONING),
            Input("cfg_conds", FLOAT, default=8.0, min=0.0, max=100.0, step=0.1, round=0.01),
            Input("cfg_cond2_negative", FLOAT, default=8.0, min=0.0, max=100.0, step=0.1,
                  round=0.01),
            Input("style", COMBO, choices=DUAL_CFG_STYLES),
        ),
        outputs=(Output("GUIDER", GUIDER),),
    )

    execute = implemented_by(f"{_IMPL}:dual_cfg_guider")


NODES = [CFGNorm, RescaleCFG, DifferentialDiffusion, DualCFGGuider]
