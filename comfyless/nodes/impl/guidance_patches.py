"""Execute of the guidance patch nodes (nodes/guidance_patches.py).

Spec note (ComfyUI's formulas, in our own words; x = the noisy input, sigma its noise level):

* CFGNorm (post-CFG): s = clamp(|cond_x0| / (|guided_x0| + 1e-8), 0, 1), the norms taken over
  the channel axis per element; result = guided_x0 * s * strength. With pre_cfg (a CFG
  function, eps-style cond/uncond): comb = uncond + scale * (cond - uncond), r = |cond| / |comb|
  (1 where |comb| = 0), result eps = strength * comb * r + (1 - strength) * comb.
* RescaleCFG (replaces the CFG formula): with eps-style cond/uncond (x - x0), both are turned
  into v-predictions assuming the EPS parameterisation (x' = x / (sigma^2 + 1);
  v = (x' - (x - eps)) * sqrt(sigma^2 + 1) / sigma); v_cfg = v_u + scale * (v_c - v_u);
  v_rescaled = v_cfg * std(v_c) / std(v_cfg) (std per sample over C, H, W, unbiased);
  v_final = multiplier * v_rescaled + (1 - multiplier) * v_cfg; the returned eps is
  x - (x' - v_final * sigma / sqrt(sigma^2 + 1)).
* DifferentialDiffusion (denoise-mask function): over the sampled schedule, from = first sigma,
  to = max(model sigma_min, last sigma); threshold = (t(sigma) - t(to)) / (t(from) - t(to))
  with t the model's timestep; mask' = (mask >= threshold) as 0/1; with 0 < strength < 1 the
  result is strength * mask' + (1 - strength) * mask (strength 0 counts as 1, as ComfyUI).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...models.guidance import DualGuider
from ...typesys.errors import InvalidValue
from ..guidance_patches import DUAL_CFG_STYLES
from .conditioning_ops import _conditioning


def _model(ctx, model: Any):
    if not hasattr(model, "with_post_cfg_function"):
        raise InvalidValue(f"model: expected a MODEL (diffusion model), got "
                           f"{type(model).__name__}", node_id=ctx.node_id, input_name="model")
    return model


def _per_sample(t: Tensor, like: Tensor) -> Tensor:
    return t.reshape(t.shape[:1] + (1,) * (like.ndim - 1))


def cfg_norm_function(strength: float):
    def cfg_norm(args: dict) -> Tensor:
        cond, guided = args["cond_denoised"], args["denoised"]
        norm_cond = torch.linalg.vector_norm(cond, dim=1, keepdim=True)
        norm_guided = torch.linalg.vector_norm(guided, dim=1, keepdim=True)
        scale = (norm_cond / (norm_guided + 1e-8)).clamp(min=0.0, max=1.0)
        return guided * scale * strength
    return cfg_norm


def cfg_norm_pre_function(strength: float):
    def cfg_norm_pre(args: dict) -> Tensor:
        cond, uncond = args["cond"], args["uncond"]
        combined = uncond + args["cond_scale"] * (cond - uncond)
        norm_cond = torch.linalg.vector_norm(cond, dim=1, keepdim=True)
        norm_combined = torch.linalg.vector_norm(combined, dim=1, keepdim=True)
        ratio = torch.where(norm_combined > 0, norm_cond / norm_combined.clamp_min(1e-12),
                            torch.ones_like(norm_combined))
        return strength * (combined * ratio) + (1.0 - strength) * combined
    return cfg_norm_pre


def rescale_cfg_function(multiplier: float):
    def rescale_cfg(args: dict) -> Tensor:
        cond, uncond, scale, x = args["cond"], args["uncond"], args["cond_scale"], args["input"]
        sigma = _per_sample(args["sigma"], cond)
        x_scaled = x / (sigma * sigma + 1.0)
        root = (sigma ** 2 + 1.0) ** 0.5
        v_cond = (x_scaled - (x - cond)) * root / sigma
        v_uncond = (x_scaled - (x - uncond)) * root / sigma
        v_cfg = v_uncond + scale * (v_cond - v_uncond)
        dims = tuple(range(1, cond.ndim))
        ratio = torch.std(v_cond, dim=dims, keepdim=True) / torch.std(v_cfg, dim=dims,
                                                                       keepdim=True)
        v_final = multiplier * (v_cfg * ratio) + (1.0 - multiplier) * v_cfg
        return x - (x_scaled - v_final * sigma / root)
    return rescale_cfg


def differential_mask_function(strength: float):
    def differential_mask(sigma: Tensor, mask: Tensor, extra: dict) -> Tensor:
        sampling, sigmas = extra["sampling"], extra["sigmas"]
        sigma_to = max(float(sampling.sigma_min), float(sigmas[-1]))
        t = sampling.timestep
        ts_from = float(t(torch.tensor(float(sigmas[0]))))
        ts_to = float(t(torch.tensor(sigma_to)))
        now = float(t(torch.tensor(float(sigma.reshape(-1)[0]))))
        threshold = (now - ts_to) / (ts_from - ts_to)
        binary = (mask >= threshold).to(mask.dtype)
        if strength and strength < 1:
            return strength * binary + (1 - strength) * mask
        return binary
    return differential_mask


def cfg_norm(ctx, model, strength: float = 1.0, pre_cfg: bool = False):
    if pre_cfg:
        return (_model(ctx, model).with_cfg_function(cfg_norm_pre_function(float(strength))),)
    return (_model(ctx, model).with_post_cfg_function(cfg_norm_function(float(strength))),)


def rescale_cfg(ctx, model, multiplier: float = 0.7):
    return (_model(ctx, model).with_cfg_function(rescale_cfg_function(float(multiplier))),)


def differential_diffusion(ctx, model, strength: float = 1.0):
    fn = differential_mask_function(float(strength))
    return (_model(ctx, model).with_denoise_mask_function(fn),)


def dual_cfg_guider(ctx, model, cond1, cond2, negative, cfg_conds: float = 8.0,
                    cfg_cond2_negative: float = 8.0, style: str = "regular"):
    model = _model(ctx, model)
    if style not in DUAL_CFG_STYLES:
        raise InvalidValue(f"style: expected one of {', '.join(DUAL_CFG_STYLES)}, got "
                           f"{style!r}", node_id=ctx.node_id, input_name="style")
    cond1 = _conditioning(ctx, cond1, "cond1")
    cond2 = _conditioning(ctx, cond2, "cond2")
    negative = _conditioning(ctx, negative, "negative")
    return (DualGuider(model, cond1, cond2, negative, float(cfg_conds),
                       float(cfg_cond2_negative), style == "nested"),)
