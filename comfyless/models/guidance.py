"""Classifier-free guidance: a ModelPatcher + CONDITIONING lists -> a denoiser D(x, sigma).

D(x, sigma) = uncond + cfg * (cond - uncond), all in x0 space (ComfyUI guides the denoised
predictions). With cfg == 1 the negative pass is skipped. A CONDITIONING list with several
entries is evaluated entry by entry on the whole batch and averaged with the entries' `strength`
weights (ComfyUI's calc_cond_batch); an entry with start_percent / end_percent
(ConditioningSetTimestepRange) only takes part while the step's sigma lies between their sigmas,
and a list with no entry active predicts zeros (as ComfyUI). Area and mask entries are refused
with an error (not supported yet). When positive and negative contexts have the same shape,
both passes run as one batch of 2B (faster; the same numbers up to float rounding).

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
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..typesys.types import SEED_MAX
from .patcher import ModelPatcher


@dataclass
class _Cond:
    """One conditioning entry, ready for apply_model: context, extra network inputs, weight."""

    context: Tensor  # (1 or B, T, D)
    extra: dict[str, Any]  # apply_model keyword inputs: SDXL y (1 or B, adm); Flux guidance...
    strength: float
    # ConditioningSetTimestepRange: used while sigma_end <= sigma <= sigma_start (None: no bound)
    sigma_start: float | None = None
    sigma_end: float | None = None
    # ControlNetApply*: a models.controlnet.ControlNet chain run before each forward
    control: Any = None
    control_to_uncond: bool = False  # ControlNetApply (old): also steer the negative pass

    def active_at(self, sigma: float) -> bool:
        """ComfyUI's rule: skipped above its start sigma and below its end sigma."""
        if self.sigma_start is not None and sigma > self.sigma_start:
            return False
        return not (self.sigma_end is not None and sigma < self.sigma_end)


