"""Flow-matching model sampling (ComfyUI's CONST + discrete flow / Flux sigmas).

Facts: model-families.md §6, training-math.md §3-4. x_t = (1 - sigma) x0 + sigma n; the network
sees x_t and timestep sigma * multiplier (Flux: sigma); x0 = x_t - sigma F.
"""

from __future__ import annotations

import math

import pytest
import torch

from comfyless.models.samplers import SAMPLERS, STOCHASTIC
from comfyless.models.sampling import FlowSampling, flux_mu, model_sampling_flux, model_sampling_sd3
from comfyless.models.schedulers import SCHEDULERS


def _sd3_formula(s: float, t: float) -> float:
    return s * t / (1 + (s - 1) * t)


def _flux_formula(mu: float, t: float) -> float:
    return math.exp(mu) / (math.exp(mu) + (1 / t - 1))


@pytest.mark.parametrize("shift", [1.0, 3.0, 1.73, 6.0])
def test_discrete_flow_table_matches_the_spec(shift):
    ms = model_sampling_sd3(shift)
    assert len(ms.sigmas) == 1000
    for i in (1, 2, 100, 333, 500, 999, 1000):
        assert float(ms.sigmas[i - 1]) == pytest.approx(_sd3_formula(shift, i / 1000), rel=1e-6)
    assert float(ms.sigma_max) == pytest.approx(1.0)
    assert float(ms.sigma_min) == pytest.approx(_sd3_formula(shift, 0.001), rel=1e-6)
    # timestep = sigma * 1000 and sigma(timestep) inverts the shift of t = timestep / 1000
    assert float(ms.timestep(torch.tensor(0.25))) == pytest.approx(250.0)
    assert float(ms.sigma(torch.tensor(400.0))) == pytest.approx(_sd3_formula(shift, 0.4),
                                                                 rel=1e-6)


def test_auraflow_multiplier_one_and_flux_table():
    aura = model_sampling_sd3(1.73, multiplier=1.0)
    assert float(aura.timestep(torch.tensor(0.6))) == pytest.approx(0.6)
    assert float(aura.sigma(torch.tensor(0.4))) == pytest.approx(_sd3_formula(1.73, 0.4), rel=1e-6)
    flux = model_sampling_flux(1.15)
    assert len(flux.sigmas) == 10000
    for i in (1, 7, 2500, 5000, 9999, 10000):
        assert float(flux.sigmas[i - 1]) == pytest.approx(_flux_formula(1.15, i / 10000),
                                                          rel=1e-5)
    assert float(flux.timestep(torch.tensor(0.3))) == pytest.approx(0.3)  # timestep = sigma
    assert float(flux.sigma(torch.tensor(0.3))) == pytest.approx(_flux_formula(1.15, 0.3),
                                                                 rel=1e-6)


@pytest.mark.parametrize("ms", [model_sampling_sd3(3.0), model_sampling_flux(0.8)])
def test_percent_to_sigma(ms):
    assert ms.percent_to_sigma(0.0) == 1.0
    assert ms.percent_to_sigma(-1.0) == 1.0
    assert ms.percent_to_sigma(1.0) == 0.0
    formula = (_flux_formula if ms.kind == "flux" else _sd3_formula)
    for p in (0.1, 0.5, 0.93):
        assert ms.percent_to_sigma(p) == pytest.approx(formula(ms.shift, 1 - p), rel=1e-9)


def test_flux_mu_at_256_and_4096_tokens():
    assert flux_mu(256, 256, 0.5, 1.15) == pytest.approx(0.5)  # 256 tokens -> base
    assert flux_mu(1024, 1024, 0.5, 1.15) == pytest.approx(1.15)  # 4096 tokens -> max
    assert flux_mu(512, 1024, 0.5, 1.15) == pytest.approx(0.5 + 0.65 * (2048 - 256) / 3840)


def test_noise_scaling_and_denoised_round_trip():
    g = torch.Generator().manual_seed(0)
    x0, n = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    sigma = torch.tensor([0.2, 0.5, 0.9])
    ms = model_sampling_sd3(3.0)
    xt = ms.noise_scaling(sigma, n, x0)
    s = sigma.reshape(-1, 1, 1, 1)
    torch.testing.assert_close(xt, s * n + (1 - s) * x0)
    assert torch.equal(ms.calculate_input(sigma, xt), xt)
    # the velocity n - x0 is the network output that gives back x0
    torch.testing.assert_close(ms.calculate_denoised(sigma, n - x0, xt), x0, rtol=1e-5,
                               atol=1e-5)
    torch.testing.assert_close(ms.noise_scaling(0.0, 0.0, x0), x0)  # the training target
    torch.testing.assert_close(ms.inverse_noise_scaling(torch.tensor(0.0), x0), x0)
    torch.testing.assert_close(ms.inverse_noise_scaling(torch.tensor(0.5), x0), x0 * 2)
    scaled = FlowSampling(3.0, noise_scale=0.5)
    torch.testing.assert_close(scaled.noise_scaling(sigma, n, x0), s * 0.5 * n + (1 - s) * x0)


