"""CFGNorm, RescaleCFG, DifferentialDiffusion, DualCFGGuider: schemas as ComfyUI, known
arithmetic on real tensors, the cfg-1 path (negative pass skipped, post-CFG still applied),
and runs through the sampler."""

from __future__ import annotations

import pytest
import torch

from comfyless.engine.context import RunContext
from comfyless.models.guidance import CFGDenoiser, DualCFGDenoiser, SamplerChoice
from comfyless.models.samplers import SAMPLERS
from comfyless.models.sampling import ModelSampling
from comfyless.models.schedulers import sigmas_for_denoise
from comfyless.nodes import REGISTRY
from comfyless.nodes import guidance_patches as schemas
from comfyless.nodes.impl import guidance_patches as impl
from comfyless.typesys.errors import InvalidValue
from tests.floats import assert_close_scaled
from tests.models.test_samplers import FakeModel


@pytest.fixture
def ctx(tmp_path):
    return RunContext.create(tmp_path / "base").for_node("9", "GuidancePatch")


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _const(value: float):
    return [[torch.full((1, 3, 8), value), {}]]


def _pred(model, x, sigma, value):
    return FakeModel.apply_model(model, x, sigma, torch.full((1, 3, 8), value))


# -- schemas -------------------------------------------------------------------------------------
def test_schemas_match_comfyui():
    names = [n.schema.class_type for n in schemas.NODES]
    assert names == ["CFGNorm", "RescaleCFG", "DifferentialDiffusion", "DualCFGGuider"]
    assert all(REGISTRY.get(n) is not None for n in names)
    norm = schemas.CFGNorm.schema
    assert norm.category == "advanced/guidance" and norm.experimental
    assert [(o.name, o.type.name) for o in norm.outputs] == [("patched_model", "MODEL")]
    s = norm.input_map["strength"]
    assert (s.default, s.min, s.max, s.step) == (1.0, 0.0, 100.0, 0.01)
    pre = norm.input_map["pre_cfg"]
    assert pre.optional and pre.default is False and pre.type.name == "BOOLEAN"
    m = schemas.RescaleCFG.schema.input_map["multiplier"]
    assert (m.default, m.min, m.max, m.step) == (0.7, 0.0, 1.0, 0.01)
    assert schemas.RescaleCFG.schema.category == "advanced/model"
    dd = schemas.DifferentialDiffusion.schema
    assert dd.display_name == "Differential Diffusion" and dd.category == "_for_testing"
    st = dd.input_map["strength"]
    assert st.optional and (st.default, st.min, st.max, st.step) == (1.0, 0.0, 1.0, 0.01)
    dual = schemas.DualCFGGuider.schema
    assert [i.name for i in dual.inputs] == ["model", "cond1", "cond2", "negative", "cfg_conds",
                                             "cfg_cond2_negative", "style"]
    assert dual.input_map["style"].choices == ("regular", "nested")
    c = dual.input_map["cfg_conds"]
    assert (c.default, c.min, c.max, c.step, c.round) == (8.0, 0.0, 100.0, 0.1, 0.01)
    assert dual.category == "sampling/custom_sampling/guiders"


# -- CFGNorm -------------------------------------------------------------------------------------
def test_cfg_norm_arithmetic_and_clone(ctx, tiny_sd15_model):
    (patched,) = impl.cfg_norm(ctx, tiny_sd15_model, 0.8)
    assert patched is not tiny_sd15_model and tiny_sd15_model.post_cfg_functions == []
    (fn,) = patched.post_cfg_functions
    cond, guided = _rand(2, 4, 3, 3, seed=1), _rand(2, 4, 3, 3, seed=2) * 3
    out = fn({"cond_denoised": cond, "denoised": guided})
    expected = torch.empty_like(guided)
    for b in range(2):
        for i in range(3):
            for j in range(3):
                ratio = cond[b, :, i, j].norm() / (guided[b, :, i, j].norm() + 1e-8)
                expected[b, :, i, j] = guided[b, :, i, j] * min(1.0, float(ratio)) * 0.8
    assert_close_scaled(out, expected)
    with pytest.raises(InvalidValue, match="model: expected a MODEL"):
        impl.cfg_norm(ctx, "not a model", 1.0)


def test_cfg_norm_pre_cfg_rescales_the_combined_eps_to_the_positive_norm(ctx, tiny_sd15_model):
    """pre_cfg: a CFG function (no clamp: it may amplify), strength blends towards plain CFG."""
    (patched,) = impl.cfg_norm(ctx, tiny_sd15_model, 0.25, True)
    assert patched.post_cfg_functions == [] and patched.sampler_cfg_function is not None
    cond, uncond = _rand(2, 4, 3, 3, seed=4), _rand(2, 4, 3, 3, seed=5)
    cond[0, :, 0, 0] = 0.0
    uncond[0, :, 0, 0] = 0.0  # a zero combined eps stays zero (ratio 1)
    out = patched.sampler_cfg_function({"cond": cond, "uncond": uncond, "cond_scale": 4.0})
    expected = torch.empty_like(cond)
    for b in range(2):
        for i in range(3):
            for j in range(3):
                comb = uncond[b, :, i, j] + 4.0 * (cond[b, :, i, j] - uncond[b, :, i, j])
                norm = float(comb.norm())
                ratio = float(cond[b, :, i, j].norm()) / norm if norm > 0 else 1.0
                expected[b, :, i, j] = 0.25 * comb * ratio + 0.75 * comb
    assert_close_scaled(out, expected)
    assert float(out[0, :, 0, 0].abs().max()) == 0.0


