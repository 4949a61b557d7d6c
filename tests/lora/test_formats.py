"""Reading LoRA files: every dialect places every key, and gives the same weights."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from comfyless.lora import (
    add_adapters,
    bypass_hooks,
    loras_applied,
    patched,
    read_lora,
    remove_hooks,
    split_bypass,
    unet_key_map,
    weight_deltas,
)
from comfyless.lora.keys import diffusers_names
from tests.floats import assert_close_scaled
from tests.lora.conftest import make_unet, unet_inputs


def _trained(unet, algorithm="LoRA", rank=4, seed=0):
    """A ComfyUI-layout LoRA with non-zero tensors, as a trained file would be."""
    aset = add_adapters(unet, algorithm, rank, generator=torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in aset.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
        y = unet(*unet_inputs(unet))
    sd = aset.state_dict()
    aset.remove()
    return sd, y


# -- name mapping (lora-format.md §4.1 examples, on full-size layouts built on meta) -----------

@pytest.fixture(scope="module")
def full_maps():
    out = {}
    for arch in ("sd15", "sdxl"):
        unet = make_unet(arch, "full")
        out[arch] = unet_key_map([n for n, _ in unet.named_parameters()], unet.config)
    return out


@pytest.mark.parametrize(("arch", "prefix", "target"), [
    ("sd15", "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
     "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"),
    ("sd15", "lora_unet_mid_block_attentions_0_proj_in", "middle_block.1.proj_in.weight"),
    ("sd15", "lora_unet_up_blocks_1_attentions_0_proj_in", "output_blocks.3.1.proj_in.weight"),
    ("sd15", "lora_unet_input_blocks_4_1_transformer_blocks_0_attn1_to_q",
     "input_blocks.4.1.transformer_blocks.0.attn1.to_q.weight"),
    ("sd15", "diffusion_model.input_blocks.1.1.proj_in", "input_blocks.1.1.proj_in.weight"),
    ("sd15", "down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q",
     "input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight"),
    ("sd15", "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_out",
     "input_blocks.1.1.transformer_blocks.0.attn1.to_out.0.weight"),
    ("sd15", "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_out.0",
     "input_blocks.1.1.transformer_blocks.0.attn1.to_out.0.weight"),
    ("sd15", "unet.down_blocks.0.resnets.0.conv1", "input_blocks.1.0.in_layers.2.weight"),
    ("sd15", "lora_unet_down_blocks_1_resnets_0_conv_shortcut",
     "input_blocks.4.0.skip_connection.weight"),
    ("sd15", "lora_unet_down_blocks_0_downsamplers_0_conv", "input_blocks.3.0.op.weight"),
    ("sd15", "lora_unet_up_blocks_0_upsamplers_0_conv", "output_blocks.2.1.conv.weight"),
    ("sd15", "lora_unet_up_blocks_1_upsamplers_0_conv", "output_blocks.5.2.conv.weight"),
    ("sd15", "lora_unet_up_blocks_3_resnets_2_time_emb_proj",
     "output_blocks.11.0.emb_layers.1.weight"),
    ("sd15", "lora_unet_mid_block_resnets_1_norm2", "middle_block.2.out_layers.0.weight"),
    ("sd15", "lora_unet_conv_in", "input_blocks.0.0.weight"),
    ("sd15", "lora_unet_time_embedding_linear_2", "time_embed.2.weight"),
    ("sd15", "lora_unet_conv_norm_out", "out.0.weight"),
    ("sd15", "lycoris_conv_out", "out.2.weight"),
    ("sdxl", "lora_unet_down_blocks_1_attentions_0_proj_in", "input_blocks.4.1.proj_in.weight"),
    ("sdxl", "lora_unet_add_embedding_linear_1", "label_emb.0.0.weight"),
    ("sdxl", "lora_unet_up_blocks_0_upsamplers_0_conv", "output_blocks.2.2.conv.weight"),
    ("sdxl", "lora_unet_up_blocks_0_attentions_2_transformer_blocks_9_ff_net_2",
     "output_blocks.2.1.transformer_blocks.9.ff.net.2.weight"),
    ("sdxl", "lora_unet_mid_block_attentions_0_transformer_blocks_9_attn2_to_k",
     "middle_block.1.transformer_blocks.9.attn2.to_k.weight"),
])
def test_spec_name_examples(full_maps, arch, prefix, target):
    assert full_maps[arch][prefix] == target


@pytest.mark.parametrize("arch", ["sd15", "sd2", "sdxl"])
def test_every_full_size_weight_has_a_diffusers_name(arch):
    unet = make_unet(arch, "full")
    paths = [n[: -len(".weight")] for n, _ in unet.named_parameters() if n.endswith(".weight")]
    names = diffusers_names(paths, unet.config)
    assert sorted(names) == sorted(paths)
    flat = [d for ds in names.values() for d in ds]
    assert len(flat) == len(set(flat))  # no two LDM layers share a diffusers name
    # the layout read off the key names agrees with the config
    assert diffusers_names(paths) == names


# -- dialects give the same weights --------------------------------------------------------

def _comfy_items(sd):
    """(module path, suffix, tensor) of a ComfyUI-layout LoRA."""
    for key, t in sd.items():
        rest = key[len("diffusion_model."):]
        for suffix in ("lora_up.weight", "lora_down.weight", "alpha", "diff_b", "diff"):
            if rest.endswith("." + suffix):
                yield rest[: -len(suffix) - 1], suffix, t
                break


def _convert(sd, unet, dialect):
    """Rewrite a ComfyUI-layout LoRA into another tool's names (what those tools write)."""
    weights = dict(unet.named_parameters())
    dif = diffusers_names([n[:-7] for n in weights if n.endswith(".weight")], unet.config)
    out = {}
    for mod, suffix, t in _comfy_items(sd):
        if suffix in ("diff", "diff_b"):
            continue  # kohya/PEFT files carry no diffs
        w = weights[mod + ".weight"]
        if suffix != "alpha" and w.dim() == 4:  # kohya/PEFT store conv factors as 4-D
            t = t.reshape(t.shape[0], -1, *w.shape[2:]) if suffix == "lora_down.weight" else \
                t.reshape(*t.shape, 1, 1)
        d = dif[mod][0]
        if dialect == "kohya":
            key = "lora_unet_" + d.replace(".", "_")
            out[f"{key}.{suffix}"] = t
        elif dialect == "kohya_ldm":
            out[f"lora_unet_{mod.replace('.', '_')}.{suffix}"] = t
        elif dialect == "peft":
            peft = {"lora_up.weight": "lora_B.weight", "lora_down.weight": "lora_A.weight",
                    "alpha": "alpha"}[suffix]
            out[f"unet.{d}.{peft}"] = t
        elif dialect == "diffusers_old":
            name = d.replace(".attn1.", ".attn1.processor.").replace(".attn2.", ".attn2.processor.")
            name = name.replace("to_out.0", "to_out")
            suf = {"lora_up.weight": "lora.up.weight", "lora_down.weight": "lora.down.weight",
                   "alpha": "alpha"}[suffix]
            out[f"{name}.{suf}"] = t
    return out


