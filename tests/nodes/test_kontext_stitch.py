"""ReferenceLatent, FluxKontextMultiReferenceLatentMethod, FluxKontextImageScale, ImageStitch:
ComfyUI's schemas, and outcomes on real tensors (sizes, pixel placement, colours, aspect)."""

from __future__ import annotations

import pytest
import torch

from comfyless.engine.context import RunContext
from comfyless.nodes import REGISTRY
from comfyless.nodes.conditioning import FluxKontextMultiReferenceLatentMethod, ReferenceLatent
from comfyless.nodes.images import FluxKontextImageScale, ImageStitch
from comfyless.nodes.impl.images import KONTEXT_SIZES, kontext_size

RED, GREEN, BLUE = (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)


def _ctx(tmp_path, class_type: str):
    return RunContext.create(tmp_path / "base").for_node("7", class_type)


def _solid(batch: int, height: int, width: int, color, channels: int = 3) -> torch.Tensor:
    image = torch.empty(batch, height, width, channels)
    image[...] = torch.tensor(color)
    return image


# -- schemas ----------------------------------------------------------------------------------

def test_nodes_are_registered():
    for name in ("ReferenceLatent", "FluxKontextMultiReferenceLatentMethod",
                 "FluxKontextImageScale", "ImageStitch"):
        assert name in REGISTRY


def test_reference_latent_schema():
    s = ReferenceLatent.schema
    assert [(i.name, i.type.name, i.optional) for i in s.inputs] == [
        ("conditioning", "CONDITIONING", False), ("latent", "LATENT", True)]
    assert [(o.name, o.type.name) for o in s.outputs] == [("CONDITIONING", "CONDITIONING")]
    assert s.category == "advanced/conditioning/edit_models"
    assert s.description.startswith("This node sets the guiding latent for an edit model.")


def test_multi_reference_method_schema():
    s = FluxKontextMultiReferenceLatentMethod.schema
    method = s.input("reference_latents_method")
    assert [i.name for i in s.inputs] == ["conditioning", "reference_latents_method"]
    assert (method.type.name, method.choices) == ("COMBO", ("offset", "index", "uxo/uno",
                                                          "index_timestep_zero"))
    assert s.display_name == "Edit Model Reference Method"
    assert [o.type.name for o in s.outputs] == ["CONDITIONING"]
    assert s.category == "advanced/conditioning/flux" and s.experimental


def test_kontext_image_scale_schema():
    s = FluxKontextImageScale.schema
    assert [(i.name, i.type.name) for i in s.inputs] == [("image", "IMAGE")]
    assert [o.type.name for o in s.outputs] == ["IMAGE"]
    assert s.category == "advanced/conditioning/flux"


def test_image_stitch_schema():
    s = ImageStitch.schema
    got = [(i.name, i.type.name, i.optional) for i in s.inputs]
    assert got == [("image1", "IMAGE", False), ("direction", "COMBO", False),
                   ("match_image_size", "BOOLEAN", False), ("spacing_width", "INT", False),
                   ("spacing_color", "COMBO", False), ("image2", "IMAGE", True)]
    assert s.input("direction").choices == ("right", "down", "left", "up")
    assert s.input("direction").default == "right"
    assert s.input("match_image_size").default is True
    width = s.input("spacing_width")
    assert (width.default, width.min, width.max, width.step) == (0, 0, 1024, 2)
    assert s.input("spacing_color").choices == ("white", "black", "red", "green", "blue")
    assert s.input("spacing_color").default == "white"
    assert (s.display_name, s.category) == ("Image Stitch", "image/transform")
    assert [o.type.name for o in s.outputs] == ["IMAGE"]


# -- ReferenceLatent / method -----------------------------------------------------------------

def _conditioning():
    return [[torch.zeros(1, 3, 8), {"pooled_output": torch.zeros(1, 4)}],
            [torch.ones(1, 3, 8), {"guidance": 2.5}]]


