"""ModelMergeSimple, CheckpointSave and FreeU_V2: ComfyUI's schemas; merged weights are
ratio * model1 + (1 - ratio) * model2; a saved checkpoint has the family's real key layout
(the same keys and tensors as the file it was loaded from), ComfyUI's name, counter and
metadata, and loads back; FreeU's skip filter and backbone scaling on real tensors and in a
tiny SD UNet."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from comfyless.engine.context import RunContext
from comfyless.models.checkpoint import load_checkpoint
from comfyless.models.checkpoint_writer import write_checkpoint
from comfyless.nodes import REGISTRY
from comfyless.nodes import model_merge as nodes
from comfyless.nodes.impl.model_merge import fourier_filter, freeu_v2_patch
from tests.fixtures_models import random_conds
from tests.floats import assert_close_scaled

PROMPT = {"1": {"class_type": "CheckpointSave", "inputs": {}}}
WORKFLOW = {"nodes": [], "links": []}


def _ctx(tmp_path, class_type: str) -> RunContext:
    ctx = RunContext.create(tmp_path / "base", prompt=PROMPT,
                            extra_pnginfo={"workflow": WORKFLOW})
    return ctx.for_node("9", class_type)


def _run(tmp_path, node, **inputs):
    return node.execute(_ctx(tmp_path, node.schema.class_type), **inputs)


def _file(path):
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


@pytest.fixture(scope="module")
def second_sd15(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sd15_seed1")
    return write_checkpoint(folder / "other.safetensors", "sd15", "tiny", seed=1)


# -- schemas ----------------------------------------------------------------------------------

def test_schemas_as_comfyui():
    merge, save, freeu = (nodes.ModelMergeSimple.schema, nodes.CheckpointSave.schema,
                          nodes.FreeU_V2.schema)
    assert (merge.category, merge.display_name) == ("advanced/model_merging", None)
    ratio = merge.input("ratio")
    assert (ratio.default, ratio.min, ratio.max, ratio.step) == (1.0, 0.0, 1.0, 0.01)
    assert (save.display_name, save.category, save.output_node) == (
        "Save Checkpoint", "advanced/model_merging", True)
    assert [i.name for i in save.inputs] == ["model", "clip", "vae", "filename_prefix"]
    assert save.input("filename_prefix").default == "checkpoints/ComfyUI"
    assert save.hidden == ("prompt", "extra_pnginfo") and save.outputs == ()
    assert (freeu.display_name, freeu.category) == ("FreeU (v2)", "model_patches/unet")
    defaults = {i.name: (i.default, i.min, i.max, i.step) for i in freeu.inputs[1:]}
    assert defaults == {"b1": (1.3, 0.0, 10.0, 0.01), "b2": (1.4, 0.0, 10.0, 0.01),
                        "s1": (0.9, 0.0, 10.0, 0.01), "s2": (0.2, 0.0, 10.0, 0.01)}
    for name in ("ModelMergeSimple", "CheckpointSave", "FreeU_V2"):
        assert name in REGISTRY


# -- ModelMergeSimple -------------------------------------------------------------------------

def test_merge_is_ratio_of_model1(tmp_path, tiny_sd15_checkpoint, second_sd15):
    model1 = load_checkpoint(tiny_sd15_checkpoint, load_clip=False, load_vae=False)[0]
    model2 = load_checkpoint(second_sd15, load_clip=False, load_vae=False)[0]
    before = {k: v.clone() for k, v in model1.diffusion_model.state_dict().items()}
    (merged,) = _run(tmp_path, nodes.ModelMergeSimple, model1=model1, model2=model2, ratio=0.3)
    w1, w2 = before, model2.diffusion_model.state_dict()
    for name, w in merged.diffusion_model.state_dict().items():
        assert_close_scaled(w, 0.3 * w1[name] + 0.7 * w2[name], msg=name)
    for name, w in model1.diffusion_model.state_dict().items():
        assert torch.equal(w, before[name])  # the inputs are untouched
    assert merged.family == "sd15" and merged.sampling is model1.sampling
    (same,) = _run(tmp_path, nodes.ModelMergeSimple, model1=model1, model2=model2, ratio=1.0)
    assert same.diffusion_model is model1.diffusion_model
    (only2,) = _run(tmp_path, nodes.ModelMergeSimple, model1=model1, model2=model2, ratio=0.0)
    x, sigma = torch.randn(1, 4, 8, 8), torch.tensor([3.0])
    cond = random_conds(model1)[0][0][0]
    with torch.no_grad():
        assert_close_scaled(only2.apply_model(x, sigma, cond), model2.apply_model(x, sigma, cond))


def test_merge_errors(tmp_path, tiny_sd15_model):
    with pytest.raises(ValueError, match="input 'model2': expected a MODEL"):
        _run(tmp_path, nodes.ModelMergeSimple, model1=tiny_sd15_model, model2="x", ratio=0.5)


# -- CheckpointSave ---------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_checkpoint_round_trip_keeps_the_file_layout(tmp_path, tiny_checkpoints, arch):
    source = tiny_checkpoints[arch]
    model, clip, vae = load_checkpoint(source)
    result = _run(tmp_path, nodes.CheckpointSave, model=model, clip=clip, vae=vae,
                  filename_prefix="checkpoints/merged")
    path = tmp_path / "base" / "output" / "checkpoints" / "merged_00001_.safetensors"
    assert path.is_file()
    assert result.ui["checkpoints"] == [{"filename": path.name, "subfolder": "checkpoints",
                                         "type": "output"}]
    saved, metadata = _file(path)
    original, _ = _file(source)
    # the real key layout: every weight where the file had it; CLIP's position_ids (an index
    # buffer, not a weight) is not written, as in ComfyUI
    assert set(saved) == {k for k in original if not k.endswith(".position_ids")}
    for key, tensor in saved.items():
        assert torch.equal(tensor, original[key]), key
    assert metadata["prompt"] == json.dumps(PROMPT)
    assert json.loads(metadata["workflow"]) == WORKFLOW
    assert metadata["modelspec.predict_key"] == "epsilon"
    if arch == "sdxl":
        assert metadata["modelspec.architecture"] == "stable-diffusion-xl-v1-base"
        assert metadata["modelspec.title"] == "merged 1"
        assert metadata["modelspec.sai_model_spec"] == "1.0.0"
    else:
        assert "modelspec.architecture" not in metadata
    # reloadable by the loader node, and a second save takes the next counter
    reloaded = load_checkpoint(path)
    assert reloaded[0].family == model.family and reloaded[1] is not None
    _run(tmp_path, nodes.CheckpointSave, model=model, clip=clip, vae=vae,
         filename_prefix="checkpoints/merged")
    assert (path.parent / "merged_00002_.safetensors").is_file()


def test_checkpoint_save_bakes_merges_and_marks_v_prediction(tmp_path, tiny_sd2_checkpoint):
    model, clip, vae = load_checkpoint(tiny_sd2_checkpoint)
    assert model.sampling.prediction == "v"
    (merged,) = _run(tmp_path, nodes.ModelMergeSimple, model1=model, model2=model, ratio=0.5)
    _run(tmp_path, nodes.CheckpointSave, model=merged, clip=clip, vae=vae,
         filename_prefix="sd2")
    path = tmp_path / "base" / "output" / "sd2_00001_.safetensors"
    saved, metadata = _file(path)
    assert metadata["modelspec.predict_key"] == "v" and saved["v_pred"].numel() == 0
    again, clip2, _ = load_checkpoint(path)
    assert again.sampling.prediction == "v"
    assert any(k.startswith("cond_stage_model.model.") for k in saved)  # OpenCLIP layout
    ids = clip.tokenize("a photo")
    assert torch.equal(clip2.encode_from_tokens(ids)[0], clip.encode_from_tokens(ids)[0])


def test_checkpoint_save_loader_node_reads_it(tmp_path, tiny_sd15_checkpoint):
    model, clip, vae = load_checkpoint(tiny_sd15_checkpoint)
    _run(tmp_path, nodes.CheckpointSave, model=model, clip=clip, vae=vae,
         filename_prefix="ComfyUI")
    saved = tmp_path / "base" / "output" / "ComfyUI_00001_.safetensors"
    folder = tmp_path / "base" / "models" / "checkpoints"
    folder.mkdir(parents=True)
    saved.rename(folder / "saved.safetensors")
    ctx = RunContext.create(tmp_path / "base").for_node("1", "CheckpointLoaderSimple")
    loader = REGISTRY["CheckpointLoaderSimple"]
    model2, _clip2, _vae2 = loader.execute(ctx, ckpt_name="saved.safetensors")
    x, sigma = torch.randn(1, 4, 8, 8), torch.tensor([2.0])
    cond = random_conds(model)[0][0][0]
    with torch.no_grad():
        assert torch.equal(model2.apply_model(x, sigma, cond), model.apply_model(x, sigma, cond))


def test_checkpoint_save_errors(tmp_path, tiny_sd15_model):
    with pytest.raises(ValueError, match="input 'vae': expected a VAE"):
        _run(tmp_path, nodes.CheckpointSave, model=tiny_sd15_model, clip=None, vae="x")
    with pytest.raises(ValueError, match="input 'clip': saving a str text encoder"):
        _run(tmp_path, nodes.CheckpointSave, model=tiny_sd15_model, clip="x", vae=None)


# -- FreeU_V2 ---------------------------------------------------------------------------------

def test_fourier_filter_scales_only_the_lowest_frequencies():
    constant = torch.full((1, 2, 8, 8), 3.0)
    assert_close_scaled(fourier_filter(constant, 1, 0.5), constant * 0.5)
    rows = torch.arange(8.0).view(8, 1)
    checker = torch.cos(torch.pi * rows).expand(8, 8).reshape(1, 1, 8, 8).clone()  # Nyquist
    assert_close_scaled(fourier_filter(checker, 1, 0.5), checker, atol_rel=1e-6)
    mixed = constant[:, :1] + checker
    assert_close_scaled(fourier_filter(mixed, 1, 0.2), 0.6 + checker, atol_rel=1e-6)


def test_freeu_patch_scales_backbone_by_normalised_mean():
    patch = freeu_v2_patch(4, b1=2.0, b2=1.5, s1=1.0, s2=1.0)
    h = torch.zeros(1, 16, 2, 2)
    h[0, :, 0, 0], h[0, :, 1, 1] = 1.0, 3.0  # channel mean 1 / 3 / 0 / 0: normalised 1/3, 1, 0
    out, skip = patch(h, torch.ones(1, 16, 2, 2))
    factor = torch.tensor([[1 + 1 / 3, 1.0], [1.0, 2.0]])  # (b1 - 1) * m + 1
    assert_close_scaled(out[0, :8], h[0, :8] * factor)
    assert torch.equal(out[0, 8:], h[0, 8:])  # the second half is untouched
    assert_close_scaled(skip, torch.ones(1, 16, 2, 2))
    other = torch.rand(1, 12, 2, 2)  # 12 channels: neither 16 nor 8
    assert patch(other, other)[0] is other


def test_freeu_in_the_unet(tmp_path, tiny_sd15_model):
    model = tiny_sd15_model
    x, sigma = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0)), \
        torch.tensor([5.0])
    cond = random_conds(model)[0][0][0]
    (neutral,) = _run(tmp_path, nodes.FreeU_V2, model=model, b1=1.0, b2=1.0, s1=1.0, s2=1.0)
    (patched,) = _run(tmp_path, nodes.FreeU_V2, model=model, b1=1.3, b2=1.4, s1=0.9, s2=0.2)
    with torch.no_grad():
        plain = model.apply_model(x, sigma, cond)
        assert_close_scaled(neutral.apply_model(x, sigma, cond), plain)
        changed = patched.apply_model(x, sigma, cond)
    assert float((changed - plain).abs().max()) > 1e-3
    assert model.network_options == {}  # the input model is not patched
    seen = []
    channels = model.config.model_channels
    spy = patched.with_output_block_patch(lambda h, s: (seen.append(h.shape[1]), (h, s))[1])
    with torch.no_grad():
        spy.apply_model(x, sigma, cond)
    assert channels * 2 in seen  # the tiny UNet's deepest level (2x) gets the b2/s2 stage


def test_freeu_refuses_a_model_without_unet(tmp_path):
    with pytest.raises(ValueError, match="input 'model': expected a MODEL"):
        _run(tmp_path, nodes.FreeU_V2, model=3)