@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
@pytest.mark.parametrize("dialect", ["kohya", "kohya_ldm", "peft", "diffusers_old"])
def test_dialects_place_every_key_and_match_comfy_layout(arch, dialect):
    unet = make_unet(arch)
    sd, _ = _trained(unet)
    sd = {k: v for k, v in sd.items() if not k.endswith(("diff", "diff_b"))}
    other = _convert(sd, unet, dialect)
    assert len(other) == len(sd)
    ref, unplaced = read_lora(sd, "unet", unet)
    assert unplaced == {}
    got, unplaced = read_lora(other, "unet", unet)
    assert unplaced == {}
    assert sorted(got) == sorted(ref)
    weights = dict(unet.named_parameters())
    a, b = weight_deltas(ref, weights, 0.8), weight_deltas(got, weights, 0.8)
    for name in a:
        assert_close_scaled(b[name], a[name])


@pytest.mark.parametrize("algorithm", ["LoRA", "LoHa", "LoKr", "OFT"])
def test_saved_adapter_reads_back_to_the_same_outputs(sd15_unet, algorithm):
    unet = copy.deepcopy(sd15_unet)
    sd, y_trained = _trained(unet, algorithm)
    x = unet_inputs(unet)
    with torch.no_grad():
        y0 = unet(*x)
    patches, unplaced = read_lora(sd, "unet", unet)
    assert unplaced == {}
    with torch.no_grad(), patched(unet, [(patches, 1.0)]):
        y_merged = unet(*x)
    assert_close_scaled(y_merged, y_trained)
    with torch.no_grad():  # restored bit for bit
        assert torch.equal(unet(*x), y0)
    hooks, merge = split_bypass(patches, unet)
    with torch.no_grad(), patched(unet, [(merge, 1.0)]):
        handles = bypass_hooks(unet, hooks, 1.0)
        y_bypass = unet(*x)
        remove_hooks(handles)
    assert_close_scaled(y_bypass, y_trained)