def test_post_cfg_runs_after_cfg_and_at_cfg_1_without_the_negative_pass():
    model = FakeModel()
    seen = []
    model.post_cfg_functions = [lambda a: (seen.append(a), a["denoised"])[1],
                                impl.cfg_norm_function(0.5)]
    x, sigma = _rand(2, 4, 4, 4, seed=3), torch.tensor([2.0, 2.0])
    out = CFGDenoiser(model, _const(1.0), _const(-1.0), 3.0, x.shape)(x, sigma)
    cond, uncond = _pred(model, x, sigma, 1.0), _pred(model, x, sigma, -1.0)
    guided = uncond + 3.0 * (cond - uncond)
    scale = (cond.norm(dim=1, keepdim=True) / (guided.norm(dim=1, keepdim=True) + 1e-8))
    assert_close_scaled(out, guided * scale.clamp(0, 1) * 0.5)
    assert_close_scaled(seen[0]["uncond_denoised"], uncond) and seen[0]["cond_scale"] == 3.0
    # cfg 1: one forward of the positive only; the hooks still run, with uncond 0
    model.batches.clear()
    seen.clear()
    out = CFGDenoiser(model, _const(1.0), _const(-1.0), 1.0, x.shape)(x, sigma)
    assert model.batches == [2]
    assert torch.equal(seen[0]["uncond_denoised"], torch.zeros_like(x))
    assert seen[0]["uncond"] is None
    assert_close_scaled(out, cond * 0.5)


# -- RescaleCFG ------------------------------------------------------------------------------------
def _to_v(x0, x, sigma):
    """The v-prediction an EPS model with x0 prediction x0 corresponds to (sigma_data 1)."""
    eps = x - x0
    x_scaled = x / (sigma ** 2 + 1)
    return (x_scaled - (x - eps)) * (sigma ** 2 + 1) ** 0.5 / sigma


def test_rescale_cfg_arithmetic():
    x, sigma = _rand(2, 4, 4, 4, seed=4), torch.tensor([1.5, 4.0])
    cond, uncond = _rand(2, 4, 4, 4, seed=5), _rand(2, 4, 4, 4, seed=6)
    s = sigma.reshape(2, 1, 1, 1)
    model = FakeModel()

    def guided(multiplier, scale):
        model.sampler_cfg_function = impl.rescale_cfg_function(multiplier)
        from comfyless.models.guidance import combine_cfg
        return combine_cfg(model, cond, uncond, scale, x, sigma)

    assert_close_scaled(guided(0.0, 5.0), uncond + 5.0 * (cond - uncond))  # plain CFG
    assert_close_scaled(guided(0.7, 1.0), cond)  # scale 1: the positive prediction
    # multiplier 1: the v-space result has the positive prediction's per-sample std
    v_out, v_cond = _to_v(guided(1.0, 5.0), x, s), _to_v(cond, x, s)
    assert_close_scaled(v_out.std(dim=(1, 2, 3)), v_cond.std(dim=(1, 2, 3)))
    # and is the plain CFG v times std(v_cond) / std(v_cfg), per sample
    v_cfg = _to_v(uncond + 5.0 * (cond - uncond), x, s)
    k = v_cond.std(dim=(1, 2, 3), keepdim=True) / v_cfg.std(dim=(1, 2, 3), keepdim=True)
    assert_close_scaled(v_out, k * v_cfg)
    # 0.7 is the blend of the two
    assert_close_scaled(_to_v(guided(0.7, 5.0), x, s), 0.7 * v_out + 0.3 * v_cfg)


def test_rescale_cfg_node_patches_a_clone(ctx, tiny_sd15_model):
    (patched,) = impl.rescale_cfg(ctx, tiny_sd15_model, 0.7)
    assert patched.sampler_cfg_function is not None
    assert tiny_sd15_model.sampler_cfg_function is None


