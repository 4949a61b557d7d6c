"""Inpaint / InstructPix2Pix nodes: schemas as ComfyUI, the pixel fill, crop and mask growth on
real tensors, and the concat latents reaching 9-channel (inpaint) and 8-channel (ip2p) tiny
SD1.5 UNets written in the real key layout (a 4-channel UNet ignores them)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from comfyless.engine.context import RunContext
from comfyless.models.checkpoint import load_checkpoint, load_diffusion_model
from comfyless.models.families.sd.writer import unet_config, unet_state_dict
from comfyless.models.guidance import CFGDenoiser, ksample
from comfyless.models.samplers import SAMPLERS
from comfyless.models.schedulers import sigmas_for_denoise
from comfyless.nodes import REGISTRY
from comfyless.nodes import inpaint as schemas
from comfyless.nodes.impl import inpaint as impl
from comfyless.typesys.errors import InvalidValue
from tests.floats import assert_close_scaled

SD15_SCALE = 0.18215


@pytest.fixture
def ctx(tmp_path):
    return RunContext.create(tmp_path / "base").for_node("5", "InpaintModelConditioning")


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


def _cond(value=1.0, dim=768):
    return [[torch.full((1, 77, dim), value), {}]]


class RecordingVAE:
    """Encodes by 8x8 average pooling of the centre-cropped RGB (+ a zero 4th channel)."""

    downscale_ratio = 8

    def __init__(self):
        self.inputs: list[torch.Tensor] = []

    def encode(self, pixels):
        self.inputs.append(pixels.clone())
        h, w = pixels.shape[1] // 8 * 8, pixels.shape[2] // 8 * 8
        top, left = (pixels.shape[1] - h) // 2, (pixels.shape[2] - w) // 2
        rgb = pixels[:, top:top + h, left:left + w, :3].movedim(-1, 1)
        pooled = F.avg_pool2d(rgb, 8)
        return torch.cat([pooled, torch.zeros_like(pooled[:, :1])], dim=1)


# -- schemas -------------------------------------------------------------------------------------
def test_schemas_match_comfyui():
    names = [n.schema.class_type for n in schemas.NODES]
    assert names == ["InpaintModelConditioning", "VAEEncodeForInpaint",
                     "InstructPixToPixConditioning"]
    assert all(REGISTRY.get(n) is not None for n in names)
    imc = schemas.InpaintModelConditioning.schema
    assert [i.name for i in imc.inputs] == ["positive", "negative", "vae", "pixels", "mask",
                                            "noise_mask"]
    assert imc.input_map["noise_mask"].default is True and imc.category == "conditioning/inpaint"
    assert [(o.name, o.type.name) for o in imc.outputs] == [
        ("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("latent", "LATENT")]
    enc = schemas.VAEEncodeForInpaint.schema
    assert enc.display_name == "VAE Encode (for Inpainting)" and enc.category == "latent/inpaint"
    grow = enc.input_map["grow_mask_by"]
    assert [i.name for i in enc.inputs] == ["pixels", "vae", "mask", "grow_mask_by"]
    assert (grow.default, grow.min, grow.max, grow.step) == (6, 0, 64, 1)
    ip2p = schemas.InstructPixToPixConditioning.schema
    assert [i.name for i in ip2p.inputs] == ["positive", "negative", "vae", "pixels"]
    assert ip2p.category == "conditioning/instructpix2pix"


# -- pixel fill, crop, mask growth ----------------------------------------------------------------
def test_inpaint_model_conditioning_fills_grey_and_crops_to_8(ctx):
    vae = RecordingVAE()
    pixels = _rand(1, 20, 19, 3, seed=1)  # cropped to 16 x 16 at offsets (2, 1)
    mask = torch.zeros(1, 10, 10)
    mask[:, :5, :] = 1.0  # top half, given at another size: resized bilinearly first
    pos, neg = _cond(1.0), _cond(-1.0)
    out_pos, out_neg, latent = impl.inpaint_model_conditioning(ctx, pos, neg, vae, pixels, mask)
    resized = F.interpolate(mask[:, None], size=(20, 19), mode="bilinear")[:, :, 2:18, 1:17]
    filled, original = vae.inputs
    assert filled.shape == (1, 16, 16, 3) and torch.equal(original, pixels)
    keep = 1.0 - resized.round()[:, 0, :, :, None]
    assert_close_scaled(filled, (pixels[:, 2:18, 1:17] - 0.5) * keep + 0.5)
    assert torch.all(filled[0][resized[0, 0].round() == 1] == 0.5)
    for entries in (out_pos, out_neg):
        opts = entries[0][1]
        assert torch.equal(opts["concat_mask"], resized)
        assert opts["concat_latent_image"].shape == (1, 4, 2, 2)
    assert torch.equal(latent["noise_mask"], resized) and latent["samples"].shape == (1, 4, 2, 2)
    assert pos[0][1] == {} and neg[0][1] == {}  # inputs untouched
    _, _, plain = impl.inpaint_model_conditioning(ctx, pos, neg, vae, pixels, mask, False)
    assert "noise_mask" not in plain


def test_vae_encode_for_inpaint_grows_the_mask(ctx):
    vae = RecordingVAE()
    pixels = _rand(2, 18, 16, 3, seed=2)  # cropped to 16 x 16 at offset (1, 0)
    mask = torch.zeros(1, 18, 16)
    mask[0, 9, 6] = 1.0  # -> cropped row 8, column 6
    (even,) = impl.vae_encode_for_inpaint(ctx, pixels, vae, mask, 6)
    nm = even["noise_mask"]
    assert nm.shape == (1, 1, 16, 16)
    rows, cols = torch.nonzero(nm[0, 0], as_tuple=True)
    # kernel 6, padding 3: a pixel spreads 2 before and 3 after
    assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (6, 11, 4, 9)
    (odd,) = impl.vae_encode_for_inpaint(ctx, pixels, vae, mask, 3)
    rows, cols = torch.nonzero(odd["noise_mask"][0, 0], as_tuple=True)
    assert (int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())) == (7, 9, 5, 7)
    (none,) = impl.vae_encode_for_inpaint(ctx, pixels, vae, mask, 0)
    assert int(none["noise_mask"].sum()) == 1
    filled = vae.inputs[0]
    assert filled.shape == (2, 16, 16, 3) and torch.all(filled[:, 8, 6] == 0.5)
    assert torch.equal(filled[:, 0], pixels[:, 1])  # outside the mask: unchanged
    assert even["samples"].shape == (2, 4, 2, 2)


def test_instruct_pix_to_pix_conditioning(ctx):
    vae = RecordingVAE()
    pixels = _rand(1, 17, 24, 3, seed=3)
    pos, neg, latent = impl.instruct_pix_to_pix_conditioning(ctx, _cond(1.0), _cond(-1.0), vae,
                                                             pixels)
    assert torch.equal(vae.inputs[0], pixels[:, 0:16])
    concat = pos[0][1]["concat_latent_image"]
    assert concat is neg[0][1]["concat_latent_image"] and concat.shape == (1, 4, 2, 3)
    assert torch.equal(latent["samples"], torch.zeros(1, 4, 2, 3))


def test_bad_inputs_name_the_input(ctx):
    vae = RecordingVAE()
    with pytest.raises(InvalidValue, match="mask: a batch of 3 masks does not fit a batch of 2"):
        impl.inpaint_model_conditioning(ctx, _cond(), _cond(), vae, _rand(2, 16, 16, 3),
                                        torch.ones(3, 16, 16))
    with pytest.raises(InvalidValue, match="pixels: expected an IMAGE"):
        impl.vae_encode_for_inpaint(ctx, torch.ones(16, 16, 3), vae, torch.ones(16, 16), 6)
    with pytest.raises(InvalidValue, match="vae: expected a VAE"):
        impl.instruct_pix_to_pix_conditioning(ctx, _cond(), _cond(), None, _rand(1, 16, 16, 3))
    with pytest.raises(InvalidValue, match="positive: expected CONDITIONING"):
        impl.instruct_pix_to_pix_conditioning(ctx, [], _cond(), vae, _rand(1, 16, 16, 3))
    assert not vae.inputs  # nothing was encoded


# -- concat latents reach 9 / 8-channel UNets ------------------------------------------------
def _unet_file(folder, in_channels: int):
    config = unet_config("sd15", "tiny")
    config.in_channels = in_channels
    sd = unet_state_dict(config, torch.Generator().manual_seed(in_channels))
    path = folder / f"tiny_sd15_in{in_channels}.safetensors"
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    return path


@pytest.fixture(scope="module")
def unets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inpaint_unets")
    return {n: load_diffusion_model(_unet_file(folder, n)) for n in (9, 8)}


@pytest.fixture(scope="module")
def tiny_vae(tiny_sd15_checkpoint):
    return load_checkpoint(tiny_sd15_checkpoint)[2]


def _network_input(model, den, x, sigma):
    """What the UNet receives when the denoiser runs at (x, sigma)."""
    seen = []
    handle = model.diffusion_model.register_forward_pre_hook(
        lambda _m, args: seen.append(args[0].clone()))
    try:
        with torch.no_grad():
            den(x, sigma)
    finally:
        handle.remove()
    return seen[0]


def _setup(model, den, latent):
    """What sample_with_x0 does before sampling: model-space latent and noise mask."""
    x0 = model.latent_format.process_in(latent["samples"])
    den.latent_image = x0
    if "noise_mask" in latent:
        den.set_noise_mask(latent["noise_mask"], x0, torch.zeros_like(x0))
    return x0


def test_inpaint_unet_takes_mask_and_masked_latent(ctx, unets, tiny_vae):
    model = unets[9]
    assert model.family == "sd15" and model.config.in_channels == 9
    pixels = _rand(1, 32, 32, 3, seed=4)
    mask = torch.zeros(1, 32, 32)
    mask[:, :, :16] = 1.0
    pos, neg, latent = impl.inpaint_model_conditioning(ctx, _cond(1.0), _cond(-1.0), tiny_vae,
                                                       pixels, mask)
    den = CFGDenoiser(model, pos, neg, 1.0, latent["samples"].shape)
    _setup(model, den, latent)
    x, sigma = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(5)), \
        torch.tensor([3.0])
    seen = _network_input(model, den, x, sigma)
    assert seen.shape == (1, 9, 4, 4)
    latent_mask = F.interpolate(mask[:, None], size=(4, 4), mode="bilinear").round()
    assert torch.equal(seen[:, 4:5], latent_mask)
    concat = pos[0][1]["concat_latent_image"]
    assert_close_scaled(seen[:, 5:], concat * SD15_SCALE)
    filled = pixels.clone()
    filled[:, :, :16] = 0.5
    assert_close_scaled(concat, tiny_vae.encode(filled))
    # unmasked x part: scaled input, after the noise-mask mix (noise 0: the latent itself)
    x0 = model.latent_format.process_in(latent["samples"])
    mixed = x * latent_mask + x0 * (1 - latent_mask)
    assert_close_scaled(seen[:, :4], model.sampling.calculate_input(sigma, mixed))


def test_inpaint_unet_without_mask_gets_ones_and_blank_image(ctx, unets):
    model = unets[9]
    den = CFGDenoiser(model, _cond(1.0), _cond(-1.0), 1.0, torch.Size((2, 4, 4, 4)))
    x = torch.randn(2, 4, 4, 4, generator=torch.Generator().manual_seed(6))
    seen = _network_input(model, den, x, torch.tensor([2.0, 2.0]))
    assert torch.all(seen[:, 4] == 1.0)
    blank = torch.tensor([0.8223, -0.6876, 0.6364, 0.1380]).reshape(1, 4, 1, 1)
    assert torch.equal(seen[:, 5:], blank.expand(2, 4, 4, 4))


def test_inpaint_unet_uses_the_noise_mask_and_input_latent(ctx, unets):
    model = unets[9]
    raw = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(7))
    noise_mask = torch.zeros(1, 1, 4, 4)
    noise_mask[..., 2:, :] = 0.75  # rounded to 1 for the concat
    latent = {"samples": raw, "noise_mask": noise_mask}
    den = CFGDenoiser(model, _cond(1.0), _cond(-1.0), 1.0, raw.shape)
    x0 = _setup(model, den, latent)
    seen = _network_input(model, den, torch.zeros(1, 4, 4, 4), torch.tensor([2.0]))
    assert torch.equal(seen[:, 4:5], noise_mask.round())
    assert_close_scaled(seen[:, 5:], x0)


def test_ip2p_unet_takes_the_image_latent_unscaled(ctx, unets, tiny_vae):
    model = unets[8]
    assert model.family == "sd15" and model.config.in_channels == 8
    pixels = _rand(1, 32, 32, 3, seed=8)
    pos, neg, latent = impl.instruct_pix_to_pix_conditioning(ctx, _cond(1.0), _cond(-1.0),
                                                             tiny_vae, pixels)
    den = CFGDenoiser(model, pos, neg, 2.0, latent["samples"].shape)
    _setup(model, den, latent)
    seen = _network_input(model, den, torch.zeros(1, 4, 4, 4), torch.tensor([2.0]))
    assert seen.shape == (2, 8, 4, 4)  # positive and negative batched
    concat = pos[0][1]["concat_latent_image"]
    assert_close_scaled(seen[:1, 4:], concat) and assert_close_scaled(seen[1:, 4:], concat)


def test_plain_unet_ignores_concat_latents(ctx, tiny_sd15_model, tiny_vae):
    dim = tiny_sd15_model.config.context_dim
    pos, neg, latent = impl.instruct_pix_to_pix_conditioning(
        ctx, _cond(1.0, dim), _cond(-1.0, dim), tiny_vae, _rand(1, 32, 32, 3, seed=9))
    den = CFGDenoiser(tiny_sd15_model, pos, neg, 1.0, latent["samples"].shape)
    _setup(tiny_sd15_model, den, latent)
    seen = _network_input(tiny_sd15_model, den, torch.zeros(1, 4, 4, 4), torch.tensor([2.0]))
    assert seen.shape == (1, 4, 4, 4)


def test_inpaint_ksampler_keeps_the_unmasked_latent(ctx, unets, tiny_vae):
    model = unets[9]
    pixels = _rand(1, 32, 32, 3, seed=10)
    mask = torch.zeros(1, 32, 32)
    mask[:, :, :16] = 1.0
    pos, neg, latent = impl.inpaint_model_conditioning(ctx, _cond(1.0), _cond(-1.0), tiny_vae,
                                                       pixels, mask)
    noise = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(11))
    out = ksample(model, latent["samples"], noise, sigmas=sigmas_for_denoise(
        model.sampling, "normal", 2, 1.0), sampler=SAMPLERS["euler"], cfg=2.0, positive=pos,
        negative=neg, seed=0, noise_mask=latent["noise_mask"])
    assert torch.isfinite(out).all()
    assert_close_scaled(out[..., 2:], latent["samples"][..., 2:])  # mask 0 there
    assert (out[..., :2] - latent["samples"][..., :2]).abs().max() > 1e-3
