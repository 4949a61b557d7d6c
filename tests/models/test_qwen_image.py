"""Qwen-Image family (models/families/qwen_image/): detection and refusals, loading tiny files,
the network against diffusers' QwenImageTransformer2DModel (the oracle) with 4-D and 5-D
latents, text masks, frames and reference latents, RoPE ids, the Wan21 latent format, sampling
and conditioning extras, LoRA key maps and a training smoke test."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyless.lora import ALGORITHMS
from comfyless.lora.apply import patch_weights, restore_weights
from comfyless.lora.formats import place_patches, read_lora
from comfyless.lora.training import TrainConfig, train_lora
from comfyless.models import families
from comfyless.models.checkpoint import load_diffusion_model
from comfyless.models.families import DetectionError, detect_family
from comfyless.models.families.qwen_image import QWEN_IMAGE, writer
from comfyless.models.families.qwen_image.conditioning import qwen_image_conds
from comfyless.models.families.qwen_image.network import (
    QwenImageNetwork,
    centred_image_ids,
    text_ids,
)
from comfyless.models.latent_formats import WAN21
from tests.floats import assert_close_scaled

CONTEXT = 32  # tiny text width (real: Qwen2.5-VL-7B 3584)
H, HEAD, MLP = 64, 32, 256  # the tiny layout: hidden, head dim, MLP width


def test_the_family_is_registered():
    assert families.family("qwen-image") is QWEN_IMAGE


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def _file_sd(seed: int = 0) -> dict[str, torch.Tensor]:
    return writer.diffusion_model_state_dict("qwen-image", "tiny", seed, CONTEXT)


def _net(seed: int = 0) -> QwenImageNetwork:
    net = QwenImageNetwork(writer.network_config("qwen-image", "tiny", CONTEXT))
    net.load_state_dict(_file_sd(seed))
    return net.eval().requires_grad_(False)


def _shapes(sd: dict[str, torch.Tensor], prefix: str = "") -> dict[str, tuple[int, ...]]:
    return {prefix + k: tuple(v.shape) for k, v in sd.items()}


def _inputs(batch: int = 2, h: int = 8, w: int = 12, tokens: int = 5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, 16, h, w, generator=g), torch.tensor([0.3, 0.8])[:batch],
            torch.randn(batch, tokens, CONTEXT, generator=g))


# -- detection -------------------------------------------------------------------------------

def test_detects_the_tiny_layout_with_and_without_prefix():
    sd = _file_sd()
    for prefix in ("", "model.diffusion_model."):
        detected = detect_family(_shapes(sd, prefix), prefix=prefix)
        assert detected.record is QWEN_IMAGE and detected.prediction == "const"
        assert detected.config == writer.network_config("qwen-image", "tiny", CONTEXT)
    assert detect_family(_shapes(sd, "model.diffusion_model.")).family == "qwen-image"
    assert families.family("qwen-image-2512") is QWEN_IMAGE
    assert families.family("qwen-image") is QWEN_IMAGE


def test_detects_the_real_shapes():
    shapes = writer.diffusion_model_shapes("qwen-image", "full")
    assert abs(sum(s.numel() for s in shapes.values()) - 20.430e9) < 1e6  # spec §8
    cfg = detect_family(shapes, prefix="").config
    assert (cfg.hidden_size, cfg.num_heads, cfg.num_layers, cfg.head_dim) == (3072, 24, 60, 128)
    assert (cfg.joint_attention_dim, cfg.mlp_hidden, cfg.in_channels, cfg.out_channels) == (
        3584, 12288, 64, 16)
    assert cfg.axes_dim == (16, 56, 56) and cfg.theta == 10000
    assert shapes["txt_norm.weight"] == (3584,) and shapes["norm_out.linear.weight"] == (
        6144, 3072)


def test_mage_flow_is_refused_by_name():
    shapes = _shapes(_file_sd())
    shapes["txt_norm.weight"], shapes["proj_out.weight"] = (2560,), (128, H)
    with pytest.raises(DetectionError, match="Mage-Flow"):
        detect_family(shapes, prefix="")


def test_layered_is_refused():
    # (Qwen-Image-Edit-2511, marked by `__index_timestep_zero__`, is detected:
    # tests/models/test_qwen_image_edit_2511.py)
    shapes = _shapes(_file_sd(), "model.diffusion_model.")
    shapes["model.diffusion_model.time_text_embed.addition_t_embedding.weight"] = (2, H)
    with pytest.raises(DetectionError, match="layered variant needs its extra timestep "
                                             "conditioning: not supported"):
        detect_family(shapes)


def test_incomplete_or_other_channel_layouts_are_refused_with_what_was_found():
    shapes = _shapes(_file_sd())
    del shapes["transformer_blocks.0.attn.norm_q.weight"]
    with pytest.raises(DetectionError, match="incomplete.*norm_q"):
        detect_family(shapes, prefix="")
    shapes = _shapes(_file_sd())
    shapes["img_in.weight"] = (H, 128)
    with pytest.raises(DetectionError, match=r"img_in.weight \[64, 128\]"):
        detect_family(shapes, prefix="")


def test_no_trigger_means_not_qwen_image():
    from comfyless.models.families.qwen_image.detect import detect_qwen_image_config

    shapes = _shapes(_file_sd())
    assert detect_qwen_image_config(shapes, "model.diffusion_model.") is None
    del shapes["img_in.weight"]
    assert detect_qwen_image_config(shapes, "") is None


# -- loading ---------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_load_diffusion_model_reads_the_file(prefix, tmp_path):
    path = tmp_path / "qwen_image.safetensors"
    save_file({prefix + k: v for k, v in _file_sd().items()}, str(path))
    model = load_diffusion_model(path)
    assert model.family == "qwen-image" and isinstance(model.diffusion_model, QwenImageNetwork)
    assert model.sampling.kind == "flux" and model.sampling.shift == 1.15
    assert model.latent_format is WAN21 and model.dtype == torch.float32
    ref = _net()
    for k, v in model.diffusion_model.state_dict().items():
        assert torch.equal(v, ref.state_dict()[k]), k


def test_fp8_file_keeps_fp8_weights_and_matches_the_upcast_model(tmp_path):
    fp8 = torch.float8_e4m3fn
    sd = {k: v.to(fp8) if v.ndim == 2 else v for k, v in _file_sd().items()}
    path = tmp_path / "qwen_image_fp8_e4m3fn.safetensors"
    save_file(sd, str(path))
    net = load_diffusion_model(path).diffusion_model
    assert net.img_in.weight.dtype == fp8
    assert net.transformer_blocks[1].attn.to_q.weight.dtype == fp8
    assert net.txt_norm.weight.dtype == torch.float32 and net.dtype == torch.float32
    upcast = QwenImageNetwork(net.config)
    upcast.load_state_dict({k: v.float() for k, v in sd.items()})
    x, t, ctx = _inputs()
    with torch.no_grad():
        ours, reference = net(x, t, ctx), upcast(x, t, ctx)
    assert ours.dtype == torch.float32
    assert_close_scaled(ours, reference, rtol=1e-5, atol_rel=1e-5)


# -- the diffusers oracle --------------------------------------------------------------------

def _diffusers_model(net: QwenImageNetwork):
    diffusers = pytest.importorskip("diffusers")
    cfg = net.config
    model = diffusers.QwenImageTransformer2DModel(
        patch_size=cfg.patch_size, in_channels=cfg.in_channels, out_channels=cfg.out_channels,
        num_layers=cfg.num_layers, attention_head_dim=cfg.head_dim,
        num_attention_heads=cfg.num_heads, joint_attention_dim=cfg.joint_attention_dim,
        axes_dims_rope=tuple(cfg.axes_dim))
    model.load_state_dict(net.state_dict(), strict=True)  # same names, no renaming
    return model.eval()


def _pack(x: torch.Tensor) -> torch.Tensor:
    """[B, C, T, h, w] -> [B, T·(h/2)·(w/2), C·4] tokens in (frame, row, col) order, features
    (c, ph, pw): diffusers' Qwen-Image packing."""
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t, h // 2, 2, w // 2, 2).permute(0, 2, 3, 5, 1, 4, 6)
    return x.reshape(b, t * (h // 2) * (w // 2), c * 4)


def _unpack(tokens: torch.Tensor, t: int, h: int, w: int) -> torch.Tensor:
    b = tokens.shape[0]
    x = tokens.reshape(b, t, h // 2, w // 2, -1, 2, 2).permute(0, 4, 1, 2, 5, 3, 6)
    return x.reshape(b, -1, t, h, w)


def _diffusers_forward(model, x5, timesteps, context, mask=None, refs=()) -> torch.Tensor:
    """Their forward on a 5-D latent (+ 5-D single-frame references): timestep σ (they scale by
    1000 inside), img_shapes per sample, guidance None; returns the image's velocity.

    Token grids must be even: for an odd count n diffusers centres rows/cols at −⌈n/2⌉…⌊n/2⌋−1,
    ComfyUI (and comfyless) at −⌊n/2⌋…⌈n/2⌉−1 (test_image_ids_are_centred_...)."""
    b, _, t, h, w = x5.shape
    shapes = [(t, h // 2, w // 2)] + [(1, r.shape[-2] // 2, r.shape[-1] // 2) for r in refs]
    hidden = torch.cat([_pack(x5)] + [_pack(r).expand(b, -1, -1) for r in refs], dim=1)
    out = model(hidden_states=hidden, encoder_hidden_states=context,
                encoder_hidden_states_mask=mask, timestep=timesteps,
                img_shapes=[shapes] * b, guidance=None, return_dict=False)[0]
    return _unpack(out[:, : t * (h // 2) * (w // 2)], t, h, w)


def _report(what: str, ours: torch.Tensor, theirs: torch.Tensor) -> None:
    diff = float((ours - theirs).abs().max())
    print(f"\nqwen-image {what}: max |ours - diffusers| = {diff:.3g} "
          f"(output max {float(ours.abs().max()):.3g})")
    assert ours.abs().max() > 0.1 and diff <= 1e-4


def test_network_matches_diffusers_on_4d_and_5d_latents():
    net = _net()
    theirs_model = _diffusers_model(net)
    x, t, ctx = _inputs()
    with torch.no_grad():
        ours4 = net(x, t, ctx)
        ours5 = net(x[:, :, None], t, ctx)
        theirs = _diffusers_forward(theirs_model, x[:, :, None], t, ctx)
    assert ours4.shape == x.shape and ours5.shape == (2, 16, 1, 8, 12)  # same rank as given
    _report("4-D", ours4, theirs[:, :, 0])
    _report("5-D", ours5, theirs)


def test_text_mask_matches_diffusers_and_equals_dropping_the_padding():
    net = _net()
    theirs_model = _diffusers_model(net)
    x, t, ctx = _inputs(tokens=6)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        ours = net(x, t, ctx, attention_mask=mask)
        theirs = _diffusers_forward(theirs_model, x[:, :, None], t, ctx, mask=mask)[:, :, 0]
        unmasked = net(x, t, ctx)
        dropped = net(x[:1], t[:1], ctx[:1, :4])  # padding keys at the end: same as absent
    _report("text mask", ours, theirs)
    assert (ours[0] - unmasked[0]).abs().max() > 1e-4
    assert_close_scaled(ours[1], unmasked[1])
    assert_close_scaled(ours[:1], dropped)


def test_multi_frame_latents_match_diffusers():
    net = _net()
    g = torch.Generator().manual_seed(4)
    x = torch.randn(1, 16, 2, 8, 12, generator=g)
    _, t, ctx = _inputs(batch=1)
    with torch.no_grad():
        ours = net(x, t, ctx)
        theirs = _diffusers_forward(_diffusers_model(net), x, t, ctx)
    assert ours.shape == x.shape
    _report("2 frames", ours, theirs)


def test_reference_latents_match_diffusers_index_method():
    net = _net()
    g = torch.Generator().manual_seed(5)
    x, t, ctx = _inputs()
    refs = [torch.randn(1, 16, 8, 12, generator=g), torch.randn(1, 16, 4, 8, generator=g)]
    with torch.no_grad():
        plain = net(x, t, ctx)
        ours = net(x, t, ctx, ref_latents=refs)
        five_d = net(x[:, :, None], t, ctx, ref_latents=[r[:, :, None] for r in refs])
        theirs = _diffusers_forward(_diffusers_model(net), x[:, :, None], t, ctx,
                                    refs=[r[:, :, None] for r in refs])[:, :, 0]
        offset = net(x, t, ctx, ref_latents=refs, ref_latents_method="offset")
    assert ours.shape == x.shape and (ours - plain).abs().max() > 1e-3
    _report("reference latents", ours, theirs)
    assert_close_scaled(five_d[:, :, 0], ours)
    assert (offset - ours).abs().max() > 1e-5  # positions differ per method
    # ComfyUI's Qwen-Image places "uxo" references like "offset"; unknown names are refused
    assert_close_scaled(net(x, t, ctx, ref_latents=refs, ref_latents_method="uxo"), offset)
    with pytest.raises(ValueError, match="'tiles' is not supported"):
        net(x, t, ctx, ref_latents=refs, ref_latents_method="tiles")


# -- positions, shapes, errors ---------------------------------------------------------------

def test_image_ids_are_centred_and_text_starts_past_them():
    ids = centred_image_ids(1, 2, 3, 4)  # 2 frames of 3 x 4 tokens
    assert ids.shape == (1, 24, 3)
    assert ids[0, :4].tolist() == [[0, -1, -2], [0, -1, -1], [0, -1, 0], [0, -1, 1]]
    assert ids[0, 11].tolist() == [0, 1, 1] and ids[0, 12].tolist() == [1, -1, -2]
    # odd grids: row − ⌊h/2⌋ (ComfyUI), rows −1, 0, 1 for 3 tokens
    assert sorted(set(ids[0, :, 1].tolist())) == [-1, 0, 1]
    assert centred_image_ids(1, 1, 2, 2, index=2, h_offset=3)[0, 0].tolist() == [2, 2, -1]
    txt = text_ids(2, 3, h_len=3, w_len=6)
    assert txt.shape == (2, 3, 3) and txt[1].tolist() == [[3, 3, 3], [4, 4, 4], [5, 5, 5]]


def test_odd_sizes_are_padded_and_cropped():
    net = _net()
    x, t, ctx = _inputs(h=7, w=9)
    with torch.no_grad():
        out = net(x, t, ctx)
        out5 = net(x[:, :, None], t, ctx)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert_close_scaled(out5[:, :, 0], out)


def test_bad_inputs_say_what_was_found():
    net = _net()
    x, t, ctx = _inputs()
    with pytest.raises(ValueError, match=r"16-channel latents.*got shape \[2, 4, 8, 12\]"):
        net(torch.zeros(2, 4, 8, 12), t, ctx)
    with pytest.raises(ValueError, match=r"got shape \[2, 16, 12\]"):
        net(torch.zeros(2, 16, 12), t, ctx)
    with pytest.raises(ValueError, match=rf"\[B, L, {CONTEXT}\].*\[2, 5, 768\]"):
        net(x, t, torch.zeros(2, 5, 768))
    with pytest.raises(ValueError, match=r"attention_mask has shape \[2, 3\], expected \[2, 5\]"):
        net(x, t, ctx, attention_mask=torch.ones(2, 3))
    with pytest.raises(ValueError, match="reference latents must be"):
        net(x, t, ctx, ref_latents=[torch.zeros(1, 16, 2, 4, 4)])


# -- latent format, sampling, conditioning ---------------------------------------------------

def test_wan21_latent_format_works_per_channel_on_any_rank():
    g = torch.Generator().manual_seed(0)
    mean, std = torch.tensor(WAN21.mean), torch.tensor(WAN21.std)
    assert WAN21.name == "Wan21" and WAN21.channels == 16 and len(mean) == len(std) == 16
    for shape in ((2, 16, 3, 5), (2, 16, 1, 3, 5)):
        z = torch.randn(shape, generator=g)
        view = (1, 16) + (1,) * (len(shape) - 2)
        assert torch.allclose(WAN21.process_in(z), (z - mean.view(view)) / std.view(view))
        assert torch.allclose(WAN21.process_out(WAN21.process_in(z)), z, atol=1e-6)
    with pytest.raises(ValueError, match="16 channels"):
        WAN21.process_in(torch.zeros(1, 4, 2, 2))


def test_family_record_and_sampling():
    s = QWEN_IMAGE.make_sampling()
    assert (s.prediction, s.kind, s.shift, len(s.sigmas)) == ("const", "flux", 1.15, 10000)
    assert float(s.timestep(torch.tensor(0.5))) == pytest.approx(0.5)  # the network sees σ
    with pytest.raises(ValueError, match="CONST"):
        QWEN_IMAGE.make_sampling("eps")
    assert QWEN_IMAGE.default_size == (1328, 1328) and QWEN_IMAGE.clip_type == "qwen_image"
    assert QWEN_IMAGE.vae_prefix == "vae." and QWEN_IMAGE.unet_prefix == "model.diffusion_model."
    assert families.resolve(QWEN_IMAGE.test_unet_config)("qwen-image", "tiny", CONTEXT, None) == (
        writer.network_config("qwen-image", "tiny", CONTEXT))


def test_conds_pass_the_mask_only_when_it_has_padding():
    class Patcher:
        latent_format = WAN21

    padded = torch.tensor([[1, 1, 0]])
    assert qwen_image_conds(Patcher(), {"attention_mask": padded}, 64, 64) == {
        "attention_mask": padded}
    assert qwen_image_conds(Patcher(), {"attention_mask": torch.ones(1, 3)}, 64, 64) == {}
    assert qwen_image_conds(Patcher(), {}, 64, 64) == {}
    ref = torch.randn(1, 16, 4, 4)
    out = qwen_image_conds(Patcher(), {"reference_latents": [ref],
                                       "reference_latents_method": "offset"}, 64, 64)
    assert torch.allclose(out["ref_latents"][0], WAN21.process_in(ref))
    assert out["ref_latents_method"] == "offset"


def test_apply_model_gives_x0_from_the_velocity(tmp_path):
    path = tmp_path / "qwen_image.safetensors"
    save_file(_file_sd(), str(path))
    model = load_diffusion_model(path)
    x, sigma, ctx = _inputs()
    mask = torch.tensor([[1, 1, 1, 0, 0]])
    extra = model.extra_conds({"attention_mask": mask}, 96, 64)
    with torch.no_grad():
        x0 = model.apply_model(x, sigma, ctx, **extra)
        v = model.diffusion_model(x, sigma, ctx, attention_mask=mask.repeat(2, 1))
    assert_close_scaled(x0, x - sigma[:, None, None, None] * v)


# -- test files ------------------------------------------------------------------------------

def test_streamed_writer_matches_the_state_dict(tmp_path):
    path = writer.write_diffusion_model(tmp_path / "q.safetensors", "qwen-image", "tiny", seed=3,
                                        dtype=torch.bfloat16, joint_attention_dim=CONTEXT)
    written, expected = load_file(str(path)), _file_sd(seed=3)
    assert set(written) == set(expected)
    assert all(torch.equal(written[k], v.to(torch.bfloat16)) for k, v in expected.items())
    with pytest.raises(ValueError, match="never built in memory"):
        writer.diffusion_model_state_dict("qwen-image", "full")


# -- LoRA ------------------------------------------------------------------------------------

def _param_shapes(net: QwenImageNetwork) -> dict[str, tuple[int, ...]]:
    return {n: tuple(p.shape) for n, p in net.named_parameters()}


_SPELLINGS = {
    "comfyui": lambda p: f"diffusion_model.{p}",
    "diffusers": lambda p: f"transformer.{p}",
    "bare": lambda p: p,
    "lycoris": lambda p: "lycoris_" + p.replace(".", "_"),
    "kohya": lambda p: "lora_unet_" + p.replace(".", "_"),
}


@pytest.mark.parametrize("spelling", sorted(_SPELLINGS))
def test_every_spelling_places_every_weight(spelling):
    net = _net()
    g = torch.Generator().manual_seed(0)
    spell = _SPELLINGS[spelling]
    sd = {}
    for name, p in net.named_parameters():
        if name.endswith(".weight") and p.ndim == 2:
            path = name[: -len(".weight")]
            sd[f"{spell(path)}.lora_up.weight"] = torch.randn(p.shape[0], 2, generator=g)
            sd[f"{spell(path)}.lora_down.weight"] = torch.randn(2, p.shape[1], generator=g)
    patches, unplaced = place_patches(sd, net.lora_key_map(), _param_shapes(net))
    assert unplaced == {}
    assert len(patches) == len(sd) // 2 and "transformer_blocks.1.attn.to_add_out.weight" in patches
    assert "lora_unet_transformer_blocks_0_attn_to_q" in net.lora_key_map()


def test_trainer_style_diff_keys_land_on_norms_and_biases():
    net = _net()
    sd = {
        "diffusion_model.transformer_blocks.0.attn.to_q.lora_up.weight": torch.zeros(H, 4),
        "diffusion_model.transformer_blocks.0.attn.to_q.lora_down.weight": torch.zeros(4, H),
        "diffusion_model.transformer_blocks.0.attn.to_q.alpha": torch.tensor(2.0),
        "diffusion_model.transformer_blocks.0.attn.to_q.diff_b": torch.zeros(H),
        "diffusion_model.transformer_blocks.0.attn.norm_added_k.diff": torch.zeros(HEAD),
        "diffusion_model.txt_norm.diff": torch.zeros(CONTEXT),
        "transformer.img_in.lora_A.default.weight": torch.zeros(2, 64),
        "transformer.img_in.lora_B.default.weight": torch.zeros(H, 2),
    }
    patches, unplaced = place_patches(sd, net.lora_key_map(), _param_shapes(net))
    assert unplaced == {}
    assert patches["transformer_blocks.0.attn.to_q.weight"][0].alpha == 2.0
    assert {p.kind for p in patches["transformer_blocks.0.attn.to_q.bias"]} == {"diff"}
    assert "transformer_blocks.0.attn.norm_added_k.weight" in patches
    assert "txt_norm.weight" in patches and "img_in.weight" in patches


def test_peft_lora_merged_matches_diffusers_with_the_same_lora():
    net = _net()
    theirs = _diffusers_model(net)
    g = torch.Generator().manual_seed(6)
    lora = {}
    for name, module in theirs.named_modules():
        if isinstance(module, torch.nn.Linear):
            lora[f"transformer.{name}.lora_B.weight"] = torch.randn(
                module.out_features, 2, generator=g) * 0.1
            lora[f"transformer.{name}.lora_A.weight"] = torch.randn(
                2, module.in_features, generator=g) * 0.1
    patches, unplaced = read_lora(lora, "unet", net)
    assert unplaced == {}
    x, t, ctx = _inputs()
    with torch.no_grad():
        plain = net(x, t, ctx)
        backup = patch_weights(net, [(patches, 1.0)])
        ours = net(x, t, ctx)
        params = dict(theirs.named_parameters())
        for key, up in lora.items():
            if key.endswith(".lora_B.weight"):
                name = key[len("transformer."): -len(".lora_B.weight")]
                params[name + ".weight"].add_(up @ lora[key.replace("lora_B", "lora_A")])
        reference = _diffusers_forward(theirs, x[:, :, None], t, ctx)[:, :, 0]
    assert (ours - plain).abs().max() > 0.1
    _report("PEFT LoRA merged", ours, reference)
    restore_weights(net, backup)
    assert all(torch.equal(v, _net().state_dict()[k]) for k, v in net.state_dict().items())


# -- training (TrainLoraNode's loop) ---------------------------------------------------------

@pytest.fixture(scope="module")
def trained_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("qwen") / "qwen_image.safetensors"
    save_file(_file_sd(), str(path))
    return load_diffusion_model(path)


def _train_data(n: int = 2):
    g = torch.Generator().manual_seed(0)
    latents = [{"samples": torch.randn(n, 16, 8, 8, generator=g)}]
    conds = [[[torch.randn(1, 6, CONTEXT, generator=g), {}] for _ in range(n)]]
    return latents, conds


# the trainer's keys at rank 4 (model-families.md §4.6 with D = 64, F = 4D, text width 32)
_TRAINER_KEYS = {
    "diffusion_model.transformer_blocks.0.attn.to_q.lora_up.weight": (H, 4),
    "diffusion_model.transformer_blocks.0.attn.to_q.lora_down.weight": (4, H),
    "diffusion_model.transformer_blocks.0.attn.to_q.diff_b": (H,),
    "diffusion_model.transformer_blocks.1.attn.add_v_proj.lora_up.weight": (H, 4),
    "diffusion_model.transformer_blocks.0.attn.to_out.0.lora_up.weight": (H, 4),
    "diffusion_model.transformer_blocks.0.attn.to_add_out.lora_down.weight": (4, H),
    "diffusion_model.transformer_blocks.0.img_mod.1.lora_up.weight": (6 * H, 4),
    "diffusion_model.transformer_blocks.0.txt_mod.1.diff_b": (6 * H,),
    "diffusion_model.transformer_blocks.0.img_mlp.net.0.proj.lora_up.weight": (MLP, 4),
    "diffusion_model.transformer_blocks.0.img_mlp.net.2.lora_down.weight": (4, MLP),
    "diffusion_model.transformer_blocks.0.attn.norm_q.diff": (HEAD,),
    "diffusion_model.transformer_blocks.0.attn.norm_added_k.diff": (HEAD,),
    "diffusion_model.txt_norm.diff": (CONTEXT,),
    "diffusion_model.img_in.lora_down.weight": (4, 64),
    "diffusion_model.txt_in.lora_down.weight": (4, CONTEXT),
    "diffusion_model.time_text_embed.timestep_embedder.linear_1.lora_down.weight": (4, 256),
    "diffusion_model.time_text_embed.timestep_embedder.linear_2.lora_up.weight": (H, 4),
    "diffusion_model.norm_out.linear.lora_up.weight": (2 * H, 4),
    "diffusion_model.proj_out.lora_up.weight": (64, 4),
}


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_every_algorithm_trains_and_loads_back(trained_model, algorithm):
    model = trained_model
    before = {k: v.clone() for k, v in model.diffusion_model.state_dict().items()}
    config = TrainConfig(algorithm=algorithm, steps=2, rank=4, learning_rate=1e-3,
                         training_dtype="fp32", lora_dtype="fp32", batch_size=2)
    result = train_lora(model, *_train_data(), config)
    assert len(result.losses) == 2 and all(torch.isfinite(torch.tensor(result.losses)))
    assert all(k.startswith("diffusion_model.") for k in result.lora)
    if algorithm == "LoRA":
        for key, shape in _TRAINER_KEYS.items():
            assert tuple(result.lora[key].shape) == shape, key
    for k, v in model.diffusion_model.state_dict().items():  # the shared network is restored
        assert torch.equal(v, before[k]), k
    patches, unplaced = read_lora(result.lora, "unet", model.diffusion_model)
    assert unplaced == {} and patches
