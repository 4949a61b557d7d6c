"""Model sampling for discrete-schedule models (SD1.x, SD2.x, SDXL): the sigma table,
sigma <-> timestep, percent_to_sigma, and the eps / v-prediction parameterisations.

Facts from training-math.md §3-4: betas = linspace(sqrt(0.00085), sqrt(0.012), 1000)^2,
alphas_cumprod = cumprod(1 - beta), sigma_i = sqrt((1 - a_i) / a_i); the network sees the index
of the nearest sigma in log space; x0 = calculate_denoised(sigma, F, xt).
"""

from __future__ import annotations

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


class ModelSampling:
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

    @property
    def sigma_min(self) -> Tensor:
        return self.sigmas[0]

    @property
    def sigma_max(self) -> Tensor:
        return self.sigmas[-1]

    def timestep(self, sigma: Tensor) -> Tensor:
        """Index (as float) of the table entry nearest to sigma in log space; same shape."""
        sigma = torch.as_tensor(sigma)
        log_sigma = sigma.float().log().to(self.log_sigmas.device)
        dists = (log_sigma.reshape(-1)[None, :] - self.log_sigmas[:, None]).abs()
        return dists.argmin(dim=0).reshape(sigma.shape).to(sigma.device).float()

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

