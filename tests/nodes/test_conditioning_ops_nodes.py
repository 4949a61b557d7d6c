"""Conditioning / sigma operation nodes: schemas as ComfyUI, outcomes on real tensors, inputs
left untouched, errors naming the input, and the sampler honouring timestep ranges."""

from __future__ import annotations

import pytest
import torch

from comfyless.engine.context import RunContext
from comfyless.models.guidance import CFGDenoiser
from comfyless.nodes import REGISTRY
from comfyless.nodes import conditioning_ops as schemas
from comfyless.nodes.impl import conditioning_ops as impl
from comfyless.typesys.errors import InvalidValue
from tests.floats import assert_close_scaled
from tests.models.test_samplers import FakeModel


@pytest.fixture
def ctx(tmp_path):
    return RunContext.create(tmp_path / "base").for_node("7", "ConditioningOp")


def _rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _entry(tokens=4, dim=8, seed=0, **options):
    return [_rand(1, tokens, dim, seed=seed), options]


def _snapshot(conditioning):
    return [(c.clone(), dict(o)) for c, o in conditioning]


def _unchanged(conditioning, snapshot):
    return all(torch.equal(c, c0) and o.keys() == o0.keys()
               for (c, o), (c0, o0) in zip(conditioning, snapshot, strict=True))


# -- schemas ---------------------------------------------------------------------------------------
def test_schemas_match_comfyui():
    names = [n.schema.class_type for n in schemas.NODES]
    assert names == ["ConditioningCombine", "ConditioningConcat", "ConditioningAverage",
                     "SetFirstSigma", "ManualSigmas", "ConditioningSetTimestepRange",
                     "ConditioningSetArea", "ConditioningSetAreaPercentage",
                     "ConditioningSetMask"]
    assert all(REGISTRY.get(name) is not None for name in names)
    display = {n.schema.class_type: n.schema.display_name for n in schemas.NODES}
    assert display["ConditioningCombine"] == "Conditioning (Combine)"
    assert display["ConditioningAverage"] is None  # ComfyUI's table key has a trailing space
    assert display["ConditioningSetAreaPercentage"] == "Conditioning (Set Area with Percentage)"
    spec = {i.name: (i.type.name, i.default, i.min, i.max, i.step)
            for i in schemas.ConditioningSetArea.schema.inputs}
    assert spec["width"] == ("INT", 64, 64, 16384, 8) and spec["x"] == ("INT", 0, 0, 16384, 8)
    assert spec["strength"] == ("FLOAT", 1.0, 0.0, 10.0, 0.01)
    rng = {i.name: (i.default, i.step) for i in schemas.ConditioningSetTimestepRange.schema.inputs
           if i.name != "conditioning"}
    assert rng == {"start": (0.0, 0.001), "end": (1.0, 0.001)}
    assert schemas.ConditioningSetTimestepRange.schema.category == "advanced/conditioning"
    mask_inputs = [i.name for i in schemas.ConditioningSetMask.schema.inputs]
    assert mask_inputs == ["conditioning", "mask", "strength", "set_cond_area"]
    first = schemas.SetFirstSigma.schema.input_map["sigma"]
    assert (first.default, first.max, first.round) == (136.0, 20000.0, False)
    assert schemas.ManualSigmas.schema.input_map["sigmas"].default == "1, 0.5"
    assert schemas.ManualSigmas.schema.category == "experimental/custom_sampling"


# -- combine / concat / average --------------------------------------------------------------------
def test_combine_joins_the_lists_without_touching_them(ctx):
    a, b = [_entry(seed=1, strength=2.0)], [_entry(seed=2), _entry(seed=3)]
    (out,) = impl.conditioning_combine(ctx, a, b)
    assert len(out) == 3 and out[0][0] is a[0][0] and out[2][0] is b[1][0]
    assert out[0][1] == {"strength": 2.0} and out[0][1] is not a[0][1]
    assert len(a) == 1 and len(b) == 2