def test_loras_applied_stacks_strengths_and_modes(sd15_unet):
    unet = copy.deepcopy(sd15_unet)
    a, _ = _trained(unet, "LoRA", seed=1)
    b, _ = _trained(unet, "LoKr", seed=2)
    x = unet_inputs(unet)
    with torch.no_grad():
        y0 = unet(*x)
        with loras_applied(unet, [(a, 0.5, False), (b, 1.0, False)]):
            merged = unet(*x)
        with loras_applied(unet, [(a, 0.5, True), (b, 1.0, True)]):
            hooked = unet(*x)
        with loras_applied(unet, [(a, 0.0, False)]):
            assert torch.equal(unet(*x), y0)  # strength 0 / restored weights, same path
        assert torch.equal(unet(*x), y0)
    assert (merged - y0).abs().max() > 1e-3
    assert_close_scaled(hooked, merged, atol_rel=1e-4)


def test_unplaced_keys_are_all_reported_with_reasons(sd15_unet):
    sd, _ = _trained(sd15_unet)
    sd = dict(sd)
    sd["lora_unet_nonexistent_layer.lora_up.weight"] = torch.zeros(4, 4)
    sd["lora_unet_nonexistent_layer.lora_down.weight"] = torch.zeros(4, 4)
    q = "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q"
    sd[f"{q}.diff_b"] = torch.zeros(32)  # to_q has no bias
    sd["diffusion_model.out.2.lora_up.weight"] = torch.zeros(7, 4)  # wrong shape
    patches, unplaced = read_lora(sd, "unet", sd15_unet)
    assert set(unplaced) == {
        "lora_unet_nonexistent_layer.lora_up.weight",
        "lora_unet_nonexistent_layer.lora_down.weight",
        f"{q}.diff_b",
        "diffusion_model.out.2.lora_up.weight",
        "diffusion_model.out.2.lora_down.weight",
        "diffusion_model.out.2.alpha",
    }
    assert "no model layer" in unplaced["lora_unet_nonexistent_layer.lora_up.weight"]
    assert "does not fit" in unplaced["diffusion_model.out.2.lora_up.weight"]
    assert "out.2.weight" not in patches


def test_lora_for_another_family_places_nothing():
    sd15, sdxl = make_unet("sd15"), make_unet("sdxl")
    sd, _ = _trained(sdxl)
    patches, unplaced = read_lora(sd, "unet", sd15)
    # names overlap (input_blocks.*) but shapes do not: every placed patch must fit
    weights = dict(sd15.named_parameters())
    for name, d in weight_deltas(patches, weights, 1.0).items():
        assert d.shape == weights[name].shape
    assert len(unplaced) > len(sd) // 2


def test_dora_scale_and_locon_mid_are_read(sd15_unet):
    conv = "input_blocks.1.0.in_layers.2"
    w = dict(sd15_unet.named_parameters())[conv + ".weight"]
    g = torch.Generator().manual_seed(0)
    sd = {
        f"lora_unet_{conv.replace('.', '_')}.lora_up.weight": torch.randn(32, 2, 1, 1, generator=g),
        f"lora_unet_{conv.replace('.', '_')}.lora_mid.weight": torch.randn(2, 2, 3, 3, generator=g),
        f"lora_unet_{conv.replace('.', '_')}.lora_down.weight": torch.randn(2, 32, 1, 1,
                                                                            generator=g),
        f"lora_unet_{conv.replace('.', '_')}.alpha": torch.tensor(2.0),
        "diffusion_model.time_embed.0.lora_up.weight": torch.randn(128, 2, generator=g),
        "diffusion_model.time_embed.0.lora_down.weight": torch.randn(2, 32, generator=g),
        "diffusion_model.time_embed.0.dora_scale": torch.rand(128, 1, generator=g),
    }
    patches, unplaced = read_lora(sd, "unet", sd15_unet)
    assert unplaced == {}
    assert "mid" in patches[conv + ".weight"][0].tensors
    assert patches["time_embed.0.weight"][0].dora_scale is not None
    d = weight_deltas(patches, dict(sd15_unet.named_parameters()), 1.0)
    assert d[conv + ".weight"].shape == w.shape


# -- text encoders -------------------------------------------------------------------------

