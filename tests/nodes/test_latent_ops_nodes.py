"""Latent operation nodes: schemas as ComfyUI, behaviour on real tensors, inputs never changed,
tiled VAE against untiled, .latent files."""

from __future__ import annotations

import pytest
import safetensors.torch
import torch
import torch.nn.functional as F

from comfyless.engine.context import RunContext
from comfyless.models.vae import load_vae, vae_state_dict
from comfyless.nodes import REGISTRY
from comfyless.nodes import latent_ops as nodes
from comfyless.nodes.impl import latent_ops as impl


@pytest.fixture(scope="module")
def vae():
    return load_vae(vae_state_dict("tiny", torch.Generator().manual_seed(0)))


@pytest.fixture
def base(tmp_path):
    return RunContext.create(tmp_path / "base")


def nctx(base, class_type):
    return base.for_node("5", class_type)


def _latent(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _spec(node):
    return [(i.name, i.type.name, i.default, i.min, i.max, i.step) for i in node.schema.inputs]


# -- schemas -----------------------------------------------------------------------------------


def test_all_registered_with_comfyui_names_and_categories():
    expected = {
        "LatentUpscale": ("Upscale Latent", "latent"),
        "LatentUpscaleBy": ("Upscale Latent By", "latent"),
        "LatentFromBatch": ("Latent From Batch", "latent/batch"),
        "RepeatLatentBatch": ("Repeat Latent Batch", "latent/batch"),
        "LatentComposite": ("Latent Composite", "latent"),
        "SetLatentNoiseMask": ("Set Latent Noise Mask", "latent/inpaint"),
        "VAEDecodeTiled": ("VAE Decode (Tiled)", "_for_testing"),
        "VAEEncodeTiled": ("VAE Encode (Tiled)", "_for_testing"),
        "SaveLatent": ("SaveLatent", "_for_testing"),
        "LoadLatent": ("LoadLatent", "_for_testing"),
    }
    assert [n.schema.class_type for n in nodes.NODES] == list(expected)
    for node in nodes.NODES:
        assert REGISTRY.get(node.schema.class_type) is node
        assert (node.schema.display_name, node.schema.category) == expected[
            node.schema.class_type]


def test_input_specs_match_comfyui():
    spec = _spec(nodes.LatentUpscale)
    assert [row[:2] for row in spec] == [("samples", "LATENT"), ("upscale_method", "COMBO"),
                                         ("width", "INT"), ("height", "INT"), ("crop", "COMBO")]
    assert spec[2][2:] == spec[3][2:] == (512, 0, 16384, 8)
    methods = ("nearest-exact", "bilinear", "area", "bicubic", "bislerp")
    assert nodes.LatentUpscale.schema.inputs[1].choices == methods
    assert nodes.LatentUpscale.schema.inputs[4].choices == ("disabled", "center")
    assert nodes.LatentUpscaleBy.schema.inputs[1].choices == methods
    assert _spec(nodes.LatentUpscaleBy)[2] == ("scale_by", "FLOAT", 1.5, 0.01, 8.0, 0.01)
    assert _spec(nodes.LatentFromBatch)[1:] == [("batch_index", "INT", 0, 0, 63, None),
                                                ("length", "INT", 1, 1, 64, None)]
    assert _spec(nodes.RepeatLatentBatch)[1:] == [("amount", "INT", 1, 1, 64, None)]
    assert _spec(nodes.LatentComposite)[2:] == [(n, "INT", 0, 0, 16384, 8)
                                                for n in ("x", "y", "feather")]
    assert [i.type.name for i in nodes.SetLatentNoiseMask.schema.inputs] == ["LATENT", "MASK"]
    tiled = [("tile_size", 512, 64, 4096), ("overlap", 64, 0, 4096),
             ("temporal_size", 64, 8, 4096), ("temporal_overlap", 8, 4, 4096)]
    decode = [(n, d, lo, hi, s) for (n, _, d, lo, hi, s) in _spec(nodes.VAEDecodeTiled)[2:]]
    encode = [(n, d, lo, hi, s) for (n, _, d, lo, hi, s) in _spec(nodes.VAEEncodeTiled)[2:]]
    assert decode == [(*t, s) for t, s in zip(tiled, (32, 32, 4, 4), strict=True)]
    assert encode == [(*t, s) for t, s in zip(tiled, (64, 32, 4, 4), strict=True)]
    assert [o.type.name for o in nodes.VAEDecodeTiled.schema.outputs] == ["IMAGE"]
    assert _spec(nodes.SaveLatent)[1][:3] == ("filename_prefix", "STRING", "latents/ComfyUI")
    assert nodes.SaveLatent.schema.output_node and not nodes.SaveLatent.schema.outputs
    assert nodes.LoadLatent.schema.inputs[0].choices_from == "input"


# -- upscale -----------------------------------------------------------------------------------


def test_latent_upscale_sizes_and_modes(base):
    ctx = nctx(base, "LatentUpscale")
    x = _latent(2, 4, 8, 12)
    given = {"samples": x, "batch_index": [3, 4]}
    (out,) = nodes.LatentUpscale.execute(ctx, samples=given, upscale_method="bilinear",
                                         width=192, height=128, crop="disabled")
    assert out["samples"].shape == (2, 4, 16, 24) and out["batch_index"] == [3, 4]
    assert torch.allclose(out["samples"], F.interpolate(x, size=(16, 24), mode="bilinear"))
    assert given["samples"] is x and set(given) == {"samples", "batch_index"}
    # width 0 keeps the aspect; both sides at least 64 pixels
    (out,) = nodes.LatentUpscale.execute(ctx, samples=given, upscale_method="nearest-exact",
                                         width=0, height=256, crop="disabled")
    assert out["samples"].shape[-2:] == (32, 48)
    (out,) = nodes.LatentUpscale.execute(ctx, samples=given, upscale_method="area",
                                         width=8, height=8, crop="disabled")
    assert out["samples"].shape[-2:] == (8, 8)
    (out,) = nodes.LatentUpscale.execute(ctx, samples=given, upscale_method="area",
                                         width=0, height=0, crop="disabled")
    assert out["samples"] is x and out is not given


def test_center_crop_cuts_the_longer_side(base):
    x = torch.arange(8 * 16, dtype=torch.float32).reshape(1, 1, 8, 16)
    (out,) = nodes.LatentUpscale.execute(nctx(base, "LatentUpscale"), samples={"samples": x},
                                         upscale_method="nearest-exact", width=64, height=64,
                                         crop="center")
    assert torch.equal(out["samples"], x[..., :, 4:12])


def test_upscale_by_and_five_dim_latents(base):
    ctx = nctx(base, "LatentUpscaleBy")
    x = _latent(1, 16, 3, 4, 6)  # a Qwen-Image style 5-D latent
    (out,) = nodes.LatentUpscaleBy.execute(ctx, samples={"samples": x},
                                           upscale_method="nearest-exact", scale_by=1.5)
    assert out["samples"].shape == (1, 16, 3, 6, 9)
    for t in range(3):  # each frame resized on its own
        assert torch.equal(out["samples"][:, :, t],
                           F.interpolate(x[:, :, t], size=(6, 9), mode="nearest-exact"))


def test_bislerp_keeps_direction_and_interpolates_length(base):
    a = torch.tensor([1.0, 0.0, 0.0, 0.0])
    b = torch.tensor([0.0, 3.0, 0.0, 0.0])
    x = torch.stack([a, b]).T.reshape(1, 4, 1, 2)  # two pixels side by side
    out = impl.bislerp(x, 4, 1)[0, :, 0].T  # [4 pixels, 4 channels]
    assert torch.allclose(out[0], a) and torch.allclose(out[-1], b)
    mid = out[1]  # bilinear ratio 0.25 between a and b
    angle = torch.atan2(mid[1], mid[0])
    assert torch.allclose(angle, torch.tensor(0.25 * torch.pi / 2), atol=1e-5)
    assert torch.allclose(mid.norm(), torch.tensor(0.75 * 1.0 + 0.25 * 3.0), atol=1e-5)
    (node_out,) = nodes.LatentUpscaleBy.execute(
        nctx(base, "LatentUpscaleBy"), samples={"samples": _latent(2, 4, 5, 6)},
        upscale_method="bislerp", scale_by=2.0)
    assert node_out["samples"].shape == (2, 4, 10, 12)
    assert torch.isfinite(node_out["samples"]).all()


# -- batches -----------------------------------------------------------------------------------


def test_latent_from_batch_bookkeeping(base):
    ctx = nctx(base, "LatentFromBatch")
    x = _latent(4, 4, 2, 2)
    masks = torch.rand(2, 1, 16, 16)
    given = {"samples": x, "noise_mask": masks}
    (out,) = nodes.LatentFromBatch.execute(ctx, samples=given, batch_index=1, length=2)
    assert torch.equal(out["samples"], x[1:3]) and out["batch_index"] == [1, 2]
    assert torch.equal(out["noise_mask"], torch.stack([masks[1], masks[0]]))  # cycled masks
    (again,) = nodes.LatentFromBatch.execute(ctx, samples=out, batch_index=1, length=5)
    assert again["batch_index"] == [2] and torch.equal(again["samples"], x[2:3])
    (clamped,) = nodes.LatentFromBatch.execute(ctx, samples={"samples": x}, batch_index=9,
                                               length=3)
    assert clamped["batch_index"] == [3] and "noise_mask" not in clamped
    out["samples"].add_(1)  # a copy, not a view
    assert torch.equal(given["samples"], x) and set(given) == {"samples", "noise_mask"}


def test_repeat_latent_batch(base):
    ctx = nctx(base, "RepeatLatentBatch")
    x = _latent(2, 4, 2, 2)
    masks = torch.rand(2, 1, 16, 16)
    (out,) = nodes.RepeatLatentBatch.execute(
        ctx, samples={"samples": x, "noise_mask": masks, "batch_index": [1, 2]}, amount=3)
    assert torch.equal(out["samples"], torch.cat([x, x, x]))
    assert torch.equal(out["noise_mask"], torch.cat([masks] * 3))
    assert out["batch_index"] == [1, 2, 3, 4, 5, 6]
    single = torch.rand(1, 1, 16, 16)  # one mask covers every sample: kept as is
    (out,) = nodes.RepeatLatentBatch.execute(
        ctx, samples={"samples": _latent(1, 16, 2, 3, 3), "noise_mask": single}, amount=2)
    assert out["samples"].shape == (2, 16, 2, 3, 3) and out["noise_mask"] is single


# -- composite and mask ------------------------------------------------------------------------


def test_composite_hard_and_clipped(base):
    ctx = nctx(base, "LatentComposite")
    to, src = torch.zeros(1, 4, 6, 6), torch.ones(1, 4, 4, 4)
    (out,) = nodes.LatentComposite.execute(ctx, samples_to={"samples": to},
                                           samples_from={"samples": src}, x=32, y=16, feather=0)
    expected = torch.zeros(1, 4, 6, 6)
    expected[..., 2:6, 4:6] = 1
    assert torch.equal(out["samples"], expected) and not to.any()


def test_composite_feather_ramps_inner_edges_only(base):
    ctx = nctx(base, "LatentComposite")
    to, src = torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 4, 4)
    (out,) = nodes.LatentComposite.execute(ctx, samples_to={"samples": to},
                                           samples_from={"samples": src}, x=0, y=16, feather=16)
    region = out["samples"][0, 0, 2:6, 0:4]
    # top (y != 0) and bottom (inside) and right (inside) edges ramp; the left edge is x == 0
    col = torch.tensor([0.5, 1.0, 1.0, 0.5])
    row = torch.tensor([1.0, 1.0, 1.0, 0.5])
    assert torch.allclose(region, col[:, None] * row[None, :])
    assert not out["samples"][0, 0, :2].any() and not out["samples"][0, 0, 6:].any()


