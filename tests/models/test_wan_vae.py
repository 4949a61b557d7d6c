"""The Wan 2.1 / Qwen-Image causal 3-D VAE: key layout, diffusers oracle (images and clips),
file layouts and prefixes through VAELoader, the VAE nodes, and refusals."""

from __future__ import annotations

import re

import pytest
import torch
from safetensors.torch import save_file

from comfyless.engine.context import RunContext
from comfyless.models import vae as vae_mod
from comfyless.models import wan_vae
from comfyless.models.vae import VAE, load_vae
from comfyless.models.wan_vae import WanVAENetwork, wan_vae_config, wan_vae_state_dict
from comfyless.nodes.latent import VAEDecode, VAEEncode
from comfyless.nodes.loaders import VAELoader
from comfyless.typesys.errors import ModelLoadError
from tests.floats import assert_close_scaled

# The oracle's bound from the brief: fp32, same weights, another implementation.
ORACLE_MAX_ABS = 1e-4


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def tiny_sd():
    """Tiny (base dim 16) weights as in `qwen_image_vae.safetensors`: bare ComfyUI keys."""
    return wan_vae_state_dict("tiny", _gen(0))


@pytest.fixture(scope="module")
def tiny_vae(tiny_sd):
    return load_vae(tiny_sd)


# --- layout --------------------------------------------------------------------------------

def test_full_size_shapes_and_parameter_count():
    """model-families.md §4.3 shapes (C = 96) and §8's 126.9 M parameters."""
    with torch.device("meta"):
        sd = WanVAENetwork(wan_vae_config("full")).state_dict()
    shapes = {
        "encoder.conv1.weight": (96, 3, 3, 3, 3),
        "encoder.downsamples.0.residual.0.gamma": (96, 1, 1, 1),
        "encoder.downsamples.2.resample.1.weight": (96, 96, 3, 3),
        "encoder.downsamples.3.shortcut.weight": (192, 96, 1, 1, 1),
        "encoder.downsamples.5.time_conv.weight": (192, 192, 3, 1, 1),
        "encoder.downsamples.8.time_conv.weight": (384, 384, 3, 1, 1),
        "encoder.downsamples.10.residual.6.weight": (384, 384, 3, 3, 3),
        "encoder.middle.1.norm.gamma": (384, 1, 1),
        "encoder.middle.1.to_qkv.weight": (1152, 384, 1, 1),
        "encoder.middle.1.proj.weight": (384, 384, 1, 1),
        "encoder.head.0.gamma": (384, 1, 1, 1),
        "encoder.head.2.weight": (32, 384, 3, 3, 3),
        "conv1.weight": (32, 32, 1, 1, 1),
        "conv2.weight": (16, 16, 1, 1, 1),
        "decoder.conv1.weight": (384, 16, 3, 3, 3),
        "decoder.upsamples.3.resample.1.weight": (192, 384, 3, 3),
        "decoder.upsamples.3.time_conv.weight": (768, 384, 3, 1, 1),
        "decoder.upsamples.4.shortcut.weight": (384, 192, 1, 1, 1),
        "decoder.upsamples.11.resample.1.weight": (96, 192, 3, 3),
        "decoder.upsamples.14.residual.6.weight": (96, 96, 3, 3, 3),
        "decoder.head.0.gamma": (96, 1, 1, 1),
        "decoder.head.2.weight": (3, 96, 3, 3, 3),
    }
    for key, shape in shapes.items():
        assert tuple(sd[key].shape) == shape, key
    assert "decoder.upsamples.11.time_conv.weight" not in sd  # the last up level is 2-D only
    assert "encoder.downsamples.2.time_conv.weight" not in sd  # so is the first down level
    assert max(int(k.split(".")[2]) for k in sd if k.startswith("encoder.downsamples.")) == 10
    assert max(int(k.split(".")[2]) for k in sd if k.startswith("decoder.upsamples.")) == 14
    assert round(sum(t.numel() for t in sd.values()) / 1e6, 1) == 126.9
    assert wan_vae.infer_config(sd) == wan_vae_config("full")


