"""LoadImage / SaveImage / PreviewImage on real files written with Pillow."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from comfyless.engine.context import RunContext
from comfyless.nodes.images import LoadImage, PreviewImage, SaveImage
from comfyless.typesys.errors import InvalidValue


@pytest.fixture
def base(tmp_path):
    (tmp_path / "input").mkdir()
    return tmp_path


@pytest.fixture
def nctx(base):
    ctx = RunContext.create(base)
    return ctx.for_node("5", "LoadImage")


def _gradient(w: int, h: int) -> np.ndarray:
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None, None]
    return np.concatenate([np.broadcast_to(x, (h, w, 1)), np.broadcast_to(y, (h, w, 1)),
                           np.full((h, w, 1), 64, np.float32)], axis=2).astype(np.uint8)


def test_load_rgb_png_exact_pixels(base, nctx):
    pixels = _gradient(12, 7)
    Image.fromarray(pixels).save(base / "input" / "a.png")
    image, mask = LoadImage.execute(nctx, image="a.png")
    assert image.shape == (1, 7, 12, 3) and image.dtype == torch.float32
    assert torch.equal(image[0], torch.from_numpy(pixels.astype(np.float32) / 255))
    assert mask.shape == (1, 64, 64) and mask.abs().sum() == 0


def test_load_rgba_mask_is_inverted_alpha(base, nctx):
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 255
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba, "RGBA").save(base / "input" / "alpha.png")
    image, mask = LoadImage.execute(nctx, image="alpha.png")
    assert image.shape == (1, 4, 5, 3)
    assert mask.shape == (1, 4, 5)
    assert mask[0, 0, 0] == 1.0 and mask[0, 1, 1] == 0.0
    assert torch.allclose(image[0, 2, 2], torch.tensor([200 / 255, 0, 0]))


def test_load_applies_exif_orientation(base, nctx):
    pixels = _gradient(8, 4)  # landscape on disk
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(pixels).save(base / "input" / "rot.jpg", exif=exif, quality=100)
    image, _ = LoadImage.execute(nctx, image="rot.jpg")
    assert image.shape == (1, 8, 4, 3)  # displayed as portrait


def test_load_16bit_greyscale_keeps_range(base, nctx):
    grey = np.array([[0, 65535], [32768, 1000]], np.uint16)
    Image.fromarray(grey).save(base / "input" / "deep.png")
    assert Image.open(base / "input" / "deep.png").mode == "I;16"
    image, _ = LoadImage.execute(nctx, image="deep.png")
    assert torch.allclose(image[0, :, :, 0], torch.from_numpy(grey / 65535.0).float())
    assert torch.equal(image[..., 0], image[..., 2])


def test_load_palette_with_transparency(base, nctx):
    pal = Image.new("P", (3, 3), 1)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.putpixel((0, 0), 0)
    pal.info["transparency"] = 0
    pal.save(base / "input" / "pal.png", transparency=0)
    image, mask = LoadImage.execute(nctx, image="pal.png")
    assert torch.allclose(image[0, 1, 1], torch.tensor([1.0, 0, 0]))
    assert mask.shape == (1, 3, 3) and mask[0, 0, 0] == 1 and mask[0, 1, 1] == 0


def test_load_missing_and_unreadable(base, nctx):
    with pytest.raises(InvalidValue) as err:
        LoadImage.execute(nctx, image="nope.png")
    assert err.value.input_name == "image" and err.value.node_id == "5"
    (base / "input" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match="broken.png"):
        LoadImage.execute(nctx, image="broken.png")
    with pytest.raises(InvalidValue):
        LoadImage.execute(nctx, image="../outside.png")


def test_save_image_names_chunks_and_ui(base):
    prompt = {"1": {"class_type": "SaveImage", "inputs": {}}}
    ctx = RunContext.create(base, prompt=prompt, extra_pnginfo={"workflow": {"nodes": []}})
    images = torch.rand(2, 6, 9, 3)
    result = SaveImage.execute(ctx, images=images, filename_prefix="shots/run")
    names = [e["filename"] for e in result.ui["images"]]
    assert names == ["run_00001_.png", "run_00002_.png"]
    assert result.ui["images"][0] == {"filename": "run_00001_.png", "subfolder": "shots",
                                      "type": "output"}
    assert result.values[0] is images
    saved = Image.open(base / "output" / "shots" / "run_00001_.png")
    assert json.loads(saved.text["prompt"]) == prompt
    assert json.loads(saved.text["workflow"]) == {"nodes": []}
    expected = np.clip(255.0 * images[0].numpy(), 0, 255).astype(np.uint8)
    assert np.array_equal(np.asarray(saved), expected)
    again = SaveImage.execute(ctx, images=images[:1], filename_prefix="shots/run")
    assert again.ui["images"][0]["filename"] == "run_00003_.png"  # never overwrites


def test_save_image_batch_num_and_round_trip(base):
    ctx = RunContext.create(base)
    images = torch.rand(3, 4, 4, 3)
    result = SaveImage.execute(ctx, images=images, filename_prefix="b%batch_num%")
    assert [e["filename"] for e in result.ui["images"]] == [
        "b0_00001_.png", "b1_00001_.png", "b2_00001_.png"]
    (base / "input" / "b1.png").write_bytes((base / "output" / "b1_00001_.png").read_bytes())
    loaded, _ = LoadImage.execute(ctx, image="b1.png")
    assert (loaded[0] - images[1]).abs().max() <= 1 / 255 + 1e-6


def test_save_image_refuses_escape(base):
    with pytest.raises(InvalidValue) as err:
        SaveImage.execute(RunContext.create(base), images=torch.rand(1, 2, 2, 3),
                          filename_prefix="../evil")
    assert err.value.input_name == "filename_prefix"


def test_preview_image_goes_to_temp_and_passes_its_images_on(base):
    images = torch.rand(2, 3, 3, 3)
    result = PreviewImage.execute(RunContext.create(base), images=images)
    entries = result.ui["images"]
    assert [e["type"] for e in entries] == ["temp", "temp"]
    for e in entries:
        assert e["filename"].startswith("ComfyUI_temp_") and e["filename"].endswith("_.png")
        assert (base / "temp" / e["subfolder"] / e["filename"]).is_file()
    assert len(result.values) == 1 and result.values[0] is images  # as SaveImage (2026-06)
    assert [(o.name, o.type.name) for o in PreviewImage.schema.outputs] == [("images", "IMAGE")]


def test_load_animated_gif_frames_and_mask(base, nctx):
    frames = [Image.new("P", (6, 4), i) for i in range(3)]
    for f in frames:
        f.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    frames[0].save(base / "input" / "anim.gif", save_all=True, append_images=frames[1:],
                   duration=50, loop=0, disposal=2)
    image, mask = LoadImage.execute(nctx, image="anim.gif")
    assert image.shape == (3, 4, 6, 3)
    assert torch.allclose(image[1, 0, 0], torch.tensor([1.0, 0, 0]))
    assert torch.allclose(image[2, 0, 0], torch.tensor([0, 1.0, 0]))
    assert mask.shape[0] == 3
