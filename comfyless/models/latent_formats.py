"""Latent formats: how raw VAE latents map into the space the diffusion model works in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch-free at import: family declarations hold these objects
    from torch import Tensor


@dataclass(frozen=True)
class LatentFormat:
    """process_in(z) = (z - shift_factor) * scale_factor; process_out is its inverse."""

    name: str
    scale_factor: float
    shift_factor: float = 0.0
    channels: int = 4

    def process_in(self, latent: Tensor) -> Tensor:
        """Raw VAE latent -> model latent space."""
        return (latent - self.shift_factor) * self.scale_factor

    def process_out(self, latent: Tensor) -> Tensor:
        """Model latent space -> raw VAE latent."""
        return latent / self.scale_factor + self.shift_factor


# Facts from model-detection.md §6 / training-math.md §1. Which family uses which: its record
# in models/families/ (SD2.x uses the SD1.5 format).
SD15 = LatentFormat("SD15", 0.18215)
SDXL = LatentFormat("SDXL", 0.13025)
SD3 = LatentFormat("SD3", 1.5305, 0.0609, channels=16)
FLUX = LatentFormat("Flux", 0.3611, 0.1159, channels=16)


@dataclass(frozen=True)
class PerChannelLatentFormat(LatentFormat):
    """process_in(z) = (z - mean_c) / std_c per channel (dim 1), for latents of any rank
    ([B, C, h, w] images or [B, C, T, h, w] video-VAE latents); process_out is its inverse."""

    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def _stats(self, latent: Tensor) -> tuple[Tensor, Tensor]:
        if latent.ndim < 2 or latent.shape[1] != len(self.mean):
            raise ValueError(f"{self.name} latents have {len(self.mean)} channels on dim 1, "
                             f"got shape {list(latent.shape)}")
        shape = (1, len(self.mean)) + (1,) * (latent.ndim - 2)
        mean = latent.new_tensor(self.mean).reshape(shape)
        return mean, latent.new_tensor(self.std).reshape(shape)

    def process_in(self, latent: Tensor) -> Tensor:
        mean, std = self._stats(latent)
        return (latent - mean) / std

    def process_out(self, latent: Tensor) -> Tensor:
        mean, std = self._stats(latent)
        return latent * std + mean


# Wan 2.1 VAE statistics (model-families.md §4.3): Qwen-Image's latent space
WAN21 = PerChannelLatentFormat(
    "Wan21", 1.0, channels=16,
    mean=(-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715,
          0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921),
    std=(2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526,
         2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160),
)
