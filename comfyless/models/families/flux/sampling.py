"""FLUX.1 model sampling (model-families.md §1.5, §6): dev ModelSamplingFlux μ = 1.15, schnell
ModelSamplingDiscreteFlow shift 1, multiplier 1; both CONST."""

from __future__ import annotations

from ...sampling import FlowSampling, model_sampling_flux

DEV_SHIFT = 1.15


def _check_const(prediction: str | None) -> None:
    if prediction not in (None, "const"):
        raise ValueError(f"FLUX models are flow (CONST) models; prediction {prediction!r} "
                         "cannot be used with them")


def flux_dev_sampling(prediction: str | None = "const", zsnr: bool = False) -> FlowSampling:
    """dev / Krea / Kontext: ModelSamplingFlux with μ = 1.15 at every image size."""
    _check_const(prediction)
    return model_sampling_flux(DEV_SHIFT)


def flux_schnell_sampling(prediction: str | None = "const", zsnr: bool = False) -> FlowSampling:
    """schnell: ModelSamplingDiscreteFlow with shift 1, multiplier 1 (the network sees σ)."""
    _check_const(prediction)
    return FlowSampling(1.0, 1.0, kind="discrete")