@pytest.mark.parametrize("prefix", ["", "vae."])
def test_writer_prefixes_and_config(prefix):
    sd = wan_vae_state_dict("tiny", _gen(1), prefix=prefix)
    tops = tuple(prefix + t for t in ("encoder.", "decoder.", "conv1.", "conv2."))
    assert all(k.startswith(tops) for k in sd)
    assert wan_vae.wan_vae_prefix(sd) == prefix
    cfg = wan_vae.infer_config({k[len(prefix):]: v for k, v in sd.items()})
    assert cfg == wan_vae_config("tiny") and cfg.dim == 16


def test_bad_size_is_named():
    with pytest.raises(ValueError, match="size 'huge'"):
        wan_vae_state_dict("huge", _gen())


# --- diffusers oracle ----------------------------------------------------------------------

_TO_DIFFUSERS_RESNET = {"residual.0": "norm1", "residual.2": "conv1", "residual.3": "norm2",
                        "residual.6": "conv2", "shortcut": "conv_shortcut"}


def _resnet(rest: str) -> str:
    for ours, theirs in _TO_DIFFUSERS_RESNET.items():
        if rest.startswith(ours + "."):
            return theirs + rest[len(ours):]
    return rest  # resample.1 / time_conv / attention names are the same


def _to_diffusers_name(key: str, per_up_block: int) -> str:
    """ComfyUI/Wan name -> AutoencoderKLQwenImage name (spec table, written independently of
    the package's converter)."""
    for ours, theirs in (("conv1.", "quant_conv."), ("conv2.", "post_quant_conv.")):
        if key.startswith(ours):
            return theirs + key[len(ours):]
    part, rest = key.split(".", 1)
    for ours, theirs in (("conv1.", "conv_in."), ("head.0.", "norm_out."),
                         ("head.2.", "conv_out.")):
        if rest.startswith(ours):
            return f"{part}.{theirs}{rest[len(ours):]}"
    if m := re.match(r"middle\.(\d)\.(.*)", rest):
        n, inner = int(m.group(1)), m.group(2)
        if n == 1:
            return f"{part}.mid_block.attentions.0.{inner}"
        return f"{part}.mid_block.resnets.{n // 2}.{_resnet(inner)}"
    if m := re.match(r"downsamples\.(\d+)\.(.*)", rest):
        return f"{part}.down_blocks.{m.group(1)}.{_resnet(m.group(2))}"
    m = re.match(r"upsamples\.(\d+)\.(.*)", rest)
    block, slot = divmod(int(m.group(1)), per_up_block)
    if slot == per_up_block - 1:
        return f"{part}.up_blocks.{block}.upsamplers.0.{m.group(2)}"
    return f"{part}.up_blocks.{block}.resnets.{slot}.{_resnet(m.group(2))}"


def _diffusers_vae(sd):
    diffusers = pytest.importorskip("diffusers")
    cfg = wan_vae.infer_config(sd)
    model = diffusers.AutoencoderKLQwenImage(
        base_dim=cfg.dim, z_dim=cfg.z_dim, dim_mult=list(cfg.dim_mult),
        num_res_blocks=cfg.num_res_blocks, attn_scales=[],
        temperal_downsample=list(cfg.temporal_downsample))
    per_up_block = cfg.num_res_blocks + 2  # resnets + one upsampler
    model.load_state_dict({_to_diffusers_name(k, per_up_block): v for k, v in sd.items()})
    return model.eval()  # strict load above: every key placed


@pytest.fixture(scope="module")
def reference(tiny_sd):
    return _diffusers_vae(tiny_sd)


def test_matches_diffusers_on_images(tiny_vae, reference, one_torch_thread):
    pixels = torch.rand(2, 32, 48, 3, generator=_gen(3))
    z = torch.randn(2, 16, 4, 6, generator=_gen(4))
    with torch.no_grad():
        dist = reference.encode(pixels.movedim(-1, 1).unsqueeze(2) * 2 - 1).latent_dist
        decoded = reference.decode(z.unsqueeze(2)).sample.squeeze(2)
    ref_image = ((decoded + 1) / 2).clamp(0, 1).movedim(1, -1)
    mean, logvar = tiny_vae.encode_moments(pixels)
    image = tiny_vae.decode(z)
    assert mean.shape == (2, 16, 4, 6) and dist.mean.shape == (2, 16, 1, 4, 6)
    assert image.shape == ref_image.shape == (2, 32, 48, 3)
    diffs = {"mean": (mean - dist.mean.squeeze(2)).abs().max().item(),
             "logvar": (logvar - dist.logvar.squeeze(2)).abs().max().item(),
             "decode": (image - ref_image).abs().max().item()}
    print("Wan VAE vs diffusers AutoencoderKLQwenImage (image), max abs diff:", diffs)
    assert max(diffs.values()) <= ORACLE_MAX_ABS, diffs
    assert_close_scaled(mean, dist.mean.squeeze(2), rtol=1e-4, atol_rel=1e-4)
    assert_close_scaled(image, ref_image, rtol=1e-4, atol_rel=1e-4)
    assert 0.05 < image.std() and mean.std() > 0.05  # not a degenerate all-flat comparison


