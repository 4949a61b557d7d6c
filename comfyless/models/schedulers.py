"""Sigma schedules: `SCHEDULERS[name](model_sampling, steps) -> Tensor[steps + 1]` (float32, CPU).

Every schedule runs from high noise to low and ends in 0.0 (except where the table itself
reaches ~0, as with zero-terminal-SNR models: then the last table sigma ends it, as ComfyUI).
The formulas restate ComfyUI's / k-diffusion's schedulers:

- normal: `steps` timesteps evenly spaced from timestep(sigma_max) to timestep(sigma_min)
  (both ends included), mapped through the table; sgm_uniform drops the last of `steps + 1`.
- simple: every `len(table) / steps`-th table sigma, counted down from the top.
- ddim_uniform: table sigmas 1, 1 + k, 1 + 2k, ... (k = len(table) // steps), reversed;
  as in ComfyUI, a stride that does not divide 999 yields one step more.
- karras: rho = 7 interpolation between sigma_max^(1/rho) and sigma_min^(1/rho).
- exponential: log-linear from sigma_max to sigma_min.
- beta: table sigmas at rint(Beta(0.6, 0.6).ppf(1 - i/steps) * 999), consecutive duplicates
  dropped (so it may return fewer steps).
- linear_quadratic: LTX-Video's schedule on sigma_max (threshold 0.025, half the steps linear).
- kl_optimal: tan of a linear interpolation between atan(sigma_max) and atan(sigma_min).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .sampling import ModelSampling

Scheduler = Callable[[ModelSampling, int], Tensor]

KARRAS_RHO = 7.0
BETA_ALPHA = BETA_BETA = 0.6  # ComfyUI's beta scheduler defaults


def _append_zero(sigmas: list[float] | Tensor) -> Tensor:
    t = torch.as_tensor(sigmas, dtype=torch.float32)
    return torch.cat([t, t.new_zeros(1)])


def karras_sigmas(steps: int, sigma_min: float, sigma_max: float,
                  rho: float = KARRAS_RHO) -> Tensor:
    """Karras et al. (2022) noise levels, plus a final 0."""
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return _append_zero((hi + ramp * (lo - hi)) ** rho)


def exponential_sigmas(steps: int, sigma_min: float, sigma_max: float) -> Tensor:
    """Noise levels evenly spaced in log sigma, plus a final 0."""
    return _append_zero(torch.linspace(math.log(sigma_max), math.log(sigma_min), steps,
                                       dtype=torch.float64).exp())


def normal_scheduler(ms: ModelSampling, steps: int, sgm: bool = False) -> Tensor:
    """Timesteps evenly spaced over the table's range (sgm: endpoint excluded)."""
    start = float(ms.timestep(ms.sigma_max))
    end = float(ms.timestep(ms.sigma_min))
    append_zero = True
    if sgm:
        timesteps = torch.linspace(start, end, steps + 1)[:-1]
    else:
        if math.isclose(float(ms.sigma(torch.tensor(end))), 0.0, abs_tol=1e-5):
            steps += 1
            append_zero = False
        timesteps = torch.linspace(start, end, steps)
    sigmas = [float(ms.sigma(t)) for t in timesteps]
    return _append_zero(sigmas) if append_zero else torch.tensor(sigmas, dtype=torch.float32)


def simple_scheduler(ms: ModelSampling, steps: int) -> Tensor:
    """Table sigmas taken at a fixed stride from the top."""
    table = ms.sigmas
    stride = len(table) / steps
    return _append_zero([float(table[-(1 + int(i * stride))]) for i in range(steps)])


