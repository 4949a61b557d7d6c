"""Execute of KSampler and KSamplerAdvanced (nodes/sampling.py); the math is in comfyless.models."""

from __future__ import annotations

from typing import Any

import torch

from ...models.guidance import ksample, prepare_noise, step_sigmas
from ...models.residency import release_idle
from ...models.samplers import SAMPLERS
from ...models.schedulers import SCHEDULERS, sigmas_for_denoise
from ...typesys.errors import InvalidValue


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
    release_idle()  # text encoders and VAEs wait in their files while the model samples
    out["samples"] = ksample(model, latent, noise, sigmas=sigmas, sampler=sampler, cfg=cfg,
                             positive=positive, negative=negative, seed=seed,
                             noise_mask=latent_image.get("noise_mask"), progress=ctx.progress)
    return (out,)


def _latent_samples(latent_image: Any, model, node_id: str | None):
    """The (B, C, h, w) samples; an all-zero latent is widened to the model's channels."""
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


def ksampler(ctx, model, seed: int, steps: int, cfg: float, sampler_name: str,
             scheduler: str, positive, negative, latent_image, denoise: float = 1.0):
    return _sample(ctx, model, seed, steps, cfg, sampler_name, scheduler, positive,
                   negative, latent_image, denoise=denoise)


def ksampler_advanced(ctx, model, add_noise: str, noise_seed: int, steps: int, cfg: float,
                      sampler_name: str, scheduler: str, positive, negative, latent_image,
                      start_at_step: int = 0, end_at_step: int = 10000,
                      return_with_leftover_noise: str = "disable"):
    return _sample(ctx, model, noise_seed, steps, cfg, sampler_name, scheduler, positive,
                   negative, latent_image, add_noise=add_noise == "enable",
                   start_step=start_at_step, last_step=end_at_step,
                   force_full_denoise=return_with_leftover_noise != "enable")
