"""FLUX.1 family (models/families/flux/): detection, loading (BFL, prefixed, fp8, diffusers
layout), the network against diffusers' FluxTransformer2DModel (the oracle), RoPE and position
ids, reference latents, conditioning extras, sampling records and the LoRA key map."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from comfyless.lora.apply import patch_weights, restore_weights
from comfyless.lora.formats import place_patches, read_lora
from comfyless.models.checkpoint import load_checkpoint, load_diffusion_model
from comfyless.models.families import DetectionError, detect_family, family
from comfyless.models.families.flux import FLUX_DEV, FLUX_SCHNELL, writer
from comfyless.models.families.flux.conditioning import flux_conds
from comfyless.models.families.flux.config import FluxConfig, axes_for_head_dim
from comfyless.models.families.flux.names import bfl_name
from comfyless.models.families.flux.network import (
    FluxNetwork,
    apply_rope,
    convert_diffusers_transformer,
    image_ids,
    reference_placements,
    rope_tables,
)
from comfyless.typesys.errors import ModelLoadError
from tests.floats import assert_close_scaled

CONTEXT, POOLED = 32, 24  # tiny text widths (real: T5-XXL 4096, CLIP-L 768)
NAMES = ("flux", "flux-schnell")


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def _file_sd(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A tiny BFL file's tensors (prefix-free, `_norm.scale`)."""
    return writer.diffusion_model_state_dict(name, "tiny", seed, CONTEXT, POOLED)


def _net(name: str, seed: int = 0) -> FluxNetwork:
    net = FluxNetwork(writer.network_config(name, "tiny", CONTEXT, POOLED))
    net.load_state_dict({bfl_name(k): v for k, v in _file_sd(name, seed).items()})
    return net.eval().requires_grad_(False)