# options set by ConditioningSetArea / SetAreaPercentage / SetMask that guidance cannot honour yet
_UNSUPPORTED_OPTIONS = {"area": "ConditioningSetArea / ConditioningSetAreaPercentage",
                        "mask": "ConditioningSetMask"}


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
        for key, nodes in _UNSUPPORTED_OPTIONS.items():
            if options.get(key) is not None:
                raise ValueError(
                    f"{what}: entry {k} has a conditioning '{key}' (set by {nodes}); area and "
                    "mask conditioning are not supported by the sampler yet")
        extra = model.extra_conds(options, width, height)
        out.append(_Cond(context, extra, float(options.get("strength", 1.0)),
                         _percent_sigma(model, options, "start_percent"),
                         _percent_sigma(model, options, "end_percent"),
                         *_control_options(model, options, what, k)))
    return out


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
        _controls_to_uncond(self.positive, self.negative)
        self.calls = 0  # number of UNet forwards (one batched forward counts once)
        self.inpaint: tuple[Tensor, Tensor, Tensor] | None = None
        self.always_uncond = False  # CFG++ samplers need the negative pass even at cfg 1
        self.uncond_denoised: Tensor | None = None  # the last negative prediction (CFG++)

    def set_noise_mask(self, mask: Tensor, latent: Tensor, noise: Tensor) -> None:
        """Keep latent where mask == 0 (latent and noise in model latent space)."""
        self.inpaint = (_prepare_mask(mask, latent.shape).to(latent), latent, noise)

    def _forward(self, x: Tensor, sigma: Tensor, conds: list[_Cond]) -> Tensor:
        """Strength-weighted mean prediction over a cond list (none active: zeros, as ComfyUI)."""
        total, weight = torch.zeros_like(x), 0.0
        for c in conds:
            self.calls += 1
            extra = _with_control(self.model, c, x, sigma, c.context, c.extra)
            total = total + c.strength * self.model.apply_model(x, sigma, c.context, **extra)
            weight += c.strength
        return total / weight if weight else total

    @staticmethod
    def _active(conds: list[_Cond], sigma: Tensor) -> list[_Cond]:
        """The entries whose timestep range covers this step (judged on the first sample)."""
        now = float(sigma.reshape(-1)[0])
        return [c for c in conds if c.active_at(now)]

    def _both(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        """(cond, uncond) predictions; one batched forward when both are single, same-shape."""
        pos, neg = self._active(self.positive, sigma), self._active(self.negative, sigma)
        if len(pos) == len(neg) == 1 and _batchable(pos[0], neg[0]):
            b = x.shape[0]
            context = torch.cat([_to_batch(pos[0].context, b), _to_batch(neg[0].context, b)])
            extra = {k: torch.cat([_to_batch(v, b), _to_batch(neg[0].extra[k], b)])
                     for k, v in pos[0].extra.items()}
            self.calls += 1
            x2, sigma2 = torch.cat([x, x]), torch.cat([sigma, sigma])
            extra = _with_control(self.model, pos[0], x2, sigma2, context, extra, batched=2)
            out = self.model.apply_model(x2, sigma2, context, **extra)
            return out[:b], out[b:]
        return self._forward(x, sigma, pos), self._forward(x, sigma, neg)

    def __call__(self, x: Tensor, sigma: Tensor, **_: Any) -> Tensor:
        if self.inpaint is not None:
            mask, latent, noise = self.inpaint
            noised = self.model.sampling.noise_scaling(sigma, noise, latent)
            x = x * mask + noised * (1 - mask)
        if self.negative is None or (self.cfg == 1.0 and not self.always_uncond):
            out, uncond = self._forward(x, sigma, self._active(self.positive, sigma)), None
        else:
            cond, uncond = self._both(x, sigma)
            out = uncond + (cond - uncond) * self.cfg
        if self.inpaint is not None:
            out = out * mask + latent * (1 - mask)
            uncond = None if uncond is None else uncond * mask + latent * (1 - mask)
        self.uncond_denoised = uncond
        return out


def _batchable(pos: _Cond, neg: _Cond) -> bool:
    """Whether positive and negative can run as one batch: same context shape and the same
    extra inputs, all tensors of matching shapes (lists such as reference latents are not)."""
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
    has a ControlNet, the flagged positive entries' ControlNets go to the negative entries,
    the k-th to negative entry k mod len(negative) (a later one replaces an earlier one)."""
    if not negative or any(c.control is not None for c in negative):
        return
    given = [c.control for c in positive if c.control is not None and c.control_to_uncond]
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


def _to_batch(t: Tensor, batch: int) -> Tensor:
    if t.shape[0] == batch:
        return t
    if batch % t.shape[0]:
        raise ValueError(f"conditioning batch {t.shape[0]} does not match latent batch {batch}")
    return t.repeat(batch // t.shape[0], *([1] * (t.ndim - 1)))


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
                   noise_mask: Tensor | None = None, progress: Any = None
                   ) -> tuple[Tensor, Tensor | None]:
    """`ksample`, also returning the x0 prediction of the last step as a raw latent (None when
    no step ran). negative None: positive only (BasicGuider). A one-sigma schedule runs no step
    (the latent is only noised to that sigma), as in ComfyUI."""
    device = model.device
    fmt, ms = model.latent_format, model.sampling
    x0 = latent.to(device, torch.float32)
    if torch.count_nonzero(x0) > 0:  # as ComfyUI: an empty latent stays exactly zero
        x0 = fmt.process_in(x0)
    noise = noise.to(device, torch.float32)
    denoiser = CFGDenoiser(model, positive, negative, cfg, x0.shape)
    denoiser.always_uncond = bool(getattr(sampler, "needs_uncond", False))
    if noise_mask is not None:
        denoiser.set_noise_mask(noise_mask.to(device), x0, noise)
    from .samplers import sigma_is_max

    sigmas = sigmas.to(device, torch.float32)
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
        if sigmas.numel() == 0:
            return latent, None
        return sample_with_x0(self.model, latent, noise, sigmas=sigmas,
                              sampler=sampler.function, cfg=self.cfg, positive=self.positive,
                              negative=self.negative, seed=seed, noise_mask=noise_mask,
                              progress=progress)
