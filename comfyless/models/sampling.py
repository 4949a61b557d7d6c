"""Model sampling for discrete-schedule models (SD1.x, SD2.x, SDXL): the sigma table,
sigma <-> timestep, percent_to_sigma, and the eps / v-prediction parameterisations.

Facts from training-math.md §3-4: betas = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2,
alphas_cumprod = cumprod(1 - beta), sigma_i = sqrt((1 - a_i) / a_i); the network sees the index
of the nearest sigma in log space; x0 = calculate_denoised(sigma, F, xt).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

PREDICTIONS = ("eps", "v", "x0")
ZSNR_LAST_ALPHA_CUMPROD = 4.8973451890853435e-08


def linear_betas(timesteps: int, linear_start: float, linear_end: float) -> Tensor:
    """LDM's "linear" schedule: linear in sqrt(beta), float64."""
    return torch.linspace(linear_start**0.5, linear_end**0.5, timesteps, dtype=torch.float64) ** 2


def _rescale_zero_terminal_snr(alphas_cumprod: Tensor) -> Tensor:
    """Shift/scale sqrt(alphas_cumprod) so the last step has zero SNR (kept tiny, not 0)."""
    sqrt_ab = alphas_cumprod.sqrt()
    first, last = sqrt_ab[0].clone(), sqrt_ab[-1].clone()
    sqrt_ab = (sqrt_ab - last) * first / (first - last)
    out = sqrt_ab**2
    out[-1] = ZSNR_LAST_ALPHA_CUMPROD  # a true 0 gives an infinite sigma
    return out


class _SigmaTable:
    """`sigmas` is an increasing table of the noise levels a model was trained on."""

    sigmas: Tensor

    @property
    def sigma_min(self) -> Tensor:
        return self.sigmas[0]

    @property
    def sigma_max(self) -> Tensor:
        return self.sigmas[-1]


class ModelSampling(_SigmaTable):
    """Discrete 1000-step sampling with eps, v or x0 prediction (sigma_data = 1)."""

    sigma_data = 1.0

    def __init__(self, prediction: str = "eps", *, timesteps: int = 1000,
                 linear_start: float = 0.00085, linear_end: float = 0.012,
                 zsnr: bool = False) -> None:
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
        self.prediction = prediction
        self.zsnr = zsnr
        alphas_cumprod = torch.cumprod(1.0 - linear_betas(timesteps, linear_start, linear_end), 0)
        if zsnr:
            alphas_cumprod = _rescale_zero_terminal_snr(alphas_cumprod)
        sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.sigmas = sigmas.float()  # (timesteps,) increasing
        self.log_sigmas = sigmas.log().float()

    def __repr__(self) -> str:
        return f"ModelSampling(prediction={self.prediction!r}, zsnr={self.zsnr})"

    def timestep(self, sigma: Tensor) -> Tensor:
        """Index (as float) of the table entry nearest to sigma in log space; same shape."""
        sigma = torch.as_tensor(sigma)
        log_sigmas = self._log_sigmas_on(sigma.device)  # no round trip to the CPU per call
        dists = (sigma.float().log().reshape(-1)[None, :] - log_sigmas[:, None]).abs()
        return dists.argmin(dim=0).reshape(sigma.shape).float()

    def _log_sigmas_on(self, device: torch.device) -> Tensor:
        """The table on `device`, copied once: a copy per call would wait for the device."""
        if self.log_sigmas.device == device:
            return self.log_sigmas
        source, copy = self.__dict__.get("_log_sigmas_copy", (None, None))
        if source is not self.log_sigmas or copy.device != device:
            copy = self.log_sigmas.to(device)
            self._log_sigmas_copy = (self.log_sigmas, copy)
        return copy

    def sigma(self, timestep: Tensor) -> Tensor:
        """Sigma at a (fractional) timestep: log-linear interpolation of the table."""
        t = torch.as_tensor(timestep, dtype=torch.float32).clamp(0, len(self.sigmas) - 1)
        device = t.device
        t = t.to(self.log_sigmas.device)
        low, high = t.floor().long(), t.ceil().long()
        w = t.frac()
        log_sigma = (1 - w) * self.log_sigmas[low] + w * self.log_sigmas[high]
        return log_sigma.exp().to(device)

    def percent_to_sigma(self, percent: float) -> float:
        """Sigma at `percent` of the way through sampling (0 -> huge, 1 -> 0)."""
        percent = float(percent)
        if percent <= 0.0:
            return 999999999.9
        if percent >= 1.0:
            return 0.0
        return float(self.sigma(torch.tensor((1.0 - percent) * (len(self.sigmas) - 1))))

    # -- parameterisation ----------------------------------------------------------------
    @staticmethod
    def _view(sigma: Tensor | float, x: Tensor) -> Tensor:
        """sigma as a (B, 1, 1, ...) tensor broadcastable against x."""
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.ndim == 0:
            return sigma
        return sigma.reshape(sigma.shape[:1] + (1,) * (x.ndim - 1))

    def calculate_input(self, sigma: Tensor, x: Tensor) -> Tensor:
        """Network input: xt / sqrt(sigma^2 + sigma_data^2)."""
        s = self._view(sigma, x)
        return x / (s**2 + self.sigma_data**2) ** 0.5

    def calculate_denoised(self, sigma: Tensor, model_output: Tensor, x: Tensor) -> Tensor:
        """x0 prediction from the raw network output F and the noisy input xt."""
        s = self._view(sigma, model_output)
        if self.prediction == "eps":
            return x - model_output * s
        if self.prediction == "x0":  # the network predicts x0 directly
            return model_output
        sd2 = self.sigma_data**2
        return x * sd2 / (s**2 + sd2) - model_output * s * self.sigma_data / (s**2 + sd2) ** 0.5

    def noise_scaling(self, sigma: Tensor, noise: Tensor | float, latent_image: Tensor,
                      max_denoise: bool = False) -> Tensor:
        """xt = x0 + sigma * n (n scaled by sqrt(1 + sigma^2) when max_denoise)."""
        s = self._view(sigma, latent_image)
        if max_denoise:
            return latent_image + noise * (s**2 + 1.0) ** 0.5
        return latent_image + noise * s

    def inverse_noise_scaling(self, sigma: Tensor, latent: Tensor) -> Tensor:
        """Identity for eps/v models (kept for samplers that call it)."""
        return latent


