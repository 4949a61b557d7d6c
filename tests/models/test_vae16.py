"""The 16-channel KL VAE (Flux `ae.safetensors`, SD3): key layouts, prefixes, diffusers oracle,
latent formats, and the channel check of VAEDecode."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from comfyless.engine.context import RunContext
from comfyless.models import latent_formats
from comfyless.models import vae as vae_mod
from comfyless.models.vae import infer_config, load_vae, vae_config, vae_state_dict
from comfyless.nodes.latent import VAEDecode
from comfyless.nodes.loaders import VAELoader
from tests.floats import assert_close_scaled

# The oracle's bound from the brief: fp32, same weights, another implementation.
ORACLE_MAX_ABS = 1e-4


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def flux_sd():
    """Tiny Flux VAE weights as in `ae.safetensors`: bare keys, no quant convs."""
    return vae_state_dict("tiny", _gen(0), kind="kl16", prefix="")


@pytest.fixture(scope="module")
def flux_vae(flux_sd):
    return load_vae(flux_sd)


def test_flux_writer_uses_ae_safetensors_layout(flux_sd):
    assert all(k.startswith(("encoder.", "decoder.")) for k in flux_sd)
    assert "quant_conv.weight" not in flux_sd and "post_quant_conv.weight" not in flux_sd
    assert flux_sd["encoder.conv_out.weight"].shape[0] == 32  # mean and logvar, 16 each
    assert flux_sd["decoder.conv_in.weight"].shape[1] == 16
    for key in ("encoder.down.2.downsample.conv.weight", "encoder.mid.attn_1.q.weight",
                "decoder.up.3.upsample.conv.weight", "decoder.conv_out.weight"):
        assert key in flux_sd


@pytest.mark.parametrize(("kind", "prefix"), [("kl4", "first_stage_model."), ("kl16", ""),
                                              ("kl16", "vae.")])
def test_writer_layout_per_kind(kind, prefix):
    sd = vae_state_dict("tiny", _gen(1), kind=kind, prefix=prefix)
    assert all(k.startswith(prefix + "encoder.") or k.startswith(prefix + "decoder.")
               or k.startswith(prefix + "quant_conv.") or k.startswith(prefix + "post_quant_conv.")
               for k in sd)
    has_quant = prefix + "quant_conv.weight" in sd
    assert has_quant == (kind == "kl4")
    assert sd[prefix + "decoder.conv_in.weight"].shape[1] == (4 if kind == "kl4" else 16)


def test_full_size_16_channel_shapes():
    with torch.device("meta"):
        sd = vae_mod.AutoencoderKL(vae_config("full", "kl16")).state_dict()
    assert sd["encoder.conv_in.weight"].shape == (128, 3, 3, 3)
    assert sd["encoder.conv_out.weight"].shape == (32, 512, 3, 3)
    assert sd["decoder.conv_in.weight"].shape == (512, 16, 3, 3)
    assert "quant_conv.weight" not in sd and "post_quant_conv.weight" not in sd
    cfg = infer_config(sd)
    assert (cfg.z_channels, cfg.use_quant_conv, cfg.ch_mult) == (16, False, (1, 2, 4, 4))


def test_bad_kind_and_size_are_named():
    with pytest.raises(ValueError, match="kind 'kl8'"):
        vae_state_dict("tiny", _gen(), kind="kl8")
    with pytest.raises(ValueError, match="size 'huge'"):
        vae_state_dict("huge", _gen(), kind="kl16")


def test_encode_decode_shapes(flux_vae):
    assert flux_vae.latent_channels == 16
    latent = flux_vae.encode(torch.rand(2, 64, 40, 3, generator=_gen(2)))
    assert latent.shape == (2, 16, 8, 5) and latent.dtype == torch.float32
    image = flux_vae.decode(latent)
    assert image.shape == (2, 64, 40, 3)
    assert image.min() >= 0.0 and image.max() <= 1.0


@pytest.mark.parametrize("prefix", ["vae.", "first_stage_model."])
def test_all_in_one_prefixes_give_the_same_vae(flux_sd, flux_vae, prefix):
    """Flux all-in-one files keep the VAE under `vae.`, SD3 ones under `first_stage_model.`;
    the other networks' keys next to it are ignored."""
    sd = {prefix + k: v for k, v in flux_sd.items()}
    sd["model.diffusion_model.img_in.weight"] = torch.zeros(8, 64)
    sd["text_encoders.clip_l.transformer.text_model.final_layer_norm.weight"] = torch.ones(8)
    vae = load_vae(sd)
    assert vae.model.config == flux_vae.model.config
    for name, p in vae.model.state_dict().items():
        assert p.data_ptr() == flux_sd[name].data_ptr()  # the very tensors: nothing mixed up