def test_reference_latent_appends_to_every_entry_without_mutating(tmp_path):
    ctx = _ctx(tmp_path, "ReferenceLatent")
    cond = _conditioning()
    a, b = torch.randn(1, 16, 4, 4), torch.randn(1, 16, 6, 2)
    (once,) = ReferenceLatent.execute(ctx, conditioning=cond, latent={"samples": a})
    (twice,) = ReferenceLatent.execute(ctx, conditioning=once, latent={"samples": b})
    for entry in once:
        assert len(entry[1]["reference_latents"]) == 1 and entry[1]["reference_latents"][0] is a
    for entry, original in zip(twice, cond, strict=True):
        refs = entry[1]["reference_latents"]
        assert [r is x for r, x in zip(refs, (a, b), strict=True)] == [True, True]
        assert entry[0] is original[0]  # the context tensor is shared, not copied
    assert twice[1][1]["guidance"] == 2.5
    assert all("reference_latents" not in options for _, options in cond)  # input untouched
    assert once[0][1]["reference_latents"] is not once[1][1]["reference_latents"]


def test_reference_latent_without_latent_passes_through(tmp_path):
    cond = _conditioning()
    (out,) = ReferenceLatent.execute(_ctx(tmp_path, "ReferenceLatent"), conditioning=cond)
    assert out is cond


def test_reference_latent_refuses_a_non_latent(tmp_path):
    with pytest.raises(ValueError, match=r"node 7 \(ReferenceLatent\) input 'latent'"):
        ReferenceLatent.execute(_ctx(tmp_path, "ReferenceLatent"), conditioning=_conditioning(),
                                latent=torch.zeros(1, 16, 4, 4))


@pytest.mark.parametrize(("choice", "stored"), [("offset", "offset"), ("index", "index"),
                                                ("uxo/uno", "uxo"),
                                                ("index_timestep_zero", "index_timestep_zero")])
def test_multi_reference_method_sets_the_method(tmp_path, choice, stored):
    cond = _conditioning()
    (out,) = FluxKontextMultiReferenceLatentMethod.execute(
        _ctx(tmp_path, "FluxKontextMultiReferenceLatentMethod"), conditioning=cond,
        reference_latents_method=choice)
    assert [options["reference_latents_method"] for _, options in out] == [stored, stored]
    assert all("reference_latents_method" not in options for _, options in cond)


# -- FluxKontextImageScale --------------------------------------------------------------------

def test_kontext_sizes_are_the_17_of_comfyui():
    assert len(KONTEXT_SIZES) == 17 and (1024, 1024) in KONTEXT_SIZES
    assert KONTEXT_SIZES[0] == (672, 1568) and KONTEXT_SIZES[-1] == (1568, 672)
    assert all(w % 16 == 0 and h % 16 == 0 for w, h in KONTEXT_SIZES)


@pytest.mark.parametrize(("width", "height", "expected"), [
    (512, 512, (1024, 1024)),
    (2000, 1000, (1456, 720)),   # aspect 2.0: 1456/720 = 2.02 beats 1504/688 = 2.19
    (1000, 2000, (720, 1456)),
    (1920, 1080, (1392, 752)),   # 16:9 = 1.78: 1392/752 = 1.85 beats 1328/800 = 1.66
    (4000, 100, (1568, 672)),    # wider than every entry: the widest
    (100, 4000, (672, 1568)),
    (1100, 1000, (1104, 944)),   # 1.1: 1104/944 = 1.17 beats 1024/1024 = 1.0
])
def test_kontext_size_picks_the_closest_aspect(width, height, expected):
    assert kontext_size(width, height) == expected


def test_kontext_image_scale_crops_the_sides_then_resizes(tmp_path):
    # 60 x 20 (aspect 3) -> 1568 x 672 (2.33): ComfyUI's centre crop keeps columns 7..52
    image = _solid(2, 20, 60, GREEN)
    image[:, :, :7] = torch.tensor(RED)
    image[:, :, 53:] = torch.tensor(BLUE)
    (out,) = FluxKontextImageScale.execute(_ctx(tmp_path, "FluxKontextImageScale"), image=image)
    assert out.shape == (2, 672, 1568, 3) and out.dtype == torch.float32
    torch.testing.assert_close(out, _solid(2, 672, 1568, GREEN), atol=1e-4, rtol=0)


