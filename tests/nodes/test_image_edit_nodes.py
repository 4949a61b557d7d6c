"""Image and mask nodes of nodes/image_edit.py: ComfyUI's schemas, and outcomes on real
tensors (sizes, where pixels land, blend maths, mask shapes, errors naming the input)."""

from __future__ import annotations

import pytest
import torch

from comfyless.engine.context import RunContext
from comfyless.nodes import REGISTRY
from comfyless.nodes import image_edit as nodes
from comfyless.nodes.impl.image_edit import outpaint_feather, total_pixels_size


def _ctx(tmp_path, class_type: str):
    return RunContext.create(tmp_path / "base").for_node("7", class_type)


def _run(tmp_path, node, **inputs):
    return node.execute(_ctx(tmp_path, node.schema.class_type), **inputs)


def _ramp(batch=1, height=4, width=6, channels=3) -> torch.Tensor:
    n = batch * height * width * channels
    return torch.linspace(0, 1, n).reshape(batch, height, width, channels)


# -- schemas ----------------------------------------------------------------------------------

def test_every_node_is_registered_in_order():
    names = [n.schema.class_type for n in nodes.NODES]
    assert names == ["ImageScale", "ImageScaleBy", "ImageScaleToTotalPixels", "ImageInvert",
                     "ImageCrop", "ImageBatch", "RepeatImageBatch", "ImageFromBatch",
                     "ImagePadForOutpaint", "ImageBlend", "ImageToMask", "MaskToImage",
                     "SolidMask", "InvertMask", "GrowMask", "JoinImageWithAlpha", "Canny"]
    for name in names:
        assert name in REGISTRY


def _spec(node, name):
    (found,) = [i for i in node.schema.inputs if i.name == name]
    return found


def test_scale_schemas():
    s = nodes.ImageScale.schema
    assert (s.display_name, s.category) == ("Upscale Image", "image/upscaling")
    assert [i.name for i in s.inputs] == ["image", "upscale_method", "width", "height", "crop"]
    assert _spec(nodes.ImageScale, "upscale_method").choices == (
        "nearest-exact", "bilinear", "area", "bicubic", "lanczos")
    width = _spec(nodes.ImageScale, "width")
    assert (width.default, width.min, width.max, width.step) == (512, 0, 16384, 1)
    assert _spec(nodes.ImageScale, "crop").choices == ("disabled", "center")
    by = _spec(nodes.ImageScaleBy, "scale_by")
    assert (by.default, by.min, by.max, by.step) == (1.0, 0.01, 8.0, 0.01)
    steps = _spec(nodes.ImageScaleToTotalPixels, "resolution_steps")
    assert (steps.default, steps.min, steps.max) == (1, 1, 256)
    assert nodes.ImageScaleToTotalPixels.schema.older_widget_layouts == (("resolution_steps",),)


def test_other_schemas():
    assert [(o.name, o.type.name) for o in nodes.ImagePadForOutpaint.schema.outputs] == [
        ("IMAGE", "IMAGE"), ("MASK", "MASK")]
    left = _spec(nodes.ImagePadForOutpaint, "left")
    assert (left.default, left.step) == (0, 8)
    assert _spec(nodes.ImagePadForOutpaint, "feathering").default == 40
    assert _spec(nodes.ImageBlend, "blend_mode").choices == (
        "normal", "multiply", "screen", "overlay", "soft_light", "difference")
    assert _spec(nodes.ImageToMask, "channel").choices == ("red", "green", "blue", "alpha")
    grow = _spec(nodes.GrowMask, "expand")
    assert (grow.default, grow.min, grow.max) == (0, -16384, 16384)
    assert _spec(nodes.GrowMask, "tapered_corners").default is True
    amount = _spec(nodes.RepeatImageBatch, "amount")
    assert (amount.default, amount.min, amount.max) == (1, 1, 4096)
    assert nodes.ImageFromBatch.schema.category == "image/batch"
    assert nodes.JoinImageWithAlpha.schema.category == "mask/compositing"
    assert nodes.ImageToMask.schema.display_name == "Convert Image to Mask"


