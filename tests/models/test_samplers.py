"""Samplers on an analytic denoiser, CFG, noise and step-range rules.

Data ~ N(MU, S^2) per element has the exact denoiser D(x, sigma) = MU + S^2/(S^2+sigma^2)(x-MU)
and an affine probability-flow ODE: from x_T = MU + z*sqrt(S^2 + sigma_max^2) the exact
end point is MU + z*S. Deterministic samplers must converge to it; stochastic ones must give
samples with mean MU and standard deviation S.
"""

from __future__ import annotations

import contextlib
import math

import pytest
import torch

from comfyless.models.guidance import CFGDenoiser, ksample, prepare_noise, step_sigmas
from comfyless.models.latent_formats import SD15
from comfyless.models.samplers import SAMPLERS, STOCHASTIC
from comfyless.models.sampling import ModelSampling
from comfyless.models.schedulers import karras_sigmas
from comfyless.nodes.sampling import SAMPLER_NAMES
from tests.floats import assert_close_scaled

MU, S = 0.7, 0.5
DETERMINISTIC = sorted(set(SAMPLERS) - STOCHASTIC)
REQUIRED = ("euler", "euler_ancestral", "heun", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_2m",
            "dpmpp_2m_sde", "dpmpp_sde", "ddim", "uni_pc")


class Counting:
    """The exact Gaussian denoiser, counting its evaluations."""

    def __init__(self, s: float = S) -> None:
        self.s, self.calls = s, 0

    def __call__(self, x, sigma, **_):
        self.calls += 1
        assert sigma.shape == (x.shape[0],)
        sig = sigma.reshape(-1, *([1] * (x.ndim - 1)))
        return MU + self.s**2 / (self.s**2 + sig**2) * (x - MU)


def _run(name, steps, *, s=S, seed=1, z_seed=0, callback=None):
    z = torch.randn(4, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(
        z_seed))
    sigmas = karras_sigmas(steps, 0.03, 14.6).double()
    x = MU + z * math.sqrt(s**2 + sigmas[0].item() ** 2)
    model = Counting(s)
    out = SAMPLERS[name](model, x, sigmas, extra_args={}, callback=callback,
                         generator=torch.Generator().manual_seed(seed))
    return out, MU + z * s, model.calls


def test_required_samplers_implemented_and_all_names_are_comfyui_options():
    assert set(REQUIRED) <= set(SAMPLERS)
    assert set(SAMPLERS) <= set(SAMPLER_NAMES)


@pytest.mark.parametrize(("name", "tol"), [
    ("euler", 0.1), ("ddim", 0.1), ("heun", 0.005), ("dpm_2", 0.002), ("lms", 0.003),
    ("dpmpp_2m", 0.005), ("uni_pc", 0.005), ("uni_pc_bh2", 0.005), ("ipndm", 0.003),
    ("gradient_estimation", 0.1),
])
def test_ode_samplers_converge_to_the_exact_flow(name, tol):
    coarse, target, _ = _run(name, 10)
    fine, _, _ = _run(name, 40)
    err_coarse, err_fine = (coarse - target).abs().max(), (fine - target).abs().max()
    assert err_fine < tol
    assert err_fine < err_coarse / 1.8  # at least first order


@pytest.mark.parametrize("name", sorted(STOCHASTIC - {"lcm"}))
def test_stochastic_samplers_sample_the_data_distribution(name):
    out, _, _ = _run(name, 100)
    assert out.mean().item() == pytest.approx(MU, abs=0.03)
    assert out.std().item() == pytest.approx(S, abs=0.03)


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_single_point_data_is_recovered(name):
    out, _, _ = _run(name, 8, s=0.0)
    # UniPC stops at sigma 0.001 instead of 0 (as ComfyUI): that much noise is left
    left = 0.001 if name.startswith("uni_pc") else 0.0
    z = torch.randn(4, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, MU + left * z, atol=1e-4)


@pytest.mark.parametrize(("name", "evals"), [
    ("euler", 10), ("heun", 19), ("dpm_2", 19), ("lms", 10), ("dpmpp_2m", 10),
    ("uni_pc", 10), ("dpmpp_sde", 19), ("euler_ancestral", 10), ("dpm_2_ancestral", 19),
])
def test_model_evaluations_per_step(name, evals):
    _, _, calls = _run(name, 10)
    assert calls == evals


@pytest.mark.parametrize("name", sorted(SAMPLERS))
def test_callback_once_per_step(name):
    seen = []
    _run(name, 6, callback=lambda info: seen.append(info["i"]))
    assert seen == list(range(6))


