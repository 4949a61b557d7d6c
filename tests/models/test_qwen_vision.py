"""Qwen2.5-VL vision tower (models/qwen_vision.py): transformers' Qwen2_5_VisionTransformer
PretrainedModel and Qwen2VL image processor as oracles on the same tiny random weights, fp32
CPU; ComfyUI's resize rule (bilinear, multiples of 28, 3136…12 845 056 pixels) checked by value.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from comfyless.models import qwen_vision as qv

TINY = qv.tiny_vision_config(out_hidden=32)


@pytest.fixture(scope="module")
def tiny_sd():
    return qv.random_vision_state_dict(TINY, torch.Generator().manual_seed(3))


def _oracle(sd):
    from transformers.models.qwen2_5_vl.configuration_qwen2_5_vl import Qwen2_5_VLVisionConfig
    from transformers.models.qwen2_5_vl.modeling_qwen2_5_vl import (
        Qwen2_5_VisionTransformerPretrainedModel,
    )

    config = Qwen2_5_VLVisionConfig(
        depth=TINY.depth, hidden_size=TINY.hidden, intermediate_size=TINY.mlp,
        num_heads=TINY.heads, out_hidden_size=TINY.out_hidden, window_size=TINY.window,
        patch_size=TINY.patch, temporal_patch_size=TINY.temporal_patch,
        spatial_merge_size=TINY.merge, fullatt_block_indexes=list(qv.FULL_ATTENTION_BLOCKS))
    config._attn_implementation = "eager"
    model = Qwen2_5_VisionTransformerPretrainedModel(config)
    model.load_state_dict(sd, strict=True)
    return model.eval()


def test_tower_matches_transformers(tiny_sd, one_torch_thread):
    """An image of 9 × 13 merge units: windows cut at the right and bottom edges, block 7
    attends over everything; max abs diff on the merged output < 1e-4."""
    tower = qv.build_vision(tiny_sd)
    assert tower.config == TINY
    grid = (1, 18, 26)
    patches = torch.randn(grid[1] * grid[2], 3 * 2 * 14 * 14, generator=torch.Generator()
                          .manual_seed(1))
    with torch.no_grad():
        ours = tower(patches, grid)
        theirs = _oracle(tiny_sd)(patches, torch.tensor([grid])).pooler_output
    assert ours.shape == (9 * 13, TINY.out_hidden)
    diff = (ours - theirs).abs().max().item()
    assert diff < 1e-4, diff
    assert theirs.abs().mean() > 0.1  # not trivially small


def test_preprocessing_matches_the_qwen2vl_processor():
    """Normalisation and patch order as transformers' processor (its resize is bicubic with
    other limits, so resizing is off there and the image already has ComfyUI's size)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
        Qwen2VLImageProcessorPil,
    )

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(56, 84, 3), dtype=np.uint8)
    image = torch.from_numpy(pixels).float()[None] / 255.0  # ComfyUI IMAGE [1, H, W, 3]
    patches, grid = qv.preprocess_image(image)
    out = Qwen2VLImageProcessorPil(do_resize=False)(images=[pixels], return_tensors="pt")
    assert grid == tuple(out["image_grid_thw"][0].tolist()) == (1, 4, 6)
    diff = (patches - out["pixel_values"]).abs().max().item()
    assert diff < 1e-5, diff


@pytest.mark.parametrize(("size", "expected"), [
    ((1024, 1024), (1036, 1036)),  # round(1024 / 28) = 37 units
    ((384, 384), (392, 392)),
    ((20, 30), (56, 84)),  # under 3136 pixels: scaled up, ceil to 28
    ((8000, 4000), (5068, 2520)),  # over 12 845 056: scaled down, floor to 28
])
def test_resize_rule(size, expected):
    assert qv.vision_size(*size) == expected


def test_preprocess_resizes_bilinearly_and_uses_the_first_image():
    image = torch.rand(2, 30, 50, 4)
    patches, grid = qv.preprocess_image(image)
    assert grid == (1, 56 // 14, 84 // 14) and patches.shape == (4 * 6, 3 * 2 * 14 * 14)
    again, _ = qv.preprocess_image(image[:1, ..., :3])
    assert torch.equal(patches, again)


def test_config_from_keys_and_errors(tiny_sd):
    assert qv.infer_vision_config(tiny_sd) == TINY
    real = qv.vision_shapes(qv.QWEN25_VL_VISION)
    assert real["patch_embed.proj.weight"] == (1280, 3, 2, 14, 14)
    assert real["merger.mlp.0.weight"] == (5120, 5120) and real["merger.mlp.2.weight"] == (
        3584, 5120)
    assert qv.heads_for_width(1280) == 16
    assert sum(np.prod(s) for s in real.values()) == pytest.approx(0.677e9, rel=0.01)
    bad = dict(tiny_sd)
    bad["blocks.0.attn.qkv.weight"] = torch.zeros(3, 3)
    with pytest.raises(ValueError, match=r"visual\.blocks\.0\.attn\.qkv\.weight.*shape"):
        qv.build_vision(bad)
    with pytest.raises(KeyError, match=r"merger\.mlp\.0\.weight. missing"):
        qv.infer_vision_config({k: v for k, v in tiny_sd.items() if "merger" not in k})
