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