class _Fixed:
    """A denoiser whose x0 prediction is always `target`, on flow sampling."""

    def __init__(self, target, ms):
        self.target, self.model_sampling, self.uncond_denoised = target, ms, None

    def __call__(self, x, sigma, **_):
        return self.target.expand_as(x).to(x.dtype)


class _Gauss:
    """The exact denoiser for data ~ N(MU, S^2) under x = (1 - s) x0 + s n."""

    MU, S = 0.7, 0.5

    def __init__(self, ms):
        self.model_sampling, self.uncond_denoised = ms, None

    def __call__(self, x, sigma, **_):
        s = sigma.reshape(-1, *([1] * (x.ndim - 1)))
        a = 1 - s
        out = self.MU + a * self.S**2 / (a**2 * self.S**2 + s**2) * (x - a * self.MU)
        self.uncond_denoised = out
        return out


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_every_sampler_converges_to_a_fixed_target_under_flow(name):
    ms = model_sampling_sd3(3.0)
    g = torch.Generator().manual_seed(1)
    target = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64)
    noise = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64)
    sigmas = SCHEDULERS["simple"](ms, 12).double()
    x = ms.noise_scaling(sigmas[0], noise, torch.zeros_like(noise))
    out = SAMPLERS[name](_Fixed(target, ms), x, sigmas, extra_args={}, callback=None,
                         generator=torch.Generator().manual_seed(3))
    out = ms.inverse_noise_scaling(sigmas[-1], out)
    # UniPC stops at sigma 0.001 (as ComfyUI), which leaves a trace of the noise
    tol = 1e-2 if name.startswith("uni_pc") else 1e-4
    torch.testing.assert_close(out, target, rtol=tol, atol=tol)


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
def test_every_scheduler_gives_a_valid_flow_schedule(scheduler):
    for ms in (model_sampling_sd3(3.0), model_sampling_flux(1.15)):
        sig = SCHEDULERS[scheduler](ms, 8)
        assert float(sig[-1]) == 0.0
        assert float(sig.max()) <= 1.0 + 1e-6
        assert bool((sig[:-1] > 0).all()) and bool((sig[1:] <= sig[:-1]).all())


DETERMINISTIC = sorted(set(SAMPLERS) - STOCHASTIC)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_samplers_follow_the_flow_ode(name):
    """From x_1 = z the exact probability-flow ODE ends at MU + z*S."""
    ms = model_sampling_sd3(3.0)
    z = torch.randn(2, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sigmas = SCHEDULERS["simple"](ms, 160).double()
    model = _Gauss(ms)
    out = SAMPLERS[name](model, z.clone(), sigmas, extra_args={}, callback=None, generator=None)
    err = (out - (_Gauss.MU + z * _Gauss.S)).abs().max().item()
    assert err < 0.05, err


@pytest.mark.parametrize("name", ["euler_ancestral", "dpmpp_2s_ancestral", "lcm", "dpmpp_sde",
                                  "dpmpp_2m_sde", "dpmpp_2m_sde_heun", "dpmpp_3m_sde"])
def test_flow_ancestral_samplers_keep_the_data_distribution(name):
    """The rectified-flow ancestral forms, LCM's noise_scaling and the SDE solvers (run in VE
    coordinates) keep x on the flow path: mean MU, spread S."""
    ms = model_sampling_sd3(3.0)
    z = torch.randn(4, 1, 64, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sigmas = SCHEDULERS["simple"](ms, 480 if name == "euler_ancestral" else 120).double()
    out = SAMPLERS[name](_Gauss(ms), z, sigmas, extra_args={}, callback=None,
                         generator=torch.Generator().manual_seed(5))
    assert out.mean().item() == pytest.approx(_Gauss.MU, abs=0.02)
    if name != "lcm":  # LCM ends on a posterior mean: its spread is below S by design
        assert out.std().item() == pytest.approx(_Gauss.S, rel=0.05)