# -- scaling ----------------------------------------------------------------------------------

def test_nearest_exact_doubling_repeats_pixels(tmp_path):
    image = _ramp(height=2, width=3)
    (out,) = _run(tmp_path, nodes.ImageScale, image=image, upscale_method="nearest-exact",
                  width=6, height=4, crop="disabled")
    assert out.shape == (1, 4, 6, 3)
    assert torch.equal(out[0, ::2, ::2], image[0]) and torch.equal(out[0, 1::2, 1::2], image[0])


def test_area_halving_averages_blocks(tmp_path):
    image = torch.rand(2, 4, 6, 3)
    (out,) = _run(tmp_path, nodes.ImageScale, image=image, upscale_method="area",
                  width=3, height=2, crop="disabled")
    expected = image.reshape(2, 2, 2, 3, 2, 3).mean(dim=(2, 4))
    assert torch.allclose(out, expected, atol=1e-6)


def test_zero_side_keeps_the_aspect(tmp_path):
    image = torch.rand(1, 10, 20, 3)
    (out,) = _run(tmp_path, nodes.ImageScale, image=image, upscale_method="bilinear",
                  width=0, height=5, crop="disabled")
    assert out.shape == (1, 5, 10, 3)
    (same,) = _run(tmp_path, nodes.ImageScale, image=image, upscale_method="bilinear",
                   width=0, height=0, crop="disabled")
    assert same is image


def test_centre_crop_takes_equal_margins(tmp_path):
    image = torch.zeros(1, 4, 8, 3)
    image[:, :, 2:6] = 1.0  # the middle square is white, the sides black
    (out,) = _run(tmp_path, nodes.ImageScale, image=image, upscale_method="nearest-exact",
                  width=4, height=4, crop="center")
    assert torch.equal(out, torch.ones(1, 4, 4, 3))


def test_lanczos_is_eight_bit_like_comfyui(tmp_path):
    image = torch.rand(1, 8, 8, 3)
    (out,) = _run(tmp_path, nodes.ImageScaleBy, image=image, upscale_method="lanczos",
                  scale_by=1.5)
    assert out.shape == (1, 12, 12, 3)
    assert torch.allclose(out * 255, (out * 255).round(), atol=1e-4)  # 1/255 steps
    assert abs(out.mean().item() - image.mean().item()) < 0.02


def test_scale_by_rounds_sides(tmp_path):
    (out,) = _run(tmp_path, nodes.ImageScaleBy, image=torch.rand(1, 5, 7, 3),
                  upscale_method="bicubic", scale_by=0.5)
    assert out.shape == (1, 2, 4, 3)  # round(2.5) = 2 (to even), round(3.5) = 4


def test_total_pixels_size_and_steps(tmp_path):
    assert total_pixels_size(512, 512, 1.0, 1) == (1024, 1024)
    assert total_pixels_size(300, 200, 1.0, 64) == (1280, 832)
    (out,) = _run(tmp_path, nodes.ImageScaleToTotalPixels, image=torch.rand(1, 8, 16, 3),
                  upscale_method="nearest-exact", megapixels=0.01, resolution_steps=1)
    assert out.shape == (1, 72, 145, 3)  # sqrt(10485 / 128) = 9.05 -> 72.4, 144.8


def test_total_pixels_step_too_big_names_the_input(tmp_path):
    with pytest.raises(ValueError, match="resolution_steps"):
        _run(tmp_path, nodes.ImageScaleToTotalPixels, image=torch.rand(1, 8, 8, 3),
             upscale_method="area", megapixels=0.01, resolution_steps=256)


# -- simple operations ------------------------------------------------------------------------

def test_invert_and_crop(tmp_path):
    image = _ramp()
    (inverted,) = _run(tmp_path, nodes.ImageInvert, image=image)
    assert torch.allclose(inverted, 1 - image)
    (window,) = _run(tmp_path, nodes.ImageCrop, image=image, width=3, height=2, x=2, y=1)
    assert torch.equal(window, image[:, 1:3, 2:5])
    (edge,) = _run(tmp_path, nodes.ImageCrop, image=image, width=10, height=10, x=50, y=50)
    assert torch.equal(edge, image[:, 3:, 5:])  # x, y clamped to the last pixel


