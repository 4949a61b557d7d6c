"""Flux and SD3 text-encoder sets from tiny standalone files and checkpoint dicts: shapes, pooled
outputs, zero filling, prompt weights, routing by keys, errors that name the input, LoRA."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from comfyless.lora.keys import clip_key_map
from comfyless.models import text_sets
from comfyless.models.clip import CONFIGS, TextEncoder, hf_to_openclip
from comfyless.models.t5 import END_TOKEN, T5Encoder
from comfyless.models.text_sets import (
    TextSetError,
    checkpoint_text_state_dict,
    clip_kind,
    load_text_encoder_files,
    load_text_set,
    load_text_set_files,
    split_encoder,
    text_encoder_files,
)
from tests.floats import assert_close_scaled

L_W, G_W, T5_W = (CONFIGS[("l", "tiny")].width, CONFIGS[("g", "tiny")].width, 64)


def _write(folder, files: dict) -> dict:
    paths = {}
    for name, sd in files.items():
        paths[name] = folder / name
        save_file({k: v.contiguous() for k, v in sd.items()}, str(paths[name]))
    return paths


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """{name: path}: tiny clip_l, clip_g, t5xxl files (sd3 has all three) plus odd ones."""
    folder = tmp_path_factory.mktemp("te")
    sd3 = text_encoder_files("sd3", "tiny", torch.Generator().manual_seed(0))
    paths = _write(folder, sd3)
    h = {k: v for k, v in text_encoder_files("sd3", "tiny", torch.Generator().manual_seed(5))[
        "clip_l.safetensors"].items()}
    paths["clip_l_2.safetensors"] = _write(folder, {"clip_l_2.safetensors": h})[
        "clip_l_2.safetensors"]
    # CLIP-L as ComfyUI ships it (with a text_projection) and bigG in OpenCLIP names
    l_proj = dict(sd3["clip_l.safetensors"])
    l_proj["text_projection.weight"] = torch.randn(L_W, L_W)
    g_openclip = hf_to_openclip(sd3["clip_g.safetensors"])
    paths.update(_write(folder, {"clip_l_proj.safetensors": l_proj,
                                 "clip_g_openclip.safetensors": g_openclip}))
    return paths


@pytest.fixture(scope="module")
def flux(files):
    return load_text_set_files([files["t5xxl_fp16.safetensors"], files["clip_l.safetensors"]],
                               "flux")


@pytest.fixture(scope="module")
def sd3(files):
    names = ("clip_g.safetensors", "t5xxl_fp16.safetensors", "clip_l.safetensors")
    return load_text_set_files([files[n] for n in names], "sd3")


def _ids(windows):
    return torch.tensor([[t for t, _ in w] for w in windows])


# -- flux ---------------------------------------------------------------------------------------

def test_flux_cond_is_t5_and_pooled_is_unprojected_clip_l(flux, files):
    tokens = flux.tokenize("a red fox in the snow")
    assert set(tokens) == {"l", "t5xxl"} and len(tokens["t5xxl"][0]) == 256
    assert tokens["t5xxl"][0][0][0] != END_TOKEN
    cond, pooled = flux.encode_from_tokens(tokens)
    assert cond.shape == (1, 256, T5_W) and pooled.shape == (1, L_W)
    with torch.no_grad():
        t5 = flux.stack.t5()(_ids(tokens["t5xxl"]))
        _, clip_pooled = flux.stack.encoder("l").text_model(_ids(tokens["l"][:1]), None, True)
    assert_close_scaled(cond, t5)
    assert_close_scaled(pooled, clip_pooled)
    # a CLIP-L file with a text_projection gives the same (unprojected) pooled output
    with_proj = load_text_set_files([files["clip_l_proj.safetensors"],
                                     files["t5xxl_fp16.safetensors"]], "flux")
    assert_close_scaled(with_proj.encode("a red fox in the snow")[1], pooled)


def test_flux_long_prompt_and_tokenizer_options(flux):
    long_text = "masterpiece, best quality, highly detailed, " * 40
    cond, _ = flux.encode(long_text)
    assert cond.shape[1] == len(flux.tokenize(long_text)["t5xxl"][0]) > 256
    short = flux.with_tokenizer_options(t5xxl_min_length=0, t5xxl_min_padding=2)
    assert short.encode("a cat")[0].shape[1] == 3 + 1 + 2  # pieces, end, min_padding
    assert flux.tokenizer_options == ()  # the original is unchanged


def test_prompt_weights_interpolate_from_the_empty_sequence(flux):
    tokens = flux.tokenize("a (cat:1.5) on a mat")
    weights = torch.tensor([w for _, w in tokens["t5xxl"][0]])
    assert (weights == 1.5).sum() > 0
    cond, _ = flux.encode_from_tokens(tokens)
    ids = _ids(tokens["t5xxl"])
    empty = torch.tensor([[END_TOKEN] + [0] * (ids.shape[1] - 1)])
    with torch.no_grad():
        z, z_empty = flux.stack.t5()(ids)[0], flux.stack.t5()(empty)[0]
    w = weights[:, None]
    expected = torch.where(w != 1.0, (z - z_empty) * w + z_empty, z)
    assert_close_scaled(cond[0], expected)


def test_clip_set_last_layer_reaches_t5(flux):
    cond, pooled = flux.encode("a cat")
    cond2, pooled2 = flux.clip_layer(-2).encode("a cat")
    assert not torch.allclose(cond, cond2)  # T5 block -2 + final norm (ComfyUI)
    assert_close_scaled(pooled2, pooled)  # the pooled output is always the last layer's


# -- sd3 ----------------------------------------------------------------------------------------

def test_sd3_shapes_and_pooled(sd3):
    tokens = sd3.tokenize("a red fox")
    assert set(tokens) == {"l", "g", "t5xxl"} and len(tokens["t5xxl"][0]) == 77
    cond, pooled = sd3.encode_from_tokens(tokens)
    assert cond.shape == (1, 77 + 77, 4096) and pooled.shape == (1, L_W + G_W)
    with torch.no_grad():
        l_hidden, l_pooled = sd3.stack.encoder("l").text_model(_ids(tokens["l"]), -2, False)
        g_enc = sd3.stack.encoder("g")
        g_hidden, g_pooled = g_enc.text_model(_ids(tokens["g"]), -2, False)
        t5 = sd3.stack.t5()(_ids(tokens["t5xxl"]))
    assert_close_scaled(cond[:, :77, :L_W], l_hidden)
    assert_close_scaled(cond[:, :77, L_W:L_W + G_W], g_hidden)
    assert torch.all(cond[:, :77, L_W + G_W:] == 0)  # padded to 4096
    assert_close_scaled(cond[:, 77:, :T5_W], t5)
    assert_close_scaled(pooled[:, :L_W], l_pooled)  # unprojected
    assert_close_scaled(pooled[:, L_W:], g_enc.text_projection(g_pooled))  # projected


def test_sd3_missing_encoders_are_zeros(files, sd3):
    only_g_t5 = load_text_set_files([files["clip_g_openclip.safetensors"],
                                     files["t5xxl_fp16.safetensors"]], "sd3")
    cond, pooled = only_g_t5.encode("a red fox")
    full_cond, full_pooled = sd3.encode("a red fox")
    assert cond.shape == (1, 154, 4096) and pooled.shape == (1, 768 + G_W)
    assert torch.all(pooled[:, :768] == 0) and torch.all(cond[:, :77, :768] == 0)
    assert_close_scaled(pooled[:, 768:], full_pooled[:, L_W:])  # OpenCLIP names, same weights
    assert_close_scaled(cond[:, :77, 768:768 + G_W], full_cond[:, :77, L_W:L_W + G_W])
    only_t5 = load_text_set_files([files["t5xxl_fp16.safetensors"]], "sd3")
    cond, pooled = only_t5.encode("a red fox")
    assert cond.shape == (1, 77, 4096) and torch.all(pooled == 0) and pooled.shape == (1, 2048)
    assert_close_scaled(cond, full_cond[:, 77:])
    only_l = load_text_set_files([files["clip_l.safetensors"]], "sd3")
    cond, pooled = only_l.encode("a red fox")
    assert cond.shape == (1, 77, 4096) and torch.all(pooled[:, L_W:] == 0)


def test_sd3_no_tokens_at_all_gives_zeros(sd3):
    cond, pooled = sd3.encode_from_tokens({"l": [], "g": [], "t5xxl": []})
    assert cond.shape == (1, 1, 4096)  # T5 still encodes the empty sequence (end token)
    assert torch.all(pooled == 0) and pooled.shape == (1, 2048)


def test_checkpoint_dict_gives_the_same_set(files, sd3):
    sd = checkpoint_text_state_dict("sd3", "tiny", torch.Generator().manual_seed(0))
    assert any(k.startswith("text_encoders.t5xxl.transformer.encoder.block.0.") for k in sd)
    from_ckpt = load_text_set(sd, "sd3")
    assert from_ckpt.family == "sd3"
    for a, b in zip(from_ckpt.encode("a fox"), sd3.encode("a fox"), strict=True):
        assert_close_scaled(a, b)
    flux_sd = checkpoint_text_state_dict("flux", "tiny", torch.Generator().manual_seed(0))
    flux_sd = {k: v for k, v in flux_sd.items() if "t5xxl" not in k}
    with pytest.raises(TextSetError, match="T5-XXL"):
        load_text_set(flux_sd, "flux")
    assert load_text_set({"model.diffusion_model.x": torch.zeros(1)}, "sd3") is None


# -- routing and errors -------------------------------------------------------------------------

def _meta_clip(kind: str) -> dict:
    with torch.device("meta"):
        return TextEncoder(CONFIGS[(kind, "full")]).state_dict()


def test_routing_by_keys_on_real_shapes():
    assert clip_kind(_meta_clip("g")) == "g"  # layers.30
    assert clip_kind(_meta_clip("h")) == "h"  # layers.22
    assert clip_kind(_meta_clip("l")) == "l"
    with torch.device("meta"):
        t5 = {"text_encoders.t5xxl.transformer." + k: v
              for k, v in T5Encoder(text_sets.T5_CONFIGS["full"]).state_dict().items()}
    kind, sd = split_encoder(t5)
    assert kind == "t5xxl" and "encoder.block.23.layer.1.DenseReluDense.wi_1.weight" in sd


@pytest.mark.parametrize(("clip_type", "names", "bad_input", "match"), [
    ("flux", ("clip_l.safetensors", "clip_l_2.safetensors"), "clip_name2", "second CLIP-L"),
    ("flux", ("clip_l.safetensors", "clip_g.safetensors"), "clip_name2", "CLIP-G"),
    ("flux", ("t5xxl_fp16.safetensors",), "clip_name1", "no CLIP-L"),
    ("sd3", ("t5xxl_fp16.safetensors", "t5xxl_fp16.safetensors"), "clip_name2", "second T5"),
])
def test_wrong_files_name_the_input(files, clip_type, names, bad_input, match):
    inputs = [f"clip_name{i + 1}" for i in range(len(names))]
    with pytest.raises(TextSetError, match=match) as info:
        load_text_encoder_files([files[n] for n in names], clip_type, names=inputs)
    assert info.value.input_name == bad_input
    assert bad_input in str(info.value) and "expects" in str(info.value)


def test_sd_types_still_load_through_the_same_entry_point(files):
    clip = load_text_encoder_files([files["clip_l.safetensors"]], "stable_diffusion")
    assert clip.family == "sd15" and clip.encode("x")[0].shape == (1, 77, L_W)
    assert set(text_sets.clip_file_types()) >= {"stable_diffusion", "sdxl", "flux", "sd3"}


# -- LoRA ---------------------------------------------------------------------------------------

def test_t5_lora_names_follow_comfyui_numbering(flux, sd3):
    q = "encoder_block_0_layer_0_SelfAttention_q"
    target = "t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q.weight"
    for clip, indices in ((flux, (2, 3)), (sd3, (3,))):
        shapes = {n: tuple(p.shape) for n, p in clip.lora_module.named_parameters()}
        key_map = clip_key_map(shapes)
        for i in (1, 2, 3):
            assert (key_map.get(f"lora_te{i}_{q}") == target) == (i in indices)
        assert key_map["text_encoders.t5xxl.transformer.encoder.block.0.layer.0.SelfAttention.q"] \
            == target


def test_t5_lora_changes_the_flux_cond(flux):
    d = T5_W  # q is [inner, d_model] = [64, 64] in the tiny T5
    gen = torch.Generator().manual_seed(3)
    lora = {"lora_te2_encoder_block_1_layer_1_DenseReluDense_wo.lora_up.weight":
            torch.randn(d, 4, generator=gen),
            "lora_te2_encoder_block_1_layer_1_DenseReluDense_wo.lora_down.weight":
            torch.randn(4, 128, generator=gen),
            "lora_te2_encoder_block_1_layer_1_DenseReluDense_wo.alpha": torch.tensor(4.0)}
    before = flux.encode("a cat")[0]
    after = flux.with_lora(lora, 1.0).encode("a cat")[0]
    assert not torch.allclose(before, after)
    assert_close_scaled(flux.encode("a cat")[0], before)  # weights restored
