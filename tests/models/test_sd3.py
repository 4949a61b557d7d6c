"""SD3 / SD3.5 (models/families/sd3): detection, loading, the diffusers-layout converter, the
MMDiT against diffusers' SD3Transformer2DModel (the oracle), and the LoRA key maps.

The SAI -> diffusers renaming used to feed the oracle is written out here on purpose (from
model-families.md §2.5), independently of the package's table in sd3/names.py.
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from comfyless.lora.apply import loras_applied, weight_deltas
from comfyless.lora.formats import place_patches, read_lora
from comfyless.models.families import detect_family, family
from comfyless.models.families.base import DetectionError
from comfyless.models.families.sd3.detect import (
    convert_diffusers_transformer,
    detect_mmdit_config,
    is_diffusers_transformer,
)
from comfyless.models.families.sd3.network import MMDiT
from comfyless.models.families.sd3.writer import (
    VARIANTS,
    diffusion_model_state_dict,
    network_config,
)
from tests.floats import assert_close_scaled

CTX, ADM = 32, 24  # narrow text widths keep the tiny models tiny
ORACLE_TOL = 1e-4  # max abs difference allowed against diffusers (fp32)
PREFIX = "model.diffusion_model."


def _shapes(sd):
    return {k: tuple(v.shape) for k, v in sd.items()}


def _tiny(name, seed=0):
    """(config, prefix-free state dict, loaded network) of a tiny variant."""
    cfg = network_config(name, "tiny", CTX, ADM)
    sd = diffusion_model_state_dict(name, "tiny", seed, CTX, ADM)
    net = MMDiT(cfg)
    net.load_state_dict(sd)
    return cfg, sd, net.eval().requires_grad_(False)


def _inputs(batch=2, h=12, w=10, seed=3):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 16, h, w, generator=g), torch.tensor([700.0, 25.0])[:batch],
            torch.randn(batch, 7, CTX, generator=g), torch.randn(batch, ADM, generator=g))


# -- detection -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("prefix", ["", PREFIX])
def test_tiny_variants_detect_their_config(name, prefix):
    cfg = network_config(name, "tiny", CTX, ADM)
    sd = diffusion_model_state_dict(name, "tiny", 0, CTX, ADM)
    detected = detect_family({prefix + k: s for k, s in _shapes(sd).items()}, prefix=prefix)
    assert detected.record is family("sd3") and detected.family == "sd3"
    assert (detected.prediction, detected.zsnr) == ("const", False)
    assert detected.config == cfg


@pytest.mark.parametrize("name, depth, hidden, qk_norm, dual, side", [
    ("sd3", 24, 1536, None, (), 192),
    ("sd35-large", 38, 2432, "rms", (), 192),
    ("sd35-medium", 24, 1536, "rms", tuple(range(13)), 384),
])
def test_full_size_layouts_detect_as_the_spec_says(name, depth, hidden, qk_norm, dual, side):
    with torch.device("meta"):
        net = MMDiT(network_config(name, "full"))
    shapes = {PREFIX + k: tuple(v.shape) for k, v in net.state_dict().items()}
    cfg = detect_family(shapes).config
    assert (cfg.depth, cfg.hidden_size, cfg.num_heads, cfg.head_dim) == (depth, hidden, depth, 64)
    assert (cfg.qk_norm, cfg.dual_attention_layers, cfg.pos_embed_max_size) == (qk_norm, dual,
                                                                                side)
    assert (cfg.adm_in_channels, cfg.context_in, cfg.in_channels, cfg.mlp_ratio) == (
        2048, 4096, 16, 4.0)


def test_full_size_parameter_counts_match_the_spec():
    counts = {}
    for name in VARIANTS:
        with torch.device("meta"):
            net = MMDiT(network_config(name, "full"))
        counts[name] = sum(t.numel() for t in net.state_dict().values())  # pos_embed included
    assert round(counts["sd3"] / 1e9, 3) == 2.085  # model-families.md §8
    assert round(counts["sd35-large"] / 1e9, 3) == 8.146
    assert round(counts["sd35-medium"] / 1e9, 3) == 2.470


def _tiny_shapes(name="sd3"):
    return _shapes(diffusion_model_state_dict(name, "tiny", 0, CTX, ADM))


@pytest.mark.parametrize("edit, found", [
    (lambda s: s.pop("x_embedder.proj.weight"), "x_embedder.proj.weight"),
    (lambda s: s.update({"pos_embed": (1, 250, 128)}), "pos_embed"),
    (lambda s: s.update({"x_embedder.proj.weight": (96, 16, 2, 2)}), "multiple of the 64"),
    (lambda s: s.update({"context_processor.layers.0.attn.qkv.weight": (3, 1)}),
     "context processor"),
    (lambda s: s.update({"joint_blocks.5.x_block.mlp.fc1.weight": (1, 1)}), "numbered"),
])
def test_odd_layouts_are_refused_with_what_was_found(edit, found):
    shapes = _tiny_shapes()
    edit(shapes)
    with pytest.raises(DetectionError, match=found):
        detect_family(shapes, prefix="")


def test_ln_q_width_must_divide_hidden():
    shapes = _tiny_shapes("sd35-large")
    shapes["joint_blocks.0.context_block.attn.ln_q.weight"] = (48,)
    with pytest.raises(DetectionError, match="ln_q width 48"):
        detect_mmdit_config(shapes, "")


def test_non_16_channel_mmdit_is_reported_not_guessed():
    shapes = _tiny_shapes()
    shapes["x_embedder.proj.weight"] = (128, 4, 2, 2)
    with pytest.raises(DetectionError, match="MMDiT with in_channels=4"):
        detect_family(shapes, prefix="")


# -- loading and running ------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["", PREFIX])
def test_load_diffusion_model_file(tmp_path, prefix):
    from comfyless.models.checkpoint import load_diffusion_model

    cfg, sd, net = _tiny("sd35-medium")
    path = tmp_path / "sd3.safetensors"
    save_file({prefix + k: v for k, v in sd.items()}, str(path))
    model = load_diffusion_model(path)
    assert model.family == "sd3" and isinstance(model.diffusion_model, MMDiT)
    assert model.config == cfg and model.sampling.prediction == "const"
    assert model.latent_format.channels == 16
    x, t, ctx, y = _inputs()
    with torch.no_grad():
        assert_close_scaled(model.diffusion_model(x, t, ctx, y), net(x, t, ctx, y))


def test_apply_model_with_the_family_conditioning(one_torch_thread):
    from comfyless.models.patcher import ModelPatcher

    record = family("sd3.5")
    cfg, sd, net = _tiny("sd3")
    model = ModelPatcher(net, record.make_sampling(), record.latent_format, record.name)
    x, _, ctx, y = _inputs(batch=1)
    extra = model.extra_conds({"pooled_output": y}, 80, 96)
    assert set(extra) == {"y"} and torch.equal(extra["y"], y)
    assert torch.equal(model.extra_conds({}, 80, 96)["y"], torch.zeros(1, ADM))
    sigma = torch.tensor([0.7])
    out = model.apply_model(x, sigma, ctx, **extra)
    with torch.no_grad():  # CONST: x0 = x - σ·v, the network sees 1000σ
        v = net(x, torch.tensor([700.0]), ctx, y)
    assert_close_scaled(out, x - 0.7 * v)
    with pytest.raises(ValueError, match="pooled_output has 5 features"):
        model.extra_conds({"pooled_output": torch.zeros(1, 5)}, 80, 96)
    with pytest.raises(ValueError, match="const"):
        record.make_sampling("eps")


def test_odd_latent_sizes_are_padded_and_cropped_and_big_grids_refused():
    cfg, sd, net = _tiny("sd3")
    x, t, ctx, y = _inputs(h=9, w=7)
    with torch.no_grad():
        out = net(x, t, ctx, y)
        assert out.shape == x.shape
        # circular padding: the padded input is the odd input plus its own first row/column
        padded = torch.cat([x, x[:, :, :1]], dim=2)
        padded = torch.cat([padded, padded[..., :1]], dim=3)
        assert_close_scaled(out, net(padded, t, ctx, y)[..., :9, :7])
        with pytest.raises(ValueError, match="larger than this model's 16x16 position table"):
            net(torch.zeros(1, 16, 34, 8), t[:1], ctx[:1], y[:1])


# -- diffusers: the oracle and the converter ------------------------------------------------

_D_GLOBAL = {
    "x_embedder.proj": "pos_embed.proj",
    "t_embedder.mlp.0": "time_text_embed.timestep_embedder.linear_1",
    "t_embedder.mlp.2": "time_text_embed.timestep_embedder.linear_2",
    "y_embedder.mlp.0": "time_text_embed.text_embedder.linear_1",
    "y_embedder.mlp.2": "time_text_embed.text_embedder.linear_2",
    "context_embedder": "context_embedder",
    "final_layer.linear": "proj_out",
    "final_layer.adaLN_modulation.1": "norm_out.linear",
}
_D_BLOCK = {
    "x_block.attn.proj": "attn.to_out.0", "context_block.attn.proj": "attn.to_add_out",
    "x_block.attn2.proj": "attn2.to_out.0", "x_block.mlp.fc1": "ff.net.0.proj",
    "x_block.mlp.fc2": "ff.net.2", "context_block.mlp.fc1": "ff_context.net.0.proj",
    "context_block.mlp.fc2": "ff_context.net.2", "x_block.adaLN_modulation.1": "norm1.linear",
    "context_block.adaLN_modulation.1": "norm1_context.linear",
    "x_block.attn.ln_q": "attn.norm_q", "x_block.attn.ln_k": "attn.norm_k",
    "context_block.attn.ln_q": "attn.norm_added_q", "context_block.attn.ln_k": "attn.norm_added_k",
    "x_block.attn2.ln_q": "attn2.norm_q", "x_block.attn2.ln_k": "attn2.norm_k",
}
_D_QKV = {
    "x_block.attn.qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "context_block.attn.qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "x_block.attn2.qkv": ("attn2.to_q", "attn2.to_k", "attn2.to_v"),
}


def _swap(t):
    a, b = t.chunk(2)
    return torch.cat([b, a])


def _d_modules(sai_module, depth):
    """[(diffusers module, row slice index or None, swapped)] for one SAI module."""
    if sai_module in _D_GLOBAL:
        return [(_D_GLOBAL[sai_module], None, sai_module == "final_layer.adaLN_modulation.1")]
    _, n, rest = sai_module.split(".", 2)
    pre = f"transformer_blocks.{n}."
    if rest in _D_QKV:
        return [(pre + d, i, False) for i, d in enumerate(_D_QKV[rest])]
    last_ctx = rest == "context_block.adaLN_modulation.1" and int(n) == depth - 1
    return [(pre + _D_BLOCK[rest], None, last_ctx)]


def sai_to_diffusers(sd, depth):
    """SAI state dict -> SD3Transformer2DModel state dict (split qkv, swap the two halves)."""
    out = {"pos_embed.pos_embed": sd["pos_embed"]}
    for key, tensor in sd.items():
        if key == "pos_embed":
            continue
        module, _, param = key.rpartition(".")
        for dif, piece, swapped in _d_modules(module, depth):
            t = tensor.chunk(3)[piece] if piece is not None else tensor
            out[f"{dif}.{param}"] = _swap(t) if swapped else t
    return out


def diffusers_model(cfg, sd):
    from diffusers import SD3Transformer2DModel

    model = SD3Transformer2DModel(
        sample_size=cfg.pos_embed_max_size, patch_size=cfg.patch_size,
        in_channels=cfg.in_channels, out_channels=cfg.out_channels, num_layers=cfg.depth,
        attention_head_dim=cfg.head_dim, num_attention_heads=cfg.num_heads,
        joint_attention_dim=cfg.context_in, caption_projection_dim=cfg.hidden_size,
        pooled_projection_dim=cfg.adm_in_channels, pos_embed_max_size=cfg.pos_embed_max_size,
        dual_attention_layers=cfg.dual_attention_layers,
        qk_norm="rms_norm" if cfg.qk_norm == "rms" else None)
    model.load_state_dict(sai_to_diffusers(sd, cfg.depth), strict=True)
    return model.eval().requires_grad_(False)


def _diffusers_forward(model, x, t, ctx, y):
    return model(hidden_states=x, encoder_hidden_states=ctx, pooled_projections=y, timestep=t,
                 return_dict=False)[0]


@pytest.mark.parametrize("name", VARIANTS)
def test_mmdit_matches_diffusers(name, one_torch_thread):
    cfg, sd, net = _tiny(name)
    oracle = diffusers_model(cfg, sd)
    x, t, ctx, y = _inputs()
    with torch.no_grad():
        ours, theirs = net(x, t, ctx, y), _diffusers_forward(oracle, x, t, ctx, y)
    diff = float((ours - theirs).abs().max())
    print(f"{name}: max abs diff vs diffusers {diff:.3g} (|out| max {ours.abs().max():.3g})")
    assert diff <= ORACLE_TOL


@pytest.mark.parametrize("name", VARIANTS)
def test_diffusers_layout_converts_to_the_sai_file(name):
    cfg, sd, _ = _tiny(name)
    dif = sai_to_diffusers(sd, cfg.depth)
    assert is_diffusers_transformer(_shapes(dif)) and not is_diffusers_transformer(_shapes(sd))
    assert detect_family(_shapes(dif), prefix="").config == cfg  # detected through the table
    back = convert_diffusers_transformer(dif)
    assert sorted(back) == sorted(sd)
    assert all(torch.equal(back[k], sd[k]) for k in sd)  # pure renaming/stacking: exact
    assert detect_family(_shapes(back), prefix="").config == cfg


def test_diffusers_converter_names_unknown_and_incomplete_keys():
    cfg, sd, _ = _tiny("sd3")
    dif = sai_to_diffusers(sd, cfg.depth)
    with pytest.raises(DetectionError, match="transformer_blocks.0.attn.extra.weight"):
        convert_diffusers_transformer({**dif, "transformer_blocks.0.attn.extra.weight": sd[
            "context_embedder.weight"]})
    del dif["transformer_blocks.1.attn.to_k.weight"]
    with pytest.raises(DetectionError, match="x_block.attn.qkv.weight"):
        convert_diffusers_transformer(dif)


# -- LoRA key maps ---------------------------------------------------------------------------

RANK = 2


def _factors(g, out_features, in_features):
    return (torch.randn(out_features, RANK, generator=g) * 0.1,
            torch.randn(RANK, in_features, generator=g) * 0.1)


def test_comfy_and_kohya_names_place_every_key():
    cfg, sd, net = _tiny("sd35-medium")
    shapes = {n: tuple(p.shape) for n, p in net.named_parameters()}
    g = torch.Generator().manual_seed(5)
    lora, expected = {}, {}
    for i, (name, shape) in enumerate(shapes.items()):
        path = name.rpartition(".")[0]
        if name.endswith(".bias"):
            lora[f"diffusion_model.{path}.diff_b"] = torch.randn(shape, generator=g)
            expected[name] = lora[f"diffusion_model.{path}.diff_b"]
        elif len(shape) == 1:  # ln_q / ln_k scales
            lora[f"diffusion_model.{path}.diff"] = torch.randn(shape, generator=g)
            expected[name] = lora[f"diffusion_model.{path}.diff"]
        else:  # every other layer as a LoRA, half in ComfyUI and half in kohya names
            prefix = f"diffusion_model.{path}" if i % 2 else "lora_unet_" + path.replace(".", "_")
            up, down = _factors(g, shape[0], torch.Size(shape[1:]).numel())
            lora.update({f"{prefix}.lora_up.weight": up, f"{prefix}.lora_down.weight": down,
                         f"{prefix}.alpha": torch.tensor(float(RANK))})
            expected[name] = (up @ down).reshape(shape)
    patches, unplaced = place_patches(lora, net.lora_key_map(), shapes)
    assert unplaced == {}
    deltas = weight_deltas(patches, dict(net.named_parameters()), 1.0)
    assert sorted(deltas) == sorted(expected)
    for name, delta in deltas.items():
        assert_close_scaled(delta, expected[name], msg=name)


def _diffusers_linears(oracle):
    """{diffusers Linear module name: (out, in)} — what a diffusers SD3 LoRA adapts."""
    return {n: tuple(m.weight.shape) for n, m in oracle.named_modules()
            if isinstance(m, torch.nn.Linear)}


# (file prefix of diffusers module D, up/down suffixes, alpha written?)
SPELLINGS = {
    "transformer": (lambda d: f"transformer.{d}", "lora_B.weight", "lora_A.weight", False),
    "peft": (lambda d: f"base_model.model.{d}", "lora_B.weight", "lora_A.weight", False),
    "onetrainer": (lambda d: "lora_transformer_" + d.replace(".", "_"), "lora_up.weight",
                   "lora_down.weight", True),
    "lycoris": (lambda d: "lycoris_" + d.replace(".", "_"), "lora_up.weight", "lora_down.weight",
                True),
}


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_diffusers_lora_merges_like_the_diffusers_model(spelling, one_torch_thread):
    """A LoRA on every diffusers Linear (q/k/v slices, swapped modulation halves included):
    our merged network computes what the diffusers model with the same deltas computes."""
    cfg, sd, net = _tiny("sd35-medium")
    oracle = diffusers_model(cfg, sd)
    name_of, up_key, down_key, with_alpha = SPELLINGS[spelling]
    g = torch.Generator().manual_seed(7)
    lora, deltas = {}, {}
    for module, (out_f, in_f) in _diffusers_linears(oracle).items():
        up, down = _factors(g, out_f, in_f)
        prefix = name_of(module)
        lora[f"{prefix}.{up_key}"], lora[f"{prefix}.{down_key}"] = up, down
        scale = 0.5 if with_alpha else 1.0
        if with_alpha:
            lora[f"{prefix}.alpha"] = torch.tensor(RANK * scale)
        deltas[f"{module}.weight"] = scale * (up @ down)
    shapes = {n: tuple(p.shape) for n, p in net.named_parameters()}
    assert place_patches(net.convert_lora_file(lora), net.lora_key_map(), shapes)[1] == {}
    assert read_lora(lora, "unet", net)[1] == {}
    merged = {k: v + deltas[k] if k in deltas else v for k, v in oracle.state_dict().items()}
    oracle.load_state_dict(merged)
    x, t, ctx, y = _inputs()
    with torch.no_grad(), loras_applied(net, [(lora, 1.0, False)]):
        ours = net(x, t, ctx, y)
    theirs = _diffusers_forward(oracle, x, t, ctx, y)
    diff = float((ours - theirs).abs().max())
    print(f"{spelling} LoRA: max abs diff vs diffusers {diff:.3g}")
    assert diff <= ORACLE_TOL


def test_swapped_halves_cover_loha_and_diffs_and_leave_other_files_alone():
    cfg, sd, net = _tiny("sd3")
    hidden = cfg.hidden_size
    g = torch.Generator().manual_seed(2)
    last = f"transformer.transformer_blocks.{cfg.depth - 1}.norm1_context.linear"
    w1a, w1b = _factors(g, 2 * hidden, hidden)
    w2a, w2b = _factors(g, 2 * hidden, hidden)
    lora = {"transformer.norm_out.linear.diff_b": torch.randn(2 * hidden, generator=g),
            f"{last}.hada_w1_a": w1a, f"{last}.hada_w1_b": w1b, f"{last}.hada_w2_a": w2a,
            f"{last}.hada_w2_b": w2b, f"{last}.alpha": torch.tensor(float(RANK))}
    patches, unplaced = read_lora(lora, "unet", net)
    assert unplaced == {}
    deltas = weight_deltas(patches, dict(net.named_parameters()), 1.0)
    assert_close_scaled(deltas["final_layer.adaLN_modulation.1.bias"],
                        _swap(lora["transformer.norm_out.linear.diff_b"]))
    target = f"joint_blocks.{cfg.depth - 1}.context_block.adaLN_modulation.1.weight"
    assert_close_scaled(deltas[target], _swap((w1a @ w1b) * (w2a @ w2b)))
    untouched = {"transformer.transformer_blocks.0.norm1_context.linear.lora_B.weight": w1a,
                 "transformer.transformer_blocks.0.norm1_context.linear.lora_A.weight": w1b}
    assert net.convert_lora_file(untouched) is untouched  # block 0 is not the last block


def test_a_diffusers_layout_file_loads_as_the_sai_file(tmp_path, one_torch_thread):
    from safetensors.torch import save_file

    from comfyless.models.checkpoint import load_diffusion_model

    cfg, sd, net = _tiny("sd35-medium")
    save_file(sai_to_diffusers(sd, cfg.depth), str(tmp_path / "diffusers.safetensors"))
    save_file(sd, str(tmp_path / "sai.safetensors"))
    a = load_diffusion_model(tmp_path / "diffusers.safetensors")
    b = load_diffusion_model(tmp_path / "sai.safetensors")
    x, t, ctx, y = _inputs(batch=1)
    with torch.no_grad():
        assert_close_scaled(a.diffusion_model(x, t, ctx, y), b.diffusion_model(x, t, ctx, y))