@pytest.mark.parametrize("name", sorted(STOCHASTIC))
def test_stochastic_samplers_repeat_with_the_same_seed(name):
    a, _, _ = _run(name, 6, seed=5)
    b, _, _ = _run(name, 6, seed=5)
    c, _, _ = _run(name, 6, seed=6)
    assert torch.equal(a, b)  # same seed, same path, one process: bitwise
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_samplers_ignore_the_generator(name):
    a, _, _ = _run(name, 6, seed=5)
    b, _, _ = _run(name, 6, seed=6)
    assert torch.equal(a, b)  # the same computation twice: bitwise


@pytest.mark.parametrize(("pp", "base"), [("euler_cfg_pp", "euler"),
                                          ("euler_ancestral_cfg_pp", "euler_ancestral"),
                                          ("dpmpp_2m_cfg_pp", "dpmpp_2m")])
def test_cfg_pp_without_guidance_is_the_base_sampler(pp, base):
    assert SAMPLERS[pp].needs_uncond
    a, _, _ = _run(pp, 7)
    b, _, _ = _run(base, 7)
    assert_close_scaled(a, b)  # another formula for the same step


# -- initial noise, step ranges ------------------------------------------------------------------
def test_prepare_noise_is_comfyuis_cpu_randn():
    latent = torch.zeros(2, 4, 5, 6)
    torch.manual_seed(123)
    want = torch.randn(2, 4, 5, 6)
    assert torch.equal(prepare_noise(latent, 123), want)  # the same RNG stream: bitwise


def test_prepare_noise_batch_index_picks_per_index_draws():
    latent = torch.zeros(2, 4, 3, 3)
    gen = torch.Generator().manual_seed(9)
    draws = [torch.randn(1, 4, 3, 3, generator=gen) for _ in range(4)]
    noise = prepare_noise(latent, 9, [3, 1])
    assert torch.equal(noise, torch.cat([draws[3], draws[1]]))
    # a latent split from a batch keeps the noise it had in the batch
    assert torch.equal(prepare_noise(torch.zeros(1, 4, 3, 3), 9, [1]), draws[1])


def test_step_sigmas_rules():
    sigmas = torch.tensor([10.0, 5.0, 2.0, 1.0, 0.0])
    assert torch.equal(step_sigmas(sigmas, None, None, False), sigmas)
    assert step_sigmas(sigmas, 1, 3, False).tolist() == [5.0, 2.0, 1.0]
    assert step_sigmas(sigmas, 1, 3, True).tolist() == [5.0, 2.0, 0.0]  # forced full denoise
    assert step_sigmas(sigmas, 0, 10000, True).tolist() == sigmas.tolist()
    assert step_sigmas(sigmas, 4, None, False) is None  # past the end: nothing to do
    assert step_sigmas(sigmas, 2, 2, False) is None
    assert torch.equal(sigmas, torch.tensor([10.0, 5.0, 2.0, 1.0, 0.0]))  # input untouched