class _HFEncoder(nn.Module):
    """HF CLIP layout: text_model.encoder.layers.N.{self_attn.{q,k,v,out}_proj, mlp.fc1/2}."""

    def __init__(self, width=8, layers=2):
        super().__init__()
        layer = lambda: nn.ModuleDict({  # noqa: E731
            "self_attn": nn.ModuleDict({n: nn.Linear(width, width) for n in
                                        ("q_proj", "k_proj", "v_proj", "out_proj")}),
            "mlp": nn.ModuleDict({"fc1": nn.Linear(width, 4 * width),
                                  "fc2": nn.Linear(4 * width, width)})})
        self.text_model = nn.ModuleDict({"encoder": nn.ModuleDict(
            {"layers": nn.ModuleList([layer() for _ in range(layers)])})})


class _OpenClipEncoder(nn.Module):
    """OpenCLIP layout: transformer.resblocks.N.{attn.in_proj_weight, attn.out_proj, mlp.c_fc}."""

    def __init__(self, width=8, layers=2):
        super().__init__()

        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.attn = nn.MultiheadAttention(width, 2)
                self.mlp = nn.ModuleDict({"c_fc": nn.Linear(width, 4 * width),
                                          "c_proj": nn.Linear(4 * width, width)})

        self.transformer = nn.ModuleDict({"resblocks": nn.ModuleList([Block()
                                                                      for _ in range(layers)])})


