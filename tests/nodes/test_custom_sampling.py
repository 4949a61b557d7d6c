"""Custom-sampling nodes (SamplerCustom & co) on the tiny SD1.5 checkpoint."""

from __future__ import annotations

import json

import pytest
import torch

from comfyless import cli
from comfyless.api import Graph
from comfyless.engine.context import RunContext
from comfyless.engine.validate import validate
from comfyless.models.schedulers import sigmas_for_denoise
from comfyless.nodes import REGISTRY, build_registry
from comfyless.nodes.custom_sampling import NODES
from comfyless.nodes.impl import custom_sampling as impl
from comfyless.nodes.impl.sampling import ksampler
from comfyless.nodes.sampling import SAMPLER_NAMES, SCHEDULER_NAMES
from comfyless.typesys.errors import InvalidValue
from comfyless.typesys.schema import Input, Node, NodeSchema, Result
from comfyless.typesys.types import LATENT
from tests.fixtures_models import install_model
from tests.fixtures_models import random_conds as _conds
from tests.floats import assert_close_scaled

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def kctx(tmp_path):
    return RunContext.create(tmp_path / "base").for_node("5", "SamplerCustom")


def _latent(seed=None, batch=2):
    if seed is None:
        return {"samples": torch.zeros(batch, 4, 8, 8)}
    return {"samples": torch.randn(batch, 4, 8, 8, generator=torch.Generator().manual_seed(seed))}


def _sigmas(ctx, model, scheduler="karras", steps=4, denoise=1.0):
    (sigmas,) = impl.basic_scheduler(ctx, model, scheduler, steps, denoise)
    return sigmas


def _select(ctx, name):
    (sampler,) = impl.ksampler_select(ctx, name)
    return sampler


def _custom(ctx, model, *, sampler="euler", scheduler="karras", steps=4, cfg=6.0, seed=42,
            add_noise=True, latent=None, denoise=1.0, conds=None):
    pos, neg = conds or _conds(model)
    return impl.sampler_custom(ctx, model, add_noise, seed, cfg, pos, neg, _select(ctx, sampler),
                               _sigmas(ctx, model, scheduler, steps, denoise),
                               latent if latent is not None else _latent())


def _ks(ctx, model, *, sampler="euler", scheduler="karras", steps=4, cfg=6.0, seed=42,
        latent=None, denoise=1.0):
    pos, neg = _conds(model)
    (out,) = ksampler(ctx, model, seed, steps, cfg, sampler, scheduler, pos, neg,
                      latent if latent is not None else _latent(), denoise)
    return out


# -- schemas -----------------------------------------------------------------------------------
def _info():
    return {n.schema.class_type: n.schema for n in NODES}


def test_schemas_match_comfyui():
    s = _info()
    names = {k: [i.name for i in v.inputs] for k, v in s.items()}
    assert names == {
        "SamplerCustom": ["model", "add_noise", "noise_seed", "cfg", "positive", "negative",
                          "sampler", "sigmas", "latent_image"],
        "SamplerCustomAdvanced": ["noise", "guider", "sampler", "sigmas", "latent_image"],
        "KSamplerSelect": ["sampler_name"],
        "BasicScheduler": ["model", "scheduler", "steps", "denoise"],
        "SDTurboScheduler": ["model", "steps", "denoise"],
        "RandomNoise": ["noise_seed"],
        "DisableNoise": [],
        "BasicGuider": ["model", "conditioning"],
        "CFGGuider": ["model", "positive", "negative", "cfg"],
        "ConditioningZeroOut": ["conditioning"],
    }
    outs = {k: [(o.name, o.type.name) for o in v.outputs] for k, v in s.items()}
    assert outs["SamplerCustom"] == outs["SamplerCustomAdvanced"] == [
        ("output", "LATENT"), ("denoised_output", "LATENT")]
    assert outs["KSamplerSelect"] == [("SAMPLER", "SAMPLER")]
    assert outs["BasicScheduler"] == outs["SDTurboScheduler"] == [("SIGMAS", "SIGMAS")]
    assert outs["RandomNoise"] == outs["DisableNoise"] == [("NOISE", "NOISE")]
    assert outs["BasicGuider"] == outs["CFGGuider"] == [("GUIDER", "GUIDER")]
    assert outs["ConditioningZeroOut"] == [("CONDITIONING", "CONDITIONING")]
    sc = {i.name: i for i in s["SamplerCustom"].inputs}
    assert sc["add_noise"].type.name == "BOOLEAN" and sc["add_noise"].default is True
    assert (sc["noise_seed"].default, sc["noise_seed"].max) == (0, 2**64 - 1)
    assert sc["noise_seed"].control_after_generate
    assert (sc["cfg"].default, sc["cfg"].min, sc["cfg"].max, sc["cfg"].step,
            sc["cfg"].round) == (8.0, 0.0, 100.0, 0.1, 0.01)
    assert [i.type.name for i in s["SamplerCustomAdvanced"].inputs] == [
        "NOISE", "GUIDER", "SAMPLER", "SIGMAS", "LATENT"]
    bs = {i.name: i for i in s["BasicScheduler"].inputs}
    assert (bs["steps"].default, bs["steps"].min, bs["steps"].max) == (20, 1, 10000)
    assert (bs["denoise"].default, bs["denoise"].min, bs["denoise"].max,
            bs["denoise"].step) == (1.0, 0.0, 1.0, 0.01)
    assert bs["scheduler"].choices == SCHEDULER_NAMES
    tb = {i.name: i for i in s["SDTurboScheduler"].inputs}
    assert (tb["steps"].default, tb["steps"].min, tb["steps"].max) == (1, 1, 10)
    assert tb["denoise"].default == 1.0
    assert s["KSamplerSelect"].inputs[0].choices == SAMPLER_NAMES
    cg = {i.name: i for i in s["CFGGuider"].inputs}
    assert (cg["cfg"].default, cg["cfg"].max, cg["cfg"].step, cg["cfg"].round) == \
        (8.0, 100.0, 0.1, 0.01)
    assert s["SamplerCustom"].category == "sampling/custom_sampling"
    assert s["ConditioningZeroOut"].category == "advanced/conditioning"


