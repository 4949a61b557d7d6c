"""The LDM UNet: real key names and parameter counts, forward shapes, embeddings."""

from __future__ import annotations

import math

import pytest
import torch

from comfyless.models.checkpoint_writer import unet_config
from comfyless.models.unet import UNetConfig, UNetModel, timestep_embedding


def _meta_state(config: UNetConfig) -> dict[str, torch.Size]:
    with torch.device("meta"):
        return {k: v.shape for k, v in UNetModel(config).state_dict().items()}


@pytest.mark.parametrize(("arch", "keys", "params"), [
    ("sd15", 686, 859_520_964),   # the real SD1.5 UNet
    ("sdxl", 1680, 2_567_463_684),  # the real SDXL base UNet
])
def test_full_size_matches_real_models(arch, keys, params):
    shapes = _meta_state(unet_config(arch, "full"))
    assert len(shapes) == keys
    assert sum(s.numel() for s in shapes.values()) == params


def test_sd15_key_examples_from_spec():
    shapes = _meta_state(unet_config("sd15", "full"))
    expected = {
        "time_embed.0.weight": (1280, 320),
        "input_blocks.0.0.weight": (320, 4, 3, 3),
        "input_blocks.1.0.in_layers.0.weight": (320,),
        "input_blocks.1.0.in_layers.2.weight": (320, 320, 3, 3),
        "input_blocks.1.0.emb_layers.1.weight": (320, 1280),
        "input_blocks.1.1.proj_in.weight": (320, 320, 1, 1),
        "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": (320, 768),
        "input_blocks.3.0.op.weight": (320, 320, 3, 3),
        "input_blocks.4.0.skip_connection.weight": (640, 320, 1, 1),
        "output_blocks.2.1.conv.weight": (1280, 1280, 3, 3),
        "out.2.weight": (4, 320, 3, 3),
    }
    for key, shape in expected.items():
        assert tuple(shapes[key]) == shape, key
    assert "middle_block.1.proj_in.weight" in shapes


def test_sdxl_key_examples_from_spec():
    shapes = _meta_state(unet_config("sdxl", "full"))
    assert tuple(shapes["label_emb.0.0.weight"]) == (1280, 2816)
    assert tuple(shapes["label_emb.0.2.weight"]) == (1280, 1280)
    assert tuple(shapes["input_blocks.4.1.proj_in.weight"]) == (640, 640)  # Linear, not conv


def test_timestep_embedding_is_cos_then_sin():
    emb = timestep_embedding(torch.tensor([0.0, 3.0]), 8)
    assert emb.shape == (2, 8)
    assert torch.allclose(emb[0], torch.tensor([1.0] * 4 + [0.0] * 4))
    freqs = [math.exp(-math.log(10000) * i / 4) for i in range(4)]
    want = [math.cos(3 * f) for f in freqs] + [math.sin(3 * f) for f in freqs]
    assert torch.allclose(emb[1], torch.tensor(want), atol=1e-6)


@pytest.mark.parametrize("arch", ["sd15", "sd2", "sdxl"])
@pytest.mark.parametrize("hw", [(8, 8), (9, 7)])  # odd sizes: upsampling follows the skips
def test_tiny_forward_shape_and_finite(arch, hw):
    config = unet_config(arch, "tiny", context_dim=32, adm_in_channels=64 + 1536)
    torch.manual_seed(0)
    unet = UNetModel(config).eval()
    x = torch.randn(2, 4, *hw)
    context = torch.randn(2, 5, 32)
    y = torch.randn(2, config.adm_in_channels) if config.adm_in_channels else None
    with torch.no_grad():
        out = unet(x, torch.tensor([1.0, 999.0]), context, y)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()


def test_sdxl_without_adm_vector_is_an_error():
    config = unet_config("sdxl", "tiny", context_dim=32, adm_in_channels=1600)
    unet = UNetModel(config)
    with pytest.raises(ValueError, match="adm"):
        unet(torch.randn(1, 4, 8, 8), torch.tensor([1.0]), torch.randn(1, 3, 32))


def test_unet_backward_reaches_every_parameter():
    config = unet_config("sd15", "tiny", context_dim=32)
    unet = UNetModel(config)
    out = unet(torch.randn(1, 4, 8, 8), torch.tensor([5.0]), torch.randn(1, 3, 32))
    out.square().mean().backward()
    no_grad = [n for n, p in unet.named_parameters() if p.grad is None]
    assert no_grad == []
