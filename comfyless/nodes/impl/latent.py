"""Execute of the latent nodes (nodes/latent.py): VAEEncode, VAEDecode, EmptyLatentImage."""

from __future__ import annotations

import torch

from ...models.residency import release_idle


def _require(ctx, value, input_name: str, expected: str):
    if value is None:
        raise ValueError(f"node {ctx.node_id} ({ctx.class_type}) input '{input_name}': "
                         f"expected {expected}, got None")
    return value


def _samples(ctx, samples) -> object:
    if not isinstance(samples, dict) or "samples" not in samples:
        raise ValueError(f"node {ctx.node_id} ({ctx.class_type}) input 'samples': expected a "
                         f"LATENT dict with a 'samples' tensor, got {type(samples).__name__}")
    return samples["samples"]


def vae_encode(ctx, pixels, vae):
    vae = _require(ctx, vae, "vae", "a VAE")
    release_idle(keep=(vae,))  # other encoders wait in their files while it runs
    if getattr(pixels, "ndim", 0) != 4 or pixels.shape[-1] < 3:
        raise ValueError(f"node {ctx.node_id} (VAEEncode) input 'pixels': expected an "
                         f"IMAGE [B, H, W, 3], got shape {tuple(getattr(pixels, 'shape', ()))}")
    try:
        return ({"samples": vae.encode(pixels[..., :3])},)
    except ValueError as exc:
        raise ValueError(f"node {ctx.node_id} (VAEEncode) input 'pixels': {exc}") from exc


def vae_decode(ctx, samples, vae):
    vae = _require(ctx, vae, "vae", "a VAE")
    release_idle(keep=(vae,))  # other encoders wait in their files while it runs
    latent = _samples(ctx, samples)
    try:
        return (vae.decode(latent),)
    except ValueError as exc:
        raise ValueError(f"node {ctx.node_id} (VAEDecode) input 'samples': {exc}") from exc


def empty_latent_image(ctx, width: int = 512, height: int = 512, batch_size: int = 1):
    latent = torch.zeros([batch_size, 4, height // 8, width // 8])
    return ({"samples": latent, "downscale_ratio_spacial": 8},)
