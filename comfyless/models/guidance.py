"""Classifier-free guidance: a ModelPatcher + CONDITIONING lists -> a denoiser D(x, sigma).

D(x, sigma) = uncond + cfg * (cond - uncond), all in x0 space (ComfyUI guides the denoised
predictions). With cfg == 1 the negative pass is skipped. A CONDITIONING list with several
entries is evaluated entry by entry on the whole batch and averaged with the entries' `strength`
weights (ComfyUI's calc_cond_batch); an entry with start_percent / end_percent
(ConditioningSetTimestepRange) only takes part while the step's sigma lies between their sigmas,
and a list with no entry active predicts zeros (as ComfyUI). Area and mask entries
(ConditioningSetArea / SetAreaPercentage / SetMask) see x cropped to their area and are
weighted element-wise (rules: models/cond_areas.py). When positive and negative are single
full-size entries of the same shape, both passes run as one batch of 2B (faster; the same
numbers up to float rounding).

Model hooks (set on the ModelPatcher by patch nodes; ComfyUI's model_options): a CFG function
replacing `uncond + cfg * (cond - uncond)` (RescaleCFG), post-CFG functions applied to the
guided result in order (CFGNorm), a denoise-mask function re-deriving the noise mask each step
(DifferentialDiffusion). See `combine_cfg`. Inpaint / InstructPix2Pix models get their concat
latents (`c_concat`) once per sampling from the family (`ModelPatcher.concat_cond`).

An entry carrying a ControlNet (`control`, set by ControlNetApply / ControlNetApplyAdvanced)
runs its ControlNet chain before each forward and hands the residuals to the UNet (`control=`,
models/controlnet.py); positive and negative batch together only when they carry the same
chain, and ControlNetApply's `control_apply_to_uncond` gives the negative the positive's
ControlNets when it has none (ComfyUI's rules).

An optional noise mask (LATENT "noise_mask", 1 = resample) keeps the masked-out area of the
input latent: it is re-noised to the current sigma before every call and pasted back into the
prediction (ComfyUI's KSamplerX0Inpaint).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..typesys.types import SEED_MAX
from . import cond_areas
from .patcher import ModelPatcher, match_batch


@dataclass
class _Cond:
    """One conditioning entry, ready for apply_model: context, extra network inputs, weight."""

    context: Tensor  # (1 or B, T, D)
    extra: dict[str, Any]  # apply_model keyword inputs: SDXL y (1 or B, adm); Flux guidance...
    strength: float
    # ConditioningSetTimestepRange: used while sigma_end <= sigma <= sigma_start (None: no bound)
    sigma_start: float | None = None
    sigma_end: float | None = None
    # area / mask conditioning (resolved to the latent size; see models/cond_areas.py)
    area: tuple[int, ...] | None = None
    mask: Tensor | None = None
    mask_strength: float = 1.0
    options: dict[str, Any] | None = None  # the entry's options (concat latents, ...)
    # ControlNetApply*: a models.controlnet.ControlNet chain run before each forward
    control: Any = None
    control_to_uncond: bool = False  # ControlNetApply (old): also steer the negative pass

    @property
    def full_size(self) -> bool:
        """Acts on the whole latent with a uniform weight (no area, no mask)."""
        return self.area is None and self.mask is None

    def active_at(self, sigma: float) -> bool:
        """ComfyUI's rule: skipped above its start sigma and below its end sigma."""
        if self.sigma_start is not None and sigma > self.sigma_start:
            return False
        return not (self.sigma_end is not None and sigma < self.sigma_end)


def _percent_sigma(model: ModelPatcher, options: dict, key: str) -> float | None:
    """start_percent / end_percent -> sigma via the model's schedule (None when unset)."""
    percent = options.get(key)
    return None if percent is None else model.sampling.percent_to_sigma(float(percent))


