"""Execute of the custom-sampling nodes (nodes/custom_sampling.py); math in comfyless.models."""

from __future__ import annotations

from typing import Any

import torch

from ...models.guidance import EmptyNoise, Guider, RandomNoise, SamplerChoice
from ...models.residency import release_idle
from ...models.samplers import SAMPLERS
from ...models.schedulers import SCHEDULERS, sd_turbo_sigmas, sigmas_for_denoise
from ...typesys.errors import InvalidValue
from .sampling import _latent_samples, _pick


def _check_sigmas(sigmas: Any, node_id: str | None) -> torch.Tensor:
    if not isinstance(sigmas, torch.Tensor) or sigmas.ndim != 1:
        raise InvalidValue(f"sigmas: expected a 1-D tensor of noise levels, got "
                           f"{type(sigmas).__name__}", node_id=node_id, input_name="sigmas")
    return sigmas


def _run(ctx, guider: Guider, noise, sampler: SamplerChoice, sigmas, latent_image: dict):
    """ComfyUI's custom sampling: widen an empty latent, draw noise, sample, keep the last x0."""
    sigmas = _check_sigmas(sigmas, ctx.node_id)
    latent = dict(latent_image)
    latent["samples"] = _latent_samples(latent_image, guider.model, ctx.node_id)
    release_idle()  # text encoders and VAEs wait in their files while the model samples
    samples, x0 = guider.sample(noise.generate(latent), latent["samples"], sampler, sigmas,
                                seed=noise.seed, noise_mask=latent.get("noise_mask"),
                                progress=ctx.progress)
    out = dict(latent)
    out["samples"] = samples
    if x0 is None:  # no step ran: the denoised output is the output
        return out, out
    denoised = dict(latent)
    denoised["samples"] = x0
    return out, denoised


def sampler_custom(ctx, model, add_noise: bool, noise_seed: int, cfg: float, positive, negative,
                   sampler, sigmas, latent_image):
    # the samplers' own noise is seeded by noise_seed even without initial noise (as ComfyUI)
    noise = RandomNoise(noise_seed) if add_noise else EmptyNoise(noise_seed)
    return _run(ctx, Guider(model, positive, negative, cfg), noise, sampler, sigmas,
                latent_image)


def sampler_custom_advanced(ctx, noise, guider, sampler, sigmas, latent_image):
    return _run(ctx, guider, noise, sampler, sigmas, latent_image)


def ksampler_select(ctx, sampler_name: str):
    function = _pick(SAMPLERS, sampler_name, "sampler_name", ctx.node_id, "sampler")
    return (SamplerChoice(sampler_name, function),)


def basic_scheduler(ctx, model, scheduler: str, steps: int, denoise: float = 1.0):
    _pick(SCHEDULERS, scheduler, "scheduler", ctx.node_id, "scheduler")
    return (sigmas_for_denoise(model.sampling, scheduler, steps, denoise).float().cpu(),)


def sd_turbo_scheduler(ctx, model, steps: int, denoise: float = 1.0):
    return (sd_turbo_sigmas(model.sampling, steps, denoise).float().cpu(),)


def random_noise(ctx, noise_seed: int):
    return (RandomNoise(noise_seed),)


def disable_noise(ctx):
    return (EmptyNoise(),)


def basic_guider(ctx, model, conditioning):
    return (Guider(model, conditioning),)


def cfg_guider(ctx, model, positive, negative, cfg: float):
    return (Guider(model, positive, negative, cfg),)


def conditioning_zero_out(ctx, conditioning):
    """Zero the context and the pooled_output (and conditioning_lyrics) of every entry."""
    out = []
    for context, options in conditioning:
        options = dict(options)
        for key in ("pooled_output", "conditioning_lyrics"):
            if isinstance(options.get(key), torch.Tensor):
                options[key] = torch.zeros_like(options[key])
        out.append([torch.zeros_like(context), options])
    return (out,)
