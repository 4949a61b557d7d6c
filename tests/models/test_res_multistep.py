"""RES multistep samplers (res_multistep, _cfg_pp, _ancestral, _ancestral_cfg_pp).

Closed-form denoisers give exact references: data ~ N(MU, S^2) has an affine probability-flow
ODE whose solution is known in closed form (variance-exploding and flow parameterisations), and
a prediction that is linear in t = -log sigma is integrated exactly by the second-order step.
"""

from __future__ import annotations

import math

import pytest
import torch

from comfyless.models.samplers import SAMPLERS, STOCHASTIC
from comfyless.models.sampling import FlowSampling, flow_shift, model_sampling_sd3
from comfyless.models.schedulers import karras_sigmas
from comfyless.nodes.model_sampling import ModelSamplingSD3
from comfyless.nodes.sampling import KSampler
from tests.fixtures_models import random_conds
from tests.floats import assert_close_scaled

MU, S = 0.7, 0.5
RES = ("res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
       "res_multistep_ancestral_cfg_pp")


class GaussVE:
    """The exact denoiser of N(MU, S^2) data under x = x0 + sigma n (no guidance)."""

    def __call__(self, x, sigma, **_):
        sig = sigma.reshape(-1, *([1] * (x.ndim - 1)))
        return MU + S**2 / (S**2 + sig**2) * (x - MU)


class GaussFlow:
    """The exact denoiser of N(MU, S^2) data under x = (1 - sigma) x0 + sigma n."""

    def __init__(self, ms: FlowSampling) -> None:
        self.model_sampling = ms

    def __call__(self, x, sigma, **_):
        s = sigma.reshape(-1, *([1] * (x.ndim - 1)))
        a = 1 - s
        return MU + a * S**2 / (a**2 * S**2 + s**2) * (x - a * MU)


class Guided:
    """A CFG-like denoiser: the guided prediction is the Gaussian one plus `push`; the unguided
    one (what CFG++ follows) is the plain Gaussian prediction."""

    def __init__(self, push: float) -> None:
        self.push, self.uncond_denoised = push, None

    def __call__(self, x, sigma, **kw):
        self.uncond_denoised = GaussVE()(x, sigma)
        return self.uncond_denoised + self.push


