"""Loader nodes on tiny checkpoints: outputs, validation of file names, bad files, dtypes."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from comfyless.engine.context import RunContext
from comfyless.nodes import build_registry
from comfyless.nodes.loaders import (
    CheckpointLoaderSimple,
    CLIPLoader,
    DualCLIPLoader,
    UNETLoader,
    VAELoader,
)
from comfyless.typesys.errors import ModelLoadError
from comfyless.typesys.schema import Input, Node, NodeSchema, Result
from comfyless.typesys.types import MODEL
from tests.fixtures_models import install_model


class _ModelSink(Node):
    """Test output node: reports the family of the MODEL it receives."""

    schema = NodeSchema("_ModelSink", inputs=(Input("model", MODEL),), outputs=(),
                        output_node=True)

    @staticmethod
    def execute(ctx, model):
        return Result((), ui={"family": [model.family], "name": [model.source["name"]]})


@pytest.fixture
def lctx(tmp_path):
    return RunContext.create(tmp_path / "base").for_node("4", "CheckpointLoaderSimple")


def test_schemas_match_comfyui():
    names = lambda node: [i.name for i in node.schema.inputs]  # noqa: E731
    assert names(CheckpointLoaderSimple) == ["ckpt_name"]
    assert [o.type.name for o in CheckpointLoaderSimple.schema.outputs] == ["MODEL", "CLIP", "VAE"]
    assert names(UNETLoader) == ["unet_name", "weight_dtype"]
    assert UNETLoader.schema.input("weight_dtype").choices == (
        "default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2")
    assert names(VAELoader) == ["vae_name"]
    assert names(CLIPLoader) == ["clip_name", "type", "device"]
    assert CLIPLoader.schema.input("type").default == "stable_diffusion"
    assert names(DualCLIPLoader) == ["clip_name1", "clip_name2", "type", "device"]
    assert DualCLIPLoader.schema.input("type").default == "sdxl"
    assert CheckpointLoaderSimple.schema.input("ckpt_name").choices_from == "checkpoints"
    assert UNETLoader.schema.input("unet_name").choices_from == "diffusion_models"


def test_checkpoint_loader_gives_model(lctx, tiny_sd15_checkpoint):
    name = install_model(lctx, tiny_sd15_checkpoint)
    model, _clip, _vae = CheckpointLoaderSimple.execute(lctx, ckpt_name=name)
    assert model.family == "sd15" and model.source["name"] == name
    assert model.diffusion_model.dtype == torch.float32


def test_checkpoint_loader_in_a_workflow(tmp_path, tiny_sdxl_checkpoint):
    from comfyless.engine.execute import run_workflow
    from tests.conftest import WorkflowBuilder

    ctx = RunContext.create(tmp_path / "base")
    name = install_model(ctx, tiny_sdxl_checkpoint, name="sub/xl.safetensors")
    registry = build_registry()
    registry.register(_ModelSink)
    b = WorkflowBuilder()
    loader = b.add("CheckpointLoaderSimple", ckpt_name=name)
    b.add("_ModelSink", model=loader.out(0))
    result = run_workflow(b.build(), ctx, registry)
    assert result.ui["2"] == {"family": ["sdxl"], "name": ["sub/xl.safetensors"]}


def test_missing_checkpoint_is_a_validation_error(tmp_path, tiny_sd15_checkpoint):
    from comfyless.engine.validate import validate
    from tests.conftest import WorkflowBuilder

    ctx = RunContext.create(tmp_path / "base")
    install_model(ctx, tiny_sd15_checkpoint, name="present.safetensors")
    registry = build_registry()
    registry.register(_ModelSink)
    b = WorkflowBuilder()
    loader = b.add("CheckpointLoaderSimple", ckpt_name="absent.safetensors")
    b.add("_ModelSink", model=loader.out(0))
    errors = validate(b.build(), registry, ctx.paths)
    assert [(e.node_id, e.input_name) for e in errors] == [("1", "ckpt_name")]
    assert errors[0].code == "value_not_in_list"
    assert "present.safetensors" in str(errors[0].to_dict())


def test_corrupt_checkpoint_names_node_and_input(lctx, tiny_sd15_checkpoint):
    folder = lctx.paths.folders("checkpoints")[0]
    folder.mkdir(parents=True)
    (folder / "bad.safetensors").write_bytes(tiny_sd15_checkpoint.read_bytes()[:5000])
    with pytest.raises(ModelLoadError) as info:
        CheckpointLoaderSimple.execute(lctx, ckpt_name="bad.safetensors")
    assert (info.value.node_id, info.value.input_name) == ("4", "ckpt_name")


def test_unet_loader_fp8_rounds_weights(tmp_path, tiny_sd15_checkpoint):
    ctx = RunContext.create(tmp_path / "base").for_node("2", "UNETLoader")
    name = install_model(ctx, tiny_sd15_checkpoint, kind="diffusion_models")
    file_w = load_file(tiny_sd15_checkpoint)["model.diffusion_model.out.2.weight"]
    (plain,) = UNETLoader.execute(ctx, unet_name=name, weight_dtype="default")
    assert torch.equal(plain.diffusion_model.out[2].weight, file_w)
    (fp8,) = UNETLoader.execute(ctx, unet_name=name, weight_dtype="fp8_e4m3fn")
    w = fp8.diffusion_model.out[2].weight
    assert w.dtype == torch.float32
    assert torch.equal(w, file_w.to(torch.float8_e4m3fn).float())
    assert not torch.equal(w, file_w)


def test_loader_module_is_torch_free():
    code = ("import sys, comfyless.nodes.loaders; "
            "sys.exit(1 if 'torch' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_model_sampling_discrete_overrides_prediction(tiny_sd2_checkpoint):
    from comfyless.models.checkpoint import load_checkpoint
    from comfyless.nodes.loaders import ModelSamplingDiscrete

    model, _, _ = load_checkpoint(tiny_sd2_checkpoint, load_clip=False, load_vae=False)
    assert model.sampling.prediction == "v"
    ctx = RunContext.create(".").for_node("9", "ModelSamplingDiscrete")
    (eps,) = ModelSamplingDiscrete.execute(ctx, model=model, sampling="eps", zsnr=True)
    assert eps.sampling.prediction == "eps" and eps.sampling.zsnr
    assert model.sampling.prediction == "v"  # the input model is untouched
    assert eps.diffusion_model is model.diffusion_model
    with pytest.raises(ValueError, match="'sampling'"):
        ModelSamplingDiscrete.execute(ctx, model=model, sampling="lcm", zsnr=False)


def test_checkpoint_loader_gives_clip_and_vae(lctx, tiny_sd15_checkpoint):
    from comfyless.models.clip import ClipModel
    from comfyless.models.vae import VAE

    name = install_model(lctx, tiny_sd15_checkpoint)
    model, clip, vae = CheckpointLoaderSimple.execute(lctx, ckpt_name=name)
    assert isinstance(clip, ClipModel) and isinstance(vae, VAE)
    cond, _pooled = clip.encode_from_tokens(clip.tokenize("a cat"), return_pooled=True)
    assert cond.shape[-1] == model.config.context_dim  # the writer matches UNet to encoder
    latent = vae.encode(torch.rand(1, 64, 64, 3))
    x0 = model.apply_model(torch.randn_like(latent), torch.tensor([1.0]), cond)
    assert x0.shape == latent.shape and torch.isfinite(x0).all()


def _save_part(sd: dict, prefix: str, path) -> None:
    from safetensors.torch import save_file

    save_file({k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}, path)


def test_vae_loader(tmp_path, tiny_sd15_checkpoint):
    from comfyless.models.vae import VAE

    ctx = RunContext.create(tmp_path / "base").for_node("3", "VAELoader")
    folder = ctx.paths.folders("vae")[0]
    folder.mkdir(parents=True)
    _save_part(load_file(tiny_sd15_checkpoint), "first_stage_model.", folder / "v.safetensors")
    (vae,) = VAELoader.execute(ctx, vae_name="v.safetensors")
    assert isinstance(vae, VAE)
    assert vae.encode(torch.rand(1, 32, 32, 3)).shape == (1, 4, 4, 4)


def test_vae_loader_refuses_a_unet_file(tmp_path, tiny_sd15_checkpoint):
    ctx = RunContext.create(tmp_path / "base").for_node("3", "VAELoader")
    folder = ctx.paths.folders("vae")[0]
    folder.mkdir(parents=True)
    _save_part(load_file(tiny_sd15_checkpoint), "model.diffusion_model.", folder / "u.safetensors")
    with pytest.raises(ModelLoadError) as info:
        VAELoader.execute(ctx, vae_name="u.safetensors")
    assert (info.value.node_id, info.value.input_name) == ("3", "vae_name")


def test_clip_loaders(tmp_path, tiny_sd15_checkpoint, tiny_sdxl_checkpoint):
    ctx = RunContext.create(tmp_path / "base").for_node("6", "CLIPLoader")
    folder = ctx.paths.folders("text_encoders")[0]
    folder.mkdir(parents=True)
    sd15 = load_file(tiny_sd15_checkpoint)
    _save_part(sd15, "cond_stage_model.transformer.", folder / "l.safetensors")
    (clip,) = CLIPLoader.execute(ctx, clip_name="l.safetensors", type="stable_diffusion")
    cond, _ = clip.encode_from_tokens(clip.tokenize("x"), return_pooled=True)
    assert cond.shape[-1] == sd15[
        "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"].shape[1]
    xl = load_file(tiny_sdxl_checkpoint)
    _save_part(xl, "conditioner.embedders.0.transformer.", folder / "xl_l.safetensors")
    _save_part(xl, "conditioner.embedders.1.model.", folder / "xl_g.safetensors")
    (dual,) = DualCLIPLoader.execute(ctx, clip_name1="xl_l.safetensors",
                                     clip_name2="xl_g.safetensors", type="sdxl")
    cond, pooled = dual.encode_from_tokens(dual.tokenize("x"), return_pooled=True)
    widths = (xl["conditioner.embedders.0.transformer.text_model.embeddings."
                 "token_embedding.weight"].shape[1]
              + xl["conditioner.embedders.1.model.token_embedding.weight"].shape[1])
    assert pooled is not None and cond.shape[-1] == widths  # CLIP-L and bigG concatenated
    with pytest.raises(ModelLoadError) as info:
        DualCLIPLoader.execute(ctx, clip_name1="xl_l.safetensors",
                               clip_name2="xl_g.safetensors", type="flux")
    assert info.value.input_name == "clip_name2"  # the bigG file: flux wants CLIP-L + T5-XXL