def ddim_uniform_scheduler(ms: ModelSampling, steps: int) -> Tensor:
    """DDIM's uniform timestep skipping: table entries 1, 1+k, ... reversed, then 0."""
    table = ms.sigmas
    if math.isclose(float(table[1]), 0.0, abs_tol=1e-5):
        steps += 1
        sigmas: list[float] = []
    else:
        sigmas = [0.0]
    stride = max(len(table) // steps, 1)
    sigmas += [float(table[i]) for i in range(1, len(table), stride)]
    return torch.tensor(sigmas[::-1], dtype=torch.float32)


# -- beta: the regularized incomplete beta function and its inverse (no scipy) -----------------
_TINY = 1e-300


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction for I_x(a, b) (modified Lentz), converges for x < (a+1)/(a+b+2)."""
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < 1e-16:
            break
    return h


def beta_cdf(x: float, a: float, b: float) -> float:
    """Regularized incomplete beta function I_x(a, b) (the Beta(a, b) CDF)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def beta_ppf(q: float, a: float, b: float) -> float:
    """Inverse of `beta_cdf`: Newton steps kept inside a shrinking bisection bracket."""
    if q <= 0.0:
        return 0.0
    if q >= 1.0:
        return 1.0
    if a == b and q == 0.5:  # the median of a symmetric Beta; rounding the CDF could miss it
        return 0.5
    log_norm = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
    lo, hi, x = 0.0, 1.0, 0.5
    for _ in range(200):
        err = beta_cdf(x, a, b) - q
        if err < 0:
            lo = x
        else:
            hi = x
        pdf = math.exp(log_norm + (a - 1) * math.log(x) + (b - 1) * math.log1p(-x))
        step = x - err / pdf if pdf > 0 else -1.0
        new = step if lo < step < hi else 0.5 * (lo + hi)  # Newton if it stays bracketed
        if new == x or hi - lo <= 4 * math.ulp(x):
            break
        x = new
    return x


def beta_scheduler(ms: ModelSampling, steps: int, alpha: float = BETA_ALPHA,
                   beta: float = BETA_BETA) -> Tensor:
    """Timesteps at Beta(alpha, beta) quantiles: dense at both ends of the schedule."""
    last = len(ms.sigmas) - 1
    sigmas: list[float] = []
    previous = -1
    for i in range(steps):
        t = round(beta_ppf(1.0 - i / steps, alpha, beta) * last)  # round-half-even as rint
        if t != previous:
            sigmas.append(float(ms.sigmas[t]))
        previous = t
    return _append_zero(sigmas)


def linear_quadratic_scheduler(ms: ModelSampling, steps: int, threshold_noise: float = 0.025,
                               linear_steps: int | None = None) -> Tensor:
    """Linear then quadratic in 1 - sigma/sigma_max (LTX-Video's schedule)."""
    if steps == 1:
        schedule = [1.0, 0.0]
    else:
        linear_steps = steps // 2 if linear_steps is None else linear_steps
        linear = [i * threshold_noise / linear_steps for i in range(linear_steps)]
        step_diff = linear_steps - threshold_noise * steps
        quadratic_steps = steps - linear_steps
        quad_coef = step_diff / (linear_steps * quadratic_steps**2)
        lin_coef = threshold_noise / linear_steps - 2 * step_diff / quadratic_steps**2
        const = quad_coef * linear_steps**2
        quadratic = [quad_coef * i**2 + lin_coef * i + const for i in range(linear_steps, steps)]
        schedule = [1.0 - s for s in linear + quadratic + [1.0]]
    return torch.tensor(schedule, dtype=torch.float32) * float(ms.sigma_max)


def kl_optimal_scheduler(ms: ModelSampling, steps: int) -> Tensor:
    """The KL-optimal schedule of "Align Your Steps" (tan-linear in atan sigma), plus 0."""
    sigma_min, sigma_max = float(ms.sigma_min), float(ms.sigma_max)
    w = torch.arange(steps, dtype=torch.float64) / max(steps - 1, 1)
    sigmas = (w * math.atan(sigma_min) + (1 - w) * math.atan(sigma_max)).tan()
    return _append_zero(sigmas)


SCHEDULERS: dict[str, Scheduler] = {
    "simple": simple_scheduler,
    "sgm_uniform": lambda ms, steps: normal_scheduler(ms, steps, sgm=True),
    "karras": lambda ms, steps: karras_sigmas(steps, float(ms.sigma_min), float(ms.sigma_max)),
    "exponential": lambda ms, steps: exponential_sigmas(steps, float(ms.sigma_min),
                                                        float(ms.sigma_max)),
    "ddim_uniform": ddim_uniform_scheduler,
    "beta": beta_scheduler,
    "normal": normal_scheduler,
    "linear_quadratic": linear_quadratic_scheduler,
    "kl_optimal": kl_optimal_scheduler,
}


def calculate_sigmas(ms: ModelSampling, scheduler: str, steps: int) -> Tensor:
    """The full schedule for `steps` steps (steps + 1 sigmas, last 0)."""
    return SCHEDULERS[scheduler](ms, steps)


def sigmas_for_denoise(ms: ModelSampling, scheduler: str, steps: int, denoise: float) -> Tensor:
    """ComfyUI's denoise rule: a schedule for int(steps / denoise) steps, keep the last steps+1."""
    if denoise > 0.9999:
        return calculate_sigmas(ms, scheduler, steps)
    if denoise <= 0.0:
        return torch.zeros(0)
    full = calculate_sigmas(ms, scheduler, int(steps / denoise))
    return full[-(steps + 1):]


SD_TURBO_TIMESTEPS = 10  # SD-Turbo's distillation timesteps: 999, 899, ..., 99


def sd_turbo_sigmas(ms: ModelSampling, steps: int, denoise: float) -> Tensor:
    """SDTurboScheduler: `steps` of the timesteps 999, 899, ..., 99, skipping the first
    10 - int(10 * denoise) of them, mapped through the table, plus a final 0."""
    start = SD_TURBO_TIMESTEPS - int(SD_TURBO_TIMESTEPS * denoise)
    timesteps = [100 * k - 1 for k in range(SD_TURBO_TIMESTEPS, 0, -1)][start:start + steps]
    sigmas = ms.sigma(torch.tensor(timesteps, dtype=torch.float32)) if timesteps else []
    return _append_zero(sigmas)
