"""VAE: shapes, config inference, cropping, seeded sampling, diffusers oracle."""

from __future__ import annotations

import pytest
import torch

from comfyless.models import vae as vae_mod
from comfyless.models.vae import VAE_PREFIX, infer_config, load_vae, vae_state_dict
from tests.floats import assert_close_scaled


@pytest.fixture(scope="module")
def tiny_sd():
    return vae_state_dict("tiny", torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def tiny_vae(tiny_sd):
    return load_vae(tiny_sd, torch.float32, "cpu")


def test_keys_use_checkpoint_layout(tiny_sd):
    assert all(k.startswith(VAE_PREFIX) for k in tiny_sd)
    for key in ("encoder.conv_in.weight", "encoder.down.0.block.0.norm1.weight",
                "encoder.down.2.downsample.conv.weight", "encoder.mid.attn_1.q.weight",
                "quant_conv.weight", "post_quant_conv.weight", "decoder.up.3.upsample.conv.weight",
                "decoder.conv_out.weight"):
        assert VAE_PREFIX + key in tiny_sd
    assert VAE_PREFIX + "encoder.down.3.downsample.conv.weight" not in tiny_sd
    assert tiny_sd[VAE_PREFIX + "quant_conv.weight"].shape == (8, 8, 1, 1)
    assert tiny_sd[VAE_PREFIX + "decoder.conv_in.weight"].shape[1] == 4


def test_full_size_has_real_sd_shapes():
    with torch.device("meta"):
        model = vae_mod.AutoencoderKL(vae_mod.SIZES["full"])
    sd = model.state_dict()
    assert sd["encoder.conv_in.weight"].shape == (128, 3, 3, 3)
    assert sd["encoder.conv_out.weight"].shape == (8, 512, 3, 3)
    assert sd["decoder.conv_in.weight"].shape == (512, 4, 3, 3)
    assert sd["decoder.conv_out.weight"].shape == (3, 128, 3, 3)
    assert "decoder.up.0.block.2.conv1.weight" in sd
    assert infer_config(sd) == vae_mod.SIZES["full"]


@pytest.mark.parametrize("size", ["tiny", "small"])
def test_config_inferred_from_shapes(size):
    sd = vae_state_dict(size, torch.Generator().manual_seed(1))
    assert infer_config({k[len(VAE_PREFIX):]: v for k, v in sd.items()}) == vae_mod.SIZES[size]


def test_encode_decode_shapes_and_range(tiny_vae):
    pixels = torch.rand(2, 64, 48, 3)
    latent = tiny_vae.encode(pixels)
    assert latent.shape == (2, 4, 8, 6) and latent.dtype == torch.float32
    image = tiny_vae.decode(latent)
    assert image.shape == (2, 64, 48, 3)
    assert image.min() >= 0.0 and image.max() <= 1.0


def test_encode_centre_crops_to_multiple_of_8(tiny_vae):
    pixels = torch.rand(1, 37, 30, 3)
    cropped = pixels[:, 2:34, 3:27, :]  # 32 x 24, centred
    # the crop is a strided view inside, a copy here: other memory layout, other kernels
    assert_close_scaled(tiny_vae.encode(pixels), tiny_vae.encode(cropped))
    with pytest.raises(ValueError, match="smaller"):
        tiny_vae.encode(torch.rand(1, 7, 30, 3))


def test_seeded_sample_is_reproducible_and_differs_from_mean(tiny_vae):
    pixels = torch.rand(1, 32, 32, 3)
    a = tiny_vae.encode(pixels, torch.Generator().manual_seed(5))
    b = tiny_vae.encode(pixels, torch.Generator().manual_seed(5))
    mean = tiny_vae.encode(pixels)
    assert torch.equal(a, b)  # same seed, same path, one process: bitwise
    assert not torch.allclose(a, mean)
    _, logvar = tiny_vae.encode_moments(pixels)
    assert torch.allclose((a - mean).std(), torch.exp(0.5 * logvar).mean(), rtol=0.5)


def test_missing_and_wrong_shape_keys_are_named(tiny_sd):
    sd = dict(tiny_sd)
    del sd[VAE_PREFIX + "decoder.mid.attn_1.q.weight"]
    with pytest.raises(KeyError, match="decoder.mid.attn_1.q.weight"):
        load_vae(sd)
    sd = dict(tiny_sd)
    sd[VAE_PREFIX + "decoder.mid.attn_1.q.bias"] = torch.zeros(7)
    with pytest.raises(ValueError, match="decoder.mid.attn_1.q.bias"):
        load_vae(sd)
    with pytest.raises(KeyError, match="AutoencoderKL"):
        load_vae({"foo.weight": torch.zeros(1)})


def test_loaded_on_meta_then_assigned_without_copy(tiny_sd):
    vae = load_vae(tiny_sd)
    w = vae.model.encoder.conv_in.weight
    assert w.data_ptr() == tiny_sd[VAE_PREFIX + "encoder.conv_in.weight"].data_ptr()
    assert not any(p.is_meta for p in vae.model.parameters())
    assert not any(p.requires_grad for p in vae.model.parameters())


def test_bf16_dtype(tiny_sd):
    vae = load_vae(tiny_sd, torch.bfloat16)
    assert vae.model.decoder.conv_out.weight.dtype == torch.bfloat16
    out = vae.decode(torch.randn(1, 4, 4, 4))
    assert out.dtype == torch.float32 and out.shape == (1, 32, 32, 3)


def _diffusers_vae(ldm_sd):
    diffusers = pytest.importorskip("diffusers")
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    cfg = infer_config({k[len(VAE_PREFIX):]: v for k, v in ldm_sd.items()})
    config = dict(
        in_channels=3, out_channels=3, latent_channels=cfg.z_channels,
        down_block_types=("DownEncoderBlock2D",) * len(cfg.ch_mult),
        up_block_types=("UpDecoderBlock2D",) * len(cfg.ch_mult),
        block_out_channels=tuple(cfg.ch * m for m in cfg.ch_mult),
        layers_per_block=cfg.num_res_blocks, norm_num_groups=32)
    model = diffusers.AutoencoderKL(**config)
    model.load_state_dict(convert_ldm_vae_checkpoint(ldm_sd, config))
    return model.eval()


def test_matches_diffusers_autoencoderkl(tiny_sd, tiny_vae):
    ref = _diffusers_vae(tiny_sd)
    pixels = torch.rand(2, 32, 40, 3, generator=torch.Generator().manual_seed(3))
    x = pixels.movedim(-1, 1) * 2 - 1
    with torch.no_grad():
        dist = ref.encode(x).latent_dist
        ref_image = ((ref.decode(dist.mean).sample + 1) / 2).clamp(0, 1).movedim(1, -1)
    mean, logvar = tiny_vae.encode_moments(pixels)
    # against diffusers' implementation: other kernels, tolerance scaled to the values
    assert_close_scaled(mean, dist.mean, rtol=1e-4, atol_rel=1e-4)
    assert_close_scaled(logvar, dist.logvar, rtol=1e-4, atol_rel=1e-4)
    assert_close_scaled(tiny_vae.decode(mean), ref_image, rtol=1e-4, atol_rel=1e-4)


def test_diffusers_layout_file_loads(tiny_sd, tiny_vae):
    ref = _diffusers_vae(tiny_sd)
    vae = load_vae(ref.state_dict())
    z = torch.randn(1, 4, 4, 5, generator=torch.Generator().manual_seed(4))
    assert vae.model.config == tiny_vae.model.config
    assert_close_scaled(vae.decode(z), tiny_vae.decode(z))  # two loads of the same weights


def test_fp16_request_uses_a_dtype_that_does_not_overflow(tiny_sd):
    vae = load_vae(tiny_sd, torch.float16, "cpu")
    assert vae.dtype == torch.float32 and vae.model.encoder.conv_in.weight.dtype == torch.float32


def test_large_batches_run_in_chunks_with_the_same_result(tiny_sd, monkeypatch):
    vae = load_vae(tiny_sd)
    pixels = torch.rand(5, 32, 32, 3, generator=torch.Generator().manual_seed(2))
    whole = vae.encode(pixels)
    image = vae.decode(whole)
    monkeypatch.setattr(vae_mod, "CPU_PIXELS_PER_PASS", 2 * 32 * 32)  # 2 images per pass
    calls = []
    monkeypatch.setattr(vae.model, "moments", lambda x, f=vae.model.moments: calls.append(
        x.shape[0]) or f(x))
    assert_close_scaled(vae.encode(pixels), whole)  # batches of 2, 2, 1 vs one of 5
    assert calls == [2, 2, 1]
    assert_close_scaled(vae.decode(whole), image)


def test_a_cpu_pass_is_one_256px_image(tiny_sd):
    """On the CPU batching buys no speed but costs activation memory (models/vae.py)."""
    vae = load_vae(tiny_sd)
    assert vae._chunk(256 * 256) == 1 and vae._chunk(512 * 512) == 1 and vae._chunk(64 * 64) == 16
