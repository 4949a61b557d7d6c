"""KSampler / KSamplerAdvanced on tiny random-weight checkpoints."""

from __future__ import annotations

import sys

import pytest
import torch

from comfyless.engine.context import RunContext
from comfyless.engine.execute import run_workflow
from comfyless.engine.validate import validate
from comfyless.nodes import REGISTRY, build_registry
from comfyless.nodes.sampling import SAMPLER_NAMES, SCHEDULER_NAMES, KSampler, KSamplerAdvanced
from comfyless.typesys.errors import Interrupted, InvalidValue
from comfyless.typesys.schema import Input, Node, NodeSchema, Output, Result
from comfyless.typesys.types import CONDITIONING, LATENT, MODEL
from tests.fixtures_models import install_model
from tests.fixtures_models import random_conds as _conds
from tests.floats import assert_close_scaled

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def kctx(tmp_path):
    return RunContext.create(tmp_path / "base").for_node("3", "KSampler")


def _ks(ctx, model, *, seed=42, steps=4, cfg=6.0, sampler_name="euler", scheduler="karras",
        latent=None, denoise=1.0, conds=None):
    pos, neg = conds or _conds(model)
    latent = latent if latent is not None else {"samples": torch.zeros(2, 4, 8, 8)}
    (out,) = KSampler.execute(ctx, model=model, seed=seed, steps=steps, cfg=cfg,
                              sampler_name=sampler_name, scheduler=scheduler, positive=pos,
                              negative=neg, latent_image=latent, denoise=denoise)
    return out


def _ksa(ctx, model, *, add_noise="enable", start=0, end=10000, leftover="disable",
         latent=None, steps=6, sampler_name="euler", seed=42):
    pos, neg = _conds(model)
    latent = latent if latent is not None else {"samples": torch.zeros(1, 4, 8, 8)}
    (out,) = KSamplerAdvanced.execute(
        ctx, model=model, add_noise=add_noise, noise_seed=seed, steps=steps, cfg=6.0,
        sampler_name=sampler_name, scheduler="normal", positive=pos, negative=neg,
        latent_image=latent, start_at_step=start, end_at_step=end,
        return_with_leftover_noise=leftover)
    return out


def test_schemas_match_comfyui():
    names = [i.name for i in KSampler.schema.inputs]
    assert names == ["model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive",
                     "negative", "latent_image", "denoise"]
    adv = [i.name for i in KSamplerAdvanced.schema.inputs]
    assert adv == ["model", "add_noise", "noise_seed", "steps", "cfg", "sampler_name",
                   "scheduler", "positive", "negative", "latent_image", "start_at_step",
                   "end_at_step", "return_with_leftover_noise"]
    by_name = {i.name: i for i in KSamplerAdvanced.schema.inputs}
    assert by_name["end_at_step"].default == 10000
    assert by_name["add_noise"].choices == ("enable", "disable")
    assert by_name["return_with_leftover_noise"].choices == ("disable", "enable")
    ks = {i.name: i for i in KSampler.schema.inputs}
    assert (ks["seed"].default, ks["seed"].max) == (0, 2**64 - 1)
    assert (ks["steps"].default, ks["steps"].min, ks["steps"].max) == (20, 1, 10000)
    assert (ks["cfg"].default, ks["cfg"].max, ks["cfg"].step, ks["cfg"].round) == \
        (8.0, 100.0, 0.1, 0.01)
    assert (ks["denoise"].default, ks["denoise"].max) == (1.0, 1.0)
    assert len(SAMPLER_NAMES) == 44 and len(SCHEDULER_NAMES) == 9
    # validation stays torch-free: the schema module holds no torch (tests/nodes/test_torch_free)
    assert "torch" not in vars(sys.modules[KSampler.__module__])


def test_ksampler_shape_determinism_no_nan(kctx, tiny_sd15_model):
    a = _ks(kctx, tiny_sd15_model)["samples"]
    b = _ks(kctx, tiny_sd15_model)["samples"]
    c = _ks(kctx, tiny_sd15_model, seed=43)["samples"]
    assert a.shape == (2, 4, 8, 8) and a.dtype == torch.float32
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)  # determinism of one code path in one process: bitwise
    assert not torch.allclose(a, c)
    assert not torch.allclose(a[0], a[1])  # each batch item gets its own noise


@pytest.mark.parametrize("name", ["euler_ancestral", "dpmpp_2m_sde", "dpmpp_sde", "uni_pc",
                                  "lms", "dpm_2", "heun", "ddim", "dpmpp_2m",
                                  "dpm_2_ancestral"])