def test_bad_image_names_the_input(tmp_path):
    with pytest.raises(ValueError, match="'image'.*IMAGE"):
        _run(tmp_path, nodes.ImageInvert, image=torch.rand(4, 4))


# -- batches ----------------------------------------------------------------------------------

def test_image_batch_resizes_the_second(tmp_path):
    image1, image2 = torch.rand(2, 4, 6, 3), torch.full((1, 8, 12, 3), 0.25)
    (out,) = _run(tmp_path, nodes.ImageBatch, image1=image1, image2=image2)
    assert out.shape == (3, 4, 6, 3)
    assert torch.equal(out[:2], image1)
    assert torch.allclose(out[2], torch.full((4, 6, 3), 0.25))


def test_image_batch_adds_an_opaque_alpha(tmp_path):
    rgb, rgba = torch.rand(1, 2, 2, 3), torch.rand(1, 2, 2, 4)
    (out,) = _run(tmp_path, nodes.ImageBatch, image1=rgb, image2=rgba)
    assert out.shape == (2, 2, 2, 4) and torch.equal(out[0, ..., 3], torch.ones(2, 2))


def test_repeat_and_from_batch(tmp_path):
    image = torch.rand(3, 2, 2, 3)
    (repeated,) = _run(tmp_path, nodes.RepeatImageBatch, image=image, amount=2)
    assert repeated.shape[0] == 6 and torch.equal(repeated[3:], image)
    (part,) = _run(tmp_path, nodes.ImageFromBatch, image=image, batch_index=1, length=5)
    assert torch.equal(part, image[1:])
    (last,) = _run(tmp_path, nodes.ImageFromBatch, image=image, batch_index=9, length=1)
    assert torch.equal(last, image[2:])
    # newer ComfyUI: a negative index counts from the end, and is clamped at the first image
    (end,) = _run(tmp_path, nodes.ImageFromBatch, image=image, batch_index=-1, length=4)
    assert torch.equal(end, image[2:])
    (first,) = _run(tmp_path, nodes.ImageFromBatch, image=image, batch_index=-7, length=2)
    assert torch.equal(first, image[:2])
    index = nodes.ImageFromBatch.schema.input_map["batch_index"]
    assert (index.min, index.max) == (-16384, 16384)
    assert nodes.ImageFromBatch.schema.display_name == "Get Image from Batch"


# -- outpaint ---------------------------------------------------------------------------------

def test_pad_for_outpaint_places_image_and_grey(tmp_path):
    image = torch.rand(2, 10, 12, 3)
    out, mask = _run(tmp_path, nodes.ImagePadForOutpaint, image=image, left=8, top=0,
                     right=0, bottom=16, feathering=0)
    assert out.shape == (2, 26, 20, 3) and mask.shape == (26, 20)
    assert torch.equal(out[:, :10, 8:], image)
    assert torch.all(out[:, 10:] == 0.5) and torch.all(out[:, :, :8] == 0.5)
    assert torch.all(mask[:10, 8:] == 0) and torch.all(mask[10:] == 1) and torch.all(
        mask[:, :8] == 1)


def test_outpaint_feather_fades_from_padded_sides_only():
    f = outpaint_feather(10, 12, left=8, top=0, right=0, bottom=0, feathering=4)
    assert f[0, 0] == 1.0  # d = 0 at the padded left edge
    assert f[5, 1] == pytest.approx((3 / 4) ** 2) and f[5, 3] == pytest.approx((1 / 4) ** 2)
    assert torch.all(f[:, 4:] == 0)
    bottom = outpaint_feather(10, 12, left=0, top=0, right=0, bottom=8, feathering=4)
    assert bottom[9, 5] == pytest.approx((3 / 4) ** 2)  # d = height - i = 1 on the last row
    assert torch.all(outpaint_feather(6, 12, 8, 0, 0, 0, feathering=3) == 0)  # 2f >= height


