"""ModelPatcher: the MODEL payload. A diffusion UNet plus its sampling, latent format and
pending LoRA patches; patches are applied to the shared weights only inside `patched()`.

State: `diffusion_model` is shared between clones (never copied); `patches` is per clone, a
list of (lora state dict, strength) with a parallel `bypass` list (comfyless.lora.apply does
the merging / hooking); the UNet remembers which patch list is currently applied
(`_comfyless_active`), so nested `patched()` calls and `apply_model` inside a `patched()`
block cost nothing.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from .families import Family, family
from .latent_formats import LatentFormat
from .sampling import ModelSampling
from .unet import UNetConfig, UNetModel


class ModelPatcher:
    """A diffusion model with its sampling parameterisation and pending LoRA patches."""

    def __init__(self, diffusion_model: UNetModel, sampling: ModelSampling,
                 latent_format: LatentFormat, family: str, *,
                 source: dict[str, Any] | None = None) -> None:
        self.diffusion_model = diffusion_model
        self.sampling = sampling
        self.latent_format = latent_format
        self.family = family
        self.source: dict[str, Any] = source if source is not None else {}
        self.patches: list[tuple[dict[str, Tensor], float]] = []
        self.bypass: list[bool] = []  # parallel to patches
        # sampler hooks (ComfyUI's model_options; models/guidance.py calls them): a CFG
        # function replacing the CFG formula, post-CFG functions in order, a per-step
        # denoise-mask function, and whether cfg 1 must still run the negative pass
        self.sampler_cfg_function: Callable[[dict], Tensor] | None = None
        self.post_cfg_functions: list[Callable[[dict], Tensor]] = []
        self.denoise_mask_function: Callable[..., Tensor] | None = None
        self.disable_cfg1_optimization = False
        # keyword arguments every network call gets (FreeU's output_block_patches); a new
        # dict per change, so clones never share later additions
        self.network_options: dict[str, Any] = {}

    @property
    def family_record(self) -> Family:
        """The family record (models/families/) this model's `family` name stands for."""
        return family(self.family)

    @property
    def config(self) -> UNetConfig:
        return self.diffusion_model.config

    @property
    def dtype(self) -> torch.dtype:
        return self.diffusion_model.dtype

    @property
    def device(self) -> torch.device:
        return next(self.diffusion_model.parameters()).device

    def __repr__(self) -> str:
        return (f"ModelPatcher(family={self.family!r}, prediction={self.sampling.prediction!r}, "
                f"patches={len(self.patches)}, source={self.source.get('file')!r})")

    def clone(self) -> ModelPatcher:
        """A new patcher sharing the UNet, with its own copy of the patch list."""
        other = copy.copy(self)
        other.patches = list(self.patches)
        other.bypass = list(self.bypass)
        other.source = copy.copy(self.source)
        other.post_cfg_functions = list(self.post_cfg_functions)
        return other

    def with_cfg_function(self, fn: Callable[[dict], Tensor], *,
                          disable_cfg1_optimization: bool = False) -> ModelPatcher:
        """A clone whose CFG combination is `fn(args)` (see guidance.combine_cfg)."""
        other = self.clone()
        other.sampler_cfg_function = fn
        other.disable_cfg1_optimization |= disable_cfg1_optimization
        return other

    def with_post_cfg_function(self, fn: Callable[[dict], Tensor], *,
                               disable_cfg1_optimization: bool = False) -> ModelPatcher:
        """A clone with one more post-CFG function (applied after the earlier ones)."""
        other = self.clone()
        other.post_cfg_functions.append(fn)
        other.disable_cfg1_optimization |= disable_cfg1_optimization
        return other

    def with_denoise_mask_function(self, fn: Callable[..., Tensor]) -> ModelPatcher:
        """A clone whose noise mask is re-derived every step: fn(sigma, mask, extra)."""
        other = self.clone()
        other.denoise_mask_function = fn
        return other

    def with_lora(self, lora_sd: dict[str, Tensor], strength: float,
                  bypass: bool = False) -> ModelPatcher:
        """A clone with one more LoRA patch (applied inside `patched()`)."""
        other = self.clone()
        if strength != 0.0:
            other.patches.append((lora_sd, float(strength)))
            other.bypass.append(bool(bypass))
        return other

    def with_output_block_patch(self, patch: Any) -> ModelPatcher:
        """A clone whose UNet calls `patch(h, skip) -> (h, skip)` before each output block
        (after the ones already set), as ComfyUI's set_model_output_block_patch."""
        other = self.clone()
        patches = tuple(self.network_options.get("output_block_patches", ())) + (patch,)
        other.network_options = {**self.network_options, "output_block_patches": patches}
        return other

    def with_sampling(self, sampling: ModelSampling) -> ModelPatcher:
        """A clone using another sampling parameterisation (ModelSamplingDiscrete)."""
        other = self.clone()
        other.sampling = sampling
        return other

    # -- patching ---------------------------------------------------------------------------
    def _signature(self) -> tuple:
        return tuple((id(sd), s, b) for (sd, s), b in zip(self.patches, self.bypass, strict=True))

    @contextlib.contextmanager
    def patched(self) -> Iterator[UNetModel]:
        """The UNet with every patch merged into its weights; restored on exit."""
        unet = self.diffusion_model
        active = getattr(unet, "_comfyless_active", ())
        if not self.patches or active == self._signature():
            yield unet
            return
        if active:
            raise RuntimeError("another ModelPatcher's patches are applied to this UNet right now")
        from ..lora.apply import loras_applied

        loras = [(sd, s, b) for (sd, s), b in zip(self.patches, self.bypass, strict=True)]
        with loras_applied(unet, loras, "unet"):
            unet._comfyless_active = self._signature()
            try:
                yield unet
            finally:
                unet._comfyless_active = ()

    # -- forward ----------------------------------------------------------------------------
    def apply_model(self, x: Tensor, sigma: Tensor, context: Tensor, **extra: Any) -> Tensor:
        """The x0 prediction for noisy latents x (latent-format space) at noise level sigma.

        `extra` are the network's keyword inputs from `extra_conds` (SDXL `y`; Flux `y`,
        `guidance`, `ref_latents`); batch-1 tensors are repeated to the latent batch.
        `c_concat` (inpaint / InstructPix2Pix concat latents) is appended to the scaled input
        on the channel axis, as ComfyUI (after calculate_input: the concat is not scaled).
        """
        sigma = torch.as_tensor(sigma, device=x.device, dtype=torch.float32)
        if sigma.ndim == 0:
            sigma = sigma.expand(x.shape[0])
        x_in = self.sampling.calculate_input(sigma, x)
        c_concat = extra.pop("c_concat", None)
        if c_concat is not None:
            x_in = torch.cat([x_in, match_batch(c_concat, x.shape[0]).to(x_in)], dim=1)
        t = self.sampling.timestep(sigma).float()
        dtype = self.dtype
        context = match_batch(context, x.shape[0]).to(x.device, dtype)
        kwargs = {k: _to_network(v, x.shape[0], x.device, dtype) for k, v in extra.items()
                  if v is not None}
        kwargs.update(self.network_options)
        with self.patched() as unet:
            out = unet(x_in.to(dtype), t, context, **kwargs)
        return self.sampling.calculate_denoised(sigma, out.float(), x.float()).to(x.dtype)

    def extra_conds(self, cond_dict: dict[str, Any], width: int, height: int) -> dict[str, Any]:
        """The family's extra network inputs for one conditioning, as keyword arguments of
        `apply_model` ({} if the family has none): SDXL's adm vector `y` from the pooled text
        embedding and image sizes; Flux's pooled `y`, `guidance`, `ref_latents`.

        width/height are pixel sizes (latent size x 8); `cond_dict` may override them with
        ComfyUI's keys width, height, crop_w, crop_h, target_width, target_height.
        """
        return self.family_record.conditioning_extras(self, cond_dict, width, height)

    def concat_cond(self, cond_dict: dict[str, Any], noise_shape: torch.Size,
                    latent_image: Tensor | None, denoise_mask: Tensor | None) -> Tensor | None:
        """The concat latents (`c_concat`) an inpaint / InstructPix2Pix network takes beside x,
        from the family's rule; None for models that take none."""
        return self.family_record.concat_latents(self, cond_dict, noise_shape, latent_image,
                                                 denoise_mask)


def _to_network(value: Any, batch: int, device: torch.device, dtype: torch.dtype) -> Any:
    """An extra network input on the model's device: float tensors in the network dtype and
    repeated to the batch; lists (reference latents) element by element."""
    if isinstance(value, list | tuple):
        return [_to_network(v, batch, device, dtype) for v in value]
    if not isinstance(value, Tensor):
        return value
    value = match_batch(value, batch)
    return value.to(device, dtype if value.is_floating_point() else value.dtype)


def match_batch(t: Tensor, batch: int) -> Tensor:
    """Repeat a conditioning tensor whose batch divides the latent batch to that size."""
    if t.shape[0] == batch:
        return t
    if batch % t.shape[0] == 0:
        return t.repeat(batch // t.shape[0], *([1] * (t.ndim - 1)))
    raise ValueError(f"conditioning batch {t.shape[0]} does not match latent batch {batch}")
