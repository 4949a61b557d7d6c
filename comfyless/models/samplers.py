"""Samplers in k-diffusion style: `sample_x(model, x, sigmas, *, extra_args, callback, generator)`.

`model(x, sigma_batch, **extra_args) -> denoised` is a denoiser D(x, sigma) in the variance-
exploding (k-diffusion) parameterisation: x = x0 + sigma * noise. `x` enters already noised to
sigmas[0]; `sigmas` runs down to (usually) 0. `callback({"x", "i", "sigma", "sigma_hat",
"denoised"})` is called once per step. `generator` (a torch.Generator on x's device, or None for
the global RNG) draws the fresh noise of ancestral / SDE samplers, so a seeded run repeats.
CFG++ samplers (`*_cfg_pp`, marked `needs_uncond`) also read `model.uncond_denoised`, the
unguided prediction of the last call (a plain denoiser without it counts as unguided).

Differences from ComfyUI, on purpose: the SDE samplers (dpmpp_sde, dpmpp_2m_sde and their _gpu
twins) draw independent seeded Gaussian noise per step instead of torchsde's Brownian tree, so
their images differ from ComfyUI's for the same seed (still deterministic); "ddim" is Euler, as
in ComfyUI. Algorithms follow Karras et al. (2022), DPM-Solver(++) (Lu et al.), UniPC
(Zhao et al.) and RES (Zhang et al.), as k-diffusion and ComfyUI restate them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor

Denoiser = Callable[..., Tensor]
Callback = Callable[[dict[str, Any]], None] | None
Sampler = Callable[..., Tensor]


# -- helpers -----------------------------------------------------------------------------------
def to_d(x: Tensor, sigma: Tensor, denoised: Tensor) -> Tensor:
    """The ODE derivative dx/dsigma = (x - D(x, sigma)) / sigma."""
    return (x - denoised) / sigma


def ancestral_step(sigma_from: Tensor, sigma_to: Tensor, eta: float = 1.0
                   ) -> tuple[Tensor, Tensor]:
    """(sigma_down, sigma_up): deterministic step target and fresh-noise std of one step."""
    if not eta:
        return sigma_to, torch.zeros_like(sigma_to)
    sigma_up = torch.minimum(
        sigma_to, eta * (sigma_to**2 * (sigma_from**2 - sigma_to**2) / sigma_from**2) ** 0.5)
    sigma_down = (sigma_to**2 - sigma_up**2) ** 0.5
    return sigma_down, sigma_up


def _noise(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)


def _call(model: Denoiser, x: Tensor, sigma: Tensor, extra_args: dict | None) -> Tensor:
    return model(x, sigma * x.new_ones(x.shape[0]), **(extra_args or {}))


def _report(callback: Callback, x: Tensor, i: int, sigma: Tensor, denoised: Tensor) -> None:
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})


def _t(sigma: Tensor) -> Tensor:  # DPM-Solver's time: t = -log sigma (half log-SNR)
    return -sigma.log()


def is_flow(model: Denoiser) -> bool:
    """Whether the denoiser's model uses flow (CONST) sampling: x = (1 - sigma) x0 + sigma n.
    A denoiser says so by a `model_sampling` attribute (CFGDenoiser has one)."""
    return getattr(getattr(model, "model_sampling", None), "prediction", None) == "const"


def _flow_ancestral(sigma: Tensor, sigma_next: Tensor, eta: float
                    ) -> tuple[Tensor, Tensor, Tensor]:
    """Flow (rectified-flow) ancestral step: (sigma_down, alpha ratio, renoise std).

    The deterministic step goes to sigma_down = sigma_next * (1 + (sigma_next/sigma - 1) eta);
    x is then scaled by (1 - sigma_next)/(1 - sigma_down) and fresh noise of std
    sqrt(sigma_next^2 - sigma_down^2 (1 - sigma_next)^2/(1 - sigma_down)^2) restores the flow
    marginal (1 - sigma_next) x0 + sigma_next n."""
    sigma_down = sigma_next * (1 + (sigma_next / sigma - 1) * eta)
    ratio = (1 - sigma_next) / (1 - sigma_down)
    renoise = (sigma_next**2 - sigma_down**2 * ratio**2).clamp(min=0) ** 0.5
    return sigma_down, ratio, renoise


class _VEView:
    """A flow denoiser seen in variance-exploding coordinates: x_ve = x / (1 - sigma),
    sigma_ve = sigma / (1 - sigma), so x_ve = x0 + sigma_ve * n (what the SDE solvers assume)."""

    def __init__(self, model: Denoiser) -> None:
        self.model = model

    @property
    def uncond_denoised(self) -> Tensor | None:
        return getattr(self.model, "uncond_denoised", None)

    def __call__(self, x: Tensor, sigma_ve: Tensor, **kwargs: Any) -> Tensor:
        sigma = sigma_ve / (1 + sigma_ve)
        keep = (1 - sigma).reshape(-1, *([1] * (x.ndim - 1)))
        return self.model(x * keep, sigma, **kwargs)


FLOW_FIRST_SIGMA = 0.9999  # sigma 1 has an infinite log-SNR: start just below it (as ComfyUI)


def _flow_in_ve(fn: Sampler) -> Sampler:
    """Run an SDE solver written for x = x0 + sigma n on a flow model in the equivalent VE
    coordinates (the solvers' half-log-SNR steps are the same in both; ComfyUI's SDE samplers
    use log((1 - sigma)/sigma) for flow models, which this reproduces)."""

    @functools.wraps(fn)
    def run(model, x, sigmas, *, extra_args=None, callback=None, generator=None, **kw):
        if not is_flow(model):
            return fn(model, x, sigmas, extra_args=extra_args, callback=callback,
                      generator=generator, **kw)
        sigmas = sigmas.clone()
        sigmas[0] = sigmas[0].clamp(max=FLOW_FIRST_SIGMA)
        ve = sigmas / (1 - sigmas)

        def back(info: dict[str, Any]) -> None:
            if callback is not None:
                i = info["i"]
                callback({**info, "x": info["x"] * (1 - sigmas[i]), "sigma": sigmas[i],
                          "sigma_hat": sigmas[i]})

        out = fn(_VEView(model), x / (1 - sigmas[0]), ve, extra_args=extra_args,
                 callback=back, generator=generator, **kw)
        return out * (1 - sigmas[-1])

    return run


# -- first-order ---------------------------------------------------------------------------------
@torch.no_grad()
def sample_euler(model, x, sigmas, *, extra_args=None, callback=None, generator=None):
    """Euler's method on the probability-flow ODE (Karras et al. Algorithm 2 without churn)."""
    for i in range(len(sigmas) - 1):
        denoised = _call(model, x, sigmas[i], extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
    return x


@torch.no_grad()
def sample_euler_ancestral(model, x, sigmas, *, extra_args=None, callback=None, generator=None,
                           eta: float = 1.0, s_noise: float = 1.0):
    """Euler step down to sigma_down, then fresh noise of std sigma_up (flow models: the
    rectified-flow form, which rescales x before adding the noise)."""
    flow = is_flow(model)
    for i in range(len(sigmas) - 1):
        denoised = _call(model, x, sigmas[i], extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        if flow:  # ComfyUI's RF variant: keep x on the flow path (1 - s) x0 + s n
            sigma_down, ratio, renoise = _flow_ancestral(sigmas[i], sigmas[i + 1], eta)
            x = (sigma_down / sigmas[i]) * x + (1 - sigma_down / sigmas[i]) * denoised
            x = ratio * x + _noise(x, generator) * s_noise * renoise
            continue
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        x = x + _noise(x, generator) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_lcm(model, x, sigmas, *, extra_args=None, callback=None, generator=None):
    """Latent-consistency sampling: jump to the prediction, re-noise to the next sigma (with
    the model's noise_scaling, as ComfyUI: flow models get (1 - s) x0 + s n)."""
    flow = is_flow(model)
    for i in range(len(sigmas) - 1):
        denoised = _call(model, x, sigmas[i], extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        x = denoised
        if sigmas[i + 1] > 0:
            if flow:
                x = model.model_sampling.noise_scaling(sigmas[i + 1], _noise(x, generator), x)
            else:
                x = x + sigmas[i + 1] * _noise(x, generator)
    return x


@torch.no_grad()
def sample_ddpm(model, x, sigmas, *, extra_args=None, callback=None, generator=None):
    """Ancestral DDPM posterior sampling, written in sigma space."""
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = _call(model, x, sigma, extra_args)
        _report(callback, x, i, sigma, denoised)
        if sigma_next == 0:
            x = denoised
            continue
        # in VP space: a_t = 1/(1+s^2); posterior mean/var of DDPM between the two levels
        alpha_t, alpha_next = 1 / (1 + sigma**2), 1 / (1 + sigma_next**2)
        alpha_step = alpha_t / alpha_next
        eps = (x - denoised) / sigma
        mu = (x / (1 + sigma**2) ** 0.5 - (1 - alpha_step) / (1 - alpha_t) ** 0.5 * eps)
        mu = mu / alpha_step**0.5
        var = (1 - alpha_step) * (1 - alpha_next) / (1 - alpha_t)
        x_vp = mu + var**0.5 * _noise(x, generator)
        x = x_vp * (1 + sigma_next**2) ** 0.5
    return x


# -- second-order --------------------------------------------------------------------------------
@torch.no_grad()
def sample_heun(model, x, sigmas, *, extra_args=None, callback=None, generator=None):
    """Heun's method (Karras et al. Algorithm 2): Euler, then a trapezoidal correction."""
    for i in range(len(sigmas) - 1):
        denoised = _call(model, x, sigmas[i], extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        d = to_d(x, sigmas[i], denoised)
        dt = sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = x + d * dt
            continue
        x_2 = x + d * dt
        d_2 = to_d(x_2, sigmas[i + 1], _call(model, x_2, sigmas[i + 1], extra_args))
        x = x + (d + d_2) / 2 * dt
    return x


def _log_midpoint(a: Tensor, b: Tensor) -> Tensor:
    return a.log().lerp(b.log(), 0.5).exp()


@torch.no_grad()
def sample_dpm_2(model, x, sigmas, *, extra_args=None, callback=None, generator=None):
    """DPM-Solver-2 style midpoint method (derivative at the log-midpoint sigma)."""
    for i in range(len(sigmas) - 1):
        denoised = _call(model, x, sigmas[i], extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        d = to_d(x, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = x + d * (sigmas[i + 1] - sigmas[i])
            continue
        sigma_mid = _log_midpoint(sigmas[i], sigmas[i + 1])
        x_2 = x + d * (sigma_mid - sigmas[i])
        d_2 = to_d(x_2, sigma_mid, _call(model, x_2, sigma_mid, extra_args))
        x = x + d_2 * (sigmas[i + 1] - sigmas[i])
    return x


@torch.no_grad()
def sample_dpm_2_ancestral(model, x, sigmas, *, extra_args=None, callback=None, generator=None,
                           eta: float = 1.0, s_noise: float = 1.0):
    """The midpoint method down to sigma_down, then fresh noise of std sigma_up."""
    for i in range(len(sigmas) - 1):
        denoised = _call(model, x, sigmas[i], extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        d = to_d(x, sigmas[i], denoised)
        if sigma_down == 0:
            x = x + d * (sigma_down - sigmas[i])
            continue
        sigma_mid = _log_midpoint(sigmas[i], sigma_down)
        x_2 = x + d * (sigma_mid - sigmas[i])
        d_2 = to_d(x_2, sigma_mid, _call(model, x_2, sigma_mid, extra_args))
        x = x + d_2 * (sigma_down - sigmas[i])
        x = x + _noise(x, generator) * s_noise * sigma_up
    return x


@torch.no_grad()
def sample_dpmpp_2s_ancestral(model, x, sigmas, *, extra_args=None, callback=None,
                              generator=None, eta: float = 1.0, s_noise: float = 1.0):
    """DPM-Solver++(2S), single-step, ancestral (flow models: the rectified-flow form)."""
    flow = is_flow(model)
    for i in range(len(sigmas) - 1):
        denoised = _call(model, x, sigmas[i], extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        if flow:
            x = _dpmpp_2s_flow_step(model, x, sigmas[i], sigmas[i + 1], denoised, extra_args,
                                    eta, s_noise, generator)
            continue
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        if sigma_down == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigma_down - sigmas[i])
        else:
            t, t_next = _t(sigmas[i]), _t(sigma_down)
            h = t_next - t
            s = t + h / 2
            sigma_s = (-s).exp()
            x_2 = (sigma_s / sigmas[i]) * x - (-(h / 2)).expm1() * denoised
            denoised_2 = _call(model, x_2, sigma_s, extra_args)
            x = (sigma_down / sigmas[i]) * x - (-h).expm1() * denoised_2
        if sigmas[i + 1] > 0:
            x = x + _noise(x, generator) * s_noise * sigma_up
    return x


def _dpmpp_2s_flow_step(model, x, sigma, sigma_next, denoised, extra_args, eta, s_noise,
                        generator):
    """One DPM-Solver++(2S) ancestral step for flow models, in lambda = log((1 - s)/s)."""
    if sigma_next == 0:
        return denoised
    sigma_down, ratio, renoise = _flow_ancestral(sigma, sigma_next, eta)

    def lam(s: Tensor) -> Tensor:
        return ((1 - s) / s).log()

    sigma_c = sigma.clamp(max=1 - 1e-5)  # lambda(1) = -inf: start just below pure noise
    h = lam(sigma_down) - lam(sigma_c)
    sigma_s = torch.sigmoid(-(lam(sigma_c) + h / 2))  # sigma at the lambda midpoint
    x_2 = (sigma_s / sigma) * x - (1 - sigma_s) * (-(h / 2)).expm1() * denoised
    denoised_2 = _call(model, x_2, sigma_s, extra_args)
    x = (sigma_down / sigma) * x - (1 - sigma_down) * (-h).expm1() * denoised_2
    return ratio * x + _noise(x, generator) * s_noise * renoise


@_flow_in_ve
@torch.no_grad()
def sample_dpmpp_sde(model, x, sigmas, *, extra_args=None, callback=None, generator=None,
                     eta: float = 1.0, s_noise: float = 1.0, r: float = 0.5):
    """DPM-Solver++ (stochastic, two evaluations per step); noise: seeded Gaussian per step."""
    fac = 1 / (2 * r)
    for i in range(len(sigmas) - 1):
        denoised = _call(model, x, sigmas[i], extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
            continue
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        sigma_s = (-(t + h * r)).exp()
        # step 1: to the intermediate time s
        sd, su = ancestral_step(sigmas[i], sigma_s, eta)
        s_ = _t(sd)
        x_2 = (sd / sigmas[i]) * x - (t - s_).expm1() * denoised
        x_2 = x_2 + _noise(x, generator) * s_noise * su
        denoised_2 = _call(model, x_2, sigma_s, extra_args)
        # step 2: to t_next with the blended prediction
        sd, su = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        t_next_ = _t(sd)
        denoised_d = (1 - fac) * denoised + fac * denoised_2
        x = (sd / sigmas[i]) * x - (t - t_next_).expm1() * denoised_d
        x = x + _noise(x, generator) * s_noise * su
    return x


# -- multistep -----------------------------------------------------------------------------------
def _lms_coefficient(order: int, sigmas: np.ndarray, i: int, j: int) -> float:
    """Integral over [sigma_i, sigma_i+1] of the j-th Lagrange basis polynomial on past sigmas."""
    nodes, weights = np.polynomial.legendre.leggauss(order + 1)  # exact for degree <= 2*order+1
    a, b = sigmas[i], sigmas[i + 1]
    tau = (b - a) / 2 * nodes + (a + b) / 2
    basis = np.ones_like(tau)
    for k in range(order):
        if k != j:
            basis *= (tau - sigmas[i - k]) / (sigmas[i - j] - sigmas[i - k])
    return float((b - a) / 2 * np.sum(weights * basis))


@torch.no_grad()
def sample_lms(model, x, sigmas, *, extra_args=None, callback=None, generator=None,
               order: int = 4):
    """Linear multistep (Adams-Bashforth in sigma) of up to `order` past derivatives."""
    sigmas_np = sigmas.detach().cpu().double().numpy()
    ds: list[Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = _call(model, x, sigmas[i], extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        ds = (ds + [to_d(x, sigmas[i], denoised)])[-order:]
        cur = min(i + 1, order)
        coeffs = [_lms_coefficient(cur, sigmas_np, i, j) for j in range(cur)]
        x = x + sum(c * d for c, d in zip(coeffs, reversed(ds), strict=True))
    return x


@torch.no_grad()
def sample_dpmpp_2m(model, x, sigmas, *, extra_args=None, callback=None, generator=None):
    """DPM-Solver++(2M): second-order multistep in log-sigma, one evaluation per step."""
    old_denoised = None
    for i in range(len(sigmas) - 1):
        denoised = _call(model, x, sigmas[i], extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        if old_denoised is None or sigmas[i + 1] == 0:
            denoised_d = denoised
        else:
            r = (t - _t(sigmas[i - 1])) / h
            denoised_d = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old_denoised
        x = (sigmas[i + 1] / sigmas[i]) * x - (-h).expm1() * denoised_d
        old_denoised = denoised
    return x


@_flow_in_ve
@torch.no_grad()
def sample_dpmpp_2m_sde(model, x, sigmas, *, extra_args=None, callback=None, generator=None,
                        eta: float = 1.0, s_noise: float = 1.0, solver: str = "midpoint"):
    """DPM-Solver++(2M) SDE (midpoint or heun correction); noise: seeded Gaussian per step."""
    old_denoised, h_last = None, None
    for i in range(len(sigmas) - 1):
        denoised = _call(model, x, sigmas[i], extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        h = _t(sigmas[i + 1]) - _t(sigmas[i])
        eta_h = eta * h
        x = sigmas[i + 1] / sigmas[i] * (-eta_h).exp() * x + (-h - eta_h).expm1().neg() * denoised
        if old_denoised is not None:
            r = h_last / h
            if solver == "heun":
                coef = ((-h - eta_h).expm1().neg() / (-h - eta_h) + 1)
            else:
                coef = 0.5 * (-h - eta_h).expm1().neg()
            x = x + coef * (1 / r) * (denoised - old_denoised)
        if eta:
            x = x + _noise(x, generator) * sigmas[i + 1] * (-2 * eta_h).expm1().neg().sqrt() \
                * s_noise
        old_denoised, h_last = denoised, h
    return x


@_flow_in_ve
@torch.no_grad()
def sample_dpmpp_3m_sde(model, x, sigmas, *, extra_args=None, callback=None, generator=None,
                        eta: float = 1.0, s_noise: float = 1.0):
    """DPM-Solver++(3M) SDE; noise: seeded Gaussian per step."""
    denoised_1 = denoised_2 = None
    h_1 = h_2 = None
    for i in range(len(sigmas) - 1):
        denoised = _call(model, x, sigmas[i], extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        h = _t(sigmas[i + 1]) - _t(sigmas[i])
        h_eta = h * (eta + 1)
        x = (-h_eta).exp() * x + (-h_eta).expm1().neg() * denoised
        phi_2 = (-h_eta).expm1() / h_eta + 1
        if h_2 is not None:
            r0, r1 = h_1 / h, h_2 / h
            d1_0 = (denoised - denoised_1) / r0
            d1_1 = (denoised_1 - denoised_2) / r1
            d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            x = x + phi_2 * d1 - (phi_2 / h_eta - 0.5) * d2
        elif h_1 is not None:
            x = x + phi_2 * (denoised - denoised_1) / (h_1 / h)
        if eta:
            x = x + _noise(x, generator) * sigmas[i + 1] * (-2 * h * eta).expm1().neg().sqrt() \
                * s_noise
        denoised_1, denoised_2 = denoised, denoised_1
        h_1, h_2 = h, h_1
    return x


# Adams-Bashforth weights for the current and 1..3 previous derivatives (iPNDM).
_IPNDM_WEIGHTS = ((1.0,), (3 / 2, -1 / 2), (23 / 12, -16 / 12, 5 / 12),
                  (55 / 24, -59 / 24, 37 / 24, -9 / 24))


@torch.no_grad()
def sample_ipndm(model, x, sigmas, *, extra_args=None, callback=None, generator=None,
                 max_order: int = 4):
    """Improved pseudo numerical method (Zhang & Chen 2022): Adams-Bashforth in sigma with
    fixed weights, order rising to 4 as derivatives accumulate."""
    history: list[Tensor] = []  # previous derivatives, newest last
    for i in range(len(sigmas) - 1):
        denoised = _call(model, x, sigmas[i], extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        d = to_d(x, sigmas[i], denoised)
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            weights = _IPNDM_WEIGHTS[min(max_order, i + 1) - 1]
            ds = [d, *reversed(history)]
            d_mix = sum(w * dk for w, dk in zip(weights, ds, strict=True))
            x = x + (sigmas[i + 1] - sigmas[i]) * d_mix
        history = (history + [d])[-(max_order - 1):]
    return x


@torch.no_grad()
def sample_gradient_estimation(model, x, sigmas, *, extra_args=None, callback=None,
                               generator=None, ge_gamma: float = 2.0):
    """Gradient estimation (Permenter & Yuan 2024): Euler with d_bar = gamma*d + (1-gamma)*d_old."""
    old_d = None
    for i in range(len(sigmas) - 1):
        denoised = _call(model, x, sigmas[i], extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        d = to_d(x, sigmas[i], denoised)
        d_bar = d if old_d is None else ge_gamma * d + (1 - ge_gamma) * old_d
        x = x + d_bar * (sigmas[i + 1] - sigmas[i])
        old_d = d
    return x


# -- CFG++ (Chung et al. 2024): the step direction uses the unguided prediction ----------
def _uncond(model: Denoiser, denoised: Tensor) -> Tensor:
    """The last unguided (negative) prediction of a CFG denoiser; plain denoisers: denoised."""
    uncond = getattr(model, "uncond_denoised", None)
    return denoised if uncond is None else uncond


def _needs_uncond(fn: Sampler) -> Sampler:
    fn.needs_uncond = True  # the guider must run the negative pass even at cfg 1
    return fn


@_needs_uncond
@torch.no_grad()
def sample_euler_cfg_pp(model, x, sigmas, *, extra_args=None, callback=None, generator=None):
    """Euler with CFG++: renoise the guided prediction along the unguided direction."""
    for i in range(len(sigmas) - 1):
        denoised = _call(model, x, sigmas[i], extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        x = denoised + to_d(x, sigmas[i], _uncond(model, denoised)) * sigmas[i + 1]
    return x


@_needs_uncond
@torch.no_grad()
def sample_euler_ancestral_cfg_pp(model, x, sigmas, *, extra_args=None, callback=None,
                                  generator=None, eta: float = 1.0, s_noise: float = 1.0):
    """Euler ancestral with CFG++."""
    for i in range(len(sigmas) - 1):
        denoised = _call(model, x, sigmas[i], extra_args)
        _report(callback, x, i, sigmas[i], denoised)
        sigma_down, sigma_up = ancestral_step(sigmas[i], sigmas[i + 1], eta)
        x = denoised + to_d(x, sigmas[i], _uncond(model, denoised)) * sigma_down
        if sigmas[i + 1] > 0:
            x = x + _noise(x, generator) * s_noise * sigma_up
    return x


@_needs_uncond
@torch.no_grad()
def sample_dpmpp_2m_cfg_pp(model, x, sigmas, *, extra_args=None, callback=None,
                           generator=None):
    """DPM-Solver++(2M) with CFG++."""
    old_uncond = None
    for i in range(len(sigmas) - 1):
        denoised = _call(model, x, sigmas[i], extra_args)
        uncond = _uncond(model, denoised)
        _report(callback, x, i, sigmas[i], denoised)
        t, t_next = _t(sigmas[i]), _t(sigmas[i + 1])
        h = t_next - t
        mix = -(-h).exp() * uncond
        if old_uncond is not None and sigmas[i + 1] != 0:
            r = (t - _t(sigmas[i - 1])) / h
            mix = mix - (-h).expm1() * (1 / (2 * r)) * (denoised - old_uncond)
        x = denoised + mix + (-h).exp() * x
        old_uncond = uncond
    return x


# -- RES multistep (Zhang et al. 2023, "refined exponential solver", arXiv 2308.02157) -------
def _h_phi_1(h: Tensor) -> Tensor:
    """phi_1(h) = (e^h - 1) / h: the weight of a constant x0 prediction over one step."""
    return torch.expm1(h) / h


def _h_phi_2(h: Tensor) -> Tensor:
    """phi_2(h) = (phi_1(h) - 1) / h: the weight of the prediction's linear trend."""
    return (_h_phi_1(h) - 1) / h


def _model_noise_scale(model: Denoiser) -> float:
    """The model's noise_scale (flow models may scale their noise; everything else: 1)."""
    return float(getattr(getattr(model, "model_sampling", None), "noise_scale", 1.0))


def _res_weights(h: Tensor, c2: Tensor) -> tuple[Tensor, Tensor]:
    """(b1, b2): weights of the current and the previous x0 prediction in a RES 2M step.

    The previous prediction sits c2 * h before the current one (c2 < 0); 0/0 cases (a zero
    step or c2 = 0) count as 0, as in ComfyUI."""
    phi_1, phi_2 = _h_phi_1(-h), _h_phi_2(-h)
    b1 = torch.nan_to_num(phi_1 - phi_2 / c2, nan=0.0)
    b2 = torch.nan_to_num(phi_2 / c2, nan=0.0)
    return b1, b2


@torch.no_grad()
def _res_multistep(model, x, sigmas, *, extra_args, callback, generator, eta: float,
                   s_noise: float, cfg_pp: bool):
    """RES second-order multistep in t = -log sigma, one evaluation per step; ComfyUI's
    res_multistep family (eta > 0: ancestral, cfg_pp: CFG++ along the unguided prediction).

    The first step (and any step whose target is sigma 0) is Euler. Later steps integrate
    the exponential form exactly for an x0 prediction that varies linearly in t between the
    previous and the current one. `direction` is the prediction the step integrates: the
    guided one, or with CFG++ the unguided one. The ancestral split (sigma_down, sigma_up) is
    the variance-exploding one for every model: ComfyUI has no flow form of this sampler."""
    noise_std = s_noise * _model_noise_scale(model)
    old_direction = old_sigma_down = None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = _call(model, x, sigma, extra_args)
        direction = _uncond(model, denoised) if cfg_pp else denoised
        _report(callback, x, i, sigma, denoised)
        sigma_down, sigma_up = ancestral_step(sigma, sigma_next, eta)
        if sigma_down == 0 or old_direction is None:
            # Euler to sigma_down; CFG++ moves the guided prediction along the unguided slope
            x = denoised + (x - direction) * (sigma_down / sigma)
        else:
            t, t_next = _t(sigma), _t(sigma_down)
            h = t_next - t
            # the previous step ran from sigmas[i-1] to old_sigma_down in its own frame
            c2 = (_t(sigmas[i - 1]) - _t(old_sigma_down)) / h
            b1, b2 = _res_weights(h, c2)
            # CFG++ (as ComfyUI): shift x by the guidance difference before the decay
            x = (-h).exp() * (x + denoised - direction) \
                + h * (b1 * direction + b2 * old_direction)
        if sigma_next > 0 and eta:
            x = x + _noise(x, generator) * noise_std * sigma_up
        old_direction, old_sigma_down = direction, sigma_down
    return x


@torch.no_grad()
def sample_res_multistep(model, x, sigmas, *, extra_args=None, callback=None, generator=None):
    """RES multistep, deterministic (eta 0)."""
    return _res_multistep(model, x, sigmas, extra_args=extra_args, callback=callback,
                          generator=generator, eta=0.0, s_noise=1.0, cfg_pp=False)


@_needs_uncond
@torch.no_grad()
def sample_res_multistep_cfg_pp(model, x, sigmas, *, extra_args=None, callback=None,
                                generator=None):
    """RES multistep with CFG++, deterministic (eta 0)."""
    return _res_multistep(model, x, sigmas, extra_args=extra_args, callback=callback,
                          generator=generator, eta=0.0, s_noise=1.0, cfg_pp=True)


@torch.no_grad()
def sample_res_multistep_ancestral(model, x, sigmas, *, extra_args=None, callback=None,
                                   generator=None, eta: float = 1.0, s_noise: float = 1.0):
    """RES multistep down to sigma_down, then fresh noise of std sigma_up."""
    return _res_multistep(model, x, sigmas, extra_args=extra_args, callback=callback,
                          generator=generator, eta=eta, s_noise=s_noise, cfg_pp=False)


@_needs_uncond
@torch.no_grad()
def sample_res_multistep_ancestral_cfg_pp(model, x, sigmas, *, extra_args=None, callback=None,
                                          generator=None, eta: float = 1.0,
                                          s_noise: float = 1.0):
    """RES multistep ancestral with CFG++."""
    return _res_multistep(model, x, sigmas, extra_args=extra_args, callback=callback,
                          generator=generator, eta=eta, s_noise=s_noise, cfg_pp=True)


# -- UniPC ---------------------------------------------------------------------------------------
def _unipc_update(x: Tensor, models: list[Tensor], lambdas: list[Tensor], sigma_prev: Tensor,
                  sigma: Tensor, lambda_t: Tensor, order: int, variant: str,
                  corrector: Callable[[Tensor], Tensor] | None) -> tuple[Tensor, Tensor | None]:
    """One UniPC step in VP space with data prediction (predictor, optional corrector).

    x is the VP-space sample at sigma_prev (x_vp = x_ve / sqrt(1 + sigma^2)); models/lambdas
    are the last x0 predictions and their lambda = -log sigma, newest last.
    """
    alpha_t = 1 / (1 + sigma**2) ** 0.5
    std_t, std_prev = sigma * alpha_t, sigma_prev / (1 + sigma_prev**2) ** 0.5
    m0 = models[-1]
    h = lambda_t - lambdas[-1]
    rks, d1s = [], []
    for k in range(1, order):
        rk = (lambdas[-(k + 1)] - lambdas[-1]) / h
        rks.append(rk)
        d1s.append((models[-(k + 1)] - m0) / rk)
    rks.append(torch.ones_like(h))
    rks_t = torch.stack(rks).double()
    hh = (-h).double()  # data prediction integrates backwards in lambda
    h_phi_1 = hh.expm1()
    h_phi_k = h_phi_1 / hh - 1
    b_h = hh if variant == "bh1" else hh.expm1()
    rows, b = [], []
    factorial = 1
    for k in range(1, order + 1):
        rows.append(rks_t ** (k - 1))
        b.append(h_phi_k * factorial / b_h)
        factorial *= k + 1
        h_phi_k = h_phi_k / hh - 1 / factorial
    r_mat, b_vec = torch.stack(rows), torch.stack(b)
    x_base = std_t / std_prev * x - alpha_t * h_phi_1.to(x.dtype) * m0
    pred = 0
    if d1s:
        rhos_p = (torch.tensor([0.5], dtype=torch.float64) if order == 2
                  else torch.linalg.solve(r_mat[:-1, :-1], b_vec[:-1]))
        pred = sum(float(r) * d for r, d in zip(rhos_p, d1s, strict=True))
    b_h_x = float(b_h)
    x_t = x_base - alpha_t * b_h_x * pred
    if corrector is None:
        return x_t, None
    model_t = corrector(x_t)
    rhos_c = (torch.tensor([0.5], dtype=torch.float64) if order == 1
              else torch.linalg.solve(r_mat, b_vec))
    corr = sum(float(r) * d for r, d in zip(rhos_c[:-1], d1s, strict=True)) if d1s else 0
    x_t = x_base - alpha_t * b_h_x * (corr + float(rhos_c[-1]) * (model_t - m0))
    return x_t, model_t


def _sample_unipc(model, x, sigmas, extra_args, callback, variant: str) -> Tensor:
    """UniPC multistep (order up to 3, lower order at the end), one evaluation per step.

    As ComfyUI, a final sigma of 0 is replaced by 0.001 (UniPC needs a finite lambda), so a
    trace of noise at that level remains.
    """
    sigmas = sigmas.clone()
    if sigmas[-1] == 0:
        sigmas[-1] = 0.001
    steps = len(sigmas) - 1
    order = max(1, min(3, len(sigmas) - 2))

    def x0(x_vp: Tensor, sigma: Tensor) -> Tensor:
        return _call(model, x_vp * (1 + sigma**2) ** 0.5, sigma, extra_args)

    x = x / (1 + sigmas[0] ** 2) ** 0.5
    models, lambdas = [x0(x, sigmas[0])], [_t(sigmas[0])]
    _report(callback, x, 0, sigmas[0], models[0])
    for step in range(1, steps + 1):
        sigma = sigmas[step]
        step_order = min(step, order, steps + 1 - step)
        last = step == steps
        corrector = None if last else (lambda xt, s=sigma: x0(xt, s))
        x, model_x = _unipc_update(x, models, lambdas, sigmas[step - 1], sigma, _t(sigma),
                                   step_order, variant, corrector)
        if last:
            break
        _report(callback, x * (1 + sigma**2) ** 0.5, step, sigma, model_x)
        models, lambdas = (models + [model_x])[-order:], (lambdas + [_t(sigma)])[-order:]
    return x * (1 + sigmas[-1] ** 2) ** 0.5


@torch.no_grad()
def sample_uni_pc(model, x, sigmas, *, extra_args=None, callback=None, generator=None):
    """UniPC with the B(h) = h variant (bh1)."""
    return _sample_unipc(model, x, sigmas, extra_args, callback, "bh1")


@torch.no_grad()
def sample_uni_pc_bh2(model, x, sigmas, *, extra_args=None, callback=None, generator=None):
    """UniPC with the B(h) = e^h - 1 variant (bh2)."""
    return _sample_unipc(model, x, sigmas, extra_args, callback, "bh2")


def _with(sampler: Sampler, **options: Any) -> Sampler:
    def run(model, x, sigmas, *, extra_args=None, callback=None, generator=None):
        return sampler(model, x, sigmas, extra_args=extra_args, callback=callback,
                       generator=generator, **options)

    run.__doc__ = f"{sampler.__name__} with {options}."
    return run


# Sampler name (KSampler's sampler_name) -> function. The `_gpu` names only chose where
# ComfyUI's Brownian noise lives; here noise is seeded Gaussian either way.
SAMPLERS: dict[str, Sampler] = {
    "euler": sample_euler,
    "euler_ancestral": sample_euler_ancestral,
    "heun": sample_heun,
    "dpm_2": sample_dpm_2,
    "dpm_2_ancestral": sample_dpm_2_ancestral,
    "lms": sample_lms,
    "dpmpp_2s_ancestral": sample_dpmpp_2s_ancestral,
    "dpmpp_sde": sample_dpmpp_sde,
    "dpmpp_sde_gpu": sample_dpmpp_sde,
    "dpmpp_2m": sample_dpmpp_2m,
    "dpmpp_2m_sde": sample_dpmpp_2m_sde,
    "dpmpp_2m_sde_gpu": sample_dpmpp_2m_sde,
    "dpmpp_2m_sde_heun": _with(sample_dpmpp_2m_sde, solver="heun"),
    "dpmpp_2m_sde_heun_gpu": _with(sample_dpmpp_2m_sde, solver="heun"),
    "dpmpp_3m_sde": sample_dpmpp_3m_sde,
    "dpmpp_3m_sde_gpu": sample_dpmpp_3m_sde,
    "euler_cfg_pp": sample_euler_cfg_pp,
    "euler_ancestral_cfg_pp": sample_euler_ancestral_cfg_pp,
    "dpmpp_2m_cfg_pp": sample_dpmpp_2m_cfg_pp,
    "res_multistep": sample_res_multistep,
    "res_multistep_cfg_pp": sample_res_multistep_cfg_pp,
    "res_multistep_ancestral": sample_res_multistep_ancestral,
    "res_multistep_ancestral_cfg_pp": sample_res_multistep_ancestral_cfg_pp,
    "ipndm": sample_ipndm,
    "gradient_estimation": sample_gradient_estimation,
    "ddpm": sample_ddpm,
    "lcm": sample_lcm,
    "ddim": sample_euler,  # ComfyUI runs "ddim" as Euler
    "uni_pc": sample_uni_pc,
    "uni_pc_bh2": sample_uni_pc_bh2,
}

# Samplers that draw fresh noise during sampling (they get a seeded generator).
STOCHASTIC = frozenset({
    "euler_ancestral", "dpm_2_ancestral", "dpmpp_2s_ancestral", "dpmpp_sde", "dpmpp_sde_gpu",
    "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu", "ddpm",
    "lcm", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "euler_ancestral_cfg_pp",
    "res_multistep_ancestral", "res_multistep_ancestral_cfg_pp",
})


def sigma_is_max(sigma: float, sigma_max: float) -> bool:
    """ComfyUI's max_denoise test: sampling starts at (or above) the model's largest sigma."""
    return math.isclose(sigma_max, sigma, rel_tol=1e-5) or sigma > sigma_max
