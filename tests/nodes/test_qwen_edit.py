"""TextEncodeQwenImageEdit / TextEncodeQwenImageEditPlus: ComfyUI's schemas, and outcomes on
real tiny files (the qwen-image family's Qwen2.5-VL file with its vision tower, the Wan 2.1 VAE).

The nodes' pixel totals (1024², 384²) are lowered with monkeypatch where a VAE or a 1024²
vision pass would be slow on the CPU; the rounding rules are checked at the real totals.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from comfyless.engine.context import RunContext
from comfyless.models import qwen_text as qt
from comfyless.models import qwen_vision as qv
from comfyless.models import text_sets, wan_vae
from comfyless.models import vae as vae_mod
from comfyless.nodes import REGISTRY
from comfyless.nodes.impl import qwen_edit as impl
from comfyless.nodes.impl.conditioning import clip_text_encode
from comfyless.nodes.impl.image_edit import upscale_images
from comfyless.nodes.qwen_edit import TextEncodeQwenImageEdit, TextEncodeQwenImageEditPlus
from tests.floats import assert_close_scaled

ENCODER = qt.QWEN_TEXT_ENCODERS["qwen_image"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """(text-encoder file with the vision tower, the same without it, VAE file)."""
    folder = tmp_path_factory.mktemp("qwen_edit")
    (name, sd), = text_sets.text_encoder_files("qwen_image", "tiny",
                                               torch.Generator().manual_seed(0)).items()
    full, bare = folder / name, folder / "qwen_2.5_vl_7b_text_only.safetensors"
    save_file(sd, str(full))
    save_file({k: v for k, v in sd.items() if not k.startswith("visual.")}, str(bare))
    vae = folder / "qwen_image_vae.safetensors"
    save_file(wan_vae.wan_vae_state_dict("tiny", torch.Generator().manual_seed(1)), str(vae))
    return full, bare, vae


@pytest.fixture(scope="module")
def clip(files):
    return text_sets.load_text_encoder_files([files[0]], "qwen_image", names=[files[0].name])


@pytest.fixture(scope="module")
def vae(files):
    from safetensors.torch import load_file

    return vae_mod.load_vae(load_file(str(files[2])))


@pytest.fixture
def small_totals(monkeypatch):
    """Pixel totals small enough for the CPU (the rules stay the same)."""
    monkeypatch.setattr(impl, "EDIT_PIXELS", 48 * 48)
    monkeypatch.setattr(impl, "PLUS_VISION_PIXELS", 40 * 40)


def _ctx(tmp_path, class_type: str):
    return RunContext.create(tmp_path / "base").for_node("7", class_type)


def _image(height: int, width: int, seed: int, batch: int = 1) -> torch.Tensor:
    return torch.rand(batch, height, width, 3, generator=torch.Generator().manual_seed(seed))


def _refs(conditioning):
    return conditioning[0][1].get("reference_latents")


# -- schemas ----------------------------------------------------------------------------------

def test_schemas_are_comfyuis():
    for node, images in ((TextEncodeQwenImageEdit, ("image",)),
                         (TextEncodeQwenImageEditPlus, ("image1", "image2", "image3"))):
        schema = node.schema
        assert REGISTRY[schema.class_type] is node
        assert schema.category == "advanced/conditioning"
        assert [(i.name, i.type.name, i.optional) for i in schema.inputs] == [
            ("clip", "CLIP", False), ("prompt", "STRING", False), ("vae", "VAE", True),
            *((name, "IMAGE", True) for name in images)]
        assert schema.input("prompt").multiline
        assert [(o.name, o.type.name) for o in schema.outputs] == [
            ("CONDITIONING", "CONDITIONING")]


@pytest.mark.parametrize(("size", "total", "multiple", "expected"), [
    ((640, 480), 1024 * 1024, 1, (1182, 887)),  # s = 1.8475: round(1182.4), round(886.8)
    ((640, 480), 1024 * 1024, 8, (1184, 888)),  # the Plus node's VAE copy
    ((200, 100), 384 * 384, 1, (543, 272)),
    ((1024, 1024), 1024 * 1024, 8, (1024, 1024)),
])
def test_scaled_sizes(size, total, multiple, expected):
    assert impl.scaled_size(*size, total, multiple) == expected


# -- TextEncodeQwenImageEdit ------------------------------------------------------------------

def test_edit_without_image_is_clip_text_encode(tmp_path, clip, vae):
    ctx = _ctx(tmp_path, "TextEncodeQwenImageEdit")
    (cond,) = TextEncodeQwenImageEdit.execute(ctx, clip=clip, prompt="a red car", vae=vae)
    ((plain, _),) = clip_text_encode(ctx, "a red car", clip)[0]
    assert_close_scaled(cond[0][0], plain)
    assert _refs(cond) is None


def test_edit_image_is_seen_and_encoded(tmp_path, clip, vae, small_totals):
    ctx = _ctx(tmp_path, "TextEncodeQwenImageEdit")
    image = _image(30, 70, seed=1)
    (cond,) = TextEncodeQwenImageEdit.execute(ctx, clip=clip, prompt="a red car", vae=vae,
                                              image=image)
    (other,) = TextEncodeQwenImageEdit.execute(ctx, clip=clip, prompt="a red car",
                                               image=_image(30, 70, seed=2))
    # 48² pixels: 73 × 31 ("area"); under 3136 pixels the tower scales up (ceil to 28):
    # 112 × 56 -> 4 × 2 merged tokens
    scaled = upscale_images(image, 73, 31, "area")
    _, grid = qv.preprocess_image(scaled)
    assert grid == (1, 4, 8)
    ids = qt.encode_qwen_text(ENCODER.image_template.format("a red car"))
    head = qt.template_head_length(ids, len(ids))
    assert cond[0][0].shape == (1, len(ids) - 1 + 8 - head, 32)  # the pad became 8 rows
    assert not torch.allclose(cond[0][0], other[0][0])  # another image, another cond
    (ref,) = _refs(cond)
    expected = vae.encode(scaled)
    assert ref.shape == expected.shape
    assert_close_scaled(ref, expected)
    assert _refs(other) is None  # no VAE, no reference latents


# -- TextEncodeQwenImageEditPlus --------------------------------------------------------------

@pytest.mark.parametrize("count", [1, 2, 3])
def test_plus_one_two_three_images(tmp_path, clip, vae, small_totals, count):
    ctx = _ctx(tmp_path, "TextEncodeQwenImageEditPlus")
    shapes = [(30, 70), (40, 40), (64, 32)][:count]
    images = {f"image{i + 1}": _image(h, w, seed=i) for i, (h, w) in enumerate(shapes)}
    (cond,) = TextEncodeQwenImageEditPlus.execute(ctx, clip=clip, prompt="swap them",
                                                  vae=vae, **images)
    refs = _refs(cond)
    assert len(refs) == count
    for ref, (h, w), image in zip(refs, shapes, images.values(), strict=True):
        width, height = impl.scaled_size(w, h, 48 * 48, 8)  # multiples of 8
        assert (width % 8, height % 8) == (0, 0)
        assert_close_scaled(ref, vae.encode(upscale_images(image, width, height, "area")))
    # the same as the encoder given "Picture N: <vision tokens>" and the 40²-pixel copies
    seen = [upscale_images(image, *impl.scaled_size(w, h, 40 * 40), "area")
            for (h, w), image in zip(shapes, images.values(), strict=True)]
    prompt = "".join(f"Picture {i + 1}: {qt.VISION_TOKENS}" for i in range(count)) + "swap them"
    direct = clip.encode_from_tokens(clip.tokenize(prompt, images=seen,
                                                   llama_template=qt.EDIT_TEMPLATE))[0]
    assert_close_scaled(cond[0][0], direct)


def test_plus_numbers_pictures_by_slot_and_needs_no_vae(tmp_path, clip, small_totals):
    ctx = _ctx(tmp_path, "TextEncodeQwenImageEditPlus")
    image = _image(40, 40, seed=4)
    (cond,) = TextEncodeQwenImageEditPlus.execute(ctx, clip=clip, prompt="p", image2=image)
    seen = upscale_images(image, 40, 40, "area")
    as_two = clip.encode_from_tokens(clip.tokenize(f"Picture 2: {qt.VISION_TOKENS}p",
                                                   images=[seen],
                                                   llama_template=qt.EDIT_TEMPLATE))[0]
    assert_close_scaled(cond[0][0], as_two)
    assert _refs(cond) is None


def test_plus_at_comfyuis_vision_size(tmp_path, clip):
    """384² pixels: a 200 × 100 image becomes 543 × 272, the tower sees 532 × 280 -> 19 × 10
    merged tokens in place of the one image pad."""
    ctx = _ctx(tmp_path, "TextEncodeQwenImageEditPlus")
    (cond,) = TextEncodeQwenImageEditPlus.execute(ctx, clip=clip, prompt="p",
                                                  image1=_image(100, 200, seed=5))
    ids = qt.encode_qwen_text(qt.EDIT_TEMPLATE.format(f"Picture 1: {qt.VISION_TOKENS}p"))
    head = qt.template_head_length(ids, len(ids))
    assert cond[0][0].shape[1] == len(ids) - 1 + 19 * 10 - head


def test_plus_without_images_uses_the_edit_template(tmp_path, clip):
    ctx = _ctx(tmp_path, "TextEncodeQwenImageEditPlus")
    (cond,) = TextEncodeQwenImageEditPlus.execute(ctx, clip=clip, prompt="a red car")
    direct = clip.encode_from_tokens(clip.tokenize("a red car",
                                                   llama_template=qt.EDIT_TEMPLATE))[0]
    assert_close_scaled(cond[0][0], direct)
    ((plain, _),) = clip_text_encode(ctx, "a red car", clip)[0]
    assert plain.shape == direct.shape and not torch.allclose(plain, direct)  # other system


def test_reference_latents_reach_the_network_inputs(tmp_path, clip, vae, small_totals):
    from types import SimpleNamespace

    from comfyless.models.families.qwen_image.conditioning import qwen_image_conds
    from comfyless.models.latent_formats import WAN21

    ctx = _ctx(tmp_path, "TextEncodeQwenImageEditPlus")
    (cond,) = TextEncodeQwenImageEditPlus.execute(ctx, clip=clip, prompt="p", vae=vae,
                                                  image1=_image(40, 40, seed=6))
    extra = qwen_image_conds(SimpleNamespace(latent_format=WAN21), cond[0][1], 64, 64)
    (ref,) = extra["ref_latents"]
    assert_close_scaled(ref, WAN21.process_in(_refs(cond)[0]))


# -- errors -----------------------------------------------------------------------------------

def test_a_file_without_vision_tower_is_named(tmp_path, files):
    bare = text_sets.load_text_encoder_files([files[1]], "qwen_image", names=[files[1].name])
    ctx = _ctx(tmp_path, "TextEncodeQwenImageEdit")
    with pytest.raises(ValueError, match=r"input 'clip': qwen_2\.5_vl_7b_text_only\.safetensors"
                                         r".*no vision tower \(no 'visual\.\*' weights\)"):
        TextEncodeQwenImageEdit.execute(ctx, clip=bare, prompt="p", image=_image(8, 8, 0))
    (cond,) = TextEncodeQwenImageEdit.execute(ctx, clip=bare, prompt="p")  # text still works
    assert cond[0][0].shape[-1] == 32


def test_bad_inputs_are_named(tmp_path, clip, vae):
    ctx = _ctx(tmp_path, "TextEncodeQwenImageEditPlus")
    with pytest.raises(ValueError, match=r"input 'image2': expected an IMAGE \[B, H, W, 3\], "
                                         r"got shape \(8, 8, 3\)"):
        TextEncodeQwenImageEditPlus.execute(ctx, clip=clip, prompt="p",
                                            image1=_image(8, 8, 0), image2=torch.rand(8, 8, 3))
    with pytest.raises(ValueError, match="input 'clip': expected a CLIP"):
        TextEncodeQwenImageEditPlus.execute(ctx, clip=None, prompt="p")
    with pytest.raises(ValueError, match="input 'vae': expected a VAE, got str"):
        TextEncodeQwenImageEditPlus.execute(ctx, clip=clip, prompt="p", vae="vae")
    lumina = text_sets.text_encoder_files("lumina2", "tiny", torch.Generator().manual_seed(0))
    zimage = qt.build_qwen_text(next(iter(lumina.values())), qt.QWEN_TEXT_ENCODERS["lumina2"])
    with pytest.raises(ValueError, match=r"input 'clip': .*Qwen3-4B.*takes no images"):
        TextEncodeQwenImageEditPlus.execute(ctx, clip=zimage, prompt="p",
                                            image1=_image(8, 8, 0))


def test_scaled_fp8_file_keeps_its_vision_tower(tmp_path, files, clip, small_totals):
    """ComfyUI ships qwen_2.5_vl_7b_fp8_scaled.safetensors: the tower's weights are scaled
    fp8 too and come back dequantised (the edit node then agrees with the fp32 file)."""
    from safetensors.torch import load_file

    from tests.models.test_scaled_fp8 import scale_fp8

    scaled, plain = scale_fp8(load_file(str(files[0])), "")
    assert any(k.startswith("visual.") and k.endswith("scale_weight") for k in scaled)
    save_file(scaled, str(tmp_path / "fp8.safetensors"))
    save_file(plain, str(tmp_path / "plain.safetensors"))
    fp8, ref = (text_sets.load_text_encoder_files([tmp_path / f"{n}.safetensors"], "qwen_image")
                for n in ("fp8", "plain"))
    assert fp8.has_vision
    ctx = _ctx(tmp_path, "TextEncodeQwenImageEdit")
    image = _image(40, 40, seed=7)
    (a,) = TextEncodeQwenImageEdit.execute(ctx, clip=fp8, prompt="p", image=image)
    (b,) = TextEncodeQwenImageEdit.execute(ctx, clip=ref, prompt="p", image=image)
    assert_close_scaled(a[0][0], b[0][0])