def test_matches_diffusers_on_clips(tiny_vae, reference, one_torch_thread):
    """Whole-clip causal passes equal the reference's chunked, frame-cached ones: 7 frames are
    cut to 5 (1 + 4k) -> 2 latent frames; 3 latent frames -> 1 + 4*2 = 9 frames."""
    clip = torch.rand(1, 3, 7, 16, 16, generator=_gen(5)) * 2 - 1
    z = torch.randn(1, 16, 3, 2, 2, generator=_gen(6))
    net = tiny_vae.model
    with torch.no_grad():
        ref_mean = reference.encode(clip).latent_dist.mean
        ref_frames = reference.decode(z).sample
        mean, _ = net.moments(clip)
        frames = net.decode(z).clamp(-1, 1)
    assert mean.shape == ref_mean.shape == (1, 16, 2, 2, 2)
    assert frames.shape == ref_frames.shape == (1, 3, 9, 16, 16)
    diffs = {"mean": (mean - ref_mean).abs().max().item(),
             "decode": (frames - ref_frames).abs().max().item()}
    print("Wan VAE vs diffusers AutoencoderKLQwenImage (clip), max abs diff:", diffs)
    assert max(diffs.values()) <= ORACLE_MAX_ABS, diffs
    # the wrapper gives the frames as a batch of images
    images = tiny_vae.decode(z)
    assert images.shape == (9, 16, 16, 3)
    assert_close_scaled(images, ((ref_frames[0] + 1) / 2).clamp(0, 1).movedim(0, -1),
                        rtol=1e-4, atol_rel=1e-4)


def test_diffusers_layout_file_loads(tiny_sd, tiny_vae, reference):
    vae = load_vae({"vae." + k: v for k, v in reference.state_dict().items()})
    assert vae.model.config == tiny_vae.model.config
    for name, p in vae.model.state_dict().items():
        assert torch.equal(p, tiny_sd[name]), name  # every tensor in its ComfyUI place


# --- payload and nodes ---------------------------------------------------------------------

def test_payload_interface(tiny_vae):
    assert isinstance(tiny_vae, VAE) and isinstance(tiny_vae.model, WanVAENetwork)
    assert (tiny_vae.latent_channels, tiny_vae.downscale_ratio) == (16, 8)
    assert tiny_vae.dtype == torch.float32 and tiny_vae.device == torch.device("cpu")


def test_vae_nodes_round_trip_shapes(tmp_path, tiny_vae):
    enc = RunContext.create(tmp_path / "base").for_node("4", "VAEEncode")
    dec = enc.for_node("5", "VAEDecode")
    pixels = torch.rand(2, 70, 41, 3, generator=_gen(7))  # cropped to 64 x 40
    (latent,) = VAEEncode.execute(enc, pixels=pixels, vae=tiny_vae)
    assert latent["samples"].shape == (2, 16, 8, 5) and latent["samples"].dtype == torch.float32
    (image,) = VAEDecode.execute(dec, samples=latent, vae=tiny_vae)
    assert image.shape == (2, 64, 40, 3) and image.dtype == torch.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    # the 5-D one-frame form decodes to the same images
    (again,) = VAEDecode.execute(dec, samples={"samples": latent["samples"].unsqueeze(2)},
                                 vae=tiny_vae)
    assert_close_scaled(again, image)


def test_batch_chunking_gives_the_same_latents(tiny_vae, monkeypatch):
    pixels = torch.rand(3, 16, 16, 3, generator=_gen(8))
    whole = tiny_vae.encode(pixels)
    monkeypatch.setattr(vae_mod.VAE, "_chunk", lambda self, n: 1)  # one image per pass
    assert_close_scaled(tiny_vae.encode(pixels), whole)