def test_concat_appends_the_first_source_context(ctx):
    to = [_entry(tokens=4, seed=1, guidance=3.5), _entry(tokens=6, seed=2)]
    source = [_entry(tokens=3, seed=3), _entry(tokens=5, seed=4)]
    snap = _snapshot(to)
    (out,) = impl.conditioning_concat(ctx, to, source)
    assert [tuple(c.shape) for c, _ in out] == [(1, 7, 8), (1, 9, 8)]
    assert torch.equal(out[1][0][:, :6], to[1][0]) and torch.equal(out[1][0][:, 6:], source[0][0])
    assert out[0][1] == {"guidance": 3.5}
    assert _unchanged(to, snap)


def test_concat_rejects_another_feature_size(ctx):
    with pytest.raises(InvalidValue, match="conditioning_from.*same text encoder") as err:
        impl.conditioning_concat(ctx, [_entry(dim=8)], [_entry(dim=16)])
    assert err.value.input_name == "conditioning_from"


def test_average_blends_contexts_and_pads_or_cuts_tokens(ctx):
    pooled_to, pooled_from = _rand(1, 5, seed=7), _rand(1, 5, seed=8)
    to = [_entry(tokens=6, seed=1, pooled_output=pooled_to), _entry(tokens=2, seed=2)]
    source = [_entry(tokens=4, seed=3, pooled_output=pooled_from)]
    snap = _snapshot(to)
    (out,) = impl.conditioning_average(ctx, to, source, 0.25)
    src = source[0][0]
    padded = torch.cat([src, torch.zeros(1, 2, 8)], dim=1)  # 4 tokens -> 6: zeros after
    assert_close_scaled(out[0][0], 0.25 * to[0][0] + 0.75 * padded)
    assert_close_scaled(out[1][0], 0.25 * to[1][0] + 0.75 * src[:, :2])  # cut to 2 tokens
    # both pooled: blended; `to` without one blends the source's with itself, as ComfyUI
    assert_close_scaled(out[0][1]["pooled_output"], 0.25 * pooled_to + 0.75 * pooled_from)
    assert_close_scaled(out[1][1]["pooled_output"], pooled_from)
    assert _unchanged(to, snap) and "pooled_output" not in to[1][1]


def test_average_keeps_the_target_pooled_when_the_source_has_none(ctx):
    pooled_to = _rand(1, 5, seed=7)
    (out,) = impl.conditioning_average(ctx, [_entry(seed=1, pooled_output=pooled_to)],
                                       [_entry(seed=2)], 0.5)
    assert out[0][1]["pooled_output"] is pooled_to


def test_average_strength_one_is_the_target(ctx):
    to = [_entry(seed=1)]
    (out,) = impl.conditioning_average(ctx, to, [_entry(seed=2)], 1.0)
    assert torch.equal(out[0][0], to[0][0])


def test_bad_conditioning_names_the_input(ctx):
    with pytest.raises(InvalidValue, match="conditioning_to: expected CONDITIONING") as err:
        impl.conditioning_average(ctx, [], [_entry()], 0.5)
    assert err.value.input_name == "conditioning_to"
    with pytest.raises(InvalidValue, match="conditioning_2"):
        impl.conditioning_combine(ctx, [_entry()], [[torch.zeros(4, 8), {}]])


# -- option setters --------------------------------------------------------------------------------
def test_timestep_range_area_and_mask_set_comfyui_options(ctx):
    cond = [_entry(seed=1, strength=0.5)]
    snap = _snapshot(cond)
    (ranged,) = impl.conditioning_set_timestep_range(ctx, cond, 0.2, 0.7)
    assert ranged[0][1] == {"strength": 0.5, "start_percent": 0.2, "end_percent": 0.7}
    (area,) = impl.conditioning_set_area(ctx, cond, 256, 128, 64, 16, 1.5)
    assert area[0][1] == {"area": (16, 32, 2, 8), "strength": 1.5, "set_area_to_bounds": False}
    (pct,) = impl.conditioning_set_area_percentage(ctx, cond, 0.5, 0.25, 0.1, 0.2, 2.0)
    assert pct[0][1]["area"] == ("percentage", 0.25, 0.5, 0.2, 0.1)
    mask = torch.ones(16, 16)
    (masked,) = impl.conditioning_set_mask(ctx, cond, mask, 0.8, "mask bounds")
    opts = masked[0][1]
    assert opts["mask"].shape == (1, 16, 16) and opts["mask_strength"] == 0.8
    assert opts["set_area_to_bounds"] is True
    assert masked[0][0] is cond[0][0] and _unchanged(cond, snap)
    with pytest.raises(InvalidValue, match="mask: expected a MASK"):
        impl.conditioning_set_mask(ctx, cond, torch.ones(1, 1, 4, 4), 1.0, "default")