def _inputs(batch: int = 2, h: int = 8, w: int = 10, seed: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return dict(x=torch.randn(batch, 16, h, w, generator=g),
                timesteps=torch.tensor([0.3, 0.8][:batch]),
                context=torch.randn(batch, 5, CONTEXT, generator=g),
                y=torch.randn(batch, POOLED, generator=g),
                guidance=torch.tensor([3.5, 2.0][:batch]))


def _shapes(sd: dict[str, torch.Tensor], prefix: str = "") -> dict[str, tuple[int, ...]]:
    return {prefix + k: tuple(v.shape) for k, v in sd.items()}


# -- detection -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_detects_dev_and_schnell_from_bfl_keys(name):
    sd = _file_sd(name)
    for prefix in ("", "model.diffusion_model."):
        detected = detect_family(_shapes(sd, prefix), prefix=prefix)
        assert detected.record is family(name) and detected.prediction == "const"
        assert detected.config == writer.network_config(name, "tiny", CONTEXT, POOLED)
    # ComfyUI's own spelling (`_norm.weight`) is accepted too
    renamed = {bfl_name(k): v for k, v in sd.items()}
    assert detect_family(_shapes(renamed), prefix="").family == name
    # the prefix is found by key counts, as for SD checkpoints
    assert detect_family(_shapes(sd, "model.diffusion_model.")).family == name


def test_detects_the_real_shapes():
    for name, params in (("flux", 11.901e9), ("flux-schnell", 11.891e9)):
        shapes = writer.diffusion_model_shapes(name, "full")
        assert abs(sum(s.numel() for s in shapes.values()) - params) < 1e6  # spec §8
        cfg = detect_family(shapes, prefix="").config
        assert (cfg.hidden_size, cfg.num_heads, cfg.depth, cfg.depth_single_blocks) == (
            3072, 24, 19, 38)
        assert cfg.axes_dim == (16, 56, 56) and cfg.mlp_ratio == 4.0 and cfg.qkv_bias
        assert (cfg.context_in_dim, cfg.vec_in_dim, cfg.in_channels) == (4096, 768, 16)
        assert cfg.guidance_embed == (name == "flux")


@pytest.mark.parametrize("channels, what", [(96, "Fill"), (32, "Depth/Canny"), (20, "20 input")])
def test_extra_channel_variants_are_refused_by_name(channels, what):
    shapes = _shapes(_file_sd("flux"))
    shapes["img_in.weight"] = (64, channels * 4)
    with pytest.raises(DetectionError, match=f"{what}.*not supported yet"):
        detect_family(shapes, prefix="")


@pytest.mark.parametrize("key, what", [("distilled_guidance_layer.norms.0.scale", "Chroma")])
def test_other_flux_like_files_are_refused_by_name(key, what):
    shapes = _shapes(_file_sd("flux"))
    shapes[key] = (1,)
    with pytest.raises(DetectionError, match=what):
        detect_family(shapes, prefix="")


def test_unknown_layout_names_the_flux_trigger():
    with pytest.raises(DetectionError, match="double_blocks.0.img_attn.norm.key_norm"):
        detect_family({"foo.weight": (3, 4)}, prefix="")


def test_axes_split_keeps_the_real_proportions():
    assert axes_for_head_dim(128) == (16, 56, 56)
    assert axes_for_head_dim(32) == (4, 14, 14) and axes_for_head_dim(64) == (8, 28, 28)
    for d in (16, 24, 48, 96):
        axes = axes_for_head_dim(d)
        assert sum(axes) == d and all(a % 2 == 0 for a in axes)


# -- loading ---------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", ["", "model.diffusion_model."])
def test_load_diffusion_model_reads_bfl_files(prefix, tmp_path):
    sd = _file_sd("flux")
    path = tmp_path / "flux1-dev.safetensors"
    save_file({prefix + k: v for k, v in sd.items()}, str(path))
    model = load_diffusion_model(path)
    assert model.family == "flux" and isinstance(model.diffusion_model, FluxNetwork)
    assert model.sampling.kind == "flux" and model.sampling.shift == 1.15
    assert model.dtype == torch.float32
    ref, net = _net("flux"), model.diffusion_model
    for k, v in ref.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k


def test_load_checkpoint_reads_an_all_in_one_transformer(tmp_path):
    path = tmp_path / "flux1-schnell-aio.safetensors"
    save_file({"model.diffusion_model." + k: v for k, v in _file_sd("flux-schnell").items()},
              str(path))
    model, clip, vae = load_checkpoint(path)
    assert model.family == "flux-schnell" and clip is None and vae is None
    assert model.sampling.kind == "discrete" and model.sampling.multiplier == 1.0
    assert model.sampling.shift == 1.0


def test_fp8_file_keeps_fp8_weights_and_matches_the_upcast_model(tmp_path):
    fp8 = torch.float8_e4m3fn
    sd = {k: v.to(fp8) if v.ndim == 2 else v for k, v in _file_sd("flux").items()}
    path = tmp_path / "flux1-dev-fp8.safetensors"
    save_file(sd, str(path))
    model = load_diffusion_model(path)
    net = model.diffusion_model
    assert net.img_in.weight.dtype == fp8 and net.single_blocks[0].linear1.weight.dtype == fp8
    assert net.img_in.bias.dtype == torch.float32 and model.dtype == torch.float32
    upcast = FluxNetwork(net.config)
    upcast.load_state_dict({bfl_name(k): v.float() for k, v in sd.items()})
    inputs = _inputs()
    with torch.no_grad():
        ours, reference = net(**inputs), upcast(**inputs)
    assert ours.dtype == torch.float32
    assert_close_scaled(ours, reference, rtol=1e-5, atol_rel=1e-5)


# -- the diffusers layout --------------------------------------------------------------------

def to_diffusers(sd: dict[str, torch.Tensor], cfg: FluxConfig) -> dict[str, torch.Tensor]:
    """BFL/ComfyUI parameters (`_norm.weight`) -> diffusers FluxTransformer2DModel keys, written
    out here from diffusers' module names (independent of the package's table)."""
    h, out = cfg.hidden_size, {}

    def put(dst: str, src: str, rows: tuple[int, int] | None = None, swap: bool = False):
        for p in ("weight", "bias"):
            if f"{src}.{p}" in sd:
                t = sd[f"{src}.{p}"]
                t = t[rows[0]: rows[0] + rows[1]] if rows else t
                out[f"{dst}.{p}"] = torch.cat(t.chunk(2)[::-1]) if swap else t.clone()

    put("x_embedder", "img_in")
    put("context_embedder", "txt_in")
    put("proj_out", "final_layer.linear")
    put("norm_out.linear", "final_layer.adaLN_modulation.1", swap=True)
    for bfl, dif in (("time_in", "timestep_embedder"), ("vector_in", "text_embedder"),
                     ("guidance_in", "guidance_embedder")):
        put(f"time_text_embed.{dif}.linear_1", f"{bfl}.in_layer")
        put(f"time_text_embed.{dif}.linear_2", f"{bfl}.out_layer")
    for n in range(cfg.depth):
        d, t = f"double_blocks.{n}", f"transformer_blocks.{n}"
        for i, x in enumerate("qkv"):
            put(f"{t}.attn.to_{x}", f"{d}.img_attn.qkv", (i * h, h))
            put(f"{t}.attn.add_{x}_proj", f"{d}.txt_attn.qkv", (i * h, h))
        for dif, bfl in (("attn.to_out.0", "img_attn.proj"), ("attn.to_add_out", "txt_attn.proj"),
                         ("norm1.linear", "img_mod.lin"), ("norm1_context.linear", "txt_mod.lin"),
                         ("ff.net.0.proj", "img_mlp.0"), ("ff.net.2", "img_mlp.2"),
                         ("ff_context.net.0.proj", "txt_mlp.0"), ("ff_context.net.2", "txt_mlp.2"),
                         ("attn.norm_q", "img_attn.norm.query_norm"),
                         ("attn.norm_k", "img_attn.norm.key_norm"),
                         ("attn.norm_added_q", "txt_attn.norm.query_norm"),
                         ("attn.norm_added_k", "txt_attn.norm.key_norm")):
            put(f"{t}.{dif}", f"{d}.{bfl}")
    for n in range(cfg.depth_single_blocks):
        s, t = f"single_blocks.{n}", f"single_transformer_blocks.{n}"
        for i, x in enumerate("qkv"):
            put(f"{t}.attn.to_{x}", f"{s}.linear1", (i * h, h))
        put(f"{t}.proj_mlp", f"{s}.linear1", (3 * h, cfg.mlp_hidden))
        for dif, bfl in (("proj_out", "linear2"), ("norm.linear", "modulation.lin"),
                         ("attn.norm_q", "norm.query_norm"), ("attn.norm_k", "norm.key_norm")):
            put(f"{t}.{dif}", f"{s}.{bfl}")
    return out


def _diffusers_model(cfg: FluxConfig, sd: dict[str, torch.Tensor]):
    diffusers = pytest.importorskip("diffusers")
    model = diffusers.FluxTransformer2DModel(
        patch_size=1, in_channels=cfg.in_channels * 4, num_layers=cfg.depth,
        num_single_layers=cfg.depth_single_blocks, attention_head_dim=cfg.head_dim,
        num_attention_heads=cfg.num_heads, joint_attention_dim=cfg.context_in_dim,
        pooled_projection_dim=cfg.vec_in_dim, guidance_embeds=cfg.guidance_embed,
        axes_dims_rope=tuple(cfg.axes_dim))
    model.load_state_dict(sd, strict=True)
    return model.eval()


def _diffusers_forward(model, x, timesteps, context, y, guidance=None) -> torch.Tensor:
    """Their forward on our layout: pack 2x2 patches (c, ph, pw), ids (0, row, col), unpack."""
    b, c, h, w = x.shape
    packed = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5)
    packed = packed.reshape(b, (h // 2) * (w // 2), c * 4)
    img_ids = image_ids(1, h // 2, w // 2)[0]
    txt_ids = torch.zeros(context.shape[1], 3)
    out = model(hidden_states=packed, encoder_hidden_states=context, pooled_projections=y,
                timestep=timesteps, img_ids=img_ids, txt_ids=txt_ids, guidance=guidance,
                return_dict=False)[0]
    out = out.reshape(b, h // 2, w // 2, c, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return out.reshape(b, c, h, w)


@pytest.mark.parametrize("name", NAMES)
def test_network_matches_diffusers(name):
    net = _net(name)
    theirs_model = _diffusers_model(net.config, to_diffusers(net.state_dict(), net.config))
    inputs = _inputs()
    guidance = inputs.pop("guidance") if name == "flux" else None
    inputs.pop("guidance", None)
    with torch.no_grad():
        ours = net(**inputs, guidance=guidance)
        theirs = _diffusers_forward(theirs_model, **inputs, guidance=guidance)
    diff = float((ours - theirs).abs().max())
    print(f"\n{name}: max |ours - diffusers| = {diff:.3g} (output std {float(ours.std()):.3g})")
    assert ours.abs().max() > 0.1 and diff <= 1e-4


def test_diffusers_layout_file_loads_like_the_bfl_file(tmp_path):
    net = _net("flux")
    dif = to_diffusers(net.state_dict(), net.config)
    converted = convert_diffusers_transformer(dif)
    assert set(converted) == set(net.state_dict())
    assert all(torch.equal(converted[k], v) for k, v in net.state_dict().items())
    path = tmp_path / "diffusion_pytorch_model.safetensors"
    save_file(dif, str(path))
    model = load_diffusion_model(path)
    assert model.family == "flux"
    inputs = _inputs()
    with torch.no_grad():
        assert_close_scaled(model.diffusion_model(**inputs), net(**inputs))


def test_missing_keys_are_a_load_error_not_a_traceback(tmp_path):
    sd = _file_sd("flux")
    del sd["single_blocks.1.linear2.weight"]
    path = tmp_path / "broken.safetensors"
    save_file(sd, str(path))
    with pytest.raises(ModelLoadError, match="single_blocks.1.linear2.weight"):
        load_diffusion_model(path)


# -- RoPE, ids, patches, reference latents ---------------------------------------------------

def test_image_ids_are_index_row_col_row_major():
    ids = image_ids(2, 2, 3, index=1, h_offset=4, w_offset=5)
    assert ids.shape == (2, 6, 3) and ids.dtype == torch.float32
    assert ids[0].tolist() == [[1, 4, 5], [1, 4, 6], [1, 4, 7], [1, 5, 5], [1, 5, 6], [1, 5, 7]]


def test_rope_rotates_interleaved_pairs_by_position_times_frequency():
    axes, theta = (4, 14, 14), 10000
    ids = torch.tensor([[[0.0, 3.0, 2.0]]])
    cos, sin = rope_tables(ids, axes, theta)
    assert cos.shape == (1, 1, 1, 16) and cos.dtype == torch.float32
    # axis 1 (rows) covers pairs 2..8: angle_j = 3·θ^(−2j/14)
    expect = torch.tensor([3.0 * theta ** (-2 * j / 14) for j in range(7)], dtype=torch.float64)
    assert torch.allclose(cos[0, 0, 0, 2:9].double(), expect.cos(), atol=1e-7)
    assert torch.allclose(sin[0, 0, 0, 9:16].double(),
                          (2 / 3 * expect).sin(), atol=1e-7)  # axis 2: col 2
    x = torch.zeros(1, 1, 1, 32)
    x[..., 0::2] = 1.0  # every pair (1, 0) -> (cos, sin)
    out = apply_rope(x, cos, sin)
    assert torch.allclose(out[..., 0::2], cos) and torch.allclose(out[..., 1::2], sin)
    # text ids (all 0) leave q and k unchanged
    zc, zs = rope_tables(torch.zeros(1, 1, 3), axes, theta)
    assert torch.equal(apply_rope(x, zc, zs), x)


def test_rope_scores_depend_on_relative_positions_only():
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(1, 1, 1, 32, generator=g), torch.randn(1, 1, 1, 32, generator=g)

    def score(pq, pk):
        cq, sq = rope_tables(torch.tensor([[pq]]), (4, 14, 14), 10000)
        ck, sk = rope_tables(torch.tensor([[pk]]), (4, 14, 14), 10000)
        return float((apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum())

    a = score([0.0, 2.0, 3.0], [0.0, 5.0, 1.0])
    b = score([1.0, 12.0, 13.0], [1.0, 15.0, 11.0])
    assert abs(a - b) < 1e-4 and abs(a - score([0.0, 2.0, 3.0], [0.0, 6.0, 1.0])) > 1e-3


def test_odd_sizes_are_padded_circularly_and_cropped():
    net = _net("flux-schnell")
    inputs = _inputs(batch=1, h=7, w=9)
    inputs.pop("guidance")
    with torch.no_grad():
        out = net(**inputs)
    assert out.shape == (1, 16, 7, 9) and torch.isfinite(out).all()


def test_reference_placement_offset_tiles_below_then_right():
    # square refs stack below; a ref taller than the used width goes right
    assert reference_placements([(8, 8), (8, 8), (20, 4)]) == [(1, 0, 0), (1, 8, 0),
                                                               (1, 0, 8)]
    assert reference_placements([(4, 8), (6, 2)]) == [(1, 0, 0), (1, 4, 0)]  # 6+4 = 2+8: below
    assert reference_placements([(4, 8), (6, 1)]) == [(1, 0, 0), (1, 0, 8)]  # 6+4 > 1+8: right
    assert reference_placements([(8, 8), (6, 6)], "index") == [(1, 0, 0), (2, 0, 0)]
    with pytest.raises(ValueError, match="offset"):
        reference_placements([(8, 8)], "sideways")


def test_reference_latents_join_attention_and_leave_the_output_shape():
    net = _net("flux")
    inputs = _inputs(batch=2, h=6, w=8)
    refs = [torch.randn(1, 16, 6, 6), torch.randn(1, 16, 4, 10)]
    with torch.no_grad():
        plain = net(**inputs)
        with_refs = net(**inputs, ref_latents=refs)
        again = net(**inputs, ref_latents=[r.repeat(2, 1, 1, 1) for r in refs])
        other_method = net(**inputs, ref_latents=refs, ref_latents_method="index")
    assert with_refs.shape == plain.shape == (2, 16, 6, 8)
    assert (with_refs - plain).abs().max() > 1e-3  # the image attends to the references
    assert_close_scaled(again, with_refs)  # a batch-1 reference serves every sample
    assert (other_method - with_refs).abs().max() > 1e-5  # positions differ per method


def test_guidance_none_skips_the_guidance_embedding():
    net = _net("flux")
    inputs = _inputs()
    inputs["guidance"] = None
    with torch.no_grad():
        out = net(**inputs)
        net.guidance_in.in_layer.weight.mul_(2.0)
        assert torch.equal(net(**inputs), out)
        inputs["y"] = None  # pooled defaults to zeros
        assert net(**inputs).shape == out.shape


def test_fp16_activations_are_clamped():
    from comfyless.models.families.flux.network import _fp16_safe

    x = torch.tensor([float("nan"), float("inf"), -float("inf"), 1.0], dtype=torch.float16)
    assert _fp16_safe(x).tolist() == [0.0, 65504.0, -65504.0, 1.0]
    assert torch.isnan(_fp16_safe(x.float())[0])  # other dtypes untouched


# -- family records, sampling, conditioning --------------------------------------------------

def test_family_records():
    assert family("flux-dev") is FLUX_DEV and family("flux1") is FLUX_DEV
    assert family("flux-schnell") is FLUX_SCHNELL
    dev, schnell = FLUX_DEV.make_sampling(), FLUX_SCHNELL.make_sampling()
    assert (dev.prediction, dev.kind, dev.shift, len(dev.sigmas)) == ("const", "flux", 1.15, 10000)
    assert (schnell.kind, schnell.shift, schnell.multiplier) == ("discrete", 1.0, 1.0)
    with pytest.raises(ValueError, match="CONST"):
        FLUX_DEV.make_sampling("eps")
    for record in (FLUX_DEV, FLUX_SCHNELL):
        assert record.latent_format.channels == 16 and record.default_size == (1024, 1024)
        assert record.vae_prefix == "vae." and record.clip_type == "flux"


def test_flux_conds_and_apply_model(tmp_path):
    path = tmp_path / "flux1-dev.safetensors"
    save_file(_file_sd("flux"), str(path))
    model = load_diffusion_model(path)
    pooled = torch.randn(1, POOLED)
    extra = model.extra_conds({"pooled_output": pooled}, 64, 64)
    assert set(extra) == {"y", "guidance"} and extra["guidance"].tolist() == [3.5]
    assert torch.equal(extra["y"], pooled)
    assert "guidance" not in model.extra_conds({"guidance": None}, 64, 64)
    assert model.extra_conds({"guidance": 30.0}, 64, 64)["guidance"].tolist() == [30.0]
    assert torch.equal(model.extra_conds({}, 64, 64)["y"], torch.zeros(1, POOLED))
    ref = torch.randn(1, 16, 4, 4)
    refs = model.extra_conds({"reference_latents": [ref]}, 64, 64)["ref_latents"]
    assert torch.allclose(refs[0], (ref - 0.1159) * 0.3611)  # the Flux latent format
    # apply_model: x0 = x − σ·v with the network's velocity at timestep σ
    inputs = _inputs()
    sigma = torch.tensor([0.3, 0.8])
    with torch.no_grad():
        x0 = model.apply_model(inputs["x"], sigma, inputs["context"], **extra)
        v = model.diffusion_model(inputs["x"], sigma, inputs["context"],
                                  y=pooled.repeat(2, 1), guidance=torch.tensor([3.5, 3.5]))
    assert_close_scaled(x0, inputs["x"] - sigma[:, None, None, None] * v)


def test_schnell_conds_have_no_guidance():
    class Patcher:
        diffusion_model = _net("flux-schnell")

    assert set(flux_conds(Patcher(), {"guidance": 4.0}, 64, 64)) == {"y"}


# -- test files ------------------------------------------------------------------------------

def test_lazy_writer_matches_the_state_dict(tmp_path):
    from safetensors.torch import load_file

    path = writer.write_diffusion_model(tmp_path / "f.safetensors", "flux", "tiny", seed=3,
                                        dtype=torch.bfloat16, context_in_dim=CONTEXT,
                                        vec_in_dim=POOLED)
    written, expected = load_file(str(path)), _file_sd("flux", seed=3)
    assert set(written) == set(expected) and "img_in.weight" in written
    assert any(k.endswith("_norm.scale") for k in written)
    assert all(torch.equal(written[k], v.to(torch.bfloat16)) for k, v in expected.items())
    with pytest.raises(ValueError, match="never built in memory"):
        writer.diffusion_model_state_dict("flux", "full")


# -- LoRA ------------------------------------------------------------------------------------

def _lora_pair(out: int, inp: int, rank: int, g: torch.Generator):
    return torch.randn(out, rank, generator=g) * 0.1, torch.randn(rank, inp, generator=g) * 0.1


def _net_shapes(net: FluxNetwork) -> dict[str, tuple[int, ...]]:
    return {n: tuple(p.shape) for n, p in net.named_parameters()}


def test_comfyui_and_kohya_keys_land_on_bfl_weights():
    net = _net("flux")
    g = torch.Generator().manual_seed(0)
    up, down = _lora_pair(192, 64, 4, g)
    sd = {
        "diffusion_model.double_blocks.0.img_attn.qkv.lora_up.weight": up,
        "diffusion_model.double_blocks.0.img_attn.qkv.lora_down.weight": down,
        "diffusion_model.double_blocks.0.img_attn.qkv.alpha": torch.tensor(2.0),
        "diffusion_model.double_blocks.0.img_attn.qkv.diff_b": torch.zeros(192),
        "diffusion_model.double_blocks.0.img_attn.norm.query_norm.diff": torch.zeros(32),
        "lora_unet_single_blocks_1_linear2.lora_up.weight": torch.zeros(64, 4),
        "lora_unet_single_blocks_1_linear2.lora_down.weight": torch.zeros(4, 64 + 256),
        "diffusion_model.single_blocks.0.linear1_qkv.lora_up.weight": torch.zeros(192, 4),
        "diffusion_model.single_blocks.0.linear1_qkv.lora_down.weight": torch.zeros(4, 64),
    }
    patches, unplaced = place_patches(sd, net.lora_key_map(), _net_shapes(net))
    assert unplaced == {}
    assert patches["double_blocks.0.img_attn.qkv.weight"][0].alpha == 2.0
    assert {p.kind for p in patches["double_blocks.0.img_attn.qkv.bias"]} == {"diff"}
    assert "double_blocks.0.img_attn.norm.query_norm.weight" in patches
    assert "single_blocks.1.linear2.weight" in patches
    assert patches["single_blocks.0.linear1.weight"][0].offset == (0, 0, 192)


def test_diffusers_names_map_to_row_slices_in_every_spelling():
    net = _net("flux")
    key_map = net.lora_key_map()
    h, f = 64, 256
    spellings = (lambda d: f"transformer.{d}", lambda d: d,
                 lambda d: "lycoris_" + d.replace(".", "_"),
                 lambda d: "lora_transformer_" + d.replace(".", "_"))
    for spell in spellings:
        def at(d, spell=spell):
            return key_map[spell(d)]
        assert at("transformer_blocks.1.attn.to_k") == ("double_blocks.1.img_attn.qkv.weight",
                                                        (0, h, h))
        assert at("transformer_blocks.0.attn.add_v_proj") == (
            "double_blocks.0.txt_attn.qkv.weight", (0, 2 * h, h))
        assert at("single_transformer_blocks.1.proj_mlp") == ("single_blocks.1.linear1.weight",
                                                              (0, 3 * h, f))
        assert at("transformer_blocks.0.ff_context.net.2") == "double_blocks.0.txt_mlp.2.weight"
        assert at("norm_out.linear") == "final_layer.adaLN_modulation.1.weight"
    assert key_map["transformer.transformer_blocks.0.ff.linear_in"] == (
        "double_blocks.0.img_mlp.0.weight")
    # every weight of diffusers' model has a name in the map
    theirs = _diffusers_model(net.config, to_diffusers(net.state_dict(), net.config))
    weights = [n[: -len(".weight")] for n, _ in theirs.named_parameters() if n.endswith(".weight")]
    assert [w for w in weights if f"transformer.{w}" not in key_map] == []


def _diffusers_lora(model, rank: int, seed: int) -> dict[str, torch.Tensor]:
    """A PEFT-style LoRA (lora_A/lora_B, no alpha) on every Linear of diffusers' model, plus
    a bias diff on norm_out.linear."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear):
            up, down = _lora_pair(module.out_features, module.in_features, rank, g)
            sd[f"transformer.{name}.lora_B.weight"] = up
            sd[f"transformer.{name}.lora_A.weight"] = down
    sd["transformer.norm_out.linear.diff_b"] = torch.randn(2 * 64, generator=g) * 0.1
    return sd


def _merge_into_diffusers(model, lora: dict[str, torch.Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for key, up in lora.items():
            if key.endswith(".lora_B.weight"):
                name = key[len("transformer."): -len(".lora_B.weight")]
                down = lora[key.replace("lora_B", "lora_A")]
                params[name + ".weight"].add_(up @ down)
        params["norm_out.linear.bias"].add_(lora["transformer.norm_out.linear.diff_b"])


@pytest.mark.parametrize("name", NAMES)
def test_diffusers_lora_merged_matches_diffusers_with_the_same_lora(name):
    net = _net(name)
    theirs = _diffusers_model(net.config, to_diffusers(net.state_dict(), net.config))
    lora = _diffusers_lora(theirs, rank=4, seed=5)
    converted = FluxNetwork.convert_lora_file(lora)
    assert converted is not lora and "transformer.norm_out.linear.lora_B.weight" in converted
    patches, unplaced = place_patches(converted, net.lora_key_map(), _net_shapes(net))
    assert unplaced == {}
    # q, k, v and proj_mlp: four patches on row slices of one fused weight
    assert {p.offset for p in patches["single_blocks.0.linear1.weight"]} == {
        (0, 0, 64), (0, 64, 64), (0, 128, 64), (0, 192, 256)}
    inputs = _inputs()
    guidance = inputs.pop("guidance") if name == "flux" else None
    inputs.pop("guidance", None)
    with torch.no_grad():
        plain = net(**inputs, guidance=guidance)
    backup = patch_weights(net, [(patches, 1.0)])
    _merge_into_diffusers(theirs, lora)
    with torch.no_grad():
        ours = net(**inputs, guidance=guidance)
    assert (ours - plain).abs().max() > 0.1  # the LoRA matters
    with torch.no_grad():
        reference = _diffusers_forward(theirs, **inputs, guidance=guidance)
    diff = float((ours - reference).abs().max())
    print(f"\n{name} + diffusers LoRA: max |ours - diffusers| = {diff:.3g}")
    assert diff <= 1e-4
    # and the merged weights are the diffusers weights in the BFL layout
    merged = convert_diffusers_transformer(dict(theirs.state_dict()))
    for k, v in net.state_dict().items():
        assert_close_scaled(v, merged[k], msg=k)
    restore_weights(net, backup)
    assert all(torch.equal(v, _net(name).state_dict()[k]) for k, v in net.state_dict().items())


def test_read_lora_uses_the_networks_own_map_and_converter():
    net = _net("flux")
    g = torch.Generator().manual_seed(2)
    up, down = _lora_pair(128, 64, 2, g)
    sd = {"norm_out.linear.lora_B.weight": up, "norm_out.linear.lora_A.weight": down}
    patches, unplaced = read_lora(sd, "unet", net)
    assert unplaced == {}
    placed = patches["final_layer.adaLN_modulation.1.weight"][0].tensors["up"]
    assert torch.equal(placed, torch.cat([up[64:], up[:64]]))  # (scale, shift) -> (shift, scale)
    plain = {"transformer.x_embedder.lora_B.weight": torch.zeros(64, 2)}
    assert FluxNetwork.convert_lora_file(plain) is plain


def test_model_patcher_applies_a_flux_lora_merged_and_bypassed(tmp_path):
    path = tmp_path / "flux1-dev.safetensors"
    save_file(_file_sd("flux"), str(path))
    model = load_diffusion_model(path)
    g = torch.Generator().manual_seed(7)
    lora = {}
    for d, (out, inp) in {"transformer_blocks.0.attn.to_v": (64, 64),
                          "single_transformer_blocks.1.proj_mlp": (256, 64),
                          "norm_out.linear": (128, 64), "x_embedder": (64, 64)}.items():
        up, down = _lora_pair(out, inp, 2, g)
        lora[f"transformer.{d}.lora_B.weight"], lora[f"transformer.{d}.lora_A.weight"] = up, down
    inputs = _inputs()
    extra = {"y": inputs["y"], "guidance": inputs["guidance"]}
    sigma = inputs["timesteps"]
    with torch.no_grad():
        base = model.apply_model(inputs["x"], sigma, inputs["context"], **extra)
        merged = model.with_lora(lora, 0.8).apply_model(inputs["x"], sigma, inputs["context"],
                                                        **extra)
        bypass = model.with_lora(lora, 0.8, bypass=True).apply_model(
            inputs["x"], sigma, inputs["context"], **extra)
        after = model.apply_model(inputs["x"], sigma, inputs["context"], **extra)
    assert (merged - base).abs().max() > 1e-3
    assert_close_scaled(bypass, merged)
    assert torch.equal(after, base)  # weights restored


def _swapped(t: torch.Tensor) -> torch.Tensor:
    return torch.cat(t.chunk(2)[::-1])


def test_norm_out_swap_covers_loha_lokr_and_diffs():
    g = torch.Generator().manual_seed(3)

    def r(*shape):
        return torch.randn(*shape, generator=g)

    p = "lycoris_norm_out_linear"
    loha = {f"{p}.hada_w1_a": r(128, 2), f"{p}.hada_w1_b": r(2, 64),
            f"{p}.hada_w2_a": r(128, 2), f"{p}.hada_w2_b": r(2, 64), f"{p}.alpha": r(())}
    out = FluxNetwork.convert_lora_file(loha)
    delta = (loha[f"{p}.hada_w1_a"] @ loha[f"{p}.hada_w1_b"]) * (
        loha[f"{p}.hada_w2_a"] @ loha[f"{p}.hada_w2_b"])
    assert torch.allclose((out[f"{p}.hada_w1_a"] @ out[f"{p}.hada_w1_b"]) * (
        out[f"{p}.hada_w2_a"] @ out[f"{p}.hada_w2_b"]), _swapped(delta))
    for w1_rows in (2, 1):  # kron(w1, w2): swap w1's halves, or w2's when w1 has one row
        lokr = {f"{p}.lokr_w1": r(w1_rows, 4), f"{p}.lokr_w2": r(128 // w1_rows, 16)}
        out = FluxNetwork.convert_lora_file(lokr)
        assert torch.equal(torch.kron(out[f"{p}.lokr_w1"], out[f"{p}.lokr_w2"]),
                           _swapped(torch.kron(lokr[f"{p}.lokr_w1"], lokr[f"{p}.lokr_w2"])))
    diffs = {"norm_out.linear.diff": r(128, 64), "norm_out.linear.diff_b": r(128)}
    out = FluxNetwork.convert_lora_file(diffs)
    assert all(torch.equal(out[k], _swapped(v)) for k, v in diffs.items())