def _vae_folder(tmp_path):
    ctx = RunContext.create(tmp_path / "base").for_node("3", "VAELoader")
    folder = ctx.paths.folders("vae")[0]
    folder.mkdir(parents=True)
    return ctx, folder


def test_vae_loader_reads_bare_and_all_in_one_files(tmp_path, tiny_sd, tiny_vae):
    ctx, folder = _vae_folder(tmp_path)
    save_file(tiny_sd, folder / "qwen_image_vae.safetensors")
    aio = {"vae." + k: v for k, v in tiny_sd.items()}
    aio["model.diffusion_model.txt_norm.weight"] = torch.ones(8)
    aio["text_encoders.qwen25_7b.transformer.model.norm.weight"] = torch.ones(8)
    save_file(aio, folder / "qwen_aio.safetensors")
    z = torch.randn(1, 16, 3, 4, generator=_gen(9))
    expected = tiny_vae.decode(z)
    for name in ("qwen_image_vae.safetensors", "qwen_aio.safetensors"):
        (vae,) = VAELoader.execute(ctx, vae_name=name)
        assert isinstance(vae.model, WanVAENetwork) and vae.latent_channels == 16
        assert_close_scaled(vae.decode(z), expected)


# --- refusals ------------------------------------------------------------------------------

@pytest.mark.parametrize("marker", ["decoder.upsamples.0.upsamples.0.residual.2.weight",
                                    "decoder.up_blocks.0.upsampler.resample.1.weight"])
def test_wan22_file_is_refused_by_name(tmp_path, tiny_sd, marker):
    """Wan 2.2's VAE (48 channels), in ComfyUI or diffusers names, is named, not misread."""
    ctx, folder = _vae_folder(tmp_path)
    sd = dict(tiny_sd)
    sd[marker] = torch.zeros(4, 4, 3, 3)
    save_file(sd, folder / "wan2.2_vae.safetensors")
    with pytest.raises(ModelLoadError, match="Wan 2.2") as info:
        VAELoader.execute(ctx, vae_name="wan2.2_vae.safetensors")
    assert info.value.input_name == "vae_name" and info.value.node_id == "3"


def test_missing_and_misshapen_keys_are_named(tiny_sd):
    sd = dict(tiny_sd)
    del sd["decoder.upsamples.6.residual.6.bias"]
    with pytest.raises(KeyError, match=r"missing 1 keys.*decoder\.upsamples\.6\.residual\.6"):
        load_vae(sd)
    sd = dict(tiny_sd)
    sd["encoder.middle.1.proj.weight"] = torch.zeros(64, 32, 1, 1)
    with pytest.raises(ValueError, match=r"encoder\.middle\.1\.proj\.weight.*\(64, 32, 1, 1\)"):
        load_vae(sd)
    sd = {k: v for k, v in tiny_sd.items() if not k.startswith("conv2.")}
    with pytest.raises(KeyError, match="conv2.weight"):
        load_vae(sd)


def test_vae_decode_refuses_other_channel_counts(tmp_path, tiny_vae, monkeypatch):
    ctx = RunContext.create(tmp_path / "base").for_node("8", "VAEDecode")
    ran = []
    monkeypatch.setattr(tiny_vae.model, "decode", lambda z: ran.append(z) or z)
    with pytest.raises(ValueError) as info:
        VAEDecode.execute(ctx, samples={"samples": torch.randn(1, 4, 4, 4)}, vae=tiny_vae)
    message = str(info.value)
    assert "node 8 (VAEDecode) input 'samples'" in message
    assert "has 4 channels" in message and "16-channel" in message
    assert ran == []  # refused before the network ran


def test_network_names_bad_input_rank(tiny_vae):
    with pytest.raises(ValueError, match=r"got shape \(2, 3, 8\)"):
        tiny_vae.model.moments(torch.zeros(2, 3, 8))


def test_half_precision_smoke(tiny_sd, tiny_vae):
    """bf16 weights (the GPU default) on a one-pixel latent: finite and near fp32."""
    vae = load_vae(tiny_sd, dtype=torch.bfloat16)
    assert vae.dtype == torch.bfloat16 and vae.model.conv2.weight.dtype == torch.bfloat16
    z = torch.randn(1, 16, 1, 1, generator=_gen(10))
    image = vae.decode(z)
    assert image.dtype == torch.float32 and torch.isfinite(image).all()
    assert (image - tiny_vae.decode(z)).abs().max() < 0.1