def test_kontext_image_scale_crops_top_and_bottom_of_a_tall_image(tmp_path):
    # 20 x 80 (aspect 0.25) -> 672 x 1568 (0.43): y = round((80 - 80 * 0.25 / 0.4286) / 2) = 17
    image = _solid(1, 80, 20, GREEN)
    image[:, :17] = torch.tensor(RED)
    image[:, 63:] = torch.tensor(BLUE)
    (out,) = FluxKontextImageScale.execute(_ctx(tmp_path, "FluxKontextImageScale"), image=image)
    assert out.shape == (1, 1568, 672, 3)
    torch.testing.assert_close(out, _solid(1, 1568, 672, GREEN), atol=1e-4, rtol=0)


def test_kontext_image_scale_keeps_the_picture_upright(tmp_path):
    # a square image, top half white, bottom half black: still so at 1024 x 1024 (away from
    # the edge: LANCZOS rings for 3 source pixels, 192 rows here)
    image = torch.zeros(1, 16, 16, 3)
    image[:, :8] = 1.0
    (out,) = FluxKontextImageScale.execute(_ctx(tmp_path, "FluxKontextImageScale"), image=image)
    assert out.shape == (1, 1024, 1024, 3)
    assert out[0, :300].min() > 0.99 and out[0, 724:].max() < 0.01


# -- ImageStitch ------------------------------------------------------------------------------

def _stitch(tmp_path, image1, image2=None, **options):
    (out,) = ImageStitch.execute(_ctx(tmp_path, "ImageStitch"), image1=image1, image2=image2,
                                 **{"direction": "right", "match_image_size": True,
                                    "spacing_width": 0, "spacing_color": "white", **options})
    return out


def test_stitch_without_image2_returns_image1(tmp_path):
    image = _solid(1, 4, 4, RED)
    assert _stitch(tmp_path, image) is image


@pytest.mark.parametrize(("direction", "shape", "first"), [
    ("right", (1, 8, 22, 3), RED), ("left", (1, 8, 22, 3), BLUE),
    ("down", (1, 14, 10, 3), RED), ("up", (1, 14, 10, 3), BLUE)])
def test_stitch_matches_image2_to_image1(tmp_path, direction, shape, first):
    # image2 6x4 (aspect 1.5): side by side -> height 8, width int(8 * 1.5) = 12;
    # stacked -> width 10, height int(10 / 1.5) = 6
    out = _stitch(tmp_path, _solid(1, 8, 10, RED), _solid(1, 4, 6, BLUE), direction=direction)
    assert out.shape == shape
    torch.testing.assert_close(out[0, 0, 0], torch.tensor(first))
    torch.testing.assert_close(out[0, -1, -1], torch.tensor(BLUE if first == RED else RED))
    if direction == "right":
        torch.testing.assert_close(out[:, :, :10], _solid(1, 8, 10, RED))
        torch.testing.assert_close(out[:, :, 10:], _solid(1, 8, 12, BLUE), atol=1e-4, rtol=0)
    if direction == "up":
        torch.testing.assert_close(out[:, :6], _solid(1, 6, 10, BLUE), atol=1e-4, rtol=0)
        torch.testing.assert_close(out[:, 6:], _solid(1, 8, 10, RED))


def test_stitch_without_matching_pads_the_smaller_image_centred(tmp_path):
    out = _stitch(tmp_path, _solid(1, 8, 4, RED), _solid(1, 5, 3, BLUE), match_image_size=False,
                  spacing_color="black")
    assert out.shape == (1, 8, 7, 3)
    torch.testing.assert_close(out[:, :, :4], _solid(1, 8, 4, RED))
    right = out[0, :, 4:]
    # 3 rows missing: 1 above, 2 below, in the grey level of spacing_color (black)
    assert right[0].abs().max() == 0 and right[6:].abs().max() == 0
    torch.testing.assert_close(right[1:6], _solid(1, 5, 3, BLUE)[0])


