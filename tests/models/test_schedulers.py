"""Sigma schedules: lengths, end points, monotonicity and the known formulas."""

from __future__ import annotations

import math

import pytest
import torch

from comfyless.models.sampling import ModelSampling
from comfyless.models.schedulers import (
    SCHEDULERS,
    beta_cdf,
    beta_ppf,
    calculate_sigmas,
    sigmas_for_denoise,
)
from comfyless.nodes.sampling import SCHEDULER_NAMES


@pytest.fixture(scope="module")
def ms():
    return ModelSampling("eps")


def test_every_scheduler_is_a_comfyui_option():
    assert tuple(SCHEDULERS) == SCHEDULER_NAMES  # all nine implemented, same order


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
@pytest.mark.parametrize("steps", [1, 2, 7, 20])
def test_shape_and_monotone(ms, name, steps):
    sigmas = calculate_sigmas(ms, name, steps)
    assert sigmas.dtype == torch.float32 and sigmas.ndim == 1
    if name == "beta":  # drops repeated timesteps
        assert len(sigmas) <= steps + 1
    elif name == "ddim_uniform":  # a stride of 1000 // steps may fit one more entry (ComfyUI)
        assert steps + 1 <= len(sigmas) <= steps + 2
    else:
        assert len(sigmas) == steps + 1
    assert sigmas[-1] == 0.0
    assert (sigmas[1:] < sigmas[:-1]).all(), sigmas
    assert sigmas[0] <= ms.sigma_max * (1 + 1e-5)


@pytest.mark.parametrize("name", ["karras", "exponential", "normal", "simple", "beta",
                                  "sgm_uniform", "linear_quadratic", "kl_optimal"])
def test_starts_at_sigma_max(ms, name):
    assert calculate_sigmas(ms, name, 12)[0].item() == pytest.approx(ms.sigma_max.item(),
                                                                     rel=1e-5)


@pytest.mark.parametrize("name", ["karras", "exponential", "normal", "kl_optimal"])
def test_ends_at_sigma_min(ms, name):
    assert calculate_sigmas(ms, name, 12)[-2].item() == pytest.approx(ms.sigma_min.item(),
                                                                      rel=1e-5)


def test_karras_formula(ms):
    n, rho = 10, 7.0
    lo, hi = ms.sigma_min.item(), ms.sigma_max.item()
    sigmas = calculate_sigmas(ms, "karras", n)
    for i in range(n):
        want = (hi ** (1 / rho) + i / (n - 1) * (lo ** (1 / rho) - hi ** (1 / rho))) ** rho
        assert sigmas[i].item() == pytest.approx(want, rel=1e-5)


def test_exponential_is_geometric(ms):
    sigmas = calculate_sigmas(ms, "exponential", 9)[:-1].double()
    ratios = sigmas[1:] / sigmas[:-1]
    want = (ms.sigma_min.item() / ms.sigma_max.item()) ** (1 / 8)
    assert torch.allclose(ratios, torch.full_like(ratios, want), rtol=1e-5)


def test_simple_takes_table_entries_at_a_stride(ms):
    sigmas = calculate_sigmas(ms, "simple", 4)
    assert sigmas[:-1].tolist() == [ms.sigmas[i].item() for i in (999, 749, 499, 249)]


def test_ddim_uniform_takes_table_entries(ms):
    sigmas = calculate_sigmas(ms, "ddim_uniform", 20)  # stride 50 from index 1
    assert sigmas[:-1].tolist() == [ms.sigmas[i].item() for i in range(951, 0, -50)]


def test_normal_spaces_timesteps_evenly(ms):
    sigmas = calculate_sigmas(ms, "normal", 4)
    assert [ms.sigma(torch.tensor(t)).item() for t in (999.0, 666.0, 333.0, 0.0)] == \
        pytest.approx(sigmas[:-1].tolist(), rel=1e-6)
    sgm = calculate_sigmas(ms, "sgm_uniform", 4)  # linspace(999, 0, 5)[:-1]
    assert sgm[1].item() == pytest.approx(ms.sigma(torch.tensor(749.25)).item(), rel=1e-6)


def test_beta_matches_scipy_reference(ms):
    # rint(scipy.stats.beta.ppf(1 - linspace(0, 1, 10, endpoint=False), 0.6, 0.6) * 999)
    want = [999, 959, 876, 765, 637, 500, 362, 234, 123, 40]
    sigmas = calculate_sigmas(ms, "beta", 10)
    assert sigmas[:-1].tolist() == [ms.sigmas[t].item() for t in want]


def test_beta_drops_repeated_timesteps(ms):
    sigmas = calculate_sigmas(ms, "beta", 1100)  # more steps than table entries
    assert len(sigmas) < 1101 and (sigmas[1:] < sigmas[:-1]).all()


@pytest.mark.parametrize(("q", "a", "b", "want"), [
    (0.05, 0.6, 0.6, 0.012554), (0.3, 0.6, 0.6, 0.234017), (0.7, 0.6, 0.6, 0.765983),
    (0.05, 2.0, 5.0, 0.06285), (0.3, 2.0, 5.0, 0.181803), (0.7, 2.0, 5.0, 0.360358),
])
def test_beta_ppf_reference_values(q, a, b, want):  # values from scipy.stats.beta.ppf
    assert beta_ppf(q, a, b) == pytest.approx(want, abs=2e-6)


def test_beta_closed_forms():
    for q in (0.1, 0.5, 0.9):
        assert beta_ppf(q, 1.0, 1.0) == pytest.approx(q, abs=1e-12)  # uniform
        assert beta_ppf(q, 3.0, 1.0) == pytest.approx(q ** (1 / 3), abs=1e-12)  # CDF x^a
    assert beta_ppf(0.5, 0.6, 0.6) == 0.5
    assert beta_cdf(0.3, 2.0, 5.0) == pytest.approx(1 - 0.7**6 - 6 * 0.3 * 0.7**5, abs=1e-12)


def test_kl_optimal_formula(ms):
    sigmas = calculate_sigmas(ms, "kl_optimal", 5)
    lo, hi = math.atan(ms.sigma_min.item()), math.atan(ms.sigma_max.item())
    assert sigmas[2].item() == pytest.approx(math.tan(0.5 * lo + 0.5 * hi), rel=1e-5)


def test_denoise_takes_the_tail_of_a_longer_schedule(ms):
    full = calculate_sigmas(ms, "karras", 20)
    assert torch.equal(sigmas_for_denoise(ms, "karras", 10, 0.5), full[-11:])
    assert torch.equal(sigmas_for_denoise(ms, "karras", 10, 1.0), calculate_sigmas(ms, "karras",
                                                                                   10))
    tail = sigmas_for_denoise(ms, "normal", 7, 0.3)  # int(7 / 0.3) = 23 steps
    assert torch.equal(tail, calculate_sigmas(ms, "normal", 23)[-8:])
    assert len(sigmas_for_denoise(ms, "karras", 10, 0.0)) == 0


def test_zero_terminal_snr_table_ends_without_extra_zero():
    zsnr = ModelSampling("v", zsnr=True)
    sigmas = calculate_sigmas(zsnr, "karras", 5)
    assert len(sigmas) == 6 and sigmas[-1] == 0
    assert calculate_sigmas(zsnr, "normal", 5)[-1] == 0.0
