"""ModelPatcher: apply_model, clone/with_lora/patched, extra_conds."""

from __future__ import annotations

import pytest
import torch

from comfyless.models.patcher import ModelPatcher
from tests.floats import assert_close_scaled

ATTN_K = "input_blocks.1.1.transformer_blocks.0.attn2.to_k"
CONV = "input_blocks.1.0.in_layers.2"


def _context(model: ModelPatcher, batch: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    return torch.randn(batch, 5, model.config.context_dim, generator=g)


def test_apply_model_is_calculate_denoised_of_unet(tiny_sd15_model):
    model = tiny_sd15_model
    x = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    sigma = torch.tensor([0.5, 7.0])
    context = _context(model)  # batch 1, broadcast to 2
    x0 = model.apply_model(x, sigma, context)
    x_in = x / (sigma[:, None, None, None] ** 2 + 1).sqrt()
    t = model.sampling.timestep(sigma)
    with torch.no_grad():
        out = model.diffusion_model(x_in, t, context.repeat(2, 1, 1))
    assert_close_scaled(x0, x - out * sigma[:, None, None, None])


def test_apply_model_gradient_flows_to_input(tiny_sd15_model):
    x = torch.randn(1, 4, 8, 8, requires_grad=True)
    tiny_sd15_model.apply_model(x, torch.tensor([2.0]), _context(tiny_sd15_model)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def _lora(model: ModelPatcher, rank: int = 2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    w = dict(model.diffusion_model.named_parameters())
    out_f, in_f = w[f"{ATTN_K}.weight"].shape
    co, ci, kh, kw = w[f"{CONV}.weight"].shape
    return {
        f"diffusion_model.{ATTN_K}.lora_up.weight": torch.randn(out_f, rank, generator=g),
        f"diffusion_model.{ATTN_K}.lora_down.weight": torch.randn(rank, in_f, generator=g),
        f"diffusion_model.{ATTN_K}.alpha": torch.tensor(1.0),
        f"diffusion_model.{CONV}.lora_up.weight": torch.randn(co, rank, 1, 1, generator=g),
        f"diffusion_model.{CONV}.lora_down.weight": torch.randn(rank, ci, kh, kw, generator=g),
        f"diffusion_model.{CONV}.diff_b": torch.randn(co, generator=g),
    }


def test_with_lora_merges_inside_patched_and_restores(tiny_sd15_model):
    base = tiny_sd15_model.clone()
    lora = _lora(base)
    patched_model = base.with_lora(lora, 0.5)
    assert base.patches == [] and len(patched_model.patches) == 1
    weight = dict(base.diffusion_model.named_parameters())[f"{ATTN_K}.weight"]
    before = weight.detach().clone()
    up = lora[f"diffusion_model.{ATTN_K}.lora_up.weight"]
    down = lora[f"diffusion_model.{ATTN_K}.lora_down.weight"]
    with patched_model.patched():
        assert torch.allclose(weight, before + 0.5 * (1.0 / 2) * up @ down, atol=1e-5)
    assert torch.equal(weight, before)


def test_lora_changes_apply_model_and_matches_merged(tiny_sd15_model):
    base = tiny_sd15_model.clone()
    lora = _lora(base)
    x = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    sigma, context = torch.tensor([1.5]), _context(base)
    plain = base.apply_model(x, sigma, context)
    with_lora = base.with_lora(lora, 1.0)
    patched_out = with_lora.apply_model(x, sigma, context)
    assert (patched_out - plain).abs().max() > 1e-3
    with with_lora.patched():  # nested: no double application
        assert_close_scaled(with_lora.apply_model(x, sigma, context), patched_out)
    assert torch.equal(base.apply_model(x, sigma, context), plain)  # restored: bitwise
    assert_close_scaled(base.with_lora(lora, 1.0, bypass=True).apply_model(x, sigma, context),
                        patched_out, atol_rel=1e-4)


def test_zero_strength_is_passthrough(tiny_sd15_model):
    assert tiny_sd15_model.with_lora(_lora(tiny_sd15_model), 0.0).patches == []


def test_extra_conds_empty_for_sd15(tiny_sd15_model):
    assert tiny_sd15_model.extra_conds({"pooled_output": torch.zeros(1, 768)}, 512, 512) == {}


def test_sdxl_extra_conds_layout(tiny_sdxl_checkpoint):
    from comfyless.models.checkpoint import load_checkpoint
    from comfyless.models.unet import timestep_embedding

    model, _, _ = load_checkpoint(tiny_sdxl_checkpoint, load_clip=False, load_vae=False)
    adm = model.config.adm_in_channels
    pooled = torch.randn(1, adm - 1536)
    extra = model.extra_conds({"pooled_output": pooled, "crop_w": 16}, width=512, height=768)
    assert set(extra) == {"y"}
    y = extra["y"]
    assert y.shape == (1, adm)
    assert torch.equal(y[:, : adm - 1536], pooled)
    sizes = y[0, adm - 1536:].reshape(6, 256)
    want = timestep_embedding(torch.tensor([768.0, 512.0, 0.0, 16.0, 768.0, 512.0]), 256)
    assert torch.allclose(sizes, want)
    with pytest.raises(ValueError, match="pooled_output"):
        model.extra_conds({"pooled_output": torch.zeros(1, 7)}, 512, 512)
