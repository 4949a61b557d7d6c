"""BatchImagesNode, ResizeImageMaskNode, ImageScaleToMaxDimension, LoadImageMask and
ComfyNumberConvert: ComfyUI's schemas, sizes and pixels on real tensors, ComfyUI's rules
(channel padding, centre crops, cover-and-cut, alpha inversion, number parsing), the UI
widgets_values of the DynamicCombo, and errors naming the input."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from comfyless.engine.context import RunContext
from comfyless.engine.load import load_workflow, to_api_json
from comfyless.nodes import REGISTRY
from comfyless.nodes import image_batch as nodes
from comfyless.nodes.impl.image_edit import common_upscale
from tests.floats import assert_close_scaled


def _ctx(tmp_path, class_type: str) -> RunContext:
    return RunContext.create(tmp_path / "base").for_node("3", class_type)


def _run(tmp_path, node, **inputs):
    return node.execute(_ctx(tmp_path, node.schema.class_type), **inputs)


def _ramp(*shape) -> torch.Tensor:
    return torch.linspace(0, 1, int(np.prod(shape))).reshape(*shape)


def _spec(node, name):
    return node.schema.input(name)


# -- schemas ----------------------------------------------------------------------------------

def test_registered_with_comfyui_names_and_categories():
    expected = {"BatchImagesNode": ("Batch Images", "image"),
                "ResizeImageMaskNode": ("Resize Image/Mask", "transform"),
                "ImageScaleToMaxDimension": ("Scale Image to Max Dimension", "image/upscaling"),
                "LoadImageMask": ("Load Image (as Mask)", "mask"),
                "ComfyNumberConvert": ("Number Convert", "math")}
    for name, (display, category) in expected.items():
        schema = REGISTRY[name].schema
        assert (schema.display_name, schema.category) == (display, category)


def test_batch_schema_is_autogrow_of_50_with_two_required():
    inputs = nodes.BatchImagesNode.schema.inputs
    assert [i.name for i in inputs] == [f"images.image{i}" for i in range(50)]
    assert [i.optional for i in inputs[:3]] == [False, False, True]
    assert all(i.type.name == "IMAGE" for i in inputs)


def test_resize_schema():
    s = nodes.ResizeImageMaskNode.schema
    assert s.input("resize_type").choices == (
        "scale dimensions", "scale by multiplier", "scale longer dimension",
        "scale shorter dimension", "scale width", "scale height", "scale total pixels",
        "match size", "scale to multiple")
    assert s.input("scale_method").default == "area"
    assert s.input("resize_type.crop").default == "center"
    width = s.input("resize_type.width")
    assert (width.default, width.min, width.max) == (512, 0, 16384)
    mult = s.input("resize_type.multiplier")
    assert (mult.default, mult.min, mult.max, mult.step) == (1.0, 0.01, 8.0, 0.01)
    assert s.input("resize_type.megapixels").max == 16.0
    assert (s.input("resize_type.multiple").default, s.input("resize_type.multiple").min) == (8, 1)
    assert s.input("resize_type.match").type.name == "IMAGE,MASK"
    assert [o.name for o in s.outputs] == ["resized"]


def test_other_schemas():
    up = _spec(nodes.ImageScaleToMaxDimension, "upscale_method")
    assert up.choices == ("area", "lanczos", "bilinear", "nearest-exact", "bilinear", "bicubic")
    size = _spec(nodes.ImageScaleToMaxDimension, "largest_size")
    assert (size.default, size.min, size.max) == (512, 0, 16384)
    assert _spec(nodes.LoadImageMask, "channel").choices == ("alpha", "red", "green", "blue")
    assert _spec(nodes.LoadImageMask, "image").image_upload
    value = _spec(nodes.ComfyNumberConvert, "value")
    assert value.type.name == "INT,FLOAT,STRING,BOOLEAN" and not value.is_widget
    assert [o.name for o in nodes.ComfyNumberConvert.schema.outputs] == ["FLOAT", "INT"]


# -- BatchImagesNode --------------------------------------------------------------------------

def test_batch_concatenates_in_index_order(tmp_path):
    a, b, c = _ramp(1, 4, 6, 3), torch.zeros(2, 4, 6, 3), torch.ones(1, 4, 6, 3)
    (out,) = _run(tmp_path, nodes.BatchImagesNode, **{"images.image2": c, "images.image0": a,
                                                      "images.image1": b})
    assert torch.equal(out, torch.cat([a, b, c]))


def test_batch_resizes_to_the_first_and_pads_alpha(tmp_path):
    first = _ramp(1, 8, 8, 4)
    other = _ramp(1, 4, 12, 3)  # other size (wider) and no alpha
    (out,) = _run(tmp_path, nodes.BatchImagesNode,
                  **{"images.image0": first, "images.image1": other})
    assert out.shape == (2, 8, 8, 4)
    assert torch.equal(out[0], first[0])
    assert torch.all(out[1, ..., 3] == 1.0)  # the added channel is opaque
    # bilinear after a centre crop of the 4x12 image to 4x4 (columns 4..7)
    expected = F.interpolate(other[:, :, 4:8].movedim(-1, 1), size=(8, 8), mode="bilinear")
    assert_close_scaled(out[1, ..., :3], expected.movedim(1, -1)[0])


def test_batch_errors_name_the_input(tmp_path):
    with pytest.raises(ValueError, match="input 'images.image1': expected an IMAGE"):
        _run(tmp_path, nodes.BatchImagesNode,
             **{"images.image0": torch.zeros(1, 4, 4, 3), "images.image1": torch.zeros(4, 4)})


# -- ResizeImageMaskNode ----------------------------------------------------------------------

def _resize(tmp_path, t, resize_type, method="nearest-exact", **sub):
    sub = {f"resize_type.{k}": v for k, v in sub.items()}
    (out,) = _run(tmp_path, nodes.ResizeImageMaskNode, input=t, resize_type=resize_type,
                  scale_method=method, **sub)
    return out


@pytest.mark.parametrize(("resize_type", "sub", "size"), [
    ("scale by multiplier", {"multiplier": 1.5}, (15, 30)),
    ("scale dimensions", {"width": 8, "height": 0, "crop": "disabled"}, (4, 8)),
    ("scale dimensions", {"width": 0, "height": 0, "crop": "center"}, (10, 20)),
    ("scale longer dimension", {"longer_size": 40}, (20, 40)),
    ("scale shorter dimension", {"shorter_size": 5}, (5, 10)),
    ("scale width", {"width": 30}, (15, 30)),
    ("scale height", {"height": 30}, (30, 60)),
    ("scale total pixels", {"megapixels": 0.0008}, (20, 41)),  # int(838.86)=838 px
    ("scale to multiple", {"multiple": 8}, (8, 16)),
])
def test_resize_sizes_for_images_and_masks(tmp_path, resize_type, sub, size):
    image, mask = _ramp(2, 10, 20, 3), _ramp(2, 10, 20)
    assert _resize(tmp_path, image, resize_type, **sub).shape == (2, *size, 3)
    assert _resize(tmp_path, mask, resize_type, **sub).shape == (2, *size)


def test_resize_dimensions_centre_crop_and_match(tmp_path):
    image = _ramp(1, 10, 20, 3)
    out = _resize(tmp_path, image, "scale dimensions", width=10, height=10, crop="center")
    assert torch.equal(out, image[:, :, 5:15])  # nearest-exact at the same size: the crop
    reference = torch.zeros(3, 10, 10)  # a MASK to match
    matched = _resize(tmp_path, image, "match size", match=reference, crop="center")
    assert torch.equal(matched, out)


def test_resize_to_multiple_covers_then_cuts_the_centre(tmp_path):
    mask = _ramp(1, 10, 21)
    out = _resize(tmp_path, mask, "scale to multiple", "bilinear", multiple=8)
    # target 8 x 16; factors 16/21 (w) < 8/10 (h): height 8, width ceil(21 * 0.8) = 17
    scaled = F.interpolate(mask.unsqueeze(1), size=(8, 17), mode="bilinear").squeeze(1)
    assert_close_scaled(out, scaled[:, :, 0:16])
    same = _ramp(1, 16, 24)
    assert _resize(tmp_path, same, "scale to multiple", multiple=8) is same


def test_resize_lanczos_and_errors(tmp_path):
    image = _ramp(1, 6, 6, 3)
    out = _resize(tmp_path, image, "scale by multiplier", "lanczos", multiplier=2.0)
    assert_close_scaled(out, common_upscale(image.movedim(-1, 1), 12, 12, "lanczos",
                                            "disabled").movedim(1, -1))
    with pytest.raises(ValueError, match="input 'input': expected an IMAGE"):
        _resize(tmp_path, "nope", "scale by multiplier", multiplier=2.0)
    with pytest.raises(ValueError, match="input 'resize_type.match'"):
        _resize(tmp_path, image, "match size")
    with pytest.raises(ValueError, match="input 'resize_type': gives a 0 x 0"):
        _resize(tmp_path, image, "scale longer dimension", longer_size=0)


def _template_node(widgets: list) -> dict:
    return {"last_node_id": 1, "last_link_id": 0, "links": [], "version": 0.4,
            "nodes": [{"id": 1, "type": "ResizeImageMaskNode", "mode": 0, "pos": [0, 0],
                       "size": [1, 1], "flags": {}, "order": 0, "properties": {},
                       "inputs": [{"name": "input", "type": "IMAGE,MASK", "link": None}],
                       "outputs": [], "widgets_values": widgets}]}


@pytest.mark.parametrize(("widgets", "expected"), [
    (["scale dimensions", 640, 360, "center", "nearest-exact"],
     {"resize_type.width": 640, "resize_type.height": 360, "resize_type.crop": "center"}),
    (["scale longer dimension", 1024, "lanczos"], {"resize_type.longer_size": 1024}),
    (["match size", "disabled", "area"], {"resize_type.crop": "disabled"}),
])
def test_ui_widgets_values_follow_the_chosen_option(widgets, expected):
    api = to_api_json(load_workflow(json.dumps(_template_node(widgets)), REGISTRY))
    assert api["1"]["inputs"] == {"resize_type": widgets[0], "scale_method": widgets[-1],
                                  **expected}


# -- ImageScaleToMaxDimension -----------------------------------------------------------------

def test_scale_to_max_dimension(tmp_path):
    image = _ramp(1, 10, 20, 3)
    (out,) = _run(tmp_path, nodes.ImageScaleToMaxDimension, image=image,
                  upscale_method="area", largest_size=30)
    assert out.shape == (1, 15, 30, 3)
    expected = F.interpolate(image.movedim(-1, 1), size=(15, 30), mode="area").movedim(1, -1)
    assert_close_scaled(out, expected)
    (square,) = _run(tmp_path, nodes.ImageScaleToMaxDimension, image=_ramp(1, 4, 4, 3),
                     upscale_method="bilinear", largest_size=9)
    assert square.shape == (1, 9, 9, 3)
    with pytest.raises(ValueError, match="input 'largest_size'"):
        _run(tmp_path, nodes.ImageScaleToMaxDimension, image=image, upscale_method="area",
             largest_size=0)


# -- LoadImageMask ----------------------------------------------------------------------------

def _save_input(tmp_path, name: str, picture: Image.Image) -> None:
    folder = tmp_path / "base" / "input"
    folder.mkdir(parents=True, exist_ok=True)
    picture.save(folder / name)


def test_load_image_mask_channels_and_alpha_inversion(tmp_path):
    pixels = np.zeros((3, 4, 4), dtype=np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2], pixels[..., 3] = 255, 51, 0, 204
    _save_input(tmp_path, "rgba.png", Image.fromarray(pixels, "RGBA"))
    _save_input(tmp_path, "rgb.png", Image.fromarray(pixels[..., :3], "RGB"))
    load = nodes.LoadImageMask
    expected = {"red": 1.0, "green": 0.2, "blue": 0.0, "alpha": 1.0 - 0.8}
    for channel, value in expected.items():
        (mask,) = _run(tmp_path, load, image="rgba.png", channel=channel)
        assert mask.shape == (1, 3, 4) and mask.dtype == torch.float32
        assert torch.allclose(mask, torch.full_like(mask, value), atol=1e-6)
    (no_alpha,) = _run(tmp_path, load, image="rgb.png", channel="alpha")
    assert torch.equal(no_alpha, torch.zeros(1, 3, 4))  # opaque: nothing masked
    grey = Image.fromarray(np.full((2, 2), 102, dtype=np.uint8), "L")
    _save_input(tmp_path, "grey.png", grey)
    (g,) = _run(tmp_path, load, image="grey.png", channel="green")
    assert torch.allclose(g, torch.full((1, 2, 2), 0.4), atol=1e-6)


def test_load_image_mask_bad_file(tmp_path):
    folder = tmp_path / "base" / "input"
    folder.mkdir(parents=True)
    (folder / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="input 'image'.*cannot read image file"):
        _run(tmp_path, nodes.LoadImageMask, image="bad.png", channel="red")


# -- ComfyNumberConvert -----------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (True, (1.0, 1)), (False, (0.0, 0)), (7, (7.0, 7)), (-2.7, (-2.7, -2)),
    (" 42 ", (42.0, 42)), ("3.9", (3.9, 3)), ("1e3", (1000.0, 1000)),
    ("123456789012345678901234567890", (1.2345678901234568e29, 123456789012345678901234567890)),
])
def test_number_convert(tmp_path, value, expected):
    out = _run(tmp_path, nodes.ComfyNumberConvert, value=value)
    assert out == expected and type(out[0]) is float and type(out[1]) is int


@pytest.mark.parametrize("value", ["", "  ", "abc", "inf", "nan", float("inf"), [1]])
def test_number_convert_refuses(tmp_path, value):
    with pytest.raises(ValueError, match="input 'value'"):
        _run(tmp_path, nodes.ComfyNumberConvert, value=value)


# -- schemas re-checked against ComfyUI's current source (issue 14 §1.4) ----------------------

def test_rechecked_schemas():
    tiled = {name: {i.name: (i.default, i.min, i.max, i.step)
                    for i in REGISTRY[name].schema.inputs[2:]}
             for name in ("VAEDecodeTiled", "VAEEncodeTiled")}
    assert tiled["VAEDecodeTiled"] == {"tile_size": (512, 64, 4096, 32),
                                       "overlap": (64, 0, 4096, 32),
                                       "temporal_size": (64, 8, 4096, 4),
                                       "temporal_overlap": (8, 4, 4096, 4)}
    assert tiled["VAEEncodeTiled"]["tile_size"] == (512, 64, 4096, 64)
    grow = REGISTRY["GrowMask"].schema
    assert grow.description.startswith("Expands (dilates) or shrinks (erodes)")
    math_node = REGISTRY["ComfyMathExpression"].schema
    assert (math_node.category, [o.name for o in math_node.outputs]) == (
        "logic", ["FLOAT", "INT", "BOOL"])


def test_save_text_expands_prefix_variables_like_comfyui(tmp_path):
    ctx = _ctx(tmp_path, "SaveText")
    REGISTRY["SaveText"].execute(ctx, text="hi", filename_prefix="t_%width%x%height%_%year%",
                                 format="txt")
    year = time.strftime("%Y")
    assert (tmp_path / "base" / "output" / f"t_1x1_{year}_00001.txt").read_text() == "hi"