# -- sigmas ----------------------------------------------------------------------------------------
def test_set_first_sigma_copies(ctx):
    sigmas = torch.tensor([14.6, 7.0, 0.0])
    (out,) = impl.set_first_sigma(ctx, sigmas, 136.0)
    assert out.tolist() == pytest.approx([136.0, 7.0, 0.0])
    assert sigmas[0].item() == pytest.approx(14.6)
    with pytest.raises(InvalidValue, match="sigmas: expected a non-empty"):
        impl.set_first_sigma(ctx, torch.tensor([]), 1.0)


@pytest.mark.parametrize(("text", "want"), [
    ("1, 0.5", [1.0, 0.5]),
    ("14.615 7.0;3 ,0", [14.615, 7.0, 3.0, 0.0]),
    ("[.5, -0.25, +2]", [0.5, -0.25, 2.0]),
    ("1e-3", [1.0, -3.0]),  # no exponents in ComfyUI's grammar
    ("", []),
])
def test_manual_sigmas_reads_numbers_as_comfyui(ctx, text, want):
    (out,) = impl.manual_sigmas(ctx, text)
    assert out.dtype == torch.float32 and out.ndim == 1
    assert out.tolist() == pytest.approx(want)


def test_manual_sigmas_bad_number_names_the_input(ctx):
    with pytest.raises(InvalidValue, match="sigmas: '1..5' is not a number"):
        impl.manual_sigmas(ctx, "1..5, 0")


# -- the sampler honours timestep ranges (areas and masks: tests/models/test_area_conditioning.py)
def _const(value, **options):
    return [torch.full((1, 3, 8), float(value)), options]


def test_sampler_uses_each_entry_only_inside_its_range(ctx):
    model = FakeModel()
    early, late = [_const(1.0)], [_const(4.0)]
    (early,) = impl.conditioning_set_timestep_range(ctx, early, 0.0, 0.5)
    (late,) = impl.conditioning_set_timestep_range(ctx, late, 0.5, 1.0)
    (both,) = impl.conditioning_combine(ctx, early, late)
    x = _rand(1, 4, 4, 4, seed=5)
    den = CFGDenoiser(model, both, [_const(0.0)], 1.0, x.shape)
    mid = model.sampling.percent_to_sigma(0.5)

    def alone(value, sigma):
        return model.apply_model(x, sigma, torch.full((1, 3, 8), value))

    high, low = torch.tensor([mid * 2]), torch.tensor([mid / 2])
    assert_close_scaled(den(x, high), alone(1.0, high))  # early part: only the first entry
    assert_close_scaled(den(x, low), alone(4.0, low))
    at = torch.tensor([mid])  # both bounds inclusive: both entries, averaged
    assert_close_scaled(den(x, at), (alone(1.0, at) + alone(4.0, at)) / 2)


def test_sampler_with_no_active_entry_predicts_zeros(ctx):
    model = FakeModel()
    (pos,) = impl.conditioning_set_timestep_range(ctx, [_const(1.0)], 0.0, 0.1)
    x = _rand(1, 4, 4, 4, seed=6)
    den = CFGDenoiser(model, pos, [_const(0.0)], 3.0, x.shape)
    sigma = torch.tensor([model.sampling.percent_to_sigma(0.5)])
    uncond = model.apply_model(x, sigma, torch.full((1, 3, 8), 0.0))
    assert_close_scaled(den(x, sigma), uncond - 3.0 * uncond)  # cond = 0