def test_every_required_sampler_runs_reproducibly(kctx, tiny_sd15_model, name):
    a = _ks(kctx, tiny_sd15_model, sampler_name=name, steps=3)["samples"]
    b = _ks(kctx, tiny_sd15_model, sampler_name=name, steps=3)["samples"]
    assert torch.isfinite(a).all() and torch.equal(a, b)  # same path twice: bitwise


@pytest.mark.parametrize("scheduler", SCHEDULER_NAMES)
def test_every_scheduler_runs(kctx, tiny_sd15_model, scheduler):
    out = _ks(kctx, tiny_sd15_model, scheduler=scheduler, steps=3)["samples"]
    assert torch.isfinite(out).all()


def test_progress_per_step_and_interrupt(kctx, tiny_sd15_model):
    events = []
    kctx.listeners.append(events.append)
    _ks(kctx, tiny_sd15_model, steps=5)
    steps = [(e.value, e.max) for e in events if e.kind == "progress"]
    assert steps == [(i, 5) for i in range(1, 6)]
    assert all(e.node_id == "3" for e in events)

    def stop_after_two(event):
        if event.kind == "progress" and event.value == 2:
            kctx.interrupt.set()

    events.clear()
    kctx.listeners.append(stop_after_two)
    with pytest.raises(Interrupted):
        _ks(kctx, tiny_sd15_model, steps=5)
    assert [e.value for e in events if e.kind == "progress"] == [1, 2]


def test_unimplemented_sampler_validates_but_fails_naming_the_input(kctx, tiny_sd15_model,
                                                                    builder):
    b = builder
    ckpt = b.add("CheckpointLoaderSimple", ckpt_name="x.safetensors")
    b.add("KSampler", model=ckpt.out(0), seed=1, steps=2, cfg=1.0, sampler_name="dpm_adaptive",
          scheduler="linear_quadratic", positive=ckpt.out(1), negative=ckpt.out(1),
          latent_image=ckpt.out(2), denoise=1.0)
    errors = validate(b.build(), REGISTRY)
    assert all(e.input_name not in ("sampler_name", "scheduler") for e in errors)
    with pytest.raises(InvalidValue) as info:
        _ks(kctx, tiny_sd15_model, sampler_name="dpm_adaptive")
    assert info.value.input_name == "sampler_name" and info.value.node_id == "3"


def test_bad_latent_names_the_input(kctx, tiny_sd15_model):
    with pytest.raises(InvalidValue) as info:
        _ks(kctx, tiny_sd15_model, latent={"samples": torch.ones(1, 16, 8, 8)})
    assert info.value.input_name == "latent_image"


def test_empty_latent_of_another_width_is_widened(kctx, tiny_sd15_model):
    out = _ks(kctx, tiny_sd15_model, latent={"samples": torch.zeros(1, 16, 8, 8)}, steps=2)
    assert out["samples"].shape == (1, 4, 8, 8)


def test_two_stage_advanced_equals_one_run(kctx, tiny_sd15_model):
    full = _ksa(kctx, tiny_sd15_model)["samples"]
    first = _ksa(kctx, tiny_sd15_model, end=3, leftover="enable")
    second = _ksa(kctx, tiny_sd15_model, add_noise="disable", start=3, latent=first)["samples"]
    assert_close_scaled(second, full)
    # without leftover noise, the first stage is denoised to the end: a different latent
    forced = _ksa(kctx, tiny_sd15_model, end=3)["samples"]
    assert not torch.allclose(forced, first["samples"], atol=1e-3)


def test_denoise_equals_advanced_tail(kctx, tiny_sd15_model):
    latent = {"samples": torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))}
    pos, neg = _conds(tiny_sd15_model)
    part = _ks(kctx, tiny_sd15_model, steps=3, denoise=0.5, latent=latent, scheduler="normal",
               conds=(pos, neg))["samples"]
    tail = _ksa(kctx, tiny_sd15_model, steps=6, start=3, latent=latent)["samples"]
    assert_close_scaled(part, tail)
    assert not torch.allclose(part, latent["samples"], atol=1e-2)


def test_nothing_to_do_passes_the_latent_through(kctx, tiny_sd15_model):
    latent = {"samples": torch.randn(1, 4, 8, 8), "batch_index": [0]}
    out = _ks(kctx, tiny_sd15_model, denoise=0.0, latent=latent)
    assert out["samples"] is latent["samples"] and out["batch_index"] == [0]
    out = _ksa(kctx, tiny_sd15_model, start=6, latent=latent)
    assert out["samples"] is latent["samples"]


def test_batch_index_noise(kctx, tiny_sd15_model):
    both = _ks(kctx, tiny_sd15_model, latent={"samples": torch.zeros(2, 4, 8, 8)})["samples"]
    second = _ks(kctx, tiny_sd15_model,
                 latent={"samples": torch.zeros(1, 4, 8, 8), "batch_index": [1]})["samples"]
    # batch of 1 vs batch of 2: other kernels; values near 340, so the tolerance scales
    assert_close_scaled(second[0], both[1])