def test_object_info_has_every_node(capsys):
    assert cli.main(["nodes", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    sc = info["SamplerCustom"]
    assert sc["input_order"]["required"] == ["model", "add_noise", "noise_seed", "cfg",
                                             "positive", "negative", "sampler", "sigmas",
                                             "latent_image"]
    assert sc["input"]["required"]["sampler"][0] == "SAMPLER"
    assert sc["input"]["required"]["sigmas"][0] == "SIGMAS"
    assert sc["input"]["required"]["add_noise"][1]["default"] is True
    assert sc["output"] == ["LATENT", "LATENT"]
    assert sc["output_name"] == ["output", "denoised_output"]
    adv = info["SamplerCustomAdvanced"]["input"]["required"]
    assert [adv[k][0] for k in ("noise", "guider")] == ["NOISE", "GUIDER"]
    assert info["KSamplerSelect"]["output"] == ["SAMPLER"]
    assert info["BasicScheduler"]["input"]["required"]["steps"][1]["default"] == 20
    assert info["SDTurboScheduler"]["input"]["required"]["steps"][1]["max"] == 10
    assert info["RandomNoise"]["input"]["required"]["noise_seed"][1]["control_after_generate"]
    assert info["DisableNoise"]["output"] == ["NOISE"]
    assert info["BasicGuider"]["output"] == info["CFGGuider"]["output"] == ["GUIDER"]
    assert info["CFGGuider"]["input"]["required"]["cfg"][1]["default"] == 8.0
    assert info["ConditioningZeroOut"]["output"] == ["CONDITIONING"]


def test_type_mismatch_is_a_validation_error(builder):
    b = builder
    ckpt = b.add("CheckpointLoaderSimple", ckpt_name="x.safetensors")
    sched = b.add("BasicScheduler", model=ckpt.out(0), scheduler="karras", steps=4, denoise=1.0)
    sel = b.add("KSamplerSelect", sampler_name="euler")
    good = dict(model=ckpt.out(0), add_noise=True, noise_seed=1, cfg=5.0, positive=ckpt.out(1),
                negative=ckpt.out(1), latent_image=ckpt.out(2))
    b.add("SamplerCustom", node_id="9", sampler=sched.out(0), sigmas=sel.out(0), **good)
    errors = [e for e in validate(b.build(), REGISTRY) if e.node_id == "9"]
    assert {e.input_name for e in errors} >= {"sampler", "sigmas"}
    assert all(e.code == "return_type_mismatch" for e in errors
               if e.input_name in ("sampler", "sigmas"))
    b.add("SamplerCustom", node_id="9", sampler=sel.out(0), sigmas=sched.out(0), **good)
    errors = [e for e in validate(b.build(), REGISTRY) if e.node_id == "9"]
    assert all(e.input_name not in ("sampler", "sigmas") for e in errors)


# -- semantics ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("sampler", "scheduler"), [("euler", "karras"), ("dpmpp_2m", "normal"),
                                                    ("euler_ancestral", "simple")])
