"""FLUX.1 model sampling (model-families.md §1.5, §6): dev ModelSamplingFlux μ = 1.15, schnell
ModelSamplingDiscreteFlow shift 1, multiplier 1; both CONST."""

from __future__ import annotations

from ...sampling import FlowSampling, model_sampling_flux, require_const

DEV_SHIFT = 1.15


def flux_dev_sampling(prediction: str | None = "const", zsnr: bool = False) -> FlowSampling:
    """dev / Krea / Kontext: ModelSamplingFlux with μ = 1.15 at every image size."""
    require_const("FLUX.1", prediction, zsnr)
    return model_sampling_flux(DEV_SHIFT)


def flux_schnell_sampling(prediction: str | None = "const", zsnr: bool = False) -> FlowSampling:
    """schnell: ModelSamplingDiscreteFlow with shift 1, multiplier 1 (the network sees σ)."""
    require_const("FLUX.1", prediction, zsnr)
    return FlowSampling(1.0, 1.0, kind="discrete")