def test_lora_patches_apply_during_sampling_only(kctx, tiny_sd15_model):
    model = tiny_sd15_model
    name, layer = next((n, m) for n, m in model.diffusion_model.named_modules()
                       if isinstance(m, torch.nn.Linear) and "attn2.to_q" in n)
    gen = torch.Generator().manual_seed(0)
    lora = {f"diffusion_model.{name}.lora_up.weight": torch.randn(layer.out_features, 2,
                                                                   generator=gen),
            f"diffusion_model.{name}.lora_down.weight": torch.randn(2, layer.in_features,
                                                                     generator=gen),
            f"diffusion_model.{name}.alpha": torch.tensor(2.0)}
    before = layer.weight.detach().clone()
    plain = _ks(kctx, model)["samples"]
    patched = _ks(kctx, model.with_lora(lora, 1.0))["samples"]
    assert not torch.allclose(plain, patched, atol=1e-4)
    assert torch.equal(layer.weight, before)  # restored after sampling


def test_sdxl_with_pooled_output(kctx, tiny_sdxl_checkpoint):
    from comfyless.models.checkpoint import load_checkpoint

    model, _, _ = load_checkpoint(tiny_sdxl_checkpoint, load_vae=False, load_clip=False)
    pooled_dim = model.config.adm_in_channels - 6 * 256
    gen = torch.Generator().manual_seed(0)
    dim = model.config.context_dim
    pos = [[torch.randn(1, 77, dim, generator=gen),
            {"pooled_output": torch.randn(1, pooled_dim, generator=gen)}]]
    neg = [[torch.randn(1, 77, dim, generator=gen),
            {"pooled_output": torch.zeros(1, pooled_dim)}]]
    out = _ks(kctx, model, conds=(pos, neg), steps=2,
              latent={"samples": torch.zeros(1, 4, 8, 8)})["samples"]
    assert out.shape == (1, 4, 8, 8) and torch.isfinite(out).all()


def test_sd2_v_prediction_runs(kctx, tiny_sd2_checkpoint):
    from comfyless.models.checkpoint import load_checkpoint

    model, _, _ = load_checkpoint(tiny_sd2_checkpoint, load_vae=False, load_clip=False)
    assert model.sampling.prediction == "v"
    out = _ks(kctx, model, steps=2, sampler_name="dpmpp_2m")["samples"]
    assert out.shape == (2, 4, 8, 8) and torch.isfinite(out).all()


class _TestConds(Node):
    """Test node: random positive/negative CONDITIONING of the model's context width."""

    schema = NodeSchema("_TestConds", inputs=(Input("model", MODEL),),
                        outputs=(Output("positive", CONDITIONING),
                                 Output("negative", CONDITIONING)))

    @staticmethod
    def execute(ctx, model):
        return _conds(model)


class _TestLatent(Node):
    """Test node: a zero LATENT."""

    schema = NodeSchema("_TestLatent", inputs=(), outputs=(Output("LATENT", LATENT),))

    @staticmethod
    def execute(ctx):
        return ({"samples": torch.zeros(1, 4, 8, 8)},)


class _TestSink(Node):
    """Test output node: reports the samples it receives."""

    schema = NodeSchema("_TestSink", inputs=(Input("samples", LATENT),), outputs=(),
                        output_node=True)

    @staticmethod
    def execute(ctx, samples):
        return Result((), ui={"samples": [samples["samples"]]})


def test_ksampler_in_a_workflow(tmp_path, builder, tiny_sd15_checkpoint):
    ctx = RunContext.create(tmp_path / "base")
    name = install_model(ctx, tiny_sd15_checkpoint)
    registry = build_registry()
    for node in (_TestConds, _TestLatent, _TestSink):
        registry.register(node)
    events = []
    ctx.listeners.append(events.append)
    b = builder
    ckpt = b.add("CheckpointLoaderSimple", ckpt_name=name)
    conds = b.add("_TestConds", model=ckpt.out(0))
    ks = b.add("KSampler", model=ckpt.out(0), seed=7, steps=3, cfg=5.0, sampler_name="uni_pc",
               scheduler="beta", positive=conds.out(0), negative=conds.out(1),
               latent_image=b.add("_TestLatent").out(0), denoise=1.0)
    sink = b.add("_TestSink", samples=ks.out(0))
    result = run_workflow(b.build(), ctx, registry)
    samples = result.ui[sink.id]["samples"][0]
    assert samples.shape == (1, 4, 8, 8) and torch.isfinite(samples).all()
    progress = [(e.node_id, e.value, e.max) for e in events if e.kind == "progress"]
    assert progress == [(ks.id, i, 3) for i in (1, 2, 3)]