def make_model_sampling(prediction: str = "eps", zsnr: bool = False) -> ModelSampling:
    """The sampling object for SD1.x/SD2.x/SDXL (all share the discrete schedule)."""
    return ModelSampling(prediction, zsnr=zsnr)



# -- flow matching (ComfyUI's CONST prediction) ---------------------------------------------------
def flow_shift(shift: float, t: Tensor) -> Tensor:
    """SD3's rational time shift: s·t / (1 + (s − 1)·t) (t itself at s = 1)."""
    if shift == 1.0:
        return t
    return shift * t / (1 + (shift - 1) * t)


def flux_shift(mu: float, t: Tensor) -> Tensor:
    """Flux's exponential time shift e^μ / (e^μ + (1/t − 1)), written as e^μ·t / (e^μ·t + 1 − t)
    so that t = 0 gives 0 without a division by zero."""
    e = math.exp(mu)
    return e * t / (e * t + (1 - t))


def flux_mu(width: int, height: int, base_shift: float = 0.5, max_shift: float = 1.15) -> float:
    """ModelSamplingFlux's μ: linear in the token count W·H/256 between 256 tokens (base_shift)
    and 4096 tokens (max_shift), extrapolated outside."""
    tokens = width * height / (8 * 8 * 2 * 2)
    return base_shift + (max_shift - base_shift) * (tokens - 256) / (4096 - 256)