def test_sampler_custom_equals_ksampler(kctx, tiny_sd15_model, sampler, scheduler):
    out, _ = _custom(kctx, tiny_sd15_model, sampler=sampler, scheduler=scheduler)
    ref = _ks(kctx, tiny_sd15_model, sampler=sampler, scheduler=scheduler)
    assert_close_scaled(out["samples"], ref["samples"])
    other, _ = _custom(kctx, tiny_sd15_model, sampler=sampler, scheduler=scheduler, seed=43)
    assert not torch.allclose(other["samples"], ref["samples"], atol=1e-3)


def test_denoise_matches_ksampler(kctx, tiny_sd15_model):
    model = tiny_sd15_model
    sigmas = _sigmas(kctx, model, "normal", 3, 0.5)
    assert torch.equal(sigmas, sigmas_for_denoise(model.sampling, "normal", 3, 0.5))
    assert len(sigmas) == 4 and float(sigmas[0]) < float(model.sampling.sigma_max) / 2
    latent = _latent(seed=3)
    out, _ = _custom(kctx, model, scheduler="normal", steps=3, denoise=0.5, latent=latent)
    ref = _ks(kctx, model, scheduler="normal", steps=3, denoise=0.5, latent=latent)
    assert_close_scaled(out["samples"], ref["samples"])
    assert not torch.allclose(out["samples"], latent["samples"], atol=1e-2)
    assert _sigmas(kctx, model, "normal", 3, 0.0).numel() == 0
    passed, denoised = _custom(kctx, model, denoise=0.0, latent=latent)
    assert torch.equal(passed["samples"], latent["samples"]) and denoised is passed


def test_advanced_with_random_noise_and_cfg_guider_equals_sampler_custom(kctx, tiny_sd15_model):
    model = tiny_sd15_model
    pos, neg = _conds(model)
    (guider,) = impl.cfg_guider(kctx, model, pos, neg, 6.0)
    (noise,) = impl.random_noise(kctx, 42)
    for name in ("euler", "euler_ancestral"):  # the ancestral one checks the sampler's seed
        out, den = impl.sampler_custom_advanced(kctx, noise, guider, _select(kctx, name),
                                                _sigmas(kctx, model), _latent())
        ref, ref_den = _custom(kctx, model, sampler=name)
        assert_close_scaled(out["samples"], ref["samples"])
        assert_close_scaled(den["samples"], ref_den["samples"])


def test_disable_noise_adds_none(kctx, tiny_sd15_model):
    model = tiny_sd15_model
    latent = _latent(seed=5)
    pos, neg = _conds(model)
    (guider,) = impl.cfg_guider(kctx, model, pos, neg, 6.0)
    (none,) = impl.disable_noise(kctx)
    assert torch.count_nonzero(none.generate(latent)) == 0 and none.seed == 0
    sigmas = _sigmas(kctx, model, "karras", 3, 0.3)
    out, _ = impl.sampler_custom_advanced(kctx, none, guider, _select(kctx, "euler"), sigmas,
                                          latent)
    plain, _ = _custom(kctx, model, add_noise=False, seed=0, steps=3, denoise=0.3, latent=latent)
    assert_close_scaled(out["samples"], plain["samples"])
    noisy, _ = _custom(kctx, model, add_noise=True, seed=0, steps=3, denoise=0.3, latent=latent)
    assert not torch.allclose(noisy["samples"], plain["samples"], atol=1e-3)
    # no noise: nothing random, so the same run repeats bitwise
    again, _ = _custom(kctx, model, add_noise=False, seed=0, steps=3, denoise=0.3, latent=latent)
    assert torch.equal(again["samples"], plain["samples"])


def test_denoised_output_is_last_x0(kctx, tiny_sd15_model):
    model = tiny_sd15_model
    pos, neg = _conds(model)
    seen = []
    sel = _select(kctx, "euler")
    spy = impl.SamplerChoice("euler", _spy(sel.function, seen))
    sigmas = _sigmas(kctx, model, "karras", 3)
    out, den = impl.sampler_custom(kctx, model, True, 42, 6.0, pos, neg, spy, sigmas, _latent())
    last_x0 = model.latent_format.process_out(seen[-1])
    assert_close_scaled(den["samples"], last_x0)
    # euler's last step lands on sigma 0, so the output is that x0 too
    assert_close_scaled(out["samples"], den["samples"])
    stop = sigmas[:3].clone()  # stop at a sigma > 0: output still noisy, x0 is not
    out2, den2 = impl.sampler_custom(kctx, model, True, 42, 6.0, pos, neg, sel, stop, _latent())
    assert not torch.allclose(out2["samples"], den2["samples"], atol=1e-2)


