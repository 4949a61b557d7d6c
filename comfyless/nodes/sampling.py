"""KSampler and KSamplerAdvanced (workflow-formats.md §8 for names, defaults and ranges).

The combos list every sampler and scheduler name ComfyUI offers, so any ComfyUI workflow
validates; the names comfyless implements are the keys of `comfyless.models.samplers.SAMPLERS`
and `comfyless.models.schedulers.SCHEDULERS`, and running another one is an error naming the
input. Sampling math lives in comfyless.models, called from nodes/impl/sampling.py (imported
at execute time: validation stays torch-free).
"""

from __future__ import annotations

from ..typesys.schema import Input, Node, NodeSchema, Output, implemented_by
from ..typesys.types import COMBO, CONDITIONING, FLOAT, INT, LATENT, MODEL, SEED_MAX

MAX_STEPS = 10000

# ComfyUI's KSampler.SAMPLERS / SCHEDULERS, in its order (workflow-formats.md §8).
SAMPLER_NAMES = (
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2",
    "exp_heun_2_x0", "exp_heun_2_x0_sde", "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast",
    "dpm_adaptive", "dpmpp_2s_ancestral", "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde",
    "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp", "dpmpp_2m_sde", "dpmpp_2m_sde_gpu",
    "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm",
    "lcm", "ipndm", "ipndm_v", "deis", "res_multistep", "res_multistep_cfg_pp",
    "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp", "gradient_estimation",
    "gradient_estimation_cfg_pp", "er_sde", "seeds_2", "seeds_3", "sa_solver", "sa_solver_pece",
    "ddim", "uni_pc", "uni_pc_bh2",
)
SCHEDULER_NAMES = ("simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta",
                   "normal", "linear_quadratic", "kl_optimal")


def _common_inputs() -> tuple[tuple[Input, ...], tuple[Input, ...]]:
    """(steps, cfg, sampler_name, scheduler) and (positive, negative, latent_image)."""
    head = (
        Input("steps", INT, default=20, min=1, max=MAX_STEPS,
              tooltip="The number of steps used in the denoising process."),
        Input("cfg", FLOAT, default=8.0, min=0.0, max=100.0, step=0.1, round=0.01,
              tooltip="Classifier-free guidance scale (1.0 skips the negative prompt)."),
        Input("sampler_name", COMBO, choices=SAMPLER_NAMES, default="euler",
              tooltip="The algorithm used when sampling."),
        Input("scheduler", COMBO, choices=SCHEDULER_NAMES, default="simple",
              tooltip="How the noise levels are spaced over the steps."),
    )
    conds = (
        Input("positive", CONDITIONING, tooltip="What to include in the image."),
        Input("negative", CONDITIONING, tooltip="What to exclude from the image."),
        Input("latent_image", LATENT, tooltip="The latent image to denoise."),
    )
    return head, conds


_HEAD, _CONDS = _common_inputs()


class KSampler(Node):
    """Denoise a latent with a model under positive/negative conditioning."""

    schema = NodeSchema(
        "KSampler",
        display_name="KSampler",
        category="sampling",
        inputs=(
            Input("model", MODEL, tooltip="The model used for denoising the input latent."),
            Input("seed", INT, default=0, min=0, max=SEED_MAX, control_after_generate=True,
                  tooltip="The random seed used for creating the noise."),
            *_HEAD,
            *_CONDS,
            Input("denoise", FLOAT, default=1.0, min=0.0, max=1.0, step=0.01,
                  tooltip="The amount of denoising applied; lower values keep more of the "
                          "input latent."),
        ),
        outputs=(Output("LATENT", LATENT),),
    )

    execute = implemented_by("comfyless.nodes.impl.sampling:ksampler")


class KSamplerAdvanced(Node):
    """KSampler with control over added noise and the step range (for multi-stage sampling)."""

    schema = NodeSchema(
        "KSamplerAdvanced",
        display_name="KSampler (Advanced)",
        category="sampling",
        inputs=(
            Input("model", MODEL),
            Input("add_noise", COMBO, choices=("enable", "disable"), default="enable"),
            Input("noise_seed", INT, default=0, min=0, max=SEED_MAX,
                  control_after_generate=True),
            *_HEAD,
            *_CONDS,
            Input("start_at_step", INT, default=0, min=0, max=MAX_STEPS),
            Input("end_at_step", INT, default=10000, min=0, max=MAX_STEPS),
            Input("return_with_leftover_noise", COMBO, choices=("disable", "enable"),
                  default="disable"),
        ),
        outputs=(Output("LATENT", LATENT),),
    )

    execute = implemented_by("comfyless.nodes.impl.sampling:ksampler_advanced")


NODES = [KSampler, KSamplerAdvanced]