class FlowSampling(_SigmaTable):
    """Flow matching with ComfyUI's CONST prediction: x_t = (1 − σ)·x0 + σ·noise, the network
    predicts the velocity F = noise − x0, so x0 = x_t − σ·F.

    `kind="discrete"`: ModelSamplingDiscreteFlow (σ = flow_shift(shift, t), table of `timesteps`
    entries at t = i/timesteps, i = 1…timesteps; the network sees σ·multiplier).
    `kind="flux"`: ModelSamplingFlux (σ = flux_shift(shift, t), 10000 entries, network sees σ).
    The same sampler code as for eps models runs on it: the Euler direction (x − D)/σ is the
    velocity, and a step to σ' lands exactly on (1 − σ')·x0 + σ'·noise.
    """

    prediction = "const"
    zsnr = False

    def __init__(self, shift: float = 1.0, multiplier: float = 1000.0, *,
                 kind: str = "discrete", timesteps: int | None = None,
                 noise_scale: float = 1.0) -> None:
        if kind not in ("discrete", "flux"):
            raise ValueError(f"kind must be 'discrete' or 'flux', got {kind!r}")
        self.kind = kind
        self.shift = float(shift)
        self.multiplier = 1.0 if kind == "flux" else float(multiplier)
        self.noise_scale = float(noise_scale)
        n = timesteps or (10000 if kind == "flux" else 1000)
        t = torch.arange(1, n + 1, dtype=torch.float64) / n
        self.sigmas = self._shift_t(t).float()  # (n,) increasing, last = 1
        self.log_sigmas = self.sigmas.log()

    def __repr__(self) -> str:
        return (f"FlowSampling(kind={self.kind!r}, shift={self.shift}, "
                f"multiplier={self.multiplier}, entries={len(self.sigmas)})")

    def _shift_t(self, t: Tensor) -> Tensor:
        if self.kind == "flux":
            return flux_shift(self.shift, t)
        return flow_shift(self.shift, t)

    def timestep(self, sigma: Tensor) -> Tensor:
        """The network's timestep: σ·multiplier (Flux: σ)."""
        return torch.as_tensor(sigma) * self.multiplier

    def sigma(self, timestep: Tensor) -> Tensor:
        """σ at a network timestep: the shift applied to t = timestep / multiplier."""
        t = torch.as_tensor(timestep, dtype=torch.float32)
        return self._shift_t(t.double() / self.multiplier).float()

    def percent_to_sigma(self, percent: float) -> float:
        """σ(1 − p); 1 at p ≤ 0, 0 at p ≥ 1."""
        percent = float(percent)
        if percent <= 0.0:
            return 1.0
        if percent >= 1.0:
            return 0.0
        return float(self._shift_t(torch.tensor(1.0 - percent, dtype=torch.float64)))

    _view = staticmethod(ModelSampling._view)

    def calculate_input(self, sigma: Tensor, x: Tensor) -> Tensor:
        """The network sees x_t unchanged."""
        return x

    def calculate_denoised(self, sigma: Tensor, model_output: Tensor, x: Tensor) -> Tensor:
        """x0 = x_t − σ·F."""
        return x - model_output * self._view(sigma, model_output)

    def noise_scaling(self, sigma: Tensor, noise: Tensor | float, latent_image: Tensor,
                      max_denoise: bool = False) -> Tensor:
        """x_t = σ·(noise_scale·noise) + (1 − σ)·x0 (max_denoise changes nothing)."""
        s = self._view(sigma, latent_image)
        return s * (noise * self.noise_scale) + (1.0 - s) * latent_image

    def inverse_noise_scaling(self, sigma: Tensor, latent: Tensor) -> Tensor:
        """latent / (1 − σ): identity at the usual final σ = 0."""
        return latent / (1.0 - self._view(sigma, latent))


def require_const(family: str, prediction: str | None, zsnr: bool = False) -> None:
    """The flow families' sampling factories accept only their own parameterisation."""
    if prediction not in (None, "const") or zsnr:
        raise ValueError(f"{family} is a flow model (CONST prediction, 'const'); prediction "
                         f"{prediction!r}{' with zsnr' if zsnr else ''} cannot be used with it")


def model_sampling_sd3(shift: float = 3.0, multiplier: float = 1000.0,
                       noise_scale: float = 1.0) -> FlowSampling:
    """ModelSamplingDiscreteFlow (SD3: shift 3, multiplier 1000; AuraFlow: multiplier 1)."""
    return FlowSampling(shift, multiplier, kind="discrete", noise_scale=noise_scale)


def model_sampling_flux(mu: float = 1.15) -> FlowSampling:
    """ModelSamplingFlux with shift μ (Flux dev default 1.15)."""
    return FlowSampling(mu, kind="flux")