def _spy(function, seen):
    def run(model, x, sigmas, *, extra_args=None, callback=None, generator=None):
        def cb(info):
            seen.append(info["denoised"].clone())
            callback(info)
        return function(model, x, sigmas, extra_args=extra_args, callback=cb,
                        generator=generator)
    return run


def test_basic_guider_is_cfg_one_without_negative(kctx, tiny_sd15_model):
    model = tiny_sd15_model
    pos, neg = _conds(model)
    (noise,) = impl.random_noise(kctx, 7)
    sel, sigmas = _select(kctx, "euler"), _sigmas(kctx, model, "karras", 3)
    (basic,) = impl.basic_guider(kctx, model, pos)
    (cfg1,) = impl.cfg_guider(kctx, model, pos, neg, 1.0)
    (cfg6,) = impl.cfg_guider(kctx, model, pos, neg, 6.0)
    a, _ = impl.sampler_custom_advanced(kctx, noise, basic, sel, sigmas, _latent())
    b, _ = impl.sampler_custom_advanced(kctx, noise, cfg1, sel, sigmas, _latent())
    c, _ = impl.sampler_custom_advanced(kctx, noise, cfg6, sel, sigmas, _latent())
    assert_close_scaled(a["samples"], b["samples"])
    assert not torch.allclose(a["samples"], c["samples"], atol=1e-3)
    # CFG++ with no negative runs unguided instead of failing
    pp, _ = impl.sampler_custom_advanced(kctx, noise, basic, _select(kctx, "euler_cfg_pp"),
                                         sigmas, _latent())
    assert torch.isfinite(pp["samples"]).all()


def test_sd_turbo_scheduler(kctx, tiny_sd15_model):
    model = tiny_sd15_model
    table = model.sampling.sigmas
    (one,) = impl.sd_turbo_scheduler(kctx, model, 1, 1.0)
    torch.testing.assert_close(one, torch.stack([table[999], torch.tensor(0.0)]))
    (four,) = impl.sd_turbo_scheduler(kctx, model, 4, 1.0)
    torch.testing.assert_close(four[:-1], table[[999, 899, 799, 699]])
    (half,) = impl.sd_turbo_scheduler(kctx, model, 2, 0.5)
    torch.testing.assert_close(half, torch.cat([table[[499, 399]], torch.zeros(1)]))
    (tail,) = impl.sd_turbo_scheduler(kctx, model, 10, 0.3)  # only 3 timesteps are left
    torch.testing.assert_close(tail[:-1], table[[299, 199, 99]])
    (none,) = impl.sd_turbo_scheduler(kctx, model, 3, 0.0)
    assert none.tolist() == [0.0]
    # a schedule of one sigma runs no step: the latent comes back as it went in
    latent = _latent(seed=2)
    out, den = _custom_with(kctx, model, none, latent)
    assert_close_scaled(out["samples"], latent["samples"]) and den is out


def _custom_with(ctx, model, sigmas, latent):
    pos, neg = _conds(model)
    return impl.sampler_custom(ctx, model, True, 1, 6.0, pos, neg, _select(ctx, "euler"),
                               sigmas, latent)


def test_conditioning_zero_out(kctx):
    gen = torch.Generator().manual_seed(0)
    cond = [[torch.randn(1, 77, 32, generator=gen),
             {"pooled_output": torch.randn(1, 16, generator=gen), "strength": 0.5}],
            [torch.randn(1, 5, 32, generator=gen), {}]]
    before = [c[0].clone() for c in cond]
    (out,) = impl.conditioning_zero_out(kctx, cond)
    assert len(out) == 2 and out[0][0].shape == (1, 77, 32) and out[1][0].shape == (1, 5, 32)
    assert all(torch.count_nonzero(c[0]) == 0 for c in out)
    assert torch.count_nonzero(out[0][1]["pooled_output"]) == 0
    assert out[0][1]["pooled_output"].shape == (1, 16) and out[0][1]["strength"] == 0.5
    assert all(torch.equal(c[0], b) for c, b in zip(cond, before, strict=True))  # not mutated
    assert torch.count_nonzero(cond[0][1]["pooled_output"]) > 0


