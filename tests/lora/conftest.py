"""Tiny random-weight UNets (real LDM key layout) and full-size ones on the meta device."""

from __future__ import annotations

import pytest
import torch

from comfyless.models.checkpoint_writer import unet_config
from comfyless.models.unet import UNetModel


def make_unet(arch: str, size: str = "tiny", seed: int = 0) -> UNetModel:
    """A UNet of `arch`; full size is built on the meta device (names and shapes only)."""
    cfg = unet_config(arch, size, context_dim=64 if size == "tiny" else None,
                      adm_in_channels=64 + 6 * 256 if size == "tiny" else None)
    if size == "full":
        with torch.device("meta"):
            return UNetModel(cfg)
    torch.manual_seed(seed)
    unet = UNetModel(cfg).eval()
    with torch.no_grad():  # non-trivial norms and biases, so diffs and OFT show up in outputs
        for p in unet.parameters():
            if p.dim() == 1:
                p.add_(torch.randn(p.shape) * 0.1)
    return unet


def unet_inputs(unet: UNetModel, seed: int = 1) -> tuple:
    g = torch.Generator().manual_seed(seed)
    cfg = unet.config
    x = torch.randn(1, 4, 16, 16, generator=g)
    t = torch.tensor([400.0])
    ctx = torch.randn(1, 5, cfg.context_dim, generator=g)
    y = None if cfg.adm_in_channels is None else torch.randn(1, cfg.adm_in_channels, generator=g)
    return x, t, ctx, y


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every LoRA test runs on one torch thread (see one_torch_thread)."""


@pytest.fixture(scope="module")
def sd15_unet() -> UNetModel:
    return make_unet("sd15")


@pytest.fixture(params=["sd15", "sd2", "sdxl"])
def tiny_unet(request) -> UNetModel:
    return make_unet(request.param)
