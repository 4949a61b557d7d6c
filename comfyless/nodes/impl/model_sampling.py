"""Code of the flow model-sampling nodes and EmptySD3LatentImage (schemas in
nodes/model_sampling.py)."""

from __future__ import annotations

import torch

from ...models.sampling import flux_mu
from ...models.sampling import model_sampling_flux as _flux
from ...models.sampling import model_sampling_sd3 as _discrete_flow


def _noise_scale(model) -> float:
    """The model's current noise_scale (ModelSamplingSD3 keeps it; 1 for non-flow models)."""
    return float(getattr(model.sampling, "noise_scale", 1.0))


def model_sampling_sd3(ctx, model, shift: float = 3.0):
    sampling = _discrete_flow(shift, multiplier=1000.0, noise_scale=_noise_scale(model))
    return (model.with_sampling(sampling),)


def model_sampling_aura_flow(ctx, model, shift: float = 1.73, sampling: str = "flow"):
    return (model.with_sampling(_discrete_flow(shift, multiplier=1.0)),)


def model_sampling_flux(ctx, model, max_shift: float = 1.15, base_shift: float = 0.5,
                        width: int = 1024, height: int = 1024):
    return (model.with_sampling(_flux(flux_mu(width, height, base_shift, max_shift))),)


def empty_sd3_latent_image(ctx, width: int = 1024, height: int = 1024, batch_size: int = 1):
    latent = torch.zeros([batch_size, 16, height // 8, width // 8])
    return ({"samples": latent, "downscale_ratio_spacial": 8},)
