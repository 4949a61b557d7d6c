"""KSampler and KSamplerAdvanced (workflow-formats.md §8 for names, defaults and ranges).

The combos list every sampler and scheduler name ComfyUI offers, so any ComfyUI workflow
validates; the names comfyless implements are the keys of `comfyless.models.samplers.SAMPLERS`
and `comfyless.models.schedulers.SCHEDULERS`, and running another one is an error naming the
input. Sampling math lives in comfyless.models (imported inside execute: validation stays
torch-free).
"""

from __future__ import annotations

from typing import Any

from ..typesys.errors import InvalidValue
from ..typesys.schema import Input, Node, NodeSchema, Output
from ..typesys.types import COMBO, CONDITIONING, FLOAT, INT, LATENT, MODEL

SEED_MAX = 2**64 - 1
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


def _pick(table: dict, name: str, input_name: str, node_id: str | None, what: str):
    if name not in table:
        raise InvalidValue(
            f"{input_name}: {what} {name!r} is a ComfyUI option that comfyless does not "
            f"implement; implemented: {', '.join(table)}",
            node_id=node_id, input_name=input_name)
    return table[name]


def _sample(ctx, model, seed: int, steps: int, cfg: float, sampler_name: str, scheduler: str,
            positive: list, negative: list, latent_image: dict[str, Any], *,
            denoise: float = 1.0, add_noise: bool = True, start_step: int | None = None,
            last_step: int | None = None, force_full_denoise: bool = False) -> tuple[dict]:
    """ComfyUI's common_ksampler: noise from the seed, schedule, cut, sample, wrap as LATENT."""
    import torch

    from ..models.guidance import ksample, prepare_noise, step_sigmas
    from ..models.samplers import SAMPLERS
    from ..models.schedulers import SCHEDULERS, sigmas_for_denoise

    sampler = _pick(SAMPLERS, sampler_name, "sampler_name", ctx.node_id, "sampler")
    _pick(SCHEDULERS, scheduler, "scheduler", ctx.node_id, "scheduler")
    latent = _latent_samples(latent_image, model, ctx.node_id)
    if add_noise:
        noise = prepare_noise(latent, seed, latent_image.get("batch_index"))
    else:
        noise = torch.zeros(latent.shape, dtype=torch.float32)
    sigmas = sigmas_for_denoise(model.sampling, scheduler, steps, denoise)
    sigmas = step_sigmas(sigmas, start_step, last_step, force_full_denoise)
    out = dict(latent_image)
    out.pop("downscale_ratio_spacial", None)
    if sigmas is None:  # nothing to do (denoise 0, start_at_step past the end): pass through
        out["samples"] = latent_image["samples"]
        return (out,)
    out["samples"] = ksample(model, latent, noise, sigmas=sigmas, sampler=sampler, cfg=cfg,
                             positive=positive, negative=negative, seed=seed,
                             noise_mask=latent_image.get("noise_mask"), progress=ctx.progress)
    return (out,)


def _latent_samples(latent_image: Any, model, node_id: str | None):
    """The (B, C, h, w) samples; an all-zero latent is widened to the model's channels."""
    import torch

    samples = latent_image.get("samples") if isinstance(latent_image, dict) else None
    if not isinstance(samples, torch.Tensor) or samples.ndim != 4:
        raise InvalidValue("latent_image: expected a LATENT with 'samples' of shape "
                           f"(batch, channels, height, width), got {type(samples).__name__}",
                           node_id=node_id, input_name="latent_image")
    channels = model.latent_format.channels
    if samples.shape[1] != channels:
        if torch.count_nonzero(samples) == 0:  # an EmptyLatentImage made for another model
            return samples.new_zeros((samples.shape[0], channels, *samples.shape[2:]))
        raise InvalidValue(f"latent_image: {samples.shape[1]} channels, the model expects "
                           f"{channels}", node_id=node_id, input_name="latent_image")
    return samples


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

    @staticmethod
    def execute(ctx, model, seed: int, steps: int, cfg: float, sampler_name: str,
                scheduler: str, positive, negative, latent_image, denoise: float = 1.0):
        return _sample(ctx, model, seed, steps, cfg, sampler_name, scheduler, positive,
                       negative, latent_image, denoise=denoise)


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

    @staticmethod
    def execute(ctx, model, add_noise: str, noise_seed: int, steps: int, cfg: float,
                sampler_name: str, scheduler: str, positive, negative, latent_image,
                start_at_step: int = 0, end_at_step: int = 10000,
                return_with_leftover_noise: str = "disable"):
        return _sample(ctx, model, noise_seed, steps, cfg, sampler_name, scheduler, positive,
                       negative, latent_image, add_noise=add_noise == "enable",
                       start_step=start_at_step, last_step=end_at_step,
                       force_full_denoise=return_with_leftover_noise != "enable")


NODES = [KSampler, KSamplerAdvanced]
