"""Qwen-Image-Edit-2511 and the `index_timestep_zero` reference latents method
(models/families/qwen_image/): against diffusers' QwenImageTransformer2DModel(zero_cond_t=True)
(the oracle) on tiny random weights, the rule itself on real tensors (reference tokens modulated
at t = 0, image tokens at the step's t), the other ComfyUI placements (negative_index, uxo),
detection of the 2511 marker key and loading a 2511 file with it."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from comfyless.models.checkpoint import load_diffusion_model
from comfyless.models.families import detect_family
from comfyless.models.families.qwen_image import writer
from comfyless.models.families.qwen_image.conditioning import qwen_image_conds
from comfyless.models.families.qwen_image.config import TIMESTEP_ZERO_MARKER
from comfyless.models.families.qwen_image.detect import describe
from comfyless.models.families.qwen_image.network import QwenImageNetwork
from comfyless.models.latent_formats import WAN21
from tests.floats import assert_close_scaled
from tests.models.test_qwen_image import CONTEXT, _diffusers_forward, _inputs, _net, _report

METHOD = "index_timestep_zero"


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


def _file_sd_2511(seed: int = 0) -> dict[str, torch.Tensor]:
    return writer.diffusion_model_state_dict("qwen-image-edit-2511", "tiny", seed, CONTEXT)


def _net_2511(seed: int = 0) -> QwenImageNetwork:
    net = QwenImageNetwork(writer.network_config("qwen-image-edit-2511", "tiny", CONTEXT))
    net.load_state_dict(_file_sd_2511(seed))
    return net.eval().requires_grad_(False)


def _refs(seed: int = 5) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 16, 8, 12, generator=g), torch.randn(1, 16, 4, 8, generator=g)]


def _diffusers_zero_cond_model(net: QwenImageNetwork):
    diffusers = pytest.importorskip("diffusers")
    cfg = net.config
    model = diffusers.QwenImageTransformer2DModel(
        patch_size=cfg.patch_size, in_channels=cfg.in_channels, out_channels=cfg.out_channels,
        num_layers=cfg.num_layers, attention_head_dim=cfg.head_dim,
        num_attention_heads=cfg.num_heads, joint_attention_dim=cfg.joint_attention_dim,
        axes_dims_rope=tuple(cfg.axes_dim), zero_cond_t=True)
    weights = {k: v for k, v in net.state_dict().items() if k != TIMESTEP_ZERO_MARKER}
    model.load_state_dict(weights, strict=True)
    return model.eval()


# -- the oracle ------------------------------------------------------------------------------

def test_index_timestep_zero_matches_diffusers_zero_cond_t():
    net = _net()
    x, t, ctx = _inputs()
    refs = _refs()
    with torch.no_grad():
        ours = net(x, t, ctx, ref_latents=refs, ref_latents_method=METHOD)
        five_d = net(x[:, :, None], t, ctx, ref_latents=[r[:, :, None] for r in refs],
                     ref_latents_method=METHOD)
        theirs = _diffusers_forward(_diffusers_zero_cond_model(net), x[:, :, None], t, ctx,
                                    refs=[r[:, :, None] for r in refs])[:, :, 0]
        index = net(x, t, ctx, ref_latents=refs, ref_latents_method="index")
    _report("index_timestep_zero", ours, theirs)
    assert_close_scaled(five_d[:, :, 0], ours)
    assert (ours - index).abs().max() > 1e-3  # the t = 0 modulation changes the result


def test_text_mask_with_index_timestep_zero_matches_diffusers():
    net = _net()
    x, t, ctx = _inputs(tokens=6)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    refs = _refs(seed=6)[:1]
    with torch.no_grad():
        ours = net(x, t, ctx, attention_mask=mask, ref_latents=refs, ref_latents_method=METHOD)
        theirs = _diffusers_forward(_diffusers_zero_cond_model(net), x[:, :, None], t, ctx,
                                    mask=mask, refs=[r[:, :, None] for r in refs])[:, :, 0]
    _report("index_timestep_zero + text mask", ours, theirs)


# -- the rule on real tensors ------------------------------------------------------------------

def test_reference_tokens_are_modulated_at_timestep_zero():
    net = _net()
    x, _, ctx = _inputs()
    refs = _refs()
    zero = torch.zeros(2)
    with torch.no_grad():
        # at t = 0 both token groups use the t = 0 embedding: same as plain "index"
        assert_close_scaled(net(x, zero, ctx, ref_latents=refs, ref_latents_method=METHOD),
                            net(x, zero, ctx, ref_latents=refs, ref_latents_method="index"))
        # at t > 0 the references stay at t = 0 while the image moves to t: not "index"
        t = torch.tensor([0.6, 0.6])
        ours = net(x, t, ctx, ref_latents=refs, ref_latents_method=METHOD)
        index = net(x, t, ctx, ref_latents=refs, ref_latents_method="index")
    assert (ours - index).abs().max() > 1e-3


def test_without_references_it_is_the_plain_network():
    net = _net()
    x, t, ctx = _inputs()
    with torch.no_grad():
        assert_close_scaled(net(x, t, ctx, ref_latents_method=METHOD), net(x, t, ctx))
        assert_close_scaled(net(x, t, ctx, ref_latents=[], ref_latents_method=METHOD),
                            net(x, t, ctx))


def test_the_image_tokens_keep_the_steps_timestep():
    """Only the references are held at t = 0: the output still follows the step's t."""
    net = _net()
    x, _, ctx = _inputs()
    refs = _refs()
    with torch.no_grad():
        early = net(x, torch.tensor([0.9, 0.9]), ctx, ref_latents=refs, ref_latents_method=METHOD)
        late = net(x, torch.tensor([0.2, 0.2]), ctx, ref_latents=refs, ref_latents_method=METHOD)
    assert (early - late).abs().max() > 1e-3