# -- CFG on a fake ModelPatcher --------------------------------------------------------------------
class FakeModel:
    """A ModelPatcher stand-in whose x0 prediction is the Gaussian denoiser around the mean of
    the context (so positive and negative prompts pull towards different points)."""

    def __init__(self):
        self.sampling = ModelSampling("eps")
        self.latent_format = SD15
        self.device = torch.device("cpu")
        self.batches: list[int] = []
        self.patched_depth = 0
        self.patched_entries = 0

    @contextlib.contextmanager
    def patched(self):
        self.patched_entries += 1
        self.patched_depth += 1
        try:
            yield None
        finally:
            self.patched_depth -= 1

    def extra_conds(self, options, width, height):
        return {}

    def apply_model(self, x, sigma, context, **extra):
        self.batches.append(x.shape[0])
        mu = context.mean(dim=(1, 2)).reshape(-1, 1, 1, 1).to(x)
        if mu.shape[0] != x.shape[0]:
            mu = mu.repeat(x.shape[0] // mu.shape[0], 1, 1, 1)
        sig = sigma.reshape(-1, 1, 1, 1)
        return mu + S**2 / (S**2 + sig**2) * (x - mu)


def _cond(value: float, **options):
    return [[torch.full((1, 3, 8), value), options]]


def test_cfg_combines_in_x0_space():
    model = FakeModel()
    x, sigma = torch.randn(2, 4, 4, 4), torch.tensor([2.0, 2.0])
    den = CFGDenoiser(model, _cond(1.0), _cond(-1.0), 3.0, x.shape)
    cond = model.apply_model(x, sigma, torch.full((1, 3, 8), 1.0))
    uncond = model.apply_model(x, sigma, torch.full((1, 3, 8), -1.0))
    model.batches.clear()
    assert_close_scaled(den(x, sigma), uncond + 3.0 * (cond - uncond))  # batch 4 vs 2
    assert model.batches == [4]  # positive and negative in one batched forward


def test_cfg_one_skips_the_negative_pass():
    model = FakeModel()
    x, sigma = torch.randn(2, 4, 4, 4), torch.tensor([2.0, 2.0])
    den = CFGDenoiser(model, _cond(1.0), _cond(-1.0), 1.0, x.shape)
    out = den(x, sigma)
    assert model.batches == [2] and den.calls == 1
    assert torch.allclose(out, model.apply_model(x, sigma, torch.full((1, 3, 8), 1.0)))


def test_several_cond_entries_are_averaged_by_strength():
    model = FakeModel()
    x, sigma = torch.randn(1, 4, 4, 4), torch.tensor([1.5])
    pos = _cond(1.0) + _cond(4.0, strength=3.0)
    den = CFGDenoiser(model, pos, _cond(0.0), 1.0, x.shape)
    want = (model.apply_model(x, sigma, torch.full((1, 3, 8), 1.0))
            + 3 * model.apply_model(x, sigma, torch.full((1, 3, 8), 4.0))) / 4
    assert_close_scaled(den(x, sigma), want)


def test_cfg_pp_runs_the_negative_pass_at_cfg_one():
    model = FakeModel()
    sigmas = karras_sigmas(4, 0.03, 14.6)
    noise = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    pp = ksample(model, torch.zeros(1, 4, 4, 4), noise, sigmas=sigmas,
                 sampler=SAMPLERS["euler_cfg_pp"], cfg=1.0, positive=_cond(1.0),
                 negative=_cond(-1.0), seed=0)
    assert model.batches == [2] * 4  # positive and negative batched at every step
    # the step direction follows the negative prediction, so the result differs from Euler
    plain = ksample(model, torch.zeros(1, 4, 4, 4), noise, sigmas=sigmas,
                    sampler=SAMPLERS["euler"], cfg=1.0, positive=_cond(1.0),
                    negative=_cond(-1.0), seed=0)
    assert not torch.allclose(pp, plain, atol=1e-3)


def test_bad_conditioning_names_the_input():
    with pytest.raises(ValueError, match="negative"):
        CFGDenoiser(FakeModel(), _cond(1.0), [], 7.0, torch.Size([1, 4, 4, 4]))
    with pytest.raises(ValueError, match="positive"):
        CFGDenoiser(FakeModel(), [[torch.zeros(3, 3), {}]], _cond(0.0), 7.0,
                    torch.Size([1, 4, 4, 4]))


def _ksample(model, latent, noise, sigmas, name="euler", **kw):
    return ksample(model, latent, noise, sigmas=sigmas, sampler=SAMPLERS[name], cfg=1.0,
                   positive=_cond(0.5), negative=_cond(0.0), seed=0, **kw)


def test_ksample_runs_inside_patched_and_in_latent_space():
    model = FakeModel()
    sigmas = karras_sigmas(30, 0.03, model.sampling.sigma_max.item())
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    seen = []
    out = _ksample(model, torch.zeros(1, 4, 8, 8), noise, sigmas,
                   progress=lambda i, n: seen.append((i, n, model.patched_depth)))
    assert model.patched_entries == 1 and seen == [(i, 30, 1) for i in range(1, 31)]
    # in model space the sample is ~ 0.5 + S*z; process_out divides by the scale factor
    assert (out * SD15.scale_factor).mean().item() == pytest.approx(0.5, abs=0.15)


def test_ksample_zero_sigma_steps_keep_the_input():
    model = FakeModel()
    latent = torch.randn(1, 4, 8, 8)
    # img2img at a tiny noise level: the output stays close to the input latent
    sigmas = torch.tensor([0.05, 0.0])
    out = _ksample(model, latent, torch.zeros_like(latent), sigmas)
    assert torch.allclose(out, latent, atol=0.1)


def test_noise_mask_keeps_the_unmasked_area():
    model = FakeModel()
    latent = torch.randn(1, 4, 8, 8)
    mask = torch.zeros(1, 16, 16)
    mask[:, :, 8:] = 1.0  # resample the right half only
    sigmas = karras_sigmas(8, 0.03, 14.6)
    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    out = _ksample(model, latent, noise, sigmas, noise_mask=mask)
    assert torch.allclose(out[..., :3], latent[..., :3], atol=1e-5)
    assert not torch.allclose(out[..., 5:], latent[..., 5:], atol=0.1)
