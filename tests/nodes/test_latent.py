"""VAEEncode / VAEDecode / EmptyLatentImage: schemas, shapes, cropping, errors, a workflow."""

from __future__ import annotations

import pytest
import torch

from comfyless.engine.context import RunContext
from comfyless.models.vae import load_vae, vae_state_dict
from comfyless.nodes import build_registry
from comfyless.nodes.latent import EmptyLatentImage, VAEDecode, VAEEncode
from comfyless.typesys.schema import Input, Node, NodeSchema, Result
from comfyless.typesys.types import IMAGE
from tests.conftest import WorkflowBuilder
from tests.fixtures_models import install_model
from tests.floats import assert_close_scaled


@pytest.fixture(scope="module")
def vae():
    return load_vae(vae_state_dict("tiny", torch.Generator().manual_seed(0)))


@pytest.fixture
def nctx(tmp_path):
    return RunContext.create(tmp_path / "base").for_node("8", "VAEDecode")


def test_schemas_match_comfyui():
    assert [(i.name, i.type.name) for i in VAEEncode.schema.inputs] == [("pixels", "IMAGE"),
                                                                        ("vae", "VAE")]
    assert [(i.name, i.type.name) for i in VAEDecode.schema.inputs] == [("samples", "LATENT"),
                                                                        ("vae", "VAE")]
    assert [o.type.name for o in VAEEncode.schema.outputs] == ["LATENT"]
    assert [o.type.name for o in VAEDecode.schema.outputs] == ["IMAGE"]
    spec = {i.name: (i.default, i.min, i.max, i.step) for i in EmptyLatentImage.schema.inputs}
    assert spec == {"width": (512, 16, 16384, 8), "height": (512, 16, 16384, 8),
                    "batch_size": (1, 1, 4096, None)}
    assert list(spec) == ["width", "height", "batch_size"]
    assert (VAEEncode.schema.display_name, VAEDecode.schema.display_name,
            EmptyLatentImage.schema.display_name) == ("VAE Encode", "VAE Decode",
                                                      "Empty Latent Image")


def test_empty_latent(nctx):
    (latent,) = EmptyLatentImage.execute(nctx, width=72, height=40, batch_size=3)
    assert latent["samples"].shape == (3, 4, 5, 9)
    assert not latent["samples"].any() and latent["downscale_ratio_spacial"] == 8


def test_encode_crops_and_decode_round_trips_shapes(nctx, vae):
    pixels = torch.rand(2, 70, 53, 4)  # an alpha channel is dropped
    (latent,) = VAEEncode.execute(nctx, pixels=pixels, vae=vae)
    assert set(latent) == {"samples"} and latent["samples"].shape == (2, 4, 8, 6)
    cropped = pixels[:, 3:67, 2:50, :3]  # centre crop to 64 x 48
    assert_close_scaled(latent["samples"], vae.encode(cropped))  # crops laid out differently
    (image,) = VAEDecode.execute(nctx, samples=latent, vae=vae)
    assert image.shape == (2, 64, 48, 3) and image.dtype == torch.float32
    assert 0.0 <= image.min() and image.max() <= 1.0


def test_decode_flattens_video_latents(nctx, vae):
    (image,) = VAEDecode.execute(nctx, samples={"samples": torch.randn(1, 4, 3, 2, 2)}, vae=vae)
    assert image.shape == (3, 16, 16, 3)


def test_errors_name_node_and_input(nctx, vae):
    with pytest.raises(ValueError, match=r"node 8 \(VAEDecode\) input 'samples'"):
        VAEDecode.execute(nctx, samples={"samples": torch.randn(1, 16, 4, 4)}, vae=vae)
    with pytest.raises(ValueError, match=r"input 'samples'"):
        VAEDecode.execute(nctx, samples=torch.randn(1, 4, 4, 4), vae=vae)
    with pytest.raises(ValueError, match=r"input 'vae'"):
        VAEDecode.execute(nctx, samples={"samples": torch.randn(1, 4, 4, 4)}, vae=None)
    with pytest.raises(ValueError, match=r"input 'pixels'.*smaller"):
        VAEEncode.execute(nctx, pixels=torch.rand(1, 4, 64, 3), vae=vae)
    with pytest.raises(ValueError, match=r"input 'pixels'"):
        VAEEncode.execute(nctx, pixels=torch.rand(64, 64, 3), vae=vae)


class _ImageSource(Node):
    """Test node: a fixed random IMAGE."""

    schema = NodeSchema("_ImageSource", outputs=(VAEDecode.schema.outputs[0],))

    @staticmethod
    def execute(ctx):
        return (torch.rand(1, 40, 32, 3, generator=torch.Generator().manual_seed(1)),)


class _ImageSink(Node):
    """Test output node: keeps the IMAGE it receives."""

    schema = NodeSchema("_ImageSink", inputs=(Input("images", IMAGE),), outputs=(),
                        output_node=True)

    @staticmethod
    def execute(ctx, images):
        return Result((), ui={"images": [images]})


def test_workflow_encode_decode_with_checkpoint_vae(tmp_path, tiny_sd15_checkpoint):
    from comfyless.engine.execute import run_workflow
    from comfyless.models.checkpoint import load_checkpoint

    ctx = RunContext.create(tmp_path / "base")
    name = install_model(ctx, tiny_sd15_checkpoint)
    registry = build_registry()
    registry.register(_ImageSource)
    registry.register(_ImageSink)
    b = WorkflowBuilder()
    ckpt = b.add("CheckpointLoaderSimple", ckpt_name=name)
    src = b.add("_ImageSource")
    enc = b.add("VAEEncode", pixels=src.out(0), vae=ckpt.out(2))
    dec = b.add("VAEDecode", samples=enc.out(0), vae=ckpt.out(2))
    b.add("_ImageSink", images=dec.out(0))
    result = run_workflow(b.build(), ctx, registry)
    (image,) = result.ui["5"]["images"]
    _, _, vae = load_checkpoint(tiny_sd15_checkpoint)
    expected = vae.decode(vae.encode(_ImageSource.execute(ctx)[0]))
    assert image.shape == (1, 40, 32, 3)
    assert_close_scaled(image, expected)  # another load of the checkpoint


@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_text_to_image_workflow_end_to_end(tmp_path, tiny_checkpoints, arch):
    """Checkpoint -> CLIPTextEncode x2 -> EmptyLatentImage -> KSampler -> VAEDecode -> sink."""
    from comfyless.engine.execute import run_workflow

    ctx = RunContext.create(tmp_path / "base")
    name = install_model(ctx, tiny_checkpoints[arch])
    registry = build_registry()
    registry.register(_ImageSink)
    b = WorkflowBuilder()
    ckpt = b.add("CheckpointLoaderSimple", ckpt_name=name)
    pos = b.add("CLIPTextEncode", text="a (cat:1.2) on a mat", clip=ckpt.out(1))
    neg = b.add("CLIPTextEncode", text="", clip=ckpt.out(1))
    empty = b.add("EmptyLatentImage", width=64, height=48, batch_size=2)
    sample = b.add("KSampler", model=ckpt.out(0), seed=3, steps=2, cfg=7.0,
                   sampler_name="euler", scheduler="normal", positive=pos.out(0),
                   negative=neg.out(0), latent_image=empty.out(0), denoise=1.0)
    dec = b.add("VAEDecode", samples=sample.out(0), vae=ckpt.out(2))
    b.add("_ImageSink", images=dec.out(0))
    (image,) = run_workflow(b.build(), ctx, registry).ui["7"]["images"]
    assert image.shape == (2, 48, 64, 3)
    assert torch.isfinite(image).all() and image.std() > 0