# -- placements ------------------------------------------------------------------------------

def test_reference_frame_indices_per_method():
    net = _net()
    img = torch.zeros(1, 24, 64)
    ids = torch.zeros(1, 24, 3)
    refs = _refs()
    for method, expected in (("index", [1, 2]), (METHOD, [1, 2]), ("negative_index", [-1, -2]),
                             ("offset", [1, 1]), ("uxo", [1, 1])):
        _, all_ids = net._append_references(img, ids, refs, method)
        frames = all_ids[0, 24:, 0]
        assert [float(frames[0]), float(frames[-1])] == expected, method


# -- the 2511 model: detection, default method, loading ---------------------------------------

def test_marker_key_gives_the_2511_default_method():
    shapes = {k: tuple(v.shape) for k, v in _file_sd_2511().items()}
    for marker_shape in ((0,), ()):  # ComfyUI writes [0]; some fp8 repacks a 0-dim scalar
        shapes[TIMESTEP_ZERO_MARKER] = marker_shape
        cfg = detect_family(shapes, prefix="").config
        assert cfg.default_ref_method == METHOD
        assert "Qwen-Image-Edit-2511" in describe(cfg)
    del shapes[TIMESTEP_ZERO_MARKER]
    assert detect_family(shapes, prefix="").config.default_ref_method == "index"


def test_the_default_method_applies_when_the_conditioning_names_none():
    plain, edit = _net(), _net_2511()
    x, t, ctx = _inputs()
    refs = _refs()
    with torch.no_grad():
        assert_close_scaled(edit(x, t, ctx, ref_latents=refs),
                            plain(x, t, ctx, ref_latents=refs, ref_latents_method=METHOD))
        assert_close_scaled(plain(x, t, ctx, ref_latents=refs),
                            plain(x, t, ctx, ref_latents=refs, ref_latents_method="index"))
        assert_close_scaled(edit(x, t, ctx, ref_latents=refs, ref_latents_method="index"),
                            plain(x, t, ctx, ref_latents=refs))


@pytest.mark.parametrize("marker", [torch.empty(0), torch.tensor(0.0)])
def test_load_a_2511_file_and_sample_through_the_conditioning(marker, tmp_path):
    sd = {"model.diffusion_model." + k: v for k, v in _file_sd_2511().items()}
    sd["model.diffusion_model." + TIMESTEP_ZERO_MARKER] = marker
    path = tmp_path / "qwen_image_edit_2511.safetensors"
    save_file(sd, str(path))
    model = load_diffusion_model(path)
    net = model.diffusion_model
    assert model.family == "qwen-image" and net.config.default_ref_method == METHOD
    assert TIMESTEP_ZERO_MARKER in net.state_dict()  # kept, so a saved model stays 2511
    ref = torch.randn(1, 16, 8, 12, generator=torch.Generator().manual_seed(9))
    extra = qwen_image_conds(model, {"reference_latents": [ref],
                                     "reference_latents_method": METHOD}, 96, 64)
    assert extra["ref_latents_method"] == METHOD
    x, t, ctx = _inputs()
    with torch.no_grad():
        ours = net(x, t, ctx, **extra)
        expected = _net()(x, t, ctx, ref_latents=[WAN21.process_in(ref)],
                          ref_latents_method=METHOD)
    assert_close_scaled(ours, expected)