def test_set_noise_mask(base):
    ctx = nctx(base, "SetLatentNoiseMask")
    given = {"samples": _latent(2, 4, 3, 3)}
    (out,) = nodes.SetLatentNoiseMask.execute(ctx, samples=given, mask=torch.rand(2, 24, 24))
    assert out["noise_mask"].shape == (2, 1, 24, 24) and "noise_mask" not in given
    (out,) = nodes.SetLatentNoiseMask.execute(ctx, samples=given, mask=torch.rand(24, 24))
    assert out["noise_mask"].shape == (1, 1, 24, 24)


def test_errors_name_the_input(base):
    with pytest.raises(ValueError, match=r"node 5 \(LatentUpscale\) input 'samples'"):
        nodes.LatentUpscale.execute(nctx(base, "LatentUpscale"), samples=torch.zeros(1, 4, 2, 2),
                                    upscale_method="area", width=64, height=64, crop="disabled")
    with pytest.raises(ValueError, match=r"input 'upscale_method'"):
        nodes.LatentUpscaleBy.execute(nctx(base, "LatentUpscaleBy"),
                                      samples={"samples": _latent(1, 4, 2, 2)},
                                      upscale_method="lanczos", scale_by=2.0)
    with pytest.raises(ValueError, match=r"input 'samples_from'.*does not fit"):
        nodes.LatentComposite.execute(nctx(base, "LatentComposite"),
                                      samples_to={"samples": _latent(1, 4, 4, 4)},
                                      samples_from={"samples": _latent(1, 16, 4, 4)})
    with pytest.raises(ValueError, match=r"input 'mask'"):
        nodes.SetLatentNoiseMask.execute(nctx(base, "SetLatentNoiseMask"),
                                         samples={"samples": _latent(1, 4, 2, 2)}, mask=None)
    with pytest.raises(ValueError, match=r"input 'vae'"):
        nodes.VAEDecodeTiled.execute(nctx(base, "VAEDecodeTiled"),
                                     samples={"samples": _latent(1, 4, 2, 2)}, vae=None)
    with pytest.raises(ValueError, match=r"input 'pixels'"):
        nodes.VAEEncodeTiled.execute(nctx(base, "VAEEncodeTiled"), pixels=torch.rand(8, 8, 3),
                                     vae=object())