class LinearInT:
    """A prediction a + b t(sigma), t = -log sigma, independent of x: the ODE
    dx/dsigma = (x - D)/sigma has the solution x(sigma) = D(sigma) - b + C sigma."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor) -> None:
        self.a, self.b = a, b

    def prediction(self, sigma: float) -> torch.Tensor:
        return self.a - self.b * math.log(sigma)

    def __call__(self, x, sigma, **_):
        t = -sigma.log().reshape(-1, *([1] * (x.ndim - 1)))
        return (self.a + self.b * t).expand_as(x).clone()

    def solution(self, sigma_from: float, x_from: torch.Tensor, sigma_to: float) -> torch.Tensor:
        c = (x_from - self.prediction(sigma_from) + self.b) / sigma_from
        return self.prediction(sigma_to) - self.b + c * sigma_to


def _z(seed: int = 0) -> torch.Tensor:
    return torch.randn(2, 1, 16, 16, dtype=torch.float64,
                       generator=torch.Generator().manual_seed(seed))


def _run(name, model, x, sigmas, *, seed=1, callback=None, **options):
    return SAMPLERS[name](model, x, sigmas, extra_args={}, callback=callback,
                          generator=torch.Generator().manual_seed(seed), **options)


def _states(name, model, x, sigmas, **options):
    """x before every step (from the callback), then the result."""
    seen = []
    out = _run(name, model, x, sigmas, callback=lambda info: seen.append(info["x"]), **options)
    return [*seen, out]


# -- registration --------------------------------------------------------------------------------
def test_the_four_names_are_registered_with_comfyuis_roles():
    assert set(RES) <= set(SAMPLERS)
    assert STOCHASTIC & set(RES) == {"res_multistep_ancestral", "res_multistep_ancestral_cfg_pp"}
    needs = {name for name in RES if getattr(SAMPLERS[name], "needs_uncond", False)}
    assert needs == {"res_multistep_cfg_pp", "res_multistep_ancestral_cfg_pp"}


# -- the deterministic solver --------------------------------------------------------------------
def _ve_error(name: str, steps: int) -> float:
    """Distance to the exact ODE solution at the last (nonzero) sigma of a Karras schedule."""
    z = _z()
    sigmas = karras_sigmas(steps, 0.03, 14.6).double()[:-1]
    x = MU + z * math.sqrt(S**2 + float(sigmas[0]) ** 2)
    out = _run(name, GaussVE(), x, sigmas)
    return (out - (MU + z * math.sqrt(S**2 + float(sigmas[-1]) ** 2))).abs().max().item()


def test_converges_at_second_order_where_euler_is_first_order():
    res = [_ve_error("res_multistep", n) for n in (10, 20, 40)]
    euler = [_ve_error("euler", n) for n in (10, 20, 40)]
    assert res[2] < euler[2] / 5
    # halving the step: error / 4 for a second-order method, / 2 for Euler (measured 4.3, 4.6)
    assert res[1] / res[2] > 3.5 and res[0] / res[1] > 3.5
    assert euler[1] / euler[2] < 2.2


def test_converges_at_second_order_on_a_flow_model():
    ms = model_sampling_sd3(3.0)
    z = _z()

    def error(name: str, steps: int) -> float:
        sigmas = flow_shift(3.0, torch.linspace(1.0, 0.05, steps + 1, dtype=torch.float64))
        out = _run(name, GaussFlow(ms), z.clone(), sigmas)
        s = float(sigmas[-1])
        exact = (1 - s) * MU + math.sqrt((1 - s) ** 2 * S**2 + s**2) * z
        return (out - exact).abs().max().item()

    res = [error("res_multistep", n) for n in (40, 80)]
    euler = [error("euler", n) for n in (40, 80)]
    assert res[1] < euler[1] / 5
    assert res[0] / res[1] > 3.5  # measured 3.9; Euler 2.0


def test_first_step_is_euler():
    z = _z()
    sigmas = karras_sigmas(6, 0.03, 14.6).double()
    x = MU + z * math.sqrt(S**2 + float(sigmas[0]) ** 2)
    ours = _states("res_multistep", GaussVE(), x, sigmas)
    euler = _states("euler", GaussVE(), x, sigmas)
    assert_close_scaled(ours[1], euler[1])
    assert (ours[2] - euler[2]).abs().max() > 1e-3  # from the second step on: multistep


@pytest.mark.parametrize("name", ["res_multistep", "res_multistep_cfg_pp"])
def test_steps_after_the_first_are_exact_for_a_prediction_linear_in_t(name):
    """The step integrates the exponential form exactly for an x0 prediction that is linear in
    t through the previous and the current one; Euler does not."""
    g = torch.Generator().manual_seed(2)
    model = LinearInT(torch.randn(1, 1, 4, 4, generator=g, dtype=torch.float64),
                      torch.randn(1, 1, 4, 4, generator=g, dtype=torch.float64))
    sigmas = torch.tensor([8.0, 3.0, 1.2, 0.5, 0.1], dtype=torch.float64)
    x = torch.randn(2, 1, 4, 4, generator=g, dtype=torch.float64) * 8
    states = _states(name, model, x, sigmas)
    exact = model.solution(float(sigmas[1]), states[1], float(sigmas[-1]))
    assert_close_scaled(states[-1], exact, rtol=1e-9, atol_rel=1e-9)
    euler = _states("euler", model, x, sigmas)
    euler_exact = model.solution(float(sigmas[1]), euler[1], float(sigmas[-1]))
    assert (euler[-1] - euler_exact).abs().max() > 1e-2


def _phi(h: float) -> tuple[float, float]:
    """phi_1(-h), phi_2(-h) of the exponential integrator."""
    phi_1 = -math.expm1(-h) / h
    return phi_1, (1 - phi_1) / h


def _sigma_down(sigma: float, sigma_next: float, eta: float) -> float:
    """The variance-exploding ancestral target: sigma_up = min(sigma_next, eta sqrt(sigma_next^2
    (sigma^2 - sigma_next^2) / sigma^2)), sigma_down = sqrt(sigma_next^2 - sigma_up^2)."""
    up = min(sigma_next, eta * math.sqrt(sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2))
    return math.sqrt(sigma_next**2 - up**2)


@pytest.mark.parametrize(("cfg_pp", "eta"), [(False, 0.0), (True, 0.0), (False, 0.7),
                                             (True, 0.7)])
def test_second_step_is_the_res_2m_formula(cfg_pp, eta):
    """x2 = e^-h (x1 + D1 - U1) + h (b1 U1 + b2 U0), t = -log sigma, h = t(down_2) - t1,
    c2 = (t0 - t(down_1)) / h, b2 = phi_2(-h) / c2, b1 = phi_1(-h) - b2 (D guided, U what the
    step follows: the guided prediction, or the unguided one for CFG++; down_k the ancestral
    target of step k, sigma_k itself at eta 0). s_noise 0 leaves the fresh noise out."""
    model = Guided(push=0.3)
    sigmas = torch.tensor([5.0, 2.0, 0.7], dtype=torch.float64)
    x0 = MU + _z() * math.sqrt(S**2 + 25.0)
    name = "res_multistep" + ("_ancestral" if eta else "") + ("_cfg_pp" if cfg_pp else "")
    options = {"eta": eta, "s_noise": 0.0} if eta else {}
    states = _states(name, model, x0, sigmas, **options)
    x1 = states[1]
    u0 = GaussVE()(x0, sigmas[:1].expand(2))
    d1 = GaussVE()(x1, sigmas[1:2].expand(2)) + 0.3
    u1 = d1 - 0.3 if cfg_pp else d1
    if not cfg_pp:
        u0 = u0 + 0.3
    s0, s1, s2 = (float(s) for s in sigmas)
    down_1, down_2 = _sigma_down(s0, s1, eta), _sigma_down(s1, s2, eta)
    h = math.log(s1) - math.log(down_2)
    phi_1, phi_2 = _phi(h)
    b2 = phi_2 / ((math.log(down_1) - math.log(s0)) / h)
    b1 = phi_1 - b2
    want = math.exp(-h) * (x1 + d1 - u1) + h * (b1 * u1 + b2 * u0)
    assert_close_scaled(states[2], want, rtol=1e-10, atol_rel=1e-10)


def test_steps_to_sigma_zero_end_on_the_prediction():
    z = _z()
    sigmas = karras_sigmas(5, 0.03, 14.6).double()
    x = MU + z * math.sqrt(S**2 + float(sigmas[0]) ** 2)
    for name in RES:
        states = _states(name, GaussVE(), x, sigmas)
        assert_close_scaled(states[-1], GaussVE()(states[-2], sigmas[-2:-1].expand(2)))


@pytest.mark.parametrize("name", ["res_multistep", "res_multistep_cfg_pp"])
def test_deterministic_variants_ignore_the_seed(name):
    z = _z()
    sigmas = karras_sigmas(6, 0.03, 14.6).double()
    a = _run(name, GaussVE(), z * 14.6, sigmas, seed=1)
    b = _run(name, GaussVE(), z * 14.6, sigmas, seed=2)
    assert torch.equal(a, b)  # one computation, twice: bitwise


# -- CFG++ -----------------------------------------------------------------------------------
def test_cfg_pp_follows_the_unguided_prediction():
    z = _z()
    sigmas = karras_sigmas(6, 0.03, 14.6).double()
    x = MU + z * math.sqrt(S**2 + float(sigmas[0]) ** 2)
    pp = _states("res_multistep_cfg_pp", Guided(0.3), x, sigmas)
    plain = _states("res_multistep", Guided(0.3), x, sigmas)
    euler_pp = _states("euler_cfg_pp", Guided(0.3), x, sigmas)
    assert_close_scaled(pp[1], euler_pp[1])  # first step: Euler with CFG++
    assert (pp[-1] - plain[-1]).abs().max() > 1e-2
    # no guidance (unguided == guided): the plain sampler
    for base in ("res_multistep", "res_multistep_ancestral"):
        a = _run(f"{base}_cfg_pp", Guided(0.0), x, sigmas, seed=4)
        b = _run(base, Guided(0.0), x, sigmas, seed=4)
        assert_close_scaled(a, b)


# -- ancestral -----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["res_multistep_ancestral", "res_multistep_ancestral_cfg_pp"])
def test_ancestral_variants_use_the_seed(name):
    z = _z()
    sigmas = karras_sigmas(6, 0.03, 14.6).double()
    a = _run(name, Guided(0.1), z * 14.6, sigmas, seed=5)
    b = _run(name, Guided(0.1), z * 14.6, sigmas, seed=5)
    c = _run(name, Guided(0.1), z * 14.6, sigmas, seed=6)
    assert torch.equal(a, b)  # same seed, same path, one process: bitwise
    assert (a - c).abs().max() > 1e-3


def test_ancestral_with_eta_zero_is_the_deterministic_sampler():
    z = _z()
    sigmas = karras_sigmas(6, 0.03, 14.6).double()
    for base in ("res_multistep", "res_multistep_cfg_pp"):
        anc = base.replace("res_multistep", "res_multistep_ancestral")
        a = _run(anc, Guided(0.2), z * 14.6, sigmas, eta=0.0)
        assert_close_scaled(a, _run(base, Guided(0.2), z * 14.6, sigmas))


def test_ancestral_samples_the_data_distribution():
    z = torch.randn(4, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    sigmas = karras_sigmas(60, 0.03, 14.6).double()
    out = _run("res_multistep_ancestral", GaussVE(), MU + z * math.sqrt(S**2 + 14.6**2), sigmas)
    assert out.mean().item() == pytest.approx(MU, abs=0.03)
    assert out.std().item() == pytest.approx(S, abs=0.03)


def test_ancestral_noise_is_scaled_by_the_models_noise_scale():
    """As ComfyUI: fresh noise has std s_noise * model_sampling.noise_scale * sigma_up, and the
    ancestral split is the variance-exploding one on flow models too."""
    z = _z()
    sigmas = flow_shift(3.0, torch.linspace(1.0, 0.0, 7, dtype=torch.float64))
    half = GaussFlow(FlowSampling(3.0, noise_scale=0.5))
    full = GaussFlow(FlowSampling(3.0))
    a = _run("res_multistep_ancestral", half, z.clone(), sigmas, seed=3, s_noise=1.0)
    b = _run("res_multistep_ancestral", full, z.clone(), sigmas, seed=3, s_noise=0.5)
    assert_close_scaled(a, b)
    c = _run("res_multistep_ancestral", full, z.clone(), sigmas, seed=3)
    assert (a - c).abs().max() > 1e-3


# -- KSampler end to end -------------------------------------------------------------------------
def _ksampler(ctx, model, sampler_name, *, steps, cfg, conds, seed=7):
    (out,) = KSampler.execute(ctx.for_node("3", "KSampler"), model=model, seed=seed,
                              steps=steps, cfg=cfg, sampler_name=sampler_name,
                              scheduler="simple", positive=conds[0], negative=conds[1],
                              latent_image={"samples": torch.zeros(1, 4, 8, 8)}, denoise=1.0)
    return out["samples"]


@pytest.mark.usefixtures("one_torch_thread")
def test_ksampler_runs_res_multistep_on_eps_and_flow_models(ctx, tiny_sd15_model):
    conds = random_conds(tiny_sd15_model)
    eps = _ksampler(ctx, tiny_sd15_model, "res_multistep", steps=4, cfg=4.0, conds=conds)
    euler = _ksampler(ctx, tiny_sd15_model, "euler", steps=4, cfg=4.0, conds=conds)
    assert eps.shape == (1, 4, 8, 8) and torch.isfinite(eps).all()
    assert (eps - euler).abs().max() > 1e-4
    (flow,) = ModelSamplingSD3.execute(ctx, model=tiny_sd15_model, shift=3.0)
    out = _ksampler(ctx, flow, "res_multistep", steps=4, cfg=1.0, conds=conds)
    assert out.shape == (1, 4, 8, 8) and torch.isfinite(out).all()
    again = _ksampler(ctx, flow, "res_multistep", steps=4, cfg=1.0, conds=conds, seed=8)
    assert (out - again).abs().max() > 1e-4  # the seed picks the starting noise


@pytest.mark.usefixtures("one_torch_thread")
def test_ksampler_cfg_pp_at_cfg_one_with_equal_prompts_is_the_plain_sampler(ctx,
                                                                            tiny_sd15_model):
    pos, _neg = random_conds(tiny_sd15_model)
    for base in ("res_multistep", "res_multistep_ancestral"):
        plain = _ksampler(ctx, tiny_sd15_model, base, steps=3, cfg=1.0, conds=(pos, pos))
        pp = _ksampler(ctx, tiny_sd15_model, f"{base}_cfg_pp", steps=3, cfg=1.0,
                       conds=(pos, pos))
        assert_close_scaled(pp, plain, rtol=1e-3, atol_rel=1e-4)
