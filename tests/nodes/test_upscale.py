"""UpscaleModelLoader / ImageUpscaleWithModel: ComfyUI's schemas, a tiny ESRGAN (RRDBNet) file
in the real key layout read through spandrel, 2x and 4x upscales, the tiled result against the
untiled network, and the error naming the `upscale` extra when spandrel is missing."""

from __future__ import annotations

import builtins

import pytest
import safetensors.torch
import torch
import torch.nn.functional as F

from comfyless.engine.context import RunContext
from comfyless.nodes import REGISTRY
from comfyless.nodes import upscale as nodes
from comfyless.nodes.impl import upscale as impl
from comfyless.typesys.errors import ModelLoadError
from tests.floats import assert_close_scaled


def _spandrel_imports() -> bool:
    try:
        import spandrel  # noqa: F401
    except Exception:  # not installed, or its torchvision does not match this torch
        return False
    return True


needs_spandrel = pytest.mark.skipif(not _spandrel_imports(),
                                    reason="spandrel (pip install comfyless[upscale]) with a "
                                           "torchvision for this torch is not available")


def rrdb_state_dict(upsamples: int, in_channels: int = 3, features: int = 8,
                    seed: int = 0, std: float = 0.05) -> dict[str, torch.Tensor]:
    """A one-block RRDBNet in the new (BasicSR) key layout; spandrel fixes the growth to 32.
    `upsamples` nearest-2x stages (4x with two); 12 input channels: the input is
    pixel-unshuffled first (Real-ESRGAN x2plus), so two stages make a 2x model."""
    g = torch.Generator().manual_seed(seed)
    sd = {}

    def conv(name: str, cin: int, cout: int) -> None:
        sd[f"{name}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * std
        sd[f"{name}.bias"] = torch.randn(cout, generator=g) * 0.01

    growth = 32
    conv("conv_first", in_channels, features)
    for rdb in (1, 2, 3):
        for c in range(1, 6):
            conv(f"body.0.rdb{rdb}.conv{c}", features + (c - 1) * growth,
                 growth if c < 5 else features)
    conv("conv_body", features, features)
    for u in range(1, upsamples + 1):
        conv(f"conv_up{u}", features, features)
    conv("conv_hr", features, features)
    conv("conv_last", features, 3)
    return sd


def _ctx(tmp_path, class_type: str) -> RunContext:
    return RunContext.create(tmp_path / "base").for_node("5", class_type)


def _write_model(tmp_path, name: str, sd) -> None:
    folder = tmp_path / "base" / "models" / "upscale_models"
    folder.mkdir(parents=True, exist_ok=True)
    if name.endswith(".pth"):
        torch.save({"params_ema": sd}, folder / name)  # Real-ESRGAN's nesting
    else:
        safetensors.torch.save_file(sd, str(folder / name))


def _load(tmp_path, name: str):
    ctx = _ctx(tmp_path, "UpscaleModelLoader")
    return nodes.UpscaleModelLoader.execute(ctx, model_name=name)[0]


def test_schemas_as_comfyui():
    loader, up = nodes.UpscaleModelLoader.schema, nodes.ImageUpscaleWithModel.schema
    assert (loader.display_name, loader.category) == ("Load Upscale Model", "loaders")
    assert [(i.name, i.type.name, i.choices_from) for i in loader.inputs] == [
        ("model_name", "COMBO", "upscale_models")]
    assert [o.type.name for o in loader.outputs] == ["UPSCALE_MODEL"]
    assert (up.display_name, up.category) == ("Upscale Image (using Model)", "image/upscaling")
    assert [(i.name, i.type.name) for i in up.inputs] == [("upscale_model", "UPSCALE_MODEL"),
                                                          ("image", "IMAGE")]
    assert "UpscaleModelLoader" in REGISTRY and "ImageUpscaleWithModel" in REGISTRY


@needs_spandrel
@pytest.mark.parametrize(("upsamples", "in_channels", "scale", "file"),
                         [(2, 3, 4, "x4.safetensors"), (2, 12, 2, "x2.pth")])
def test_upscale_runs_at_the_model_scale(tmp_path, upsamples, in_channels, scale, file):
    _write_model(tmp_path, file, rrdb_state_dict(upsamples, in_channels))
    model = _load(tmp_path, file)
    assert model.scale == scale and model.architecture.name == "ESRGAN"
    image = torch.rand(2, 12, 16, 3)
    (out,) = nodes.ImageUpscaleWithModel.execute(_ctx(tmp_path, "ImageUpscaleWithModel"),
                                                 upscale_model=model, image=image)
    assert out.shape == (2, 12 * scale, 16 * scale, 3)
    assert out.dtype == torch.float32 and 0.0 <= out.min() and out.max() <= 1.0
    # one tile: exactly the network on the whole image, clamped
    with torch.no_grad():
        direct = model(image.movedim(-1, 1)).movedim(1, -1).clamp(0, 1)
    assert_close_scaled(out, direct)


def test_tiling_blends_back_to_the_whole_image_for_a_pointwise_model():
    """A per-pixel network (no receptive field beyond the pixel): tiles blended with the
    feather ramps give exactly the untiled output, so the tile/overlap maths is right."""

    class Nearest(torch.nn.Module):
        scale = 2

        def forward(self, x):
            return F.interpolate(x * 0.5 + 0.25, scale_factor=2, mode="nearest")

    pixels = torch.rand(1, 3, 40, 52)
    tiled = impl.upscale_tiled(Nearest(), pixels, tile=16, overlap=4)
    assert_close_scaled(tiled, Nearest()(pixels))


@needs_spandrel
def test_tiled_esrgan_close_to_untiled(tmp_path):
    _write_model(tmp_path, "x4.safetensors", rrdb_state_dict(2, std=0.1))
    model = _load(tmp_path, "x4.safetensors")
    pixels = torch.rand(1, 3, 24, 28)
    with torch.no_grad():
        whole = model(pixels)
        tiled = impl.upscale_tiled(model, pixels, tile=16, overlap=8)
        one_tile = impl.upscale_tiled(model, pixels, tile=28, overlap=8)
    assert tiled.shape == whole.shape == (1, 3, 96, 112)
    assert_close_scaled(one_tile, whole)
    # Near a seam a tile sees less context than the whole image (zero padding where the
    # neighbour's pixels would be; ComfyUI's tiling has the same error), and the feather
    # blend hides it: small on average, bounded at the seams. Measured: max 0.026 and mean
    # 0.001 against outputs up to 0.19 (std 0.024).
    diff = (tiled - whole).abs()
    assert float(diff.mean()) < 0.1 * float(whole.std())
    assert float(diff.max()) < 0.2 * float(whole.abs().max())


@needs_spandrel
def test_swinir_dataparallel_prefix_and_bad_files(tmp_path):
    _write_model(tmp_path, "junk.safetensors", {"foo.weight": torch.zeros(2, 2)})
    with pytest.raises(ModelLoadError, match="junk.safetensors.*spandrel") as info:
        _load(tmp_path, "junk.safetensors")
    assert info.value.input_name == "model_name"


@needs_spandrel
def test_bad_inputs_name_the_input(tmp_path):
    _write_model(tmp_path, "x4.safetensors", rrdb_state_dict(2))
    model = _load(tmp_path, "x4.safetensors")
    ctx = _ctx(tmp_path, "ImageUpscaleWithModel")
    with pytest.raises(ValueError, match="input 'image': expected an IMAGE"):
        nodes.ImageUpscaleWithModel.execute(ctx, upscale_model=model, image=torch.rand(8, 8))
    with pytest.raises(ValueError, match="input 'image': the model takes 3 channels"):
        nodes.ImageUpscaleWithModel.execute(ctx, upscale_model=model,
                                            image=torch.rand(1, 8, 8, 4))
    with pytest.raises(ValueError, match="input 'upscale_model': expected an UPSCALE_MODEL"):
        nodes.ImageUpscaleWithModel.execute(ctx, upscale_model="x4", image=torch.rand(1, 8, 8, 3))


def test_missing_spandrel_names_the_extra(tmp_path, monkeypatch):
    _write_model(tmp_path, "x4.safetensors", rrdb_state_dict(2))
    real_import = builtins.__import__

    def no_spandrel(name, *args, **kwargs):
        if name == "spandrel" or name.startswith("spandrel."):
            raise ImportError("No module named 'spandrel'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_spandrel)
    with pytest.raises(ModelLoadError, match=r"pip install comfyless\[upscale\]"):
        _load(tmp_path, "x4.safetensors")
