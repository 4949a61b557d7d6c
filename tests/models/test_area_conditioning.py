"""Area and mask conditioning in the sampler (models/cond_areas.py via models/guidance.py).

A fake denoiser whose prediction is a known function of the context and of the (cropped) x it
is given makes ComfyUI's arithmetic checkable against an oracle written here with ComfyUI's
literal loops; one check runs the real tiny SD1.5 UNet.
"""

from __future__ import annotations

import pytest
import torch

from comfyless.models.guidance import CFGDenoiser, ksample
from comfyless.models.samplers import SAMPLERS
from comfyless.models.schedulers import sigmas_for_denoise
from comfyless.nodes.impl import conditioning_ops as ops
from tests.floats import assert_close_scaled
from tests.models.test_samplers import FakeModel


class AreaModel(FakeModel):
    """Prediction = context mean + 0.1 * x + mean of the x it sees (so a crop shows); logs
    (context mean, spatial shape) of every call."""

    def __init__(self):
        super().__init__()
        self.seen: list[tuple[float, tuple[int, int]]] = []

    def apply_model(self, x, sigma, context, **extra):
        self.seen.append((round(float(context.mean()), 4), tuple(x.shape[-2:])))
        mu = context.mean(dim=(1, 2)).reshape(-1, 1, 1, 1).to(x)
        return mu + 0.1 * x + x.mean(dim=(1, 2, 3), keepdim=True)


def _const(value: float, **options):
    return [torch.full((1, 3, 8), value), options]


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def ctx(tmp_path):
    from comfyless.engine.context import RunContext

    return RunContext.create(tmp_path / "base").for_node("3", "ConditioningSetArea")


