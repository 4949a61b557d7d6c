"""ComfyUI's custom-sampling nodes (comfy_extras nodes_custom_sampler) and ConditioningZeroOut.

Sampling split into parts that travel on their own sockets: SAMPLER (KSamplerSelect), SIGMAS
(BasicScheduler, SDTurboScheduler), NOISE (RandomNoise, DisableNoise), GUIDER (BasicGuider,
CFGGuider), put together by SamplerCustom / SamplerCustomAdvanced. SamplerCustom with
BasicScheduler + KSamplerSelect of the same names is KSampler. Names, inputs, defaults and
outputs are ComfyUI's; the sampler and scheduler combos are KSampler's lists (names comfyless
does not implement validate and fail at run time naming the input, as in KSampler).
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import (
    BOOLEAN,
    COMBO,
    CONDITIONING,
    FLOAT,
    GUIDER,
    INT,
    LATENT,
    MODEL,
    NOISE,
    SAMPLER,
    SEED_MAX,
    SIGMAS,
)
from .sampling import MAX_STEPS, SAMPLER_NAMES, SCHEDULER_NAMES

_IMPL = "comfyless.nodes.impl.custom_sampling"
_CATEGORY = "sampling/custom_sampling"


def _seed() -> Input:
    return Input("noise_seed", INT, default=0, min=0, max=SEED_MAX, control_after_generate=True,
                 tooltip="The random seed used for creating the noise.")


def _cfg() -> Input:
    return Input("cfg", FLOAT, default=8.0, min=0.0, max=100.0, step=0.1, round=0.01,
                 tooltip="Classifier-free guidance scale (1.0 skips the negative prompt).")


def _denoise() -> Input:
    return Input("denoise", FLOAT, default=1.0, min=0.0, max=1.0, step=0.01,
                 tooltip="The fraction of the schedule to run (its low-noise end).")


_OUTPUTS = (Output("output", LATENT), Output("denoised_output", LATENT))


class SamplerCustom(Node):
    """Sample a latent with a SAMPLER along SIGMAS under positive/negative CFG guidance."""

    schema = NodeSchema(
        "SamplerCustom",
        category=_CATEGORY,
        inputs=(
            Input("model", MODEL),
            Input("add_noise", BOOLEAN, default=True),
            _seed(),
            _cfg(),
            Input("positive", CONDITIONING),
            Input("negative", CONDITIONING),
            Input("sampler", SAMPLER),
            Input("sigmas", SIGMAS),
            Input("latent_image", LATENT),
        ),
        outputs=_OUTPUTS,
    )

    execute = implemented_by(f"{_IMPL}:sampler_custom")


class SamplerCustomAdvanced(Node):
    """Sample a latent from NOISE with a GUIDER and a SAMPLER along SIGMAS."""

    schema = NodeSchema(
        "SamplerCustomAdvanced",
        category=_CATEGORY,
        inputs=(
            Input("noise", NOISE),
            Input("guider", GUIDER),
            Input("sampler", SAMPLER),
            Input("sigmas", SIGMAS),
            Input("latent_image", LATENT),
        ),
        outputs=_OUTPUTS,
    )

    execute = implemented_by(f"{_IMPL}:sampler_custom_advanced")


class KSamplerSelect(Node):
    """A sampler by name, as a SAMPLER."""

    schema = NodeSchema(
        "KSamplerSelect",
        category=f"{_CATEGORY}/samplers",
        inputs=(Input("sampler_name", COMBO, choices=SAMPLER_NAMES, default=SAMPLER_NAMES[0]),),
        outputs=(Output("SAMPLER", SAMPLER),),
    )

    execute = implemented_by(f"{_IMPL}:ksampler_select")


class BasicScheduler(Node):
    """The model's noise levels for `steps` steps of a scheduler (denoise < 1: the tail)."""

    schema = NodeSchema(
        "BasicScheduler",
        category=f"{_CATEGORY}/schedulers",
        inputs=(
            Input("model", MODEL),
            Input("scheduler", COMBO, choices=SCHEDULER_NAMES, default=SCHEDULER_NAMES[0]),
            Input("steps", INT, default=20, min=1, max=MAX_STEPS),
            _denoise(),
        ),
        outputs=(Output("SIGMAS", SIGMAS),),
    )

    execute = implemented_by(f"{_IMPL}:basic_scheduler")


class SDTurboScheduler(Node):
    """SD-Turbo's noise levels: 1 to 10 of the timesteps 999, 899, ..., 99."""

    schema = NodeSchema(
        "SDTurboScheduler",
        category=f"{_CATEGORY}/schedulers",
        inputs=(
            Input("model", MODEL),
            Input("steps", INT, default=1, min=1, max=10),
            _denoise(),
        ),
        outputs=(Output("SIGMAS", SIGMAS),),
    )

    execute = implemented_by(f"{_IMPL}:sd_turbo_scheduler")


class RandomNoise(Node):
    """Initial noise drawn from a seed, as KSampler draws it."""

    schema = NodeSchema(
        "RandomNoise",
        category=f"{_CATEGORY}/noise",
        inputs=(_seed(),),
        outputs=(Output("NOISE", NOISE),),
    )

    execute = implemented_by(f"{_IMPL}:random_noise")


class DisableNoise(Node):
    """No initial noise (for latents that already carry their noise)."""

    schema = NodeSchema(
        "DisableNoise",
        category=f"{_CATEGORY}/noise",
        inputs=(),
        outputs=(Output("NOISE", NOISE),),
    )

    execute = implemented_by(f"{_IMPL}:disable_noise")


class BasicGuider(Node):
    """A model under one conditioning, no classifier-free guidance."""

    schema = NodeSchema(
        "BasicGuider",
        category=f"{_CATEGORY}/guiders",
        inputs=(Input("model", MODEL), Input("conditioning", CONDITIONING)),
        outputs=(Output("GUIDER", GUIDER),),
    )

    execute = implemented_by(f"{_IMPL}:basic_guider")


class CFGGuider(Node):
    """A model under positive/negative conditioning at a classifier-free guidance scale."""

    schema = NodeSchema(
        "CFGGuider",
        category=f"{_CATEGORY}/guiders",
        inputs=(
            Input("model", MODEL),
            Input("positive", CONDITIONING),
            Input("negative", CONDITIONING),
            _cfg(),
        ),
        outputs=(Output("GUIDER", GUIDER),),
    )

    execute = implemented_by(f"{_IMPL}:cfg_guider")


class ConditioningZeroOut(Node):
    """CONDITIONING with its context and pooled_output zeroed (other options kept)."""

    schema = NodeSchema(
        "ConditioningZeroOut",
        category="advanced/conditioning",
        inputs=(Input("conditioning", CONDITIONING),),
        outputs=(Output("CONDITIONING", CONDITIONING),),
    )

    execute = implemented_by(f"{_IMPL}:conditioning_zero_out")


NODES = [SamplerCustom, SamplerCustomAdvanced, KSamplerSelect, BasicScheduler, SDTurboScheduler,
         RandomNoise, DisableNoise, BasicGuider, CFGGuider, ConditioningZeroOut]