def _te_lora(prefix, width=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for m, (o, i) in {"self_attn_q_proj": (width, width), "self_attn_v_proj": (width, width),
                      "mlp_fc1": (4 * width, width)}.items():
        sd[f"{prefix}text_model_encoder_layers_1_{m}.lora_up.weight"] = torch.randn(o, 2,
                                                                                   generator=g)
        sd[f"{prefix}text_model_encoder_layers_1_{m}.lora_down.weight"] = torch.randn(2, i,
                                                                                     generator=g)
    return sd


def test_kohya_te_keys_land_on_hf_and_openclip_layouts_alike():
    hf, oc = _HFEncoder(), _OpenClipEncoder()
    with torch.no_grad():  # same weights in both layouts
        for n in range(2):
            h, o = hf.text_model["encoder"]["layers"][n], oc.transformer["resblocks"][n]
            o.attn.in_proj_weight.copy_(torch.cat([h["self_attn"][k].weight for k in
                                                   ("q_proj", "k_proj", "v_proj")]))
            o.mlp["c_fc"].weight.copy_(h["mlp"]["fc1"].weight)
    sd = _te_lora("lora_te_")
    p_hf, un_hf = read_lora(sd, "clip", hf)
    p_oc, un_oc = read_lora(sd, "clip", oc)
    assert un_hf == {} and un_oc == {}
    d_hf = weight_deltas(p_hf, dict(hf.named_parameters()), 1.0)
    d_oc = weight_deltas(p_oc, dict(oc.named_parameters()), 1.0)
    qkv = d_oc["transformer.resblocks.1.attn.in_proj_weight"]
    layer = "text_model.encoder.layers.1.self_attn"
    torch.testing.assert_close(qkv[:8], d_hf[f"{layer}.q_proj.weight"])
    assert torch.equal(qkv[8:16], torch.zeros(8, 8))  # k untouched
    torch.testing.assert_close(qkv[16:], d_hf[f"{layer}.v_proj.weight"])
    with patched(oc, [(p_oc, 1.0)]):
        w = oc.transformer["resblocks"][1].attn.in_proj_weight.detach().clone()
    assert not torch.equal(w, oc.transformer["resblocks"][1].attn.in_proj_weight)


def test_sdxl_two_encoders_te1_te2_and_peft_names():
    class Dual(nn.Module):
        def __init__(self):
            super().__init__()
            self.clip_l = nn.ModuleDict({"transformer": _HFEncoder()})
            self.clip_g = nn.ModuleDict({"transformer": _HFEncoder(width=16)})

    dual = Dual()
    sd = {**_te_lora("lora_te1_"), **_te_lora("lora_te2_", width=16, seed=1)}
    sd["text_encoder_2.text_model.encoder.layers.0.mlp.fc2.lora_A.weight"] = torch.zeros(2, 64)
    sd["text_encoder_2.text_model.encoder.layers.0.mlp.fc2.lora_B.weight"] = torch.zeros(16, 2)
    sd["text_encoders.clip_l.transformer.text_model.encoder.layers.0.mlp.fc2.diff_b"] = \
        torch.ones(8)
    patches, unplaced = read_lora(sd, "clip", dual)
    assert unplaced == {}
    assert "clip_g.transformer.text_model.encoder.layers.1.mlp.fc1.weight" in patches
    assert "clip_l.transformer.text_model.encoder.layers.1.mlp.fc1.weight" in patches
    assert "clip_g.transformer.text_model.encoder.layers.0.mlp.fc2.weight" in patches
    assert "clip_l.transformer.text_model.encoder.layers.0.mlp.fc2.bias" in patches


def test_te2_text_projection(tiny_sdxl_checkpoint):
    from comfyless.models.checkpoint import load_checkpoint

    _, clip, _ = load_checkpoint(tiny_sdxl_checkpoint)
    proj = clip.lora_module.clip_g.transformer.text_projection.weight
    sd = {"lora_te2_text_projection.lora_up.weight": torch.ones(proj.shape[0], 1),
          "lora_te2_text_projection.lora_down.weight": torch.ones(1, proj.shape[1])}
    patches, unplaced = read_lora(sd, "clip", clip.lora_module)
    assert unplaced == {} and list(patches) == ["clip_g.transformer.text_projection.weight"]


def test_unsupported_kinds_say_so(sd15_unet):
    q = "diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q"
    sd = {f"{q}.a1.weight": torch.zeros(2, 32), f"{q}.a2.weight": torch.zeros(32, 2),
          f"{q}.b1.weight": torch.zeros(2, 32), f"{q}.b2.weight": torch.zeros(32, 2),
          "diffusion_model.out.2.oft_blocks": torch.zeros(2, 2, 2, 2)}
    _, unplaced = read_lora(sd, "unet", sd15_unet)
    assert set(unplaced) == set(sd)
    assert "GLoRA" in unplaced[f"{q}.a1.weight"]
    assert "BOFT" in unplaced["diffusion_model.out.2.oft_blocks"]


@pytest.mark.parametrize("arch", ["sd15", "sd2", "sdxl"])
@pytest.mark.parametrize("size", ["tiny", "full"])
def test_diffusers_names_agree_with_diffusers_own_conversion(arch, size):
    """Oracle: diffusers' LDM -> diffusers UNet key conversion names every layer as we do."""
    single_file = pytest.importorskip("diffusers.loaders.single_file_utils")
    unet = make_unet(arch, size)
    names = [n for n, _ in unet.named_parameters()]
    # tag each tensor with its index, so the converted key of every LDM key can be found
    ldm = {f"model.diffusion_model.{n}": torch.tensor([float(i)]) for i, n in enumerate(names)}
    config = {"layers_per_block": unet.config.num_res_blocks[0]}
    if arch == "sdxl":
        config["addition_embed_type"] = "text_time"
    converted = single_file.convert_ldm_unet_checkpoint(ldm, config)
    theirs = {names[int(v.item())]: k for k, v in converted.items()}
    ours = diffusers_names([n[: -len(".weight")] for n in names if n.endswith(".weight")])
    for n in names:
        if n.endswith(".weight"):
            assert theirs[n][: -len(".weight")] in ours[n[: -len(".weight")]], n


def test_diff_set_and_norm_patch_kinds(sd15_unet):
    norm = "input_blocks.1.0.in_layers.0"  # GroupNorm: 1-D weight and bias
    conv = "input_blocks.1.0.in_layers.2"
    params = dict(sd15_unet.named_parameters())
    w, b = params[f"{norm}.weight"], params[f"{norm}.bias"]
    cw = params[f"{conv}.weight"]
    sd = {f"diffusion_model.{norm}.w_norm": torch.full_like(w, 0.5),
          f"diffusion_model.{norm}.b_norm": torch.full_like(b, -1.0),
          f"diffusion_model.{conv}.set_weight": torch.zeros_like(cw),
          f"diffusion_model.{conv}.diff_b": torch.ones(cw.shape[0])}
    patches, unplaced = read_lora(sd, "unet", sd15_unet)
    assert unplaced == {}
    d = weight_deltas(patches, params, 2.0)
    torch.testing.assert_close(d[f"{norm}.weight"], torch.full_like(w, 1.0))
    torch.testing.assert_close(d[f"{norm}.bias"], torch.full_like(b, -2.0))
    torch.testing.assert_close(d[f"{conv}.weight"], -cw.detach())  # set ignores strength
    torch.testing.assert_close(d[f"{conv}.bias"], torch.full((cw.shape[0],), 2.0))