# -- tiled VAE ---------------------------------------------------------------------------------


def test_tile_blending_of_identity_is_exact():
    x = _latent(1, 3, 40, 56)
    out = impl.tiled_three_ways(x, lambda t: t.repeat_interleave(2, -1).repeat_interleave(2, -2),
                                16, 16, 4, 2.0)
    up = x.repeat_interleave(2, -1).repeat_interleave(2, -2)
    assert torch.allclose(out, up, atol=1e-6)


def test_tiled_decode_matches_untiled(base, vae, one_torch_thread):
    latent = {"samples": _latent(1, 4, 24, 24, seed=3)}
    full = vae.decode(latent["samples"])
    (tiled,) = nodes.VAEDecodeTiled.execute(nctx(base, "VAEDecodeTiled"), samples=latent, vae=vae,
                                            tile_size=128, overlap=32)
    assert tiled.shape == full.shape == (1, 192, 192, 3)
    # The random tiny VAE has a mid-block attention (global context), so tiles cannot match
    # exactly: measured mean error 0.040 against 0.196 mean spread of the image, and against
    # 0.138 for hard 64-pixel tiles without overlap or blending.
    decode = lambda part: vae.decode(part).movedim(-1, 0).unsqueeze(0)  # noqa: E731
    hard = impl.tiled_map(latent["samples"], decode, (8, 8), 0, 8)[0].movedim(0, -1)
    error, hard_error = (tiled - full).abs().mean(), (hard - full).abs().mean()
    assert error < 0.25 * (full - full.mean()).abs().mean() and error < 0.5 * hard_error


