"""ControlNet nodes on a tiny SD1.5 checkpoint and a tiny ControlNet file in the real key layout:
schemas as ComfyUI's, loading, applying (strength, range, chaining, old node), KSampler runs,
and clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from comfyless.models.controlnet import ControlNet, random_controlnet_state_dict
from comfyless.nodes import REGISTRY
from comfyless.nodes.controlnet import (
    ControlNetApply,
    ControlNetApplyAdvanced,
    ControlNetLoader,
    DiffControlNetLoader,
    SetUnionControlNetType,
)
from comfyless.nodes.sampling import KSampler
from comfyless.typesys.errors import InvalidValue, ModelLoadError
from tests.fixtures_models import random_conds
from tests.floats import assert_close_scaled

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CN_NAME = "control_v11p_sd15_canny.safetensors"


@pytest.fixture(scope="module")
def cn_weights(tiny_sd15_model):
    """A ControlNet for the tiny SD1.5 UNet in the original .pth-derived layout (keys under
    control_model.)."""
    return random_controlnet_state_dict(tiny_sd15_model.config,
                                        torch.Generator().manual_seed(11),
                                        prefix="control_model.")


def _install(ctx, weights, name=CN_NAME):
    folder = ctx.paths.folders("controlnet")[0]
    folder.mkdir(parents=True, exist_ok=True)
    save_file(weights, folder / name)
    return name


@pytest.fixture
def cn(ctx, cn_weights):
    name = _install(ctx, cn_weights)
    (control_net,) = ControlNetLoader.execute(ctx.for_node("1", "ControlNetLoader"), name)
    return control_net


@pytest.fixture
def actx(ctx):
    return ctx.for_node("2", "ControlNetApplyAdvanced")


def _hint(seed=0, size=(64, 64)):
    return torch.rand(1, *size, 3, generator=torch.Generator().manual_seed(seed))


def _sample(ctx, model, pos, neg, steps=3):
    latent = {"samples": torch.zeros(1, 4, 8, 8)}
    (out,) = KSampler.execute(ctx.for_node("3", "KSampler"), model=model, seed=5, steps=steps,
                              cfg=6.0, sampler_name="euler", scheduler="karras", positive=pos,
                              negative=neg, latent_image=latent, denoise=1.0)
    return out["samples"]


def _apply(actx, pos, neg, cn, strength=1.0, start=0.0, end=1.0, seed=0):
    return ControlNetApplyAdvanced.execute(actx, pos, neg, cn, _hint(seed), strength, start, end)


def test_schemas_follow_comfyui():
    s = ControlNetApplyAdvanced.schema
    assert [i.name for i in s.inputs] == ["positive", "negative", "control_net", "image",
                                          "strength", "start_percent", "end_percent", "vae"]
    assert s.input("vae").optional and not s.input("image").optional
    st, sp, ep = s.input("strength"), s.input("start_percent"), s.input("end_percent")
    assert (st.default, st.min, st.max, st.step) == (1.0, 0.0, 10.0, 0.01)
    assert (sp.default, sp.min, sp.max, sp.step) == (0.0, 0.0, 1.0, 0.001)
    assert (ep.default, ep.min, ep.max, ep.step) == (1.0, 0.0, 1.0, 0.001)
    assert [o.name for o in s.outputs] == ["positive", "negative"]
    assert (s.display_name, s.category) == ("Apply ControlNet", "conditioning/controlnet")
    old = ControlNetApply.schema
    assert [i.name for i in old.inputs] == ["conditioning", "control_net", "image", "strength"]
    assert old.deprecated and old.display_name == "Apply ControlNet (OLD)"
    assert [o.type.name for o in old.outputs] == ["CONDITIONING"]
    loader = ControlNetLoader.schema
    assert (loader.display_name, loader.category) == ("Load ControlNet Model", "loaders")
    assert loader.input("control_net_name").choices_from == "controlnet"
    assert [o.type.name for o in loader.outputs] == ["CONTROL_NET"]
    diff = DiffControlNetLoader.schema
    assert [i.name for i in diff.inputs] == ["model", "control_net_name"]
    assert diff.display_name == "Load ControlNet Model (diff)"
    union = SetUnionControlNetType.schema
    assert union.input("type").choices == (
        "auto", "openpose", "depth", "hed/pidi/scribble/ted", "canny/lineart/anime_lineart/mlsd",
        "normal", "segment", "tile", "repaint")
    assert union.category == "conditioning/controlnet"
    for name in ("ControlNetLoader", "DiffControlNetLoader", "ControlNetApply",
                 "ControlNetApplyAdvanced", "SetUnionControlNetType"):
        assert REGISTRY.get(name) is not None


def test_node_module_does_not_import_torch():
    code = ("import sys; import comfyless.nodes.controlnet; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_loader_lists_controlnet_and_t2i_adapter_folders(ctx, cn_weights):
    _install(ctx, cn_weights)
    other = ctx.paths.base / "models" / "t2i_adapter"
    other.mkdir(parents=True)
    save_file(cn_weights, other / "b.safetensors")
    assert set(ctx.paths.list_files("controlnet")) >= {CN_NAME, "b.safetensors"}


def test_apply_advanced_puts_one_copy_on_both_lists(actx, cn, tiny_sd15_model):
    pos, neg = random_conds(tiny_sd15_model)
    pos_opts = dict(pos[0][1])
    new_pos, new_neg = _apply(actx, pos, neg, cn, 0.8, 0.1, 0.9)
    applied = new_pos[0][1]["control"]
    assert isinstance(applied, ControlNet) and applied is not cn
    assert new_neg[0][1]["control"] is applied  # same previous (none): one shared copy
    assert (applied.strength, applied.percent_range) == (0.8, (0.1, 0.9))
    assert applied.hint.shape == (1, 3, 64, 64) and cn.hint is None
    assert new_pos[0][1]["control_apply_to_uncond"] is False
    assert pos[0][1] == pos_opts  # inputs untouched
    assert new_pos[0][0] is pos[0][0]
    # strength 0: the very same lists back
    same = _apply(actx, pos, neg, cn, 0.0)
    assert same[0] is pos and same[1] is neg


def test_chaining_links_the_previous_controlnet(actx, cn, tiny_sd15_model):
    pos, neg = random_conds(tiny_sd15_model)
    p1, n1 = _apply(actx, pos, neg, cn, seed=1)
    p2, n2 = _apply(actx, p1, n1, cn, 0.5, seed=2)
    second = p2[0][1]["control"]
    assert second.previous is p1[0][1]["control"] and n2[0][1]["control"] is second


def test_strength_zero_samples_like_no_controlnet_and_one_differs(actx, cn, tiny_sd15_model):
    model = tiny_sd15_model
    pos, neg = random_conds(model)
    plain = _sample(actx, model, pos, neg)
    # a ControlNet whose range never covers a step (start = end = 100%) changes nothing
    never = _sample(actx, model, *_apply(actx, pos, neg, cn, 1.0, 1.0, 1.0))
    assert_close_scaled(never, plain, rtol=1e-5)
    zero_strength = cn.with_hint(_hint().movedim(-1, 1), 0.0, (0.0, 1.0), None)
    zero = _sample(actx, model, [[pos[0][0], {"control": zero_strength}]],
                   [[neg[0][0], {"control": zero_strength}]])
    assert_close_scaled(zero, plain, rtol=1e-5)
    full = _sample(actx, model, *_apply(actx, pos, neg, cn, 1.0))
    assert (full - plain).abs().max() > 1e-3
    part = _sample(actx, model, *_apply(actx, pos, neg, cn, 1.0, 0.0, 0.5))
    assert (part - plain).abs().max() > 1e-4 and (part - full).abs().max() > 1e-4
    chained = _sample(actx, model, *_apply(actx, *_apply(actx, pos, neg, cn, seed=1), cn,
                                           seed=2))
    assert (chained - full).abs().max() > 1e-4


def test_old_apply_also_steers_the_negative_pass(ctx, actx, cn, tiny_sd15_model):
    model = tiny_sd15_model
    pos, neg = random_conds(model)
    (old_pos,) = ControlNetApply.execute(ctx.for_node("4", "ControlNetApply"), pos, cn,
                                         _hint(), 1.0)
    assert old_pos[0][1]["control_apply_to_uncond"] is True
    via_old = _sample(actx, model, old_pos, neg)
    via_advanced = _sample(actx, model, *_apply(actx, pos, neg, cn, 1.0))
    assert_close_scaled(via_old, via_advanced, rtol=1e-5)


def test_hint_of_another_size_is_cropped_to_the_latent(actx, cn, tiny_sd15_model):
    model = tiny_sd15_model
    pos, neg = random_conds(model)
    wide = torch.rand(1, 40, 80, 3)
    p, n = ControlNetApplyAdvanced.execute(actx, pos, neg, cn, wide, 1.0, 0.0, 1.0)
    out = _sample(actx, model, p, n, steps=2)
    assert out.shape == (1, 4, 8, 8) and torch.isfinite(out).all()


def test_set_union_type_records_the_task(cn):
    ctx_node = None
    (typed,) = SetUnionControlNetType.execute(ctx_node, cn, "depth")
    assert typed.control_type == (1,) and typed is not cn and cn.control_type == ()
    (auto,) = SetUnionControlNetType.execute(ctx_node, typed, "auto")
    assert auto.control_type == ()


def test_diff_controlnet_adds_the_model_weights(ctx, tiny_sd15_model, cn_weights):
    unet_sd = tiny_sd15_model.diffusion_model.state_dict()
    prefix = "control_model."
    diff = {k: (v - unet_sd[k[len(prefix):]] if k[len(prefix):] in unet_sd else v)
            for k, v in cn_weights.items()}
    diff["difference"] = torch.tensor([1.0])
    name = _install(ctx, diff, "diff_control_sd15.safetensors")
    (loaded,) = DiffControlNetLoader.execute(ctx.for_node("5", "DiffControlNetLoader"),
                                             tiny_sd15_model, name)
    weights = loaded.network.state_dict()
    key = "input_blocks.1.0.in_layers.2.weight"
    assert key in unet_sd
    assert_close_scaled(weights[key], cn_weights[prefix + key], rtol=1e-6)


def test_bad_inputs_are_named(ctx, actx, cn, tiny_sd15_model):
    pos, neg = random_conds(tiny_sd15_model)
    with pytest.raises(InvalidValue, match="image: has 4 channels.*3-channel"):
        ControlNetApplyAdvanced.execute(actx, pos, neg, cn, torch.rand(1, 8, 8, 4), 1.0, 0, 1)
    with pytest.raises(InvalidValue, match="control_net: expected a CONTROL_NET"):
        ControlNetApplyAdvanced.execute(actx, pos, neg, "cn", _hint(), 1.0, 0, 1)
    with pytest.raises(InvalidValue, match="negative: expected CONDITIONING"):
        ControlNetApplyAdvanced.execute(actx, pos, [], cn, _hint(), 1.0, 0, 1)
    name = _install(ctx, {"lora_unet_a.lora_up.weight": torch.zeros(2, 2)}, "a_lora.safetensors")
    with pytest.raises(ModelLoadError, match="a_lora.safetensors: not an SD1.x") as info:
        ControlNetLoader.execute(ctx.for_node("1", "ControlNetLoader"), name)
    assert info.value.input_name == "control_net_name"


def test_controlnet_for_another_model_fails_before_sampling(actx, cn, tiny_sdxl_checkpoint):
    from comfyless.models.checkpoint import load_checkpoint

    model, _, _ = load_checkpoint(tiny_sdxl_checkpoint, load_clip=False, load_vae=False)
    pos, neg = random_conds(model)
    p, n = _apply(actx, pos, neg, cn)
    with pytest.raises(Exception, match="made for another model"):
        _sample(actx, model, p, n, steps=1)


def test_sdxl_controlnet_gets_the_adm_vector(ctx, tiny_sdxl_checkpoint):
    from comfyless.models.checkpoint import load_checkpoint

    model, _, _ = load_checkpoint(tiny_sdxl_checkpoint, load_clip=False, load_vae=False)
    weights = random_controlnet_state_dict(model.config, torch.Generator().manual_seed(12))
    assert "label_emb.0.0.weight" in weights
    name = _install(ctx, weights, "controlnet-canny-sdxl.safetensors")
    (cn,) = ControlNetLoader.execute(ctx.for_node("1", "ControlNetLoader"), name)
    gen = torch.Generator().manual_seed(3)
    dim, adm = model.config.context_dim, model.config.adm_in_channels
    pooled = {"pooled_output": torch.randn(1, adm - 1536, generator=gen)}
    pos = [[torch.randn(1, 7, dim, generator=gen), dict(pooled)]]
    neg = [[torch.randn(1, 7, dim, generator=gen), dict(pooled)]]
    actx = ctx.for_node("2", "ControlNetApplyAdvanced")
    plain = _sample(actx, model, pos, neg, steps=2)
    steered = _sample(actx, model, *_apply(actx, pos, neg, cn), steps=2)
    assert torch.isfinite(steered).all() and (steered - plain).abs().max() > 1e-3


def test_controlnet_workflow_runs(tmp_path, builder, tiny_sd15_checkpoint, cn_weights):
    from PIL import Image

    from comfyless.engine.context import RunContext
    from comfyless.engine.execute import run_workflow
    from tests.fixtures_models import install_model

    ctx = RunContext.create(tmp_path / "base")
    ckpt_name = install_model(ctx, tiny_sd15_checkpoint)
    cn_name = _install(ctx, cn_weights)
    ctx.paths.input_dir.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (48, 40), (200, 30, 90)).save(ctx.paths.input_dir / "edges.png")
    b = builder
    ckpt = b.add("CheckpointLoaderSimple", ckpt_name=ckpt_name)
    pos = b.add("CLIPTextEncode", clip=ckpt.out(1), text="a house")
    neg = b.add("CLIPTextEncode", clip=ckpt.out(1), text="")
    loader = b.add("ControlNetLoader", control_net_name=cn_name)
    image = b.add("LoadImage", image="edges.png")
    apply = b.add("ControlNetApplyAdvanced", positive=pos.out(0), negative=neg.out(0),
                  control_net=loader.out(0), image=image.out(0), strength=0.9,
                  start_percent=0.0, end_percent=0.8)
    latent = b.add("EmptyLatentImage", width=64, height=64, batch_size=1)
    ks = b.add("KSampler", model=ckpt.out(0), seed=1, steps=2, cfg=4.0, sampler_name="euler",
               scheduler="normal", positive=apply.out(0), negative=apply.out(1),
               latent_image=latent.out(0), denoise=1.0)
    decoded = b.add("VAEDecode", samples=ks.out(0), vae=ckpt.out(2))
    preview = b.add("PreviewImage", images=decoded.out(0))
    result = run_workflow(b.build(), ctx)
    assert preview.id in result.ui