def prepare_conds(model: ModelPatcher, conditioning: list, width: int, height: int,
                  *, what: str = "positive") -> list[_Cond]:
    """CONDITIONING ([[cond, {pooled_output, ...}], ...]) -> entries for the model."""
    if not isinstance(conditioning, list) or not conditioning:
        raise ValueError(f"{what}: expected a non-empty CONDITIONING list, got {conditioning!r}")
    out = []
    for k, entry in enumerate(conditioning):
        if not (isinstance(entry, list | tuple) and len(entry) == 2 and
                isinstance(entry[0], Tensor) and isinstance(entry[1], dict)):
            raise ValueError(f"{what}: entry {k} is not a [Tensor, dict] pair")
        context, options = entry
        if context.ndim != 3:
            raise ValueError(f"{what}: entry {k} has shape {tuple(context.shape)}, expected "
                             "(batch, tokens, features)")
        area, mask, mask_strength = cond_areas.entry_region(
            options, height // 8, width // 8, what=f"{what}: entry {k}")
        extra = model.extra_conds(options, width, height)
        control, control_to_uncond = _control_options(model, options, what, k)
        out.append(_Cond(context, extra, float(options.get("strength", 1.0)),
                         _percent_sigma(model, options, "start_percent"),
                         _percent_sigma(model, options, "end_percent"),
                         area=area, mask=mask, mask_strength=mask_strength, options=options,
                         control=control, control_to_uncond=control_to_uncond))
    return out


def attach_concat(model: Any, conds: list[_Cond] | None, noise_shape: torch.Size,
                  latent_image: Tensor | None, denoise_mask: Tensor | None) -> None:
    """Give every entry the model's concat latents (`c_concat`: inpaint / InstructPix2Pix
    UNets), built from the entry's options, the input latent and the noise mask; nothing for
    models that take none (a 4-channel UNet ignores concat_latent_image, as ComfyUI)."""
    concat_cond = getattr(model, "concat_cond", None)
    if conds is None or concat_cond is None:
        return
    for c in conds:
        data = concat_cond(c.options or {}, noise_shape, latent_image, denoise_mask)
        if data is not None:
            c.extra = {**c.extra, "c_concat": data}


def combine_cfg(model: Any, cond_pred: Tensor, uncond_pred: Tensor, cond_scale: float,
                x: Tensor, sigma: Tensor, cond: list | None = None,
                uncond: list | None = None) -> Tensor:
    """ComfyUI's cfg_function: the guided x0 from the two predictions.

    Without hooks: uncond + (cond - uncond) * scale. A CFG function (model.sampler_cfg_function)
    replaces that: it gets eps-style "cond" = x - cond_pred and "uncond" = x - uncond_pred plus
    "cond_scale", "timestep"/"sigma", "input" (x), "cond_denoised", "uncond_denoised", "model",
    and returns the guided eps (result = x - fn(args)). Each post-CFG function then maps
    {"denoised", "cond", "uncond" (the conditioning lists), "cond_scale", "model",
    "uncond_denoised", "cond_denoised", "sigma", "input"} to a new denoised. A skipped
    negative pass arrives here as uncond_pred = 0 (ComfyUI's empty weighted sum).
    """
    cfg_fn = getattr(model, "sampler_cfg_function", None)
    if cfg_fn is not None:
        args = {"cond": x - cond_pred, "uncond": x - uncond_pred, "cond_scale": cond_scale,
                "timestep": sigma, "input": x, "sigma": sigma, "cond_denoised": cond_pred,
                "uncond_denoised": uncond_pred, "model": model}
        result = x - cfg_fn(args)
    else:
        result = uncond_pred + (cond_pred - uncond_pred) * cond_scale
    for fn in getattr(model, "post_cfg_functions", ()):
        result = fn({"denoised": result, "cond": cond, "uncond": uncond,
                     "cond_scale": cond_scale, "model": model, "uncond_denoised": uncond_pred,
                     "cond_denoised": cond_pred, "sigma": sigma, "input": x})
    return result


def _has_cfg_hooks(model: Any) -> bool:
    return getattr(model, "sampler_cfg_function", None) is not None or \
        bool(getattr(model, "post_cfg_functions", ()))


def skips_uncond(model: Any, cfg: float) -> bool:
    """ComfyUI's cfg-1 optimisation: at scale 1 the negative pass is not run (unless a
    patch asked for it: model.disable_cfg1_optimization)."""
    return math.isclose(cfg, 1.0) and not getattr(model, "disable_cfg1_optimization", False)


def _prepare_mask(mask: Tensor, shape: torch.Size) -> Tensor:
    """A (B?, H, W) pixel or latent mask -> (B, C, h, w) at the latent's size."""
    mask = mask.reshape(-1, 1, mask.shape[-2], mask.shape[-1]).float()
    mask = F.interpolate(mask, size=tuple(shape[2:]), mode="bilinear")
    mask = mask.expand(-1, shape[1], -1, -1)
    if mask.shape[0] != shape[0]:
        reps = -(-shape[0] // mask.shape[0])
        mask = mask.repeat(reps, 1, 1, 1)[: shape[0]]
    return mask


class CFGDenoiser:
    """D(x, sigma) for a model under positive/negative conditioning at guidance scale cfg."""

    def __init__(self, model: ModelPatcher, positive: list, negative: list | None, cfg: float,
                 latent_shape: torch.Size) -> None:
        width, height = latent_shape[-1] * 8, latent_shape[-2] * 8
        self.model = model
        self.model_sampling = model.sampling  # samplers ask it (flow models: RF ancestral forms)
        self.cfg = float(cfg)
        self.positive = prepare_conds(model, positive, width, height, what="positive")
        # negative is still checked when cfg == 1, so a broken graph fails the same way;
        # None (BasicGuider): positive only, always unguided
        self.negative = (None if negative is None else
                         prepare_conds(model, negative, width, height, what="negative"))
        cond_areas.pair_areas(self._lists())
        _controls_to_uncond(self.positive, self.negative)
        self.calls = 0  # number of UNet forwards (one batched forward counts once)
        self.inpaint: tuple[Tensor, Tensor, Tensor] | None = None
        self.always_uncond = False  # CFG++ samplers need the negative pass even at cfg 1
        self.uncond_denoised: Tensor | None = None  # the last negative prediction (CFG++)
        self.latent_image: Tensor | None = None  # model-space input latent (concat latents)
        self.sigmas: Tensor | None = None  # the whole schedule (denoise-mask functions read it)
        self._concat_ready = False

    def _lists(self) -> list[list[_Cond] | None]:
        """Every conditioning list, in ComfyUI's order (area twins are paired in this order)."""
        return [self.positive, self.negative]

    def set_noise_mask(self, mask: Tensor, latent: Tensor, noise: Tensor) -> None:
        """Keep latent where mask == 0 (latent and noise in model latent space)."""
        self.inpaint = (_prepare_mask(mask, latent.shape).to(latent), latent, noise)

    def _ensure_concat(self, x: Tensor) -> None:
        """Attach concat latents once, from the input latent and the (unmodified) noise mask."""
        if self._concat_ready:
            return
        latent = self.latent_image if self.latent_image is not None else torch.zeros_like(x)
        mask = None if self.inpaint is None else self.inpaint[0]
        for conds in self._lists():
            attach_concat(self.model, conds, x.shape, latent, mask)
        self._concat_ready = True

    def _apply_entry(self, x: Tensor, sigma: Tensor, c: _Cond,
                     area: tuple[int, int, int, int] | None) -> Tensor:
        """One entry's x0 prediction on x (already cropped to `area`)."""
        extra = {k: cond_areas.crop(v, area) if k in cond_areas.NOISE_SHAPED_EXTRAS else v
                 for k, v in c.extra.items()}
        extra = _with_control(self.model, c, x, sigma, c.context, extra)
        self.calls += 1
        return self.model.apply_model(x, sigma, c.context, **extra)

    def _forward(self, x: Tensor, sigma: Tensor, conds: list[_Cond]) -> Tensor:
        """Weighted combination over a cond list, each entry at its area (ComfyUI's
        calc_cond_batch for one list): sum(pred * mult) / (sum(mult) + 1e-37); none: zeros."""
        h, w = x.shape[-2:]
        total = torch.zeros_like(x)
        count = torch.full_like(x, cond_areas.COUNT_FLOOR)
        for c in conds:
            area = None if c.area is None else cond_areas.clamp_area(c.area, h, w)
            x_c = cond_areas.crop(x, area)
            mult = cond_areas.entry_weight(x_c, area, c.mask, c.mask_strength, c.strength, h, w)
            pred = self._apply_entry(x_c, sigma, c, area)
            cond_areas.crop(total, area).add_(pred * mult)
            cond_areas.crop(count, area).add_(mult)
        return total / count

    @staticmethod
    def _active(conds: list[_Cond] | None, sigma: Tensor) -> list[_Cond]:
        """The entries whose timestep range covers this step (judged on the first sample)."""
        now = float(sigma.reshape(-1)[0])
        return [c for c in conds or () if c.active_at(now)]

    def _both(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        """(cond, uncond) predictions; one batched forward when both are single, same-shape."""
        pos, neg = self._active(self.positive, sigma), self._active(self.negative, sigma)
        if len(pos) == len(neg) == 1 and _batchable(pos[0], neg[0]):
            b = x.shape[0]
            context = torch.cat([match_batch(pos[0].context, b), match_batch(neg[0].context, b)])
            extra = {k: torch.cat([match_batch(v, b), match_batch(neg[0].extra[k], b)])
                     for k, v in pos[0].extra.items()}
            self.calls += 1
            x2, sigma2 = torch.cat([x, x]), torch.cat([sigma, sigma])
            extra = _with_control(self.model, pos[0], x2, sigma2, context, extra, batched=2)
            out = self.model.apply_model(x2, sigma2, context, **extra)
            return out[:b], out[b:]
        return self._forward(x, sigma, pos), self._forward(x, sigma, neg)

    def _guided(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor | None]:
        """(guided x0, negative prediction or None when the negative pass was skipped)."""
        skip = self.negative is None or (skips_uncond(self.model, self.cfg)
                                          and not self.always_uncond)
        if skip:
            cond = self._forward(x, sigma, self._active(self.positive, sigma))
            if not _has_cfg_hooks(self.model):
                return cond, None  # = 0 + (cond - 0) * 1
            return combine_cfg(self.model, cond, torch.zeros_like(cond), self.cfg, x, sigma,
                               self.positive, None), None
        cond, uncond = self._both(x, sigma)
        return combine_cfg(self.model, cond, uncond, self.cfg, x, sigma, self.positive,
                           self.negative), uncond

    def _step_mask(self, sigma: Tensor, mask: Tensor) -> Tensor:
        """The noise mask for this step: a model's denoise-mask function may re-derive it
        (DifferentialDiffusion); it gets (sigma, mask, {"sampling", "sigmas"})."""
        fn = getattr(self.model, "denoise_mask_function", None)
        if fn is None:
            return mask
        return fn(sigma, mask, {"sampling": self.model.sampling, "sigmas": self.sigmas})

    def __call__(self, x: Tensor, sigma: Tensor, **_: Any) -> Tensor:
        self._ensure_concat(x)
        mask = None
        if self.inpaint is not None:
            mask, latent, noise = self.inpaint
            mask = self._step_mask(sigma, mask)
            noised = self.model.sampling.noise_scaling(sigma, noise, latent)
            x = x * mask + noised * (1 - mask)
        out, uncond = self._guided(x, sigma)
        if mask is not None:
            out = out * mask + latent * (1 - mask)
            uncond = None if uncond is None else uncond * mask + latent * (1 - mask)
        self.uncond_denoised = uncond
        return out


class DualCFGDenoiser(CFGDenoiser):
    """ComfyUI's DualCFGGuider: cond1 (positive), cond2 (middle), negative at two scales.

    regular: combine_cfg(middle vs negative at cfg2) + (cond1 - middle) * cfg1; at cfg2 == 1
    the negative pass is skipped, and at cfg1 == cfg2 == 1 the middle one too (predictions of
    skipped lists are 0). nested: text = combine_cfg(cond1 vs middle at cfg1); result =
    negative + cfg2 * (text - negative), every list evaluated.
    """

    def __init__(self, model: ModelPatcher, cond1: list, cond2: list, negative: list,
                 cfg_conds: float, cfg_cond2_negative: float, nested: bool,
                 latent_shape: torch.Size) -> None:
        width, height = latent_shape[-1] * 8, latent_shape[-2] * 8
        self.middle = prepare_conds(model, cond2, width, height, what="cond2")
        super().__init__(model, cond1, negative, cfg_conds, latent_shape)
        self.cfg2 = float(cfg_cond2_negative)
        self.nested = bool(nested)

    def _lists(self) -> list[list[_Cond] | None]:
        return [self.positive, self.middle, self.negative]

    def _predict(self, x: Tensor, sigma: Tensor, conds: list[_Cond] | None) -> Tensor:
        if conds is None:
            return torch.zeros_like(x)
        return self._forward(x, sigma, self._active(conds, sigma))

    def _guided(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor | None]:
        positive, middle, negative = self.positive, self.middle, self.negative
        if self.nested:
            out_n, out_m, out_p = (self._predict(x, sigma, c) for c in (negative, middle,
                                                                         positive))
            text = combine_cfg(self.model, out_p, out_m, self.cfg, x, sigma, positive, middle)
            return out_n + self.cfg2 * (text - out_n), out_m
        if skips_uncond(self.model, self.cfg2):
            negative = None
            if skips_uncond(self.model, self.cfg):
                middle = None
        out_n, out_m, out_p = (self._predict(x, sigma, c) for c in (negative, middle, positive))
        guided = combine_cfg(self.model, out_m, out_n, self.cfg2, x, sigma, middle, negative)
        return guided + (out_p - out_m) * self.cfg, out_n


def _batchable(pos: _Cond, neg: _Cond) -> bool:
    """Whether positive and negative can run as one batch: full-size entries of non-zero
    strength, same context shape and the same extra inputs, all tensors of matching shapes
    (lists such as reference latents are not)."""
    if not (pos.full_size and neg.full_size and pos.strength and neg.strength):
        return False
    if pos.context.shape != neg.context.shape or pos.extra.keys() != neg.extra.keys():
        return False
    if pos.control is not neg.control:  # as ComfyUI: one batch needs one ControlNet chain
        return False
    return all(isinstance(v, Tensor) and isinstance(neg.extra[k], Tensor)
               and v.shape[1:] == neg.extra[k].shape[1:] for k, v in pos.extra.items())


# -- ControlNets (models/controlnet.py) ---------------------------------------------------------
def _control_options(model: ModelPatcher, options: dict, what: str, k: int) -> tuple[Any, bool]:
    """(ControlNet chain or None, control_apply_to_uncond) of one entry; a ControlNet that
    does not fit the model is refused here, before sampling."""
    control = options.get("control")
    if control is None:
        return None, False
    chain = control
    while chain is not None:
        problem = chain.check_model(model)
        if problem:
            raise ValueError(f"{what}: entry {k}: {problem}")
        chain = chain.previous
    return control, bool(options.get("control_apply_to_uncond", False))


def _controls_to_uncond(positive: list[_Cond], negative: list[_Cond] | None) -> None:
    """ComfyUI's rule for ControlNetApply (control_apply_to_uncond): when no negative entry
    has a ControlNet, the flagged positive entries' ControlNets (area entries excepted) go to
    the negative entries, the k-th to negative entry k mod len(negative) (a later one
    replaces an earlier one)."""
    if not negative or any(c.control is not None for c in negative):
        return
    given = [c.control for c in positive
             if c.control is not None and c.control_to_uncond and c.area is None]
    originals = list(negative)
    for k, control in enumerate(given):
        index = k % len(originals)
        negative[index] = dataclasses.replace(originals[index], control=control)


def _with_control(model: ModelPatcher, cond: _Cond, x: Tensor, sigma: Tensor, context: Tensor,
                  extra: dict[str, Any], batched: int = 1) -> dict[str, Any]:
    """`extra` plus the entry's ControlNet residuals (`control=`) for this call, if any."""
    if cond.control is None:
        return extra
    residuals = cond.control.residuals(model.sampling, x, sigma, context, extra.get("y"),
                                       batched)
    return extra if residuals is None else {**extra, "control": residuals}


# -- the KSampler pipeline -------------------------------------------------------------------------
def prepare_noise(latent: Tensor, seed: int, batch_index: list[int] | None = None) -> Tensor:
    """ComfyUI's initial noise: fp32 randn on the CPU from torch.manual_seed-style seeding.

    Without batch_index the whole (B, C, h, w) block is drawn at once. With it, one (1, C, h, w)
    draw per index 0..max(batch_index) and sample k gets draw batch_index[k], so a latent
    split from a batch gets the noise it would have had in the batch.
    """
    gen = torch.Generator("cpu").manual_seed(int(seed) & SEED_MAX)
    shape = tuple(latent.shape)
    if batch_index is None:
        return torch.randn(shape, dtype=torch.float32, generator=gen)
    draws = [torch.randn((1, *shape[1:]), dtype=torch.float32, generator=gen)
             for _ in range(max(batch_index) + 1)]
    return torch.cat([draws[i] for i in batch_index])


def step_sigmas(sigmas: Tensor, start_step: int | None, last_step: int | None,
                force_full_denoise: bool) -> Tensor | None:
    """Cut a schedule to [start_step, last_step] (ComfyUI's rule); None: nothing to run."""
    sigmas = sigmas.clone()
    if last_step is not None and last_step < len(sigmas) - 1:
        sigmas = sigmas[: last_step + 1]
        if force_full_denoise:
            sigmas[-1] = 0
    if start_step is not None:
        if start_step >= len(sigmas) - 1:
            return None
        sigmas = sigmas[start_step:]
    return sigmas if len(sigmas) > 1 else None


def ksample(model: ModelPatcher, latent: Tensor, noise: Tensor, *, sigmas: Tensor,
            sampler: Any, cfg: float, positive: list, negative: list, seed: int,
            noise_mask: Tensor | None = None, progress: Any = None) -> Tensor:
    """Sample from the raw (VAE-space) latent with the given noise along `sigmas`.

    latent and noise are (B, C, h, w) on any device; the result is a raw latent on the CPU in
    fp32. progress(step, total) is called after every sampler step (it may raise to stop).
    """
    return sample_with_x0(model, latent, noise, sigmas=sigmas, sampler=sampler, cfg=cfg,
                          positive=positive, negative=negative, seed=seed,
                          noise_mask=noise_mask, progress=progress)[0]


def sample_with_x0(model: ModelPatcher, latent: Tensor, noise: Tensor, *, sigmas: Tensor,
                   sampler: Any, cfg: float, positive: list, negative: list | None, seed: int,
                   noise_mask: Tensor | None = None, progress: Any = None,
                   make_denoiser: Callable[[torch.Size], CFGDenoiser] | None = None
                   ) -> tuple[Tensor, Tensor | None]:
    """`ksample`, also returning the x0 prediction of the last step as a raw latent (None when
    no step ran). negative None: positive only (BasicGuider). A one-sigma schedule runs no step
    (the latent is only noised to that sigma), as in ComfyUI. `make_denoiser(latent_shape)`
    replaces the CFG denoiser (DualCFGGuider); positive/negative/cfg are then unused."""
    device = model.device
    fmt, ms = model.latent_format, model.sampling
    x0 = latent.to(device, torch.float32)
    if torch.count_nonzero(x0) > 0:  # as ComfyUI: an empty latent stays exactly zero
        x0 = fmt.process_in(x0)
    noise = noise.to(device, torch.float32)
    denoiser = (make_denoiser(x0.shape) if make_denoiser is not None else
                CFGDenoiser(model, positive, negative, cfg, x0.shape))
    denoiser.latent_image = x0
    denoiser.always_uncond = bool(getattr(sampler, "needs_uncond", False))
    if noise_mask is not None:
        denoiser.set_noise_mask(noise_mask.to(device), x0, noise)
    from .samplers import sigma_is_max

    sigmas = sigmas.to(device, torch.float32)
    denoiser.sigmas = sigmas
    x = ms.noise_scaling(sigmas[0], noise, x0,
                         max_denoise=sigma_is_max(float(sigmas[0]), float(ms.sigma_max)))
    total = len(sigmas) - 1
    last: dict[str, Tensor] = {}

    def callback(info: dict[str, Any]) -> None:
        last["x0"] = info["denoised"]
        if progress is not None:
            progress(info["i"] + 1, total)

    gen = torch.Generator(device).manual_seed(int(seed) & SEED_MAX)
    out = x
    if total > 0:
        with model.patched(), torch.inference_mode():
            out = sampler(denoiser, x, sigmas, extra_args={}, callback=callback, generator=gen)
    out = ms.inverse_noise_scaling(sigmas[-1], out)
    denoised = last.get("x0")
    if denoised is not None:
        denoised = fmt.process_out(denoised.float()).cpu()
    return fmt.process_out(out.float()).cpu(), denoised


# -- custom sampling payloads (SAMPLER, NOISE, GUIDER sockets) ---------------------------------
@dataclass(frozen=True)
class SamplerChoice:
    """SAMPLER: a sampler of `models.samplers.SAMPLERS` by name (KSamplerSelect)."""

    name: str
    function: Any


@dataclass(frozen=True)
class RandomNoise:
    """NOISE: ComfyUI's initial noise from `seed` (prepare_noise, batch_index aware)."""

    seed: int

    def generate(self, latent: dict) -> Tensor:
        return prepare_noise(latent["samples"], self.seed, latent.get("batch_index"))


@dataclass(frozen=True)
class EmptyNoise:
    """NOISE: no noise (DisableNoise: seed 0; the seed only seeds the samplers' own noise)."""

    seed: int = 0

    def generate(self, latent: dict) -> Tensor:
        return torch.zeros(latent["samples"].shape, dtype=torch.float32)


@dataclass(frozen=True, eq=False)
class Guider:
    """GUIDER: a model under conditioning at a CFG scale (negative None: BasicGuider, cfg 1)."""

    model: ModelPatcher
    positive: list
    negative: list | None = None
    cfg: float = 1.0

    def sample(self, noise: Tensor, latent: Tensor, sampler: SamplerChoice, sigmas: Tensor, *,
               seed: int, noise_mask: Tensor | None = None, progress: Any = None
               ) -> tuple[Tensor, Tensor | None]:
        """(raw latent, last x0 or None); an empty schedule returns `latent` untouched."""
        return _guided_sample(self.model, noise, latent, sampler, sigmas, self.cfg,
                              self.positive, self.negative, seed, noise_mask, progress)


@dataclass(frozen=True, eq=False)
class DualGuider:
    """GUIDER of DualCFGGuider: cond1 / cond2 / negative at cfg_conds and cfg_cond2_negative
    (style "regular" or "nested"; see DualCFGDenoiser)."""

    model: ModelPatcher
    cond1: list
    cond2: list
    negative: list
    cfg_conds: float = 8.0
    cfg_cond2_negative: float = 8.0
    nested: bool = False

    def _denoiser(self, latent_shape: torch.Size) -> DualCFGDenoiser:
        return DualCFGDenoiser(self.model, self.cond1, self.cond2, self.negative,
                               self.cfg_conds, self.cfg_cond2_negative, self.nested,
                               latent_shape)

    def sample(self, noise: Tensor, latent: Tensor, sampler: SamplerChoice, sigmas: Tensor, *,
               seed: int, noise_mask: Tensor | None = None, progress: Any = None
               ) -> tuple[Tensor, Tensor | None]:
        """(raw latent, last x0 or None); an empty schedule returns `latent` untouched."""
        return _guided_sample(self.model, noise, latent, sampler, sigmas, self.cfg_conds,
                              self.cond1, self.negative, seed, noise_mask, progress,
                              make_denoiser=self._denoiser)


def _guided_sample(model: ModelPatcher, noise: Tensor, latent: Tensor, sampler: SamplerChoice,
                   sigmas: Tensor, cfg: float, positive: list, negative: list | None,
                   seed: int, noise_mask: Tensor | None, progress: Any,
                   make_denoiser: Any = None) -> tuple[Tensor, Tensor | None]:
    """A GUIDER's sample: (raw latent, last x0), or the latent untouched for no steps."""
    if sigmas.numel() == 0:
        return latent, None
    return sample_with_x0(model, latent, noise, sigmas=sigmas, sampler=sampler.function,
                          cfg=cfg, positive=positive, negative=negative, seed=seed,
                          noise_mask=noise_mask, progress=progress, make_denoiser=make_denoiser)