def test_tiled_encode_matches_untiled(base, vae, one_torch_thread):
    pixels = torch.rand(1, 200, 196, 3, generator=torch.Generator().manual_seed(4))
    pixels = F.avg_pool2d(pixels.movedim(-1, 1), 9, 1, 4).movedim(1, -1)  # smooth picture
    full = vae.encode(pixels)
    (tiled,) = nodes.VAEEncodeTiled.execute(nctx(base, "VAEEncodeTiled"), pixels=pixels, vae=vae,
                                            tile_size=128, overlap=32)
    assert tiled["samples"].shape == full.shape == (1, 4, 25, 24)
    # Global attention in the random encoder again: measured mean error 0.154 against 0.455
    # mean spread of the latent, and 0.403 for hard 64-pixel tiles without blending.
    crop = vae.crop(pixels).movedim(-1, 1)
    encode = lambda part: vae.encode(part.movedim(1, -1))  # noqa: E731
    hard = impl.tiled_map(crop, encode, (64, 64), 0, 1 / 8)
    error, hard_error = (tiled["samples"] - full).abs().mean(), (hard - full).abs().mean()
    assert error < 0.4 * (full - full.mean()).abs().mean() and error < 0.5 * hard_error


# -- files -------------------------------------------------------------------------------------


def test_save_then_load_round_trip(base):
    base.prompt = {"1": {"class_type": "SaveLatent", "inputs": {}}}
    base.extra_pnginfo = {"workflow": {"nodes": []}}
    x = _latent(2, 4, 3, 5)
    result = nodes.SaveLatent.execute(nctx(base, "SaveLatent"), samples={"samples": x})
    (entry,) = result.ui["latents"]
    assert entry == {"filename": "ComfyUI_00001_.latent", "subfolder": "latents",
                     "type": "output"}
    path = base.paths.folders("output")[0] / "latents" / entry["filename"]
    with safetensors.safe_open(str(path), "pt") as f:
        assert set(f.keys()) == {"latent_tensor", "latent_format_version_0"}
        assert f.metadata()["workflow"] == '{"nodes": []}'
        assert '"SaveLatent"' in f.metadata()["prompt"]
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    again = nodes.SaveLatent.execute(nctx(base, "SaveLatent"), samples={"samples": x})
    assert again.ui["latents"][0]["filename"] == "ComfyUI_00002_.latent"
    inputs = base.paths.folders("input")[0]
    inputs.mkdir(parents=True, exist_ok=True)
    (inputs / "a.latent").write_bytes(path.read_bytes())
    (loaded,) = nodes.LoadLatent.execute(nctx(base, "LoadLatent"), latent="a.latent")
    assert torch.equal(loaded["samples"], x)


def test_load_old_file_unscales_and_errors(base):
    inputs = base.paths.folders("input")[0]
    inputs.mkdir(parents=True, exist_ok=True)
    x = _latent(1, 4, 2, 2)
    safetensors.torch.save_file({"latent_tensor": x.half()}, str(inputs / "old.latent"))
    (loaded,) = nodes.LoadLatent.execute(nctx(base, "LoadLatent"), latent="old.latent")
    assert loaded["samples"].dtype == torch.float32
    torch.testing.assert_close(loaded["samples"], x.half().float() / 0.18215)
    safetensors.torch.save_file({"other": x}, str(inputs / "bad.latent"))
    with pytest.raises(ValueError, match=r"input 'latent'.*no 'latent_tensor'"):
        nodes.LoadLatent.execute(nctx(base, "LoadLatent"), latent="bad.latent")
    (inputs / "junk.latent").write_bytes(b"not safetensors")
    with pytest.raises(ValueError, match=r"input 'latent'.*not a .latent"):
        nodes.LoadLatent.execute(nctx(base, "LoadLatent"), latent="junk.latent")
