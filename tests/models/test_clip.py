"""CLIP text encoders against transformers' CLIPTextModel(WithProjection) on tiny weights."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from comfyless.models import clip
from comfyless.models.clip import load_clip, load_clip_files, text_encoder_state_dict
from comfyless.models.tokenizer import END_TOKEN, START_TOKEN
from tests.floats import assert_close_scaled

transformers = pytest.importorskip("transformers")

PREFIX = {
    ("sd15", "l"): "cond_stage_model.transformer.",
    ("sd2", "h"): "cond_stage_model.model.",
    ("sdxl", "l"): "conditioner.embedders.0.transformer.",
    ("sdxl", "g"): "conditioner.embedders.1.model.",
}


@pytest.fixture(scope="module")
def weights():
    return {fam: text_encoder_state_dict(fam, "tiny", torch.Generator().manual_seed(i))
            for i, fam in enumerate(("sd15", "sd2", "sdxl"))}


def _take(sd, prefix):
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def _openclip_to_hf(sd):
    """Test-side conversion of an OpenCLIP text tower to HF names (in_proj split into q/k/v)."""
    out = {"text_model.embeddings.token_embedding.weight": sd["token_embedding.weight"],
           "text_model.embeddings.position_embedding.weight": sd["positional_embedding"],
           "text_model.final_layer_norm.weight": sd["ln_final.weight"],
           "text_model.final_layer_norm.bias": sd["ln_final.bias"],
           "text_projection.weight": sd["text_projection"].T.contiguous()}
    n = 0
    while f"transformer.resblocks.{n}.ln_1.weight" in sd:
        src, dst = f"transformer.resblocks.{n}.", f"text_model.encoder.layers.{n}."
        width = sd[src + "ln_1.weight"].shape[0]
        for kind in ("weight", "bias"):
            full = sd[src + f"attn.in_proj_{kind}"]
            for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
                out[dst + f"self_attn.{name}.{kind}"] = full[i * width:(i + 1) * width]
            out[dst + f"self_attn.out_proj.{kind}"] = sd[src + f"attn.out_proj.{kind}"]
            out[dst + f"layer_norm1.{kind}"] = sd[src + f"ln_1.{kind}"]
            out[dst + f"layer_norm2.{kind}"] = sd[src + f"ln_2.{kind}"]
            out[dst + f"mlp.fc1.{kind}"] = sd[src + f"mlp.c_fc.{kind}"]
            out[dst + f"mlp.fc2.{kind}"] = sd[src + f"mlp.c_proj.{kind}"]
        n += 1
    return out


def _reference(sd_hf, act):
    """transformers' model for HF-layout weights (with projection if present)."""
    width = sd_hf["text_model.embeddings.token_embedding.weight"].shape[1]
    layers = sum(1 for k in sd_hf if k.endswith("layer_norm1.weight"))
    proj = sd_hf.get("text_projection.weight")
    config = transformers.CLIPTextConfig(
        vocab_size=49408, hidden_size=width, intermediate_size=4 * width,
        num_hidden_layers=layers, num_attention_heads=max(1, width // 64),
        max_position_embeddings=77, hidden_act=act, layer_norm_eps=1e-5,
        projection_dim=proj.shape[0] if proj is not None else width,
        bos_token_id=START_TOKEN, eos_token_id=END_TOKEN, attn_implementation="eager")
    cls = transformers.CLIPTextModel if proj is None else transformers.CLIPTextModelWithProjection
    model = cls(config).eval()
    sd = {k: v for k, v in sd_hf.items() if not k.endswith("position_ids")}
    if not any(k.startswith("text_model.") for k in model.state_dict()):
        sd = {k.removeprefix("text_model."): v for k, v in sd.items()}  # transformers 5 layout
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all("position_ids" in k for k in missing)
    return model


def _hf_run(model, ids):
    with torch.no_grad():
        out = model(torch.tensor(ids), output_hidden_states=True)
    pooled = out.text_embeds if hasattr(out, "text_embeds") else out.pooler_output
    return out, pooled


def _ref_for(weights, fam, name):
    sd = _take(weights[fam], PREFIX[(fam, name)])
    if name == "l":
        return _reference(sd, "quick_gelu")
    return _reference(_openclip_to_hf(sd), "gelu")


def _ids(ours, text):
    return {k: [[t for t, _ in w] for w in v] for k, v in ours.tokenize(text).items()}


def _final_norm(model, x):
    return getattr(model, "text_model", model).final_layer_norm(x)


TEXT = "a photo of a cat, highly detailed"


def test_sd15_last_layer_and_clip_skip_match(weights):
    ours = load_clip(weights["sd15"], "sd15")
    ref = _ref_for(weights, "sd15", "l")
    ids = _ids(ours, TEXT)["l"]
    out, pooled = _hf_run(ref, ids)
    cond, our_pooled = ours.encode(TEXT)
    assert cond.shape == (1, 77, 64)
    # against transformers' implementation: other kernels, tolerance scaled to the values
    assert_close_scaled(cond[0], out.last_hidden_state[0], rtol=1e-4, atol_rel=1e-4)
    assert_close_scaled(our_pooled, pooled, rtol=1e-4, atol_rel=1e-4)
    with torch.no_grad():
        skip2 = _final_norm(ref, out.hidden_states[-2])
    cond2, _ = ours.clip_layer(-2).encode(TEXT)
    assert_close_scaled(cond2[0], skip2[0], rtol=1e-4, atol_rel=1e-4)
    # -1 is the last layer; beyond the depth ComfyUI falls back to the last layer
    for layer in (-1, -24):
        c, _ = ours.clip_layer(layer).encode(TEXT)
        assert_close_scaled(c, cond)


def test_sd2_penultimate_normed_and_projected_pooled_match(weights):
    ours = load_clip(weights["sd2"], "sd2")
    ref = _ref_for(weights, "sd2", "h")
    ids = _ids(ours, TEXT)["h"]
    assert ids[0][-1] == 0  # OpenCLIP pads with 0
    out, pooled = _hf_run(ref, ids)
    with torch.no_grad():
        expected = _final_norm(ref, out.hidden_states[-2])
    cond, our_pooled = ours.encode(TEXT)
    assert_close_scaled(cond, expected, rtol=1e-4, atol_rel=1e-4)
    assert_close_scaled(our_pooled, pooled, rtol=1e-4, atol_rel=1e-4)


def test_sdxl_concat_penultimate_and_bigg_pooled_match(weights):
    ours = load_clip(weights["sdxl"], "sdxl")
    ref_l, ref_g = _ref_for(weights, "sdxl", "l"), _ref_for(weights, "sdxl", "g")
    ids = _ids(ours, TEXT)
    out_l, _ = _hf_run(ref_l, ids["l"])
    out_g, pooled_g = _hf_run(ref_g, ids["g"])
    expected = torch.cat([out_l.hidden_states[-2], out_g.hidden_states[-2]], dim=-1)
    cond, pooled = ours.encode(TEXT)
    assert cond.shape == (1, 77, 64 + 128) and pooled.shape == (1, 128)
    assert_close_scaled(cond, expected, rtol=1e-4, atol_rel=1e-4)
    assert_close_scaled(pooled, pooled_g, rtol=1e-4, atol_rel=1e-4)


def test_weighted_tokens_interpolate_from_empty_prompt(weights):
    ours = load_clip(weights["sd15"], "sd15")
    ref = _ref_for(weights, "sd15", "l")
    tokens = ours.tokenize("a (red:1.5) cat")
    ids = [t for t, _ in tokens["l"][0]]
    empty = [START_TOKEN, END_TOKEN] + [END_TOKEN] * 75
    out, _ = _hf_run(ref, [ids, empty])
    z, z_empty = out.last_hidden_state[0], out.last_hidden_state[1]
    cond, _ = ours.encode_from_tokens(tokens)
    w = torch.tensor([wt for _, wt in tokens["l"][0]])[:, None]
    expected = torch.where(w != 1.0, (z - z_empty) * w + z_empty, z)
    assert_close_scaled(cond[0], expected, rtol=1e-4, atol_rel=1e-4)
    assert (cond[0, 2] - z[2]).abs().max() > 1e-3  # the weighted token really changed


def test_long_prompt_concatenates_windows(weights):
    ours = load_clip(weights["sd15"], "sd15")
    text = "masterpiece, best quality, " * 30
    tokens = ours.tokenize(text)
    assert len(tokens["l"]) == 2  # 150 tokens
    cond, pooled = ours.encode_from_tokens(tokens)
    assert cond.shape == (1, 2 * 77, 64)
    single, _ = ours.encode_from_tokens({"l": tokens["l"][:1]})
    assert_close_scaled(cond[:, :77], single)  # a batch of 2 windows vs 1: other kernels
    assert pooled.shape == (1, 64)


def test_tiny_shapes_and_checkpoint_keys(weights):
    sd2 = weights["sd2"]
    assert sd2["cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"].shape \
        == (192, 64)
    assert sd2["cond_stage_model.model.text_projection"].shape == (64, 64)
    assert sd2["cond_stage_model.model.token_embedding.weight"].shape == (49408, 64)
    xl = weights["sdxl"]
    assert "conditioner.embedders.0.transformer.text_model.final_layer_norm.weight" in xl
    assert xl["conditioner.embedders.1.model.text_projection"].shape == (128, 128)
    full = clip.text_encoder_shapes("sdxl", "full")
    tiny = clip.text_encoder_shapes("sdxl", "tiny")
    assert tiny == {k: v.shape for k, v in xl.items() if not k.endswith("position_ids")}
    assert full["conditioner.embedders.1.model.transformer.resblocks.31.attn.in_proj_weight"] \
        == (3840, 1280)
    assert full["conditioner.embedders.1.model.text_projection"] == (1280, 1280)
    assert full["conditioner.embedders.0.transformer.text_model.encoder.layers.11.mlp.fc1.weight"
                ] == (3072, 768)
    assert clip.text_encoder_shapes("sd2", "full")[
        "cond_stage_model.model.transformer.resblocks.23.mlp.c_fc.weight"] == (4096, 1024)


def test_openclip_round_trip_is_exact(weights):
    sd = _take(weights["sd2"], "cond_stage_model.model.")
    back = clip.hf_to_openclip(clip.openclip_to_hf(sd))
    assert set(back) == set(sd)
    assert all(torch.equal(back[k], sd[k]) for k in sd)


def test_config_inferred_from_shapes(weights):
    ours = load_clip(weights["sdxl"], "sdxl")
    g = ours.stack.encoder("g").config
    assert (g.width, g.layers, g.heads, g.mlp, g.projection, g.act) == (128, 2, 2, 512, 128, "gelu")
    assert ours.stack.encoder("l").config.act == "quick_gelu"


def test_loading_assigns_without_copy_and_names_missing_keys(weights):
    sd = weights["sd15"]
    ours = load_clip(sd, "sd15")
    key = "cond_stage_model.transformer.text_model.encoder.layers.0.mlp.fc1.weight"
    param = ours.stack.clip_l.transformer.text_model.encoder.layers[0].mlp.fc1.weight
    assert param.data_ptr() == sd[key].data_ptr()
    broken = {k: v for k, v in sd.items() if k != key}
    with pytest.raises(KeyError, match="mlp.fc1.weight"):
        load_clip(broken, "sd15")
    with pytest.raises(KeyError, match="cond_stage_model.model."):
        load_clip(sd, "sd2")
    with pytest.raises(ValueError, match="flux"):
        load_clip(sd, "flux")


def test_standalone_files(weights, tmp_path):
    l_hf = _take(weights["sdxl"], "conditioner.embedders.0.transformer.")
    g_oc = _take(weights["sdxl"], "conditioner.embedders.1.model.")
    g_hf = _openclip_to_hf(g_oc)
    save_file({k: v.contiguous() for k, v in l_hf.items()}, tmp_path / "clip_l.safetensors")
    save_file(g_hf, tmp_path / "clip_g.safetensors")
    # order of the two files does not matter
    dual = load_clip_files([tmp_path / "clip_g.safetensors", tmp_path / "clip_l.safetensors"],
                           "sdxl")
    ref = load_clip(weights["sdxl"], "sdxl")
    a, pa = dual.encode(TEXT)
    b, pb = ref.encode(TEXT)
    assert_close_scaled(a, b)  # two loads (other files, other alignment)
    assert_close_scaled(pa, pb)
    single = load_clip_files([tmp_path / "clip_l.safetensors"], "stable_diffusion")
    assert single.family == "sd15"
    save_file({k: v.contiguous() for k, v in _take(weights["sd2"], PREFIX[("sd2", "h")]).items()},
              tmp_path / "vit_h.safetensors")
    assert load_clip_files([tmp_path / "vit_h.safetensors"], "stable_diffusion").family == "sd2"
    with pytest.raises(ValueError, match="sd3"):
        load_clip_files([tmp_path / "clip_l.safetensors"], "sd3")


def test_clones_do_not_share_layer_choice(weights):
    ours = load_clip(weights["sd15"], "sd15")
    skipped = ours.clip_layer(-2)
    assert ours.layer_idx is None and skipped.layer_idx == -2
    assert skipped.stack is ours.stack  # weights shared, not copied


def test_lora_applied_at_encode_and_undone(weights):
    base = load_clip(weights["sd15"], "sd15")
    g = torch.Generator().manual_seed(9)
    lora, merged = {}, dict(weights["sd15"])
    for module in ("mlp.fc1", "self_attn.q_proj"):
        key = f"cond_stage_model.transformer.text_model.encoder.layers.0.{module}.weight"
        out_f, in_f = merged[key].shape
        down, up = torch.randn(2, in_f, generator=g), torch.randn(out_f, 2, generator=g)
        stem = "lora_te_text_model_encoder_layers_0_" + module.replace(".", "_")
        lora |= {f"{stem}.lora_down.weight": down, f"{stem}.lora_up.weight": up,
                 f"{stem}.alpha": torch.tensor(1.0)}
        merged[key] = merged[key] + 0.7 * (1.0 / 2) * (up @ down)  # strength * alpha/rank
    before, _ = base.encode(TEXT)
    patched = base.with_lora(lora, 0.7)
    got, _ = patched.encode(TEXT)
    expected, _ = load_clip(merged, "sd15").encode(TEXT)
    assert_close_scaled(got, expected, rtol=1e-4, atol_rel=1e-4)
    assert (got - before).abs().max() > 1e-3
    after, _ = base.encode(TEXT)  # the shared weights were restored
    assert torch.equal(after, before)  # same weights, same path, one process: bitwise
    assert base.patches == () and len(patched.patches) == 1


def test_old_and_sgm_layouts_load(weights):
    sd15 = weights["sd15"]
    old = {k.replace(".transformer.text_model.", ".transformer."): v for k, v in sd15.items()}
    a, _ = load_clip(old, "sd15").encode(TEXT)
    b, _ = load_clip(sd15, "sd15").encode(TEXT)
    assert_close_scaled(a, b)  # two loads of the same weights
    sgm = {k.replace("cond_stage_model.model.", "conditioner.embedders.0.model."): v
           for k, v in weights["sd2"].items()}
    c, pc = load_clip(sgm, "sd2").encode(TEXT)
    d, pd = load_clip(weights["sd2"], "sd2").encode(TEXT)
    assert_close_scaled(c, d)
    assert_close_scaled(pc, pd)


def test_bf16_weights_encode_close_to_fp32(weights):
    ours32 = load_clip(weights["sdxl"], "sdxl")
    ours16 = load_clip(weights["sdxl"], "sdxl", dtype=torch.bfloat16)
    assert ours16.stack.encoder("g").text_projection.weight.dtype == torch.bfloat16
    a, pa = ours32.encode(TEXT)
    b, pb = ours16.encode(TEXT)
    assert b.dtype == torch.float32
    assert (a - b).abs().max() < 0.1 and (pa - pb).abs().max() < 0.1