def test_unimplemented_names_fail_naming_the_input(kctx, tiny_sd15_model):
    with pytest.raises(InvalidValue) as info:
        impl.ksampler_select(kctx, "dpm_adaptive")
    assert info.value.input_name == "sampler_name"
    with pytest.raises(InvalidValue) as info:
        impl.basic_scheduler(kctx, tiny_sd15_model, "no_such", 3)
    assert info.value.input_name == "scheduler"


# -- in a workflow -----------------------------------------------------------------------------
class _LatentSink(Node):
    """Test output node: reports the latents it receives."""

    schema = NodeSchema("_LatentSink", inputs=(Input("samples", LATENT),), outputs=(),
                        output_node=True)

    @staticmethod
    def execute(ctx, samples):
        return Result((), ui={"samples": [samples["samples"]]})


def test_workflow_sampler_custom_equals_ksampler(tmp_path, tiny_sd15_checkpoint):
    ctx = RunContext.create(tmp_path / "base")
    name = install_model(ctx, tiny_sd15_checkpoint)
    registry = build_registry()
    registry.register(_LatentSink)
    g = Graph(registry)
    ckpt = g.node("CheckpointLoaderSimple", ckpt_name=name)
    pos = g.node("CLIPTextEncode", text="a red cat", clip=ckpt.out("CLIP"))
    neg = g.node("CLIPTextEncode", text="blurry", clip=ckpt.out("CLIP"))
    empty = g.node("EmptyLatentImage", width=64, height=64, batch_size=2)
    common = dict(cfg=5.0, positive=pos.out(0), negative=neg.out(0),
                  latent_image=empty.out(0))
    ks = g.node("KSampler", model=ckpt.out("MODEL"), seed=11, steps=3, sampler_name="dpmpp_2m",
                scheduler="karras", denoise=1.0, **common)
    sigmas = g.node("BasicScheduler", model=ckpt.out("MODEL"), scheduler="karras", steps=3)
    sampler = g.node("KSamplerSelect", sampler_name="dpmpp_2m")
    sc = g.node("SamplerCustom", model=ckpt.out("MODEL"), add_noise=True, noise_seed=11,
                sampler=sampler.out(0), sigmas=sigmas.out(0), **common)
    guider = g.node("CFGGuider", model=ckpt.out("MODEL"), positive=pos.out(0),
                    negative=neg.out(0), cfg=5.0)
    adv = g.node("SamplerCustomAdvanced", noise=g.node("RandomNoise", noise_seed=11).out(0),
                 guider=guider.out(0), sampler=sampler.out(0), sigmas=sigmas.out(0),
                 latent_image=empty.out(0))
    sinks = [g.node("_LatentSink", samples=h.out(0)) for h in (ks, sc, adv)]
    den = g.node("_LatentSink", samples=sc.out("denoised_output"))
    assert g.validate(tmp_path / "base") == []
    ui = g.run(ctx=ctx)
    ref, custom, advanced = (ui[s.id]["samples"][0] for s in sinks)
    assert ref.shape == (2, 4, 8, 8)
    assert_close_scaled(custom, ref)
    assert_close_scaled(advanced, ref)
    assert ui[den.id]["samples"][0].shape == (2, 4, 8, 8)
    # the API form round-trips through ComfyUI's JSON with the new socket types
    api = g.to_api()
    assert api[sc.id]["inputs"]["sampler"] == [sampler.id, 0]


def test_ui_widget_values_map_to_inputs():
    from comfyless.engine.load import load_workflow

    def node(i, class_type, widgets):
        return {"id": i, "type": class_type, "mode": 0, "inputs": [], "outputs": [],
                "widgets_values": widgets}

    doc = {"version": 0.4, "links": [], "nodes": [
        node(1, "RandomNoise", [123, "fixed"]),
        node(2, "SamplerCustom", [False, 77, "randomize", 3.5]),
        node(3, "BasicScheduler", ["karras", 9, 0.5]),
        node(4, "SDTurboScheduler", [2, 0.7]),
        node(5, "CFGGuider", [4.5]),
        node(6, "KSamplerSelect", ["dpmpp_2m"])]}
    wf = load_workflow(doc, REGISTRY)
    assert wf["1"].inputs == {"noise_seed": 123}
    assert wf["2"].inputs == {"add_noise": False, "noise_seed": 77, "cfg": 3.5}
    assert wf["3"].inputs == {"scheduler": "karras", "steps": 9, "denoise": 0.5}
    assert wf["4"].inputs == {"steps": 2, "denoise": 0.7}
    assert wf["5"].inputs == {"cfg": 4.5}
    assert wf["6"].inputs == {"sampler_name": "dpmpp_2m"}