# -- an oracle with ComfyUI's literal loops (area = (h, w, y, x) in latent units) -------------
def _oracle_mult(x_in, area, mask, mask_strength, strength):
    h, w, y, x0 = area if area is not None else (x_in.shape[2], x_in.shape[3], 0, 0)
    if area is not None:
        h, w = min(x_in.shape[2] - y, h), min(x_in.shape[3] - x0, w)
    crop = x_in[:, :, y:y + h, x0:x0 + w]
    if mask is not None:
        m = mask[:, y:y + h, x0:x0 + w] * mask_strength
        mult = m.unsqueeze(1).repeat(crop.shape[0] // m.shape[0], crop.shape[1], 1, 1) * strength
        return crop, mult, (h, w, y, x0)
    mult = torch.ones_like(crop) * strength
    if area is not None:
        for dim, (size, start, full) in enumerate(((h, y, x_in.shape[2]),
                                                   (w, x0, x_in.shape[3]))):
            rr = min(8, size // 4)
            if start != 0:
                for t in range(rr):
                    mult.narrow(dim + 2, t, 1).mul_((1.0 / rr) * (t + 1))
            if size + start < full:
                for t in range(rr):
                    mult.narrow(dim + 2, size - 1 - t, 1).mul_((1.0 / rr) * (t + 1))
    return crop, mult, (h, w, y, x0)


def _oracle(model, x, sigma, entries):
    """entries: (context, area or None, mask or None, mask_strength, strength)."""
    out, count = torch.zeros_like(x), torch.ones_like(x) * 1e-37
    for context, area, mask, mask_strength, strength in entries:
        crop, mult, (h, w, y, x0) = _oracle_mult(x, area, mask, mask_strength, strength)
        pred = model.apply_model(crop, sigma, context)
        out[:, :, y:y + h, x0:x0 + w] += pred * mult
        count[:, :, y:y + h, x0:x0 + w] += mult
    return out / count


def _full(value):
    return (torch.full((1, 3, 8), value), None, None, 1.0, 1.0)


# -- areas ---------------------------------------------------------------------------------------
def test_area_entry_is_cropped_feathered_and_averaged(ctx):
    model = AreaModel()
    x, sigma = _rand(2, 4, 16, 16, seed=1), torch.tensor([3.0, 3.0])
    (area,) = ops.conditioning_set_area(ctx, [_const(3.0)], 64, 64, 32, 16, 1.5)
    assert area[0][1]["area"] == (8, 8, 2, 4)  # (h, w, y, x) in latent units
    den = CFGDenoiser(model, [_const(1.0), *area], [_const(0.0)], 1.0, x.shape)
    out = den(x, sigma)
    assert (3.0, (8, 8)) in model.seen and (1.0, (16, 16)) in model.seen
    assert all(c != 0.0 for c, _ in model.seen)  # cfg 1: the negative pass is skipped
    expected = _oracle(AreaModel(), x, sigma, [_full(1.0), (area[0][0], (8, 8, 2, 4), None,
                                                            1.0, 1.5)])
    assert_close_scaled(out, expected)
    # outside the area only the full entry counts; one row inside the edge the ramp is 1/2
    full_pred = AreaModel().apply_model(x, sigma, torch.full((1, 3, 8), 1.0))
    assert_close_scaled(out[..., 0:2, :], full_pred[..., 0:2, :])
    assert_close_scaled(out[..., 12:, :], full_pred[..., 12:, :])


def test_area_at_the_border_is_clamped_and_not_feathered_there(ctx):
    model = AreaModel()
    x, sigma = _rand(1, 4, 16, 16, seed=2), torch.tensor([2.0])
    # 128 px wide at x = 96 px: 16 latent columns from column 12 -> clamped to 4 columns
    (area,) = ops.conditioning_set_area(ctx, [_const(2.0)], 128, 128, 96, 0, 1.0)
    den = CFGDenoiser(model, [_const(1.0), *area], [_const(0.0)], 1.0, x.shape)
    out = den(x, sigma)
    assert (2.0, (16, 4)) in model.seen
    expected = _oracle(AreaModel(), x, sigma, [_full(1.0), (area[0][0], (16, 16, 0, 12), None,
                                                            1.0, 1.0)])
    assert_close_scaled(out, expected)


def test_percentage_area_is_resolved_against_the_latent_size(ctx):
    model = AreaModel()
    x, sigma = _rand(1, 4, 12, 16, seed=3), torch.tensor([1.5])
    (pct,) = ops.conditioning_set_area_percentage(ctx, [_const(5.0)], 0.5, 0.25, 0.25, 0.5, 1.0)
    den = CFGDenoiser(model, [_const(1.0), *pct], [_const(0.0)], 1.0, x.shape)
    out = den(x, sigma)
    # height max(1, round(0.25 * 12)) = 3, width round(0.5 * 16) = 8, y 6, x 4
    assert (5.0, (3, 8)) in model.seen
    expected = _oracle(AreaModel(), x, sigma, [_full(1.0), (pct[0][0], (3, 8, 6, 4), None, 1.0,
                                                           1.0)])
    assert_close_scaled(out, expected)


def test_overlapping_areas_sum_weights_and_uncovered_elements_predict_zero(ctx):
    model = AreaModel()
    x, sigma = _rand(1, 4, 16, 16, seed=4), torch.tensor([2.5])
    (a,) = ops.conditioning_set_area(ctx, [_const(1.0)], 64, 96, 0, 0, 2.0)
    (b,) = ops.conditioning_set_area(ctx, [_const(-2.0)], 96, 64, 32, 32, 0.5)
    den = CFGDenoiser(model, [*a, *b], [_const(0.0)], 1.0, x.shape)
    out = den(x, sigma)
    expected = _oracle(AreaModel(), x, sigma, [(a[0][0], (12, 8, 0, 0), None, 1.0, 2.0),
                                               (b[0][0], (8, 12, 4, 4), None, 1.0, 0.5)])
    assert_close_scaled(out, expected)
    assert torch.all(out[..., 12:, :4] == 0)  # no entry covers this corner


def test_negative_gets_an_area_twin_with_its_own_context(ctx):
    model = AreaModel()
    x, sigma = _rand(1, 4, 16, 16, seed=5), torch.tensor([4.0])
    (area,) = ops.conditioning_set_area(ctx, [_const(3.0)], 64, 64, 0, 0, 1.0)
    den = CFGDenoiser(model, [_const(1.0), *area], [_const(-1.0)], 2.0, x.shape)
    assert len(den.negative) == 2 and den.negative[1].area == (8, 8, 0, 0)
    out = den(x, sigma)
    assert (-1.0, (8, 8)) in model.seen  # the twin: negative context on the area crop
    oracle = AreaModel()
    cond = _oracle(oracle, x, sigma, [_full(1.0), (area[0][0], (8, 8, 0, 0), None, 1.0, 1.0)])
    uncond = _oracle(oracle, x, sigma, [_full(-1.0), (torch.full((1, 3, 8), -1.0),
                                                      (8, 8, 0, 0), None, 1.0, 1.0)])
    assert_close_scaled(out, uncond + 2.0 * (cond - uncond))


# -- masks ---------------------------------------------------------------------------------------
def test_mask_weights_elements_without_feathering(ctx):
    model = AreaModel()
    x, sigma = _rand(2, 4, 8, 8, seed=6), torch.tensor([2.0, 2.0])
    mask = torch.rand(64, 64, generator=torch.Generator().manual_seed(7))  # pixel size
    (masked,) = ops.conditioning_set_mask(ctx, [_const(4.0)], mask, 0.7, "default")
    den = CFGDenoiser(model, [_const(1.0), *masked], [_const(0.0)], 1.0, x.shape)
    out = den(x, sigma)
    small = torch.nn.functional.interpolate(mask[None, None], size=(8, 8), mode="bilinear",
                                            align_corners=False)[0]
    expected = _oracle(AreaModel(), x, sigma, [_full(1.0), (masked[0][0], None, small, 0.7,
                                                            1.0)])
    assert_close_scaled(out, expected)


def test_mask_bounds_crop_to_the_mask_box_of_at_least_8(ctx):
    model = AreaModel()
    x, sigma = _rand(1, 4, 16, 16, seed=8), torch.tensor([2.0])
    mask = torch.zeros(16, 16)
    mask[3:6, 4:14] = 0.5  # 3 x 10 box -> area (8, 10, 3, 4)
    (masked,) = ops.conditioning_set_mask(ctx, [_const(2.0)], mask, 1.0, "mask bounds")
    den = CFGDenoiser(model, [_const(1.0), *masked], [_const(0.0)], 1.0, x.shape)
    assert den.positive[1].area == (8, 10, 3, 4)
    out = den(x, sigma)
    assert (2.0, (8, 10)) in model.seen
    expected = _oracle(AreaModel(), x, sigma, [_full(1.0), (masked[0][0], (8, 10, 3, 4),
                                                            mask[None], 1.0, 1.0)])
    assert_close_scaled(out, expected)
    # an all-zero mask with bounds acts on (8, 8, 0, 0) with weight 0
    (empty,) = ops.conditioning_set_mask(ctx, [_const(2.0)], torch.zeros(16, 16), 1.0,
                                         "mask bounds")
    den = CFGDenoiser(model, [_const(1.0), *empty], [_const(0.0)], 1.0, x.shape)
    assert den.positive[1].area == (8, 8, 0, 0)
    assert_close_scaled(den(x, sigma), AreaModel().apply_model(x, sigma, _const(1.0)[0]))


def test_area_outside_the_latent_is_a_clear_error(ctx):
    (area,) = ops.conditioning_set_area(ctx, [_const(1.0)], 64, 64, 256, 0, 1.0)
    den = CFGDenoiser(AreaModel(), area, [_const(0.0)], 1.0, torch.Size((1, 4, 8, 8)))
    with pytest.raises(ValueError, match="lies outside the 8x8 latent"):
        den(torch.zeros(1, 4, 8, 8), torch.tensor([1.0]))


# -- the real tiny UNet ---------------------------------------------------------------------------
def test_real_unet_area_arithmetic_and_ksampler_run(ctx, tiny_sd15_model):
    model = tiny_sd15_model
    dim = model.config.context_dim
    gen = torch.Generator().manual_seed(11)
    ca, cb = torch.randn(1, 77, dim, generator=gen), torch.randn(1, 77, dim, generator=gen)
    neg = [[torch.randn(1, 77, dim, generator=gen), {}]]
    (area,) = ops.conditioning_set_area(ctx, [[cb, {}]], 32, 32, 16, 16, 1.0)
    positive = [[ca, {}], *area]
    x, sigma = torch.randn(1, 4, 8, 8, generator=gen), torch.tensor([5.0])
    with torch.no_grad():
        out = CFGDenoiser(model, positive, neg, 1.0, x.shape)(x, sigma)
        entries = [(ca, None, None, 1.0, 1.0), (cb, (4, 4, 2, 2), None, 1.0, 1.0)]
        expected = _oracle(model, x, sigma, entries)
    assert_close_scaled(out, expected)
    latent = torch.zeros(1, 4, 8, 8)
    noise = torch.randn(1, 4, 8, 8, generator=gen)
    sigmas = sigmas_for_denoise(model.sampling, "normal", 2, 1.0)
    sample = ksample(model, latent, noise, sigmas=sigmas, sampler=SAMPLERS["euler"], cfg=3.0,
                     positive=positive, negative=neg, seed=0)
    plain = ksample(model, latent, noise, sigmas=sigmas, sampler=SAMPLERS["euler"], cfg=3.0,
                    positive=[[ca, {}]], negative=neg, seed=0)
    assert sample.shape == (1, 4, 8, 8) and torch.isfinite(sample).all()
    # the area entry changed the result where it acts
    assert (sample - plain)[..., 2:6, 2:6].abs().max() > 1e-4