# -- blend ------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, a, b, expected", [
    ("normal", 0.2, 0.6, 0.6), ("multiply", 0.5, 0.4, 0.2), ("screen", 0.5, 0.5, 0.75),
    ("overlay", 0.25, 0.5, 0.25), ("overlay", 0.75, 0.5, 0.75),
    ("soft_light", 0.5, 0.25, 0.375), ("soft_light", 0.36, 1.0, 0.6),
    ("difference", 0.25, 0.75, -0.5), ("difference", 0.75, 0.25, 0.5),
])
def test_blend_modes(tmp_path, mode, a, b, expected):
    """expected: mode(a, b) before the final clamp (difference is signed, as ComfyUI's)."""
    image1, image2 = torch.full((1, 2, 2, 3), a), torch.full((1, 2, 2, 3), b)
    (out,) = _run(tmp_path, nodes.ImageBlend, image1=image1, image2=image2,
                  blend_factor=1.0, blend_mode=mode)
    assert torch.allclose(out, torch.full_like(out, max(expected, 0.0)), atol=1e-6)
    (half,) = _run(tmp_path, nodes.ImageBlend, image1=image1, image2=image2,
                   blend_factor=0.5, blend_mode=mode)
    assert torch.allclose(half, torch.full_like(out, max((a + expected) / 2, 0.0)), atol=1e-6)


def test_blend_resizes_image2(tmp_path):
    (out,) = _run(tmp_path, nodes.ImageBlend, image1=torch.zeros(1, 4, 4, 3),
                  image2=torch.full((1, 8, 16, 3), 0.5), blend_factor=1.0, blend_mode="normal")
    assert out.shape == (1, 4, 4, 3) and torch.allclose(out, torch.full_like(out, 0.5))


# -- masks ------------------------------------------------------------------------------------

def test_image_mask_round_trip(tmp_path):
    image = torch.rand(2, 3, 4, 4)
    (mask,) = _run(tmp_path, nodes.ImageToMask, image=image, channel="green")
    assert torch.equal(mask, image[..., 1])
    (alpha,) = _run(tmp_path, nodes.ImageToMask, image=image, channel="alpha")
    assert torch.equal(alpha, image[..., 3])
    (back,) = _run(tmp_path, nodes.MaskToImage, mask=mask)
    assert back.shape == (2, 3, 4, 3) and torch.equal(back[..., 2], mask)
    (single,) = _run(tmp_path, nodes.MaskToImage, mask=mask[0])
    assert single.shape == (1, 3, 4, 3)


def test_alpha_of_rgb_names_the_channel(tmp_path):
    with pytest.raises(ValueError, match="'channel'"):
        _run(tmp_path, nodes.ImageToMask, image=torch.rand(1, 2, 2, 3), channel="alpha")


def test_solid_and_invert_mask(tmp_path):
    (solid,) = _run(tmp_path, nodes.SolidMask, value=0.25, width=5, height=3)
    assert solid.shape == (1, 3, 5) and torch.all(solid == 0.25)
    (inverted,) = _run(tmp_path, nodes.InvertMask, mask=solid)
    assert torch.all(inverted == 0.75)
    with pytest.raises(ValueError, match="'mask'.*MASK"):
        _run(tmp_path, nodes.InvertMask, mask=torch.rand(5))


def _dot() -> torch.Tensor:
    mask = torch.zeros(1, 7, 7)
    mask[0, 3, 3] = 1.0
    return mask


def test_grow_mask_tapered_is_a_diamond(tmp_path):
    (out,) = _run(tmp_path, nodes.GrowMask, mask=_dot(), expand=2, tapered_corners=True)
    ys, xs = torch.meshgrid(torch.arange(7), torch.arange(7), indexing="ij")
    assert torch.equal(out[0], ((ys - 3).abs() + (xs - 3).abs() <= 2).float())