@pytest.mark.parametrize(("color", "pad"), [("white", 1.0), ("red", 0.0)])
def test_stitch_padding_value_follows_spacing_color(tmp_path, color, pad):
    # stacked: widths are padded; a pure colour pads with black, white with white
    out = _stitch(tmp_path, _solid(1, 2, 6, GREEN), _solid(1, 3, 2, BLUE), direction="down",
                  match_image_size=False, spacing_color=color)
    assert out.shape == (1, 5, 6, 3)
    bottom = out[0, 2:]
    assert torch.all(bottom[:, :2] == pad) and torch.all(bottom[:, 4:] == pad)
    torch.testing.assert_close(bottom[:, 2:4], _solid(1, 3, 2, BLUE)[0])


def test_stitch_spacing_is_even_and_coloured(tmp_path):
    out = _stitch(tmp_path, _solid(1, 4, 3, GREEN), _solid(1, 4, 3, BLUE), spacing_width=3,
                  spacing_color="red")
    assert out.shape == (1, 4, 3 + 4 + 3, 3)  # 3 rounded up to 4
    torch.testing.assert_close(out[:, :, 3:7], _solid(1, 4, 4, RED))
    torch.testing.assert_close(out[:, :, :3], _solid(1, 4, 3, GREEN))
    torch.testing.assert_close(out[:, :, 7:], _solid(1, 4, 3, BLUE))


def test_stitch_spacing_spans_the_larger_extent_when_stacked(tmp_path):
    out = _stitch(tmp_path, _solid(1, 2, 4, GREEN), _solid(1, 2, 6, BLUE), direction="up",
                  match_image_size=False, spacing_width=2, spacing_color="white")
    assert out.shape == (1, 2 + 2 + 2, 6, 3)
    assert torch.all(out[0, 2:4] == 1.0)  # the white gap, full width
    torch.testing.assert_close(out[0, :2], _solid(1, 2, 6, BLUE)[0])


def test_stitch_repeats_the_last_image_of_the_shorter_batch(tmp_path):
    image1 = torch.stack([_solid(1, 2, 2, c)[0] for c in (RED, GREEN, BLUE)])
    image2 = torch.stack([_solid(1, 2, 2, (0.5, 0.5, 0.5))[0]])
    out = _stitch(tmp_path, image1, image2)
    assert out.shape == (3, 2, 4, 3)
    torch.testing.assert_close(out[:, :, :2], image1)
    torch.testing.assert_close(out[:, :, 2:], image2.expand(3, -1, -1, -1), atol=1e-4, rtol=0)
    out = _stitch(tmp_path, image2, image1, match_image_size=False)
    torch.testing.assert_close(out[:, :, :2], image2.expand(3, -1, -1, -1))
    torch.testing.assert_close(out[:, :, 2:], image1)


def test_stitch_adds_an_opaque_alpha_and_opaque_gap(tmp_path):
    rgba = torch.cat([_solid(1, 2, 2, RED), torch.full((1, 2, 2, 1), 0.5)], dim=-1)
    out = _stitch(tmp_path, rgba, _solid(1, 2, 2, BLUE), spacing_width=2, spacing_color="green")
    assert out.shape == (1, 2, 6, 4)
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([1.0, 0.0, 0.0, 0.5]))
    torch.testing.assert_close(out[0, 0, 2], torch.tensor([0.0, 1.0, 0.0, 1.0]))  # gap
    torch.testing.assert_close(out[0, 0, 5], torch.tensor([0.0, 0.0, 1.0, 1.0]))  # alpha added


def test_stitch_names_a_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"node 7 \(ImageStitch\) input 'image2'"):
        _stitch(tmp_path, _solid(1, 2, 2, RED), torch.zeros(2, 2, 3))
