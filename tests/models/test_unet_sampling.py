"""ModelSampling and LatentFormat: the facts of training-math.md §3-4."""

from __future__ import annotations

import math

import pytest
import torch

from comfyless.models.families import family as family_record
from comfyless.models.sampling import ModelSampling


@pytest.fixture(scope="module")
def eps():
    return ModelSampling("eps")


def test_sigma_table_extremes(eps):
    assert eps.sigmas.shape == (1000,)
    assert eps.sigma_min.item() == pytest.approx(0.0292, abs=1e-4)
    assert eps.sigma_max.item() == pytest.approx(14.6146, abs=1e-4)
    assert (eps.sigmas[1:] > eps.sigmas[:-1]).all()


def test_sigma_table_formula(eps):
    betas = [(math.sqrt(0.00085) + i * (math.sqrt(0.012) - math.sqrt(0.00085)) / 999) ** 2
             for i in range(1000)]
    acp = 1.0
    for i, b in enumerate(betas):
        acp *= 1 - b
        if i in (0, 499, 999):
            assert eps.sigmas[i].item() == pytest.approx(math.sqrt((1 - acp) / acp), rel=1e-5)


def test_percent_to_sigma(eps):
    assert eps.percent_to_sigma(0.0) == 999999999.9
    assert eps.percent_to_sigma(1.0) == 0.0
    assert eps.percent_to_sigma(1e-9) == pytest.approx(eps.sigma_max.item(), rel=1e-5)
    # p = 0.5 -> t = 499.5: log-linear between table entries 499 and 500
    want = math.exp(0.5 * (math.log(eps.sigmas[499].item()) + math.log(eps.sigmas[500].item())))
    assert eps.percent_to_sigma(0.5) == pytest.approx(want, rel=1e-5)


def test_timestep_is_nearest_index_in_log_space(eps):
    t = eps.timestep(eps.sigmas[[0, 10, 999]])
    assert t.tolist() == [0.0, 10.0, 999.0]
    between = (eps.sigmas[10] * 0.7 + eps.sigmas[11] * 0.3).reshape(1)
    assert eps.timestep(between).item() == 10.0
    assert eps.timestep(torch.tensor(1e6)).item() == 999.0
    assert eps.sigma(torch.tensor(10.0)).item() == pytest.approx(eps.sigmas[10].item())


def test_eps_parameterisation(eps):
    x0, n = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    sigma = torch.tensor([0.5, 3.0])
    xt = eps.noise_scaling(sigma, n, x0)
    assert torch.allclose(xt, x0 + sigma[:, None, None, None] * n)
    assert torch.allclose(eps.calculate_input(sigma, xt),
                          xt / (sigma[:, None, None, None] ** 2 + 1).sqrt())
    # the true noise as network output gives back x0 exactly
    assert torch.allclose(eps.calculate_denoised(sigma, n, xt), x0, atol=1e-5)
    assert torch.equal(eps.noise_scaling(0.0, 0.0, x0), x0)


def test_v_parameterisation():
    v_model = ModelSampling("v")
    x0, n = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    sigma = torch.tensor([0.5, 3.0])
    s = sigma[:, None, None, None]
    xt = v_model.noise_scaling(sigma, n, x0)
    v = (n - s * x0) / (s**2 + 1).sqrt()  # the usual v target in sigma terms
    assert torch.allclose(v_model.calculate_denoised(sigma, v, xt), x0, atol=1e-5)


def test_zsnr_last_sigma_is_huge():
    z = ModelSampling("v", zsnr=True)
    assert z.sigma_max.item() == pytest.approx(math.sqrt((1 - 4.8973451890853435e-08)
                                                         / 4.8973451890853435e-08), rel=1e-4)


def test_unknown_prediction_refused():
    with pytest.raises(ValueError, match="prediction"):
        ModelSampling("flow")


@pytest.mark.parametrize(("family", "scale"), [("sd15", 0.18215), ("sd2", 0.18215),
                                               ("sdxl", 0.13025)])
def test_latent_formats(family, scale):
    fmt = family_record(family).latent_format
    z = torch.randn(1, 4, 2, 2)
    assert fmt.channels == 4 and fmt.scale_factor == scale
    assert torch.allclose(fmt.process_in(z), z * scale)
    assert torch.allclose(fmt.process_out(fmt.process_in(z)), z, atol=1e-6)


def test_x0_parameterisation_returns_output():
    x0_model = ModelSampling("x0")
    out = torch.randn(1, 4, 2, 2)
    assert torch.equal(x0_model.calculate_denoised(torch.tensor([2.0]), out, torch.zeros_like(out)),
                       out)
