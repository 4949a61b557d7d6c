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


# --- the text encoder with images: transformers' Qwen2_5_VLModel (tower + LM + M-RoPE) ------

def _vl_oracle(sd):
    from transformers.models.qwen2_5_vl import Qwen2_5_VLConfig, Qwen2_5_VLModel

    from comfyless.models import qwen_text as qt

    c = qt.QWEN_TEXT_ENCODERS["qwen_image"].configs["tiny"]
    v = qt.QWEN_TEXT_ENCODERS["qwen_image"].vision_configs["tiny"]
    text = dict(vocab_size=c.vocab, hidden_size=c.hidden, intermediate_size=c.mlp,
                num_hidden_layers=c.layers, num_attention_heads=c.heads,
                num_key_value_heads=c.kv_heads, rms_norm_eps=c.eps,
                rope_parameters={"rope_type": "default", "rope_theta": c.rope_theta,
                                 "mrope_section": list(qt.mrope_sections(c.head_dim))})
    vision = dict(depth=v.depth, hidden_size=v.hidden, intermediate_size=v.mlp,
                  num_heads=v.heads, out_hidden_size=v.out_hidden,
                  fullatt_block_indexes=list(qv.FULL_ATTENTION_BLOCKS))
    config = Qwen2_5_VLConfig(text_config=text, vision_config=vision,
                              image_token_id=qt.IMAGE_PAD)
    config._attn_implementation = "eager"
    config.text_config._attn_implementation = "eager"
    config.vision_config._attn_implementation = "eager"
    model = Qwen2_5_VLModel(config)
    weights = {("language_model." + k[len("model."):] if k.startswith("model.") else k): t
               for k, t in sd.items()}
    model.load_state_dict(weights, strict=True)
    return model.eval()


def test_prompt_with_images_matches_transformers(one_torch_thread):
    """Two images (3 × 2 and 2 × 4 merged patches) spliced into the Plus template: the kept
    hidden states equal transformers' Qwen2_5_VLModel on the same ids (image pads expanded),
    pixels and grids — vision rows, multimodal positions and RoPE sections included."""
    from comfyless.models import qwen_text as qt
    from comfyless.models.text_sets import text_encoder_files

    (sd,) = text_encoder_files("qwen_image", "tiny", torch.Generator().manual_seed(0)).values()
    clip = qt.build_qwen_text(sd, qt.QWEN_TEXT_ENCODERS["qwen_image"])
    gen = torch.Generator().manual_seed(5)
    images = [torch.rand(1, 84, 56, 3, generator=gen), torch.rand(1, 56, 112, 3, generator=gen)]
    prompt = "".join(f"Picture {i + 1}: {qt.VISION_TOKENS}" for i in range(2)) + "make it red"
    tokens = clip.tokenize(prompt, images=images, llama_template=qt.EDIT_TEMPLATE)
    with torch.no_grad():
        ours = clip.encode_from_tokens(tokens)[0]

    ids = qt.encode_qwen_text(qt.EDIT_TEMPLATE.format(prompt))
    pixels, grids, expanded = [], [], []
    pending = list(images)
    for t in ids:
        if t == qt.IMAGE_PAD:
            patches, grid = qv.preprocess_image(pending.pop(0))
            pixels.append(patches)
            grids.append(grid)
            expanded += [t] * (grid[1] * grid[2] // 4)
        else:
            expanded.append(t)
    assert [g[1:] for g in grids] == [(6, 4), (4, 8)]
    input_ids = torch.tensor([expanded])
    with torch.no_grad():
        theirs = _vl_oracle(sd)(input_ids=input_ids, pixel_values=torch.cat(pixels),
                                image_grid_thw=torch.tensor(grids),
                                mm_token_type_ids=(input_ids == qt.IMAGE_PAD).int()
                                ).last_hidden_state
    start = qt.template_head_length(ids, theirs.shape[1])
    assert ours.shape == (1, len(expanded) - start, 32)
    diff = (ours - theirs[:, start:]).abs().max().item()
    assert diff < 1e-4, diff