# -- DifferentialDiffusion ------------------------------------------------------------------------
def test_differential_diffusion_thresholds_the_mask_per_step(ctx, tiny_sd15_model):
    ms = ModelSampling("eps")
    sigmas = sigmas_for_denoise(ms, "normal", 4, 1.0)
    mask = torch.linspace(0, 1, 11).reshape(1, 1, 1, 11)
    extra = {"sampling": ms, "sigmas": sigmas}
    sigma = sigmas[1:2]
    t = ms.timestep
    threshold = float((t(sigma) - t(ms.sigma_min)) / (t(sigmas[0]) - t(ms.sigma_min)))
    assert 0 < threshold < 1
    binary = (mask >= threshold).float()
    for strength in (1.0, 0.0):  # strength 0 counts as 1 (ComfyUI's truthiness test)
        fn = impl.differential_mask_function(strength)
        assert torch.equal(fn(sigma, mask, extra), binary)
    blended = impl.differential_mask_function(0.3)(sigma, mask, extra)
    assert_close_scaled(blended, 0.3 * binary + 0.7 * mask)
    # at the first step only mask 1 is resampled
    assert torch.equal(impl.differential_mask_function(1.0)(sigmas[:1], mask, extra),
                       (mask >= 1.0).float())
    (patched,) = impl.differential_diffusion(ctx, tiny_sd15_model, 1.0)
    assert patched.denoise_mask_function is not None
    assert tiny_sd15_model.denoise_mask_function is None


def test_differential_diffusion_mask_is_used_by_the_sampler():
    model = FakeModel()
    model.denoise_mask_function = impl.differential_mask_function(1.0)
    latent, noise = _rand(1, 4, 4, 4, seed=7), _rand(1, 4, 4, 4, seed=8)
    soft = torch.linspace(0, 1, 16).reshape(1, 4, 4)
    den = CFGDenoiser(model, _const(1.0), _const(-1.0), 2.0, latent.shape)
    den.set_noise_mask(soft, latent, noise)
    den.sigmas = sigmas_for_denoise(model.sampling, "normal", 4, 1.0)
    sigma = den.sigmas[2:3]
    out = den(_rand(1, 4, 4, 4, seed=9), sigma)
    step_mask = model.denoise_mask_function(sigma, den.inpaint[0],
                                            {"sampling": model.sampling, "sigmas": den.sigmas})
    kept = step_mask == 0
    assert kept.any() and (~kept).any()
    assert torch.equal(out[kept], latent[kept])


# -- DualCFGGuider -----------------------------------------------------------------------------
@pytest.mark.parametrize("nested", [False, True])
def test_dual_cfg_arithmetic(nested):
    model = FakeModel()
    x, sigma = _rand(1, 4, 4, 4, seed=10), torch.tensor([2.0])
    den = DualCFGDenoiser(model, _const(1.0), _const(0.5), _const(-1.0), 3.0, 5.0, nested,
                          x.shape)
    out = den(x, sigma)
    p1, p2, pn = (_pred(model, x, sigma, v) for v in (1.0, 0.5, -1.0))
    if nested:
        expected = pn + 5.0 * ((p2 + 3.0 * (p1 - p2)) - pn)
    else:
        expected = pn + 5.0 * (p2 - pn) + (p1 - p2) * 3.0
    assert_close_scaled(out, expected)


def test_dual_cfg_skips_passes_at_scale_1():
    model = FakeModel()
    x, sigma = _rand(1, 4, 4, 4, seed=11), torch.tensor([2.0])
    p1, p2 = _pred(model, x, sigma, 1.0), _pred(model, x, sigma, 0.5)
    model.batches.clear()
    out = DualCFGDenoiser(model, _const(1.0), _const(0.5), _const(-1.0), 3.0, 1.0, False,
                          x.shape)(x, sigma)
    assert len(model.batches) == 2  # negative skipped
    assert_close_scaled(out, p2 + (p1 - p2) * 3.0)
    model.batches.clear()
    out = DualCFGDenoiser(model, _const(1.0), _const(0.5), _const(-1.0), 1.0, 1.0, False,
                          x.shape)(x, sigma)
    assert len(model.batches) == 1 and torch.equal(out, p1)


def test_dual_cfg_guider_node_and_sampling(ctx, tiny_sd15_model):
    dim = tiny_sd15_model.config.context_dim
    gen = torch.Generator().manual_seed(12)
    c1, c2, neg = ([[torch.randn(1, 77, dim, generator=gen), {}]] for _ in range(3))
    with pytest.raises(InvalidValue, match="style: expected one of regular, nested"):
        impl.dual_cfg_guider(ctx, tiny_sd15_model, c1, c2, neg, 8.0, 8.0, "sideways")
    sampler = SamplerChoice("euler", SAMPLERS["euler"])
    sigmas = sigmas_for_denoise(tiny_sd15_model.sampling, "normal", 2, 1.0)
    latent, noise = torch.zeros(1, 4, 8, 8), torch.randn(1, 4, 8, 8, generator=gen)
    outs = {}
    for style in ("regular", "nested"):
        (guider,) = impl.dual_cfg_guider(ctx, tiny_sd15_model, c1, c2, neg, 2.0, 3.0, style)
        assert guider.nested is (style == "nested")
        outs[style], x0 = guider.sample(noise, latent, sampler, sigmas, seed=0)
        assert torch.isfinite(outs[style]).all() and x0 is not None
    assert (outs["regular"] - outs["nested"]).abs().max() > 1e-4