def _diffusers_16ch(ldm_sd):
    diffusers = pytest.importorskip("diffusers")
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    cfg = infer_config(ldm_sd)
    config = dict(
        in_channels=3, out_channels=3, latent_channels=cfg.z_channels,
        down_block_types=("DownEncoderBlock2D",) * len(cfg.ch_mult),
        up_block_types=("UpDecoderBlock2D",) * len(cfg.ch_mult),
        block_out_channels=tuple(cfg.ch * m for m in cfg.ch_mult),
        layers_per_block=cfg.num_res_blocks, norm_num_groups=32,
        use_quant_conv=False, use_post_quant_conv=False)
    model = diffusers.AutoencoderKL(**config)
    model.load_state_dict(convert_ldm_vae_checkpoint(ldm_sd, config))  # strict: every key
    return model.eval()


def test_matches_diffusers_16_channel_autoencoderkl(flux_sd, flux_vae):
    ref = _diffusers_16ch(flux_sd)
    pixels = torch.rand(2, 32, 48, 3, generator=_gen(3))
    x = pixels.movedim(-1, 1) * 2 - 1
    z = torch.randn(2, 16, 4, 6, generator=_gen(4))
    with torch.no_grad():
        dist = ref.encode(x).latent_dist
        ref_image = ((ref.decode(z).sample + 1) / 2).clamp(0, 1).movedim(1, -1)
    mean, logvar = flux_vae.encode_moments(pixels)
    image = flux_vae.decode(z)
    assert mean.shape == dist.mean.shape == (2, 16, 4, 6)
    diffs = {"mean": (mean - dist.mean).abs().max().item(),
             "logvar": (logvar - dist.logvar).abs().max().item(),
             "decode": (image - ref_image).abs().max().item()}
    print("16-ch VAE vs diffusers, max abs diff:", diffs)
    assert max(diffs.values()) <= ORACLE_MAX_ABS, diffs
    assert_close_scaled(mean, dist.mean, rtol=1e-4, atol_rel=1e-4)
    assert_close_scaled(image, ref_image, rtol=1e-4, atol_rel=1e-4)


def test_diffusers_layout_16_channel_file_loads(flux_sd, flux_vae):
    ref = _diffusers_16ch(flux_sd)
    vae = load_vae(ref.state_dict())
    assert vae.model.config == flux_vae.model.config
    z = torch.randn(1, 16, 4, 5, generator=_gen(5))
    assert_close_scaled(vae.decode(z), flux_vae.decode(z))  # two loads of the same weights


@pytest.mark.parametrize(("fmt", "scale", "shift"), [(latent_formats.FLUX, 0.3611, 0.1159),
                                                     (latent_formats.SD3, 1.5305, 0.0609)])
def test_latent_formats_of_the_16_channel_families(flux_vae, fmt, scale, shift):
    """The VAE gives raw latents; the family's format maps them for the model (the sampler
    calls process_in / process_out, as for SD)."""
    raw = flux_vae.encode(torch.rand(1, 32, 32, 3, generator=_gen(6)))
    assert fmt.channels == flux_vae.latent_channels == raw.shape[1]
    assert_close_scaled(fmt.process_in(raw), (raw - shift) * scale)
    assert_close_scaled(fmt.process_out(fmt.process_in(raw)), raw)


def test_vae_loader_reads_ae_safetensors_and_all_in_one_files(tmp_path, flux_sd, flux_vae):
    ctx = RunContext.create(tmp_path / "base").for_node("3", "VAELoader")
    folder = ctx.paths.folders("vae")[0]
    folder.mkdir(parents=True)
    save_file(flux_sd, folder / "ae.safetensors")
    save_file({"vae." + k: v for k, v in flux_sd.items()}, folder / "flux_aio.safetensors")
    sd3 = vae_state_dict("tiny", _gen(7), kind="kl16")
    save_file(sd3, folder / "sd3.safetensors")
    z = torch.randn(1, 16, 4, 4, generator=_gen(8))
    for name in ("ae.safetensors", "flux_aio.safetensors"):
        (vae,) = VAELoader.execute(ctx, vae_name=name)
        assert vae.latent_channels == 16 and not vae.model.config.use_quant_conv
        assert_close_scaled(vae.decode(z), flux_vae.decode(z))
    (vae,) = VAELoader.execute(ctx, vae_name="sd3.safetensors")
    assert vae.encode(torch.rand(1, 32, 32, 3)).shape == (1, 16, 4, 4)


@pytest.mark.parametrize(("latent_ch", "vae_kind"), [(16, "kl4"), (4, "kl16")])
def test_vae_decode_names_both_channel_counts(tmp_path, latent_ch, vae_kind, monkeypatch):
    vae = load_vae(vae_state_dict("tiny", _gen(9), kind=vae_kind))
    ctx = RunContext.create(tmp_path / "base").for_node("8", "VAEDecode")
    ran = []
    monkeypatch.setattr(vae.model, "decode", lambda z: ran.append(z) or z)
    with pytest.raises(ValueError) as info:
        VAEDecode.execute(ctx, samples={"samples": torch.randn(1, latent_ch, 4, 4)}, vae=vae)
    message = str(info.value)
    assert "node 8 (VAEDecode) input 'samples'" in message
    assert f"has {latent_ch} channels" in message
    assert f"{vae.latent_channels}-channel" in message
    assert ran == []  # refused before the network ran