def test_grow_mask_square_and_shrink(tmp_path):
    (out,) = _run(tmp_path, nodes.GrowMask, mask=_dot(), expand=1, tapered_corners=False)
    assert out[0, 2:5, 2:5].sum() == 9 and out.sum() == 9
    (back,) = _run(tmp_path, nodes.GrowMask, mask=out, expand=-1, tapered_corners=False)
    assert torch.equal(back, _dot())
    full = torch.ones(1, 4, 4)  # edges are replicated: a full mask does not erode
    (still,) = _run(tmp_path, nodes.GrowMask, mask=full, expand=-2, tapered_corners=True)
    assert torch.equal(still, full)


def test_join_image_with_alpha(tmp_path):
    image, alpha = torch.rand(2, 4, 4, 3), torch.zeros(1, 2, 2)
    alpha[0, 0, 0] = 1.0
    (out,) = _run(tmp_path, nodes.JoinImageWithAlpha, image=image, alpha=alpha)
    assert out.shape == (1, 4, 4, 4)
    assert torch.equal(out[..., :3], image[:1])
    assert out[0, 3, 3, 3] == 1.0 and out[0, 0, 0, 3] == 0.0  # alpha = 1 - mask (resized)


# -- Canny ------------------------------------------------------------------------------------

def test_canny_schema():
    low = _spec(nodes.Canny, "low_threshold")
    assert (low.default, low.min, low.max, low.step) == (0.4, 0.01, 0.99, 0.01)
    assert _spec(nodes.Canny, "high_threshold").default == 0.8
    assert nodes.Canny.schema.category == "image/preprocessors"


def test_canny_outlines_a_square(tmp_path):
    image = torch.zeros(1, 24, 24, 3)
    image[:, 8:16, 8:16] = 1.0
    (edges,) = _run(tmp_path, nodes.Canny, image=image, low_threshold=0.4, high_threshold=0.8)
    assert edges.shape == (1, 24, 24, 3) and set(edges.unique().tolist()) <= {0.0, 1.0}
    ring = edges[0, ..., 0]
    assert torch.all(ring[8, 8:16] == 1)  # the top side, whole
    assert torch.all(ring[9:15, 7:9].amax(dim=1) == 1)  # the left side, on every row
    assert torch.all(ring[9:15, 15:17].amax(dim=1) == 1)  # the right side
    near = torch.zeros_like(ring)
    near[7:17, 7:17] = 1
    near[10:14, 10:14] = 0
    assert torch.all(ring <= near)  # edges only along the square's border
    (flat,) = _run(tmp_path, nodes.Canny, image=torch.full((1, 8, 8, 3), 0.5),
                   low_threshold=0.1, high_threshold=0.2)
    assert flat.sum() == 0


def test_canny_refuses_rgba_and_crossed_thresholds(tmp_path):
    with pytest.raises(ValueError, match="'image'.*expected 1 or 3"):
        _run(tmp_path, nodes.Canny, image=torch.rand(1, 8, 8, 4), low_threshold=0.4,
             high_threshold=0.8)
    with pytest.raises(ValueError, match="'low_threshold'"):
        _run(tmp_path, nodes.Canny, image=torch.rand(1, 8, 8, 3), low_threshold=0.9,
             high_threshold=0.2)


def test_canny_matches_kornia_when_installed():
    """kornia (what ComfyUI calls) as the oracle; not a dependency, so skipped without it."""
    kornia_filters = pytest.importorskip("kornia.filters")
    from comfyless.nodes.impl.image_edit import canny_edges
    torch.manual_seed(0)
    square = torch.zeros(2, 24, 32, 3)
    square[:, 6:18, 8:20] = torch.rand(3)  # exact ties in the suppression step
    for image in (torch.rand(2, 24, 32, 3), (torch.rand(2, 24, 32, 3) > 0.5).float(), square):
        for low, high in ((0.4, 0.8), (0.1, 0.2)):
            reference = kornia_filters.canny(image.movedim(-1, 1), low, high)[1][:, 0]
            assert torch.equal(canny_edges(image, low, high), reference)
