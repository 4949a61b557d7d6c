"""The LoRA training loop behind TrainLoraNode (spec: training-math.md, train-nodes.md §4).

Objective (as ComfyUI, so runs here and there optimise the same thing): x0-space loss
`criterion(x̂0, x0)` where xt = noise_scaling(σ, n, x0), x̂0 = the model's x0 prediction and
σ = percent_to_sigma(p), p ~ U[0,1) per sample.

State of one run, all derived from `seed` (same seed, same file):
* `init` generator (seed): adapter initialisation;
* `pick` generator (seed): which samples (torch.randperm) / which bucket (multinomial) each
  iteration uses;
* per-iteration generator (seed + 1000*i, as ComfyUI's prepare_noise): the noise, then one
  p ~ U[0,1) per sample.
Iteration i of `steps * grad_accumulation_steps` does forward + backward of loss / grad_acc; the
optimizer steps after every grad_acc iterations; `losses` gets one float per iteration.

Stopping and snapshots: when the `progress` callback raises (the user pressed Ctrl-C, say), the
loop stops at that iteration boundary and raises `TrainingStopped` carrying the adapters' state
as of the last optimizer step, so the caller can keep what was trained. `on_snapshot` receives
the same kind of partial result every `snapshot_every` optimizer steps (`--save-every`).

Modes (train-nodes.md §4.4): standard (one batched forward), multi-resolution (one forward and
backward per sample; gradients identical to summing the losses first, but only one sample's
activations live at a time), bucket (a bucket ∝ its size, then a batched forward in it).
Fixed ComfyUI quirks (DECISIONS.md): each sample is paired with its own caption; every mode
scales latents by the latent format; multi-res samples of the same shape get their own noise
and σ; the logged loss is the un-scaled mean loss in every mode.

Adapters run from the layer input (adapters.py bypass hooks) in both `bypass_mode` settings:
the merged-weight form ComfyUI uses without bypass_mode computes the same outputs and adapter
gradients, but also a full-size weight gradient per adapted layer and step.

`offloading` and `quantized_backward` only matter for GPU memory / FP8 matmuls; on CPU they
are accepted and have no effect.

On an accelerator the loop never waits for the device inside a step: inputs go from pinned
memory without blocking, and the losses stay on the device until read together (`_LossLog`):
at most every LOSS_READ_SECONDS, before a snapshot and at the end. The progress callback is
called at those reads only (with the latest loss; it also checks for an interrupt, so a stop
takes at most that long), and a non-finite loss is found there, still named by its step. On
the CPU reading is free: every loss is read, and progress called, after its own iteration.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, make_dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..typesys.errors import Interrupted
from ..typesys.types import SEED_MAX
from .adapters import RankTooLarge, add_adapters
from .train_options import CONFIG_OPTIONS, TrainInputError, check_option

log = logging.getLogger(__name__)

# Keyed by the choices in train_options.TRAIN_OPTIONS (tests check the keys are equal, in order).
OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "AdamW": torch.optim.AdamW,  # betas (0.9, 0.999), eps 1e-8, weight_decay 0.01
    "Adam": torch.optim.Adam,
    "SGD": torch.optim.SGD,
    "RMSprop": torch.optim.RMSprop,
}
LOSSES: dict[str, Callable[[], nn.Module]] = {
    "MSE": nn.MSELoss,
    "L1": nn.L1Loss,
    "Huber": nn.HuberLoss,  # delta 1.0
    "SmoothL1": nn.SmoothL1Loss,  # beta 1.0
}
TRAINING_DTYPES: dict[str, torch.dtype | None] = {
    "bf16": torch.bfloat16, "fp32": torch.float32, "none": None,  # none: follow the weights
}
LORA_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp32": torch.float32}
# On an accelerator: how often the losses are brought to the host (each read waits for the
# device; ComfyUI reads every step). 0.5 s: a progress display a person can follow, and an
# interrupt is noticed within that (or one step, if longer).
LOSS_READ_SECONDS = 0.5


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN/inf; `.step` is the 1-based iteration."""

    def __init__(self, step: int, total: int, value: float) -> None:
        super().__init__(
            f"training stopped: the loss became {value} at step {step} of {total}; the final "
            "LoRA was not written (snapshots from --save-every, if any, are kept). Lower "
            "learning_rate, or use training_dtype fp32"
        )
        self.step, self.value = step, value


def _check_config(cfg) -> None:
    for option in CONFIG_OPTIONS:
        check_option(option.name, getattr(cfg, option.name))


# The node's scalar inputs: fields, defaults and checks all from train_options.TRAIN_OPTIONS
# (frozen; a bad value raises TrainInputError naming the input).
TrainConfig = make_dataclass(
    "TrainConfig", [(o.name, o.kind, o.default) for o in CONFIG_OPTIONS], frozen=True,
    namespace={"__post_init__": _check_config,
               "__doc__": "The node's scalar inputs (names and defaults as TrainLoraNode).",
               "__module__": __name__},  # make_dataclass(module=) is Python 3.12+
)


@dataclass
class TrainResult:
    lora: dict[str, Tensor]  # SaveLoRA layout, lora_dtype
    losses: list[float]  # one per iteration (steps * grad_accumulation_steps)
    steps: int = 0  # optimizer steps done in this run (cfg.steps unless stopped early)


class TrainingStopped(Exception):
    """Training stopped early because the progress callback raised (`__cause__`, e.g. the
    user's interrupt). `.partial` is what was trained up to the last optimizer step: the
    gradients of an unfinished accumulation are dropped, so `.partial.steps` whole steps."""

    def __init__(self, partial: TrainResult, total_steps: int) -> None:
        super().__init__(f"training stopped after {partial.steps} of {total_steps} steps")
        self.partial, self.total_steps = partial, total_steps


Snapshot = Callable[[TrainResult], None]


@dataclass
class Dataset:
    """Training samples grouped by shape: `groups[g]` is Tensor[B_g, C, h, w] (latent-format
    space, float32) and `conds[g]` its B_g conditioning entries, in the same order."""

    groups: list[Tensor]
    conds: list[list[Any]]
    multi_res: bool  # standard input whose samples differ in shape

    @property
    def size(self) -> int:
        return sum(g.shape[0] for g in self.groups)


# -- data ------------------------------------------------------------------------------------
def flatten_conditioning(positive: Sequence[Any]) -> list[Any]:
    """One CONDITIONING arrives as is; several are concatenated (train-nodes.md §4.3 step 4)."""
    if len(positive) == 1:
        return list(positive[0])
    return [entry for cond in positive for entry in cond]


def make_dataset(latents: Sequence[dict[str, Tensor]], positive: Sequence[Any],
                 process_in: Callable[[Tensor], Tensor], bucket_mode: bool) -> Dataset:
    """Samples and their captions, scaled by the latent format, checked to pair one to one."""
    conds = flatten_conditioning(positive)
    if bucket_mode:
        groups = [process_in(lat["samples"].float()) for lat in latents]
    elif len(latents) == 1:
        groups = [process_in(latents[0]["samples"].float())]
    else:
        pieces = [process_in(s.float()) for lat in latents for s in lat["samples"].split(1)]
        groups = _group_same_shape(pieces)
    total = sum(g.shape[0] for g in groups)
    if total == 0:
        raise TrainInputError("input 'latents': no training samples", input_name="latents")
    if len(conds) == 1 and total > 1:
        conds = conds * total
    if len(conds) != total:
        raise TrainInputError(
            f"input 'positive': Number of positive conditions ({len(conds)}) does not match "
            f"number of images ({total}); give one caption per image or a single one for all",
            input_name="positive")
    multi_res = not bucket_mode and len(groups) > 1
    split, start = [], 0
    for g in groups:
        split.append(conds[start:start + g.shape[0]])
        start += g.shape[0]
    return Dataset(groups, split, multi_res)


def _group_same_shape(pieces: list[Tensor]) -> list[Tensor]:
    if all(p.shape == pieces[0].shape for p in pieces):
        return [torch.cat(pieces)]
    return pieces  # multi-resolution: one [1, C, h, w] group per sample


def _stack_context(entries: Sequence[Any]) -> Tensor:
    """Tensor[B, T, D] from per-sample entries [Tensor[1, T_i, D], dict]; T_i repeated to lcm."""
    tensors = [e[0] for e in entries]
    lcm = math.lcm(*(t.shape[1] for t in tensors))
    return torch.cat([t.repeat(1, lcm // t.shape[1], 1) for t in tensors]).float()


def _extras(model: Any, entries: Sequence[Any], h: int, w: int) -> dict[str, Any]:
    """The batch's extra network inputs (SDXL y, Flux pooled/guidance): per-sample tensors
    concatenated; non-tensor values (lists) must agree across the batch."""
    per_sample = [model.extra_conds(e[1] if len(e) > 1 else {}, w * 8, h * 8) for e in entries]
    out: dict[str, Any] = {}
    for key, first in per_sample[0].items():
        values = [d.get(key) for d in per_sample]
        if isinstance(first, Tensor) and all(isinstance(v, Tensor) for v in values):
            out[key] = torch.cat(values)
        else:
            out[key] = first
    return out


# -- gradient checkpointing --------------------------------------------------------------------
_CONTAINERS = (nn.ModuleList, nn.Sequential, nn.ModuleDict)


def checkpoint_targets(root: nn.Module, depth: int) -> list[nn.Module]:
    """Modules at `depth` (training-math.md §8): the root is level 1; containers do not count;
    the first module reaching the level on each path is taken and not descended further."""
    found: list[nn.Module] = []

    def walk(module: nn.Module, level: int) -> None:
        for child in module.children():
            if isinstance(child, _CONTAINERS):
                walk(child, level)
            elif level + 1 == depth:
                found.append(child)
            else:
                walk(child, level + 1)

    if depth <= 1:
        return [root]
    walk(root, 1)
    return found


@contextmanager
def checkpointed(modules: Sequence[nn.Module]):
    """Each module's forward recomputed in backward (only its inputs kept); undone on exit."""
    for m in modules:
        original = m.forward

        def forward(*args, _f=original, **kwargs):
            if not torch.is_grad_enabled():
                return _f(*args, **kwargs)
            # no dropout in these models, so the RNG state need not be replayed
            return checkpoint(_f, *args, use_reentrant=False, preserve_rng_state=False, **kwargs)

        m.forward = forward
    try:
        yield
    finally:
        for m in modules:
            m.__dict__.pop("forward", None)


@contextmanager
def frozen(module: nn.Module):
    """Base weights frozen during training; their flags restored after. Kept by name, not by
    tensor: a reference would keep every weight alive while --fsdp shards them (sharding.py),
    and the names find the weights it puts back."""
    flags = [(name, p.requires_grad) for name, p in module.named_parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        params = dict(module.named_parameters())
        for name, flag in flags:
            if name in params:  # an adapter's parametrization may have moved it meanwhile
                params[name].requires_grad_(flag)


# -- the loop ----------------------------------------------------------------------------------
def compute_dtype(cfg: TrainConfig, weight_dtype: torch.dtype) -> torch.dtype:
    dtype = TRAINING_DTYPES[cfg.training_dtype]
    if dtype is not None:
        return dtype
    # as ComfyUI: fp16 weights -> fp16 (with a GradScaler for fp32 adapters), else bf16
    return torch.float16 if weight_dtype == torch.float16 else torch.bfloat16


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) & SEED_MAX)


class _Step:
    """Forward + backward for one batch; returns the un-scaled loss (a 0-d float32 tensor)."""

    def __init__(self, model: Any, criterion: nn.Module, dtype: torch.dtype, grad_acc: int,
                 device: torch.device, scaler: Any) -> None:
        self.model, self.criterion, self.grad_acc = model, criterion, grad_acc
        self.device, self.scaler = device, scaler
        self.autocast = dtype != torch.float32
        self.dtype = dtype
        # the network call; in a torchrun run the DistributedDataParallel wrapper (whose
        # forward is this same call) so that backward averages the gradients over ranks
        self.apply = model.apply_model

    def __call__(self, x0: Tensor, entries: Sequence[Any], gen: torch.Generator,
                 weight: float) -> Tensor:
        noise, p = self.draw(x0.shape, gen)
        loss = self.loss(x0, entries, noise, p)
        # the check waits for the device: there a NaN is found later, by _LossLog
        if not defers_reads(self.device) and not torch.isfinite(loss):
            return loss.detach()
        self.backward(loss, weight)
        return loss.detach()

    @staticmethod
    def draw(shape: torch.Size, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """The noise, then one p ~ U[0,1) per sample (CPU generators: same on any device)."""
        noise = torch.randn(shape, generator=gen)
        return noise, torch.rand(shape[0], generator=gen)

    def loss(self, x0: Tensor, entries: Sequence[Any], noise: Tensor, p: Tensor) -> Tensor:
        """The un-scaled loss of one batch (forward only)."""
        model, sampling = self.model, self.model.sampling
        sigma = torch.tensor([sampling.percent_to_sigma(float(v)) for v in p])
        x0, noise, sigma = (to_device(t, self.device) for t in (x0, noise, sigma))
        xt = sampling.noise_scaling(sigma, noise, x0)
        context = to_device(_stack_context(entries), self.device)
        extra = to_device(_extras(model, entries, x0.shape[-2], x0.shape[-1]), self.device)
        amp = (torch.autocast(self.device.type, dtype=self.dtype) if self.autocast
               else nullcontext())
        with amp:
            denoised = self.apply(xt, sigma, context, **extra)
        return self.criterion(denoised.float(), x0.float())

    def backward(self, loss: Tensor, weight: float) -> None:
        scaled = loss * (weight / self.grad_acc)
        (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()


def defers_reads(device: torch.device) -> bool:
    """Whether values are left on `device` until needed (reading one waits for its queue)."""
    return device.type != "cpu"


def to_device(value: Any, device: torch.device) -> Any:
    """CPU tensors (also inside lists/dicts) on `device`; to CUDA from pinned memory without
    blocking, so the copy does not wait for the kernels queued before it."""
    if isinstance(value, dict):
        return {k: to_device(v, device) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_device(v, device) for v in value)
    if not isinstance(value, Tensor) or value.device == device:
        return value
    if device.type == "cuda" and value.device.type == "cpu":
        return value.pin_memory().to(device, non_blocking=True)
    return value.to(device)


class _LossLog:
    """The per-iteration losses: read at once on the CPU; on an accelerator kept on the device
    and read in one transfer when due (LOSS_READ_SECONDS), so the step loop does not sync."""

    def __init__(self, total: int, deferred: bool) -> None:
        self.total, self.deferred = total, deferred
        self.values: list[float] = []
        self.pending: list[Tensor] = []  # 0-d losses not read yet, in iteration order
        self.last_read = time.monotonic()

    def add(self, loss: Tensor) -> None:
        self.pending.append(loss.detach().float())
        if not self.deferred:
            self.read()

    def due(self) -> bool:
        """Whether progress should be reported now: when nothing waits to be read (always on
        the CPU; on a device after a snapshot's read), at the end, or when a read is due."""
        return (not self.pending or len(self.values) + len(self.pending) == self.total
                or time.monotonic() - self.last_read >= LOSS_READ_SECONDS)

    def read(self) -> list[float]:
        """All losses so far as floats; NonFiniteLoss names the first non-finite iteration."""
        if self.pending:
            new = torch.stack(self.pending).tolist()  # the one wait for the device
            self.pending.clear()
            self.last_read = time.monotonic()
            for value in new:
                if not math.isfinite(value):
                    raise NonFiniteLoss(len(self.values) + 1, self.total, value)
                self.values.append(value)
        return self.values


def train_lora(model: Any, latents: Sequence[dict[str, Tensor]], positive: Sequence[Any],
               cfg: TrainConfig, *, existing: dict[str, Tensor] | None = None,
               progress: Callable[[int, int, float], None] | None = None,
               snapshot_every: int | None = None,
               on_snapshot: Snapshot | None = None, group: Any = None) -> TrainResult:
    """Train adapters on `model` (a ModelPatcher) and return their state dict and losses.

    The UNet is shared with other MODEL values, so every change (adapters, frozen flags,
    checkpoint wrappers, pending patches merged) is undone before returning, also on error.
    If `progress` raises, `TrainingStopped` (from that exception) carries the partial result.
    `on_snapshot(partial)` runs after every `snapshot_every`-th optimizer step except the last
    (the last one is the return value).
    `group` (comfyless.distributed.Group, in a torchrun run): every rank calls this with the
    same inputs and trains its share of each global batch (`_distributed_loop`).
    """
    data = make_dataset(latents, positive, model.latent_format.process_in, cfg.bucket_mode)
    unet = model.diffusion_model
    device = next(unet.parameters()).device
    dtype = compute_dtype(cfg, next(unet.parameters()).dtype)
    lora_dtype = LORA_DTYPES[cfg.lora_dtype]
    scaler = None
    if dtype == torch.float16 and lora_dtype != torch.bfloat16:
        scaler = torch.amp.GradScaler(device.type)
    targets = checkpoint_targets(unet, cfg.checkpoint_depth) if cfg.gradient_checkpointing else []
    with ExitStack() as stack:
        stack.enter_context(torch.inference_mode(False))
        stack.enter_context(torch.enable_grad())
        stack.enter_context(model.patched())  # pending LoRA patches: trained on top of them
        stack.enter_context(frozen(unet))
        adapters = _adapters(unet, cfg, lora_dtype, existing)
        stack.callback(adapters.remove)
        stack.enter_context(checkpointed(targets))
        params = adapters.parameters()
        for p in params:
            p.requires_grad_(True)
        optimizer = _optimizer(cfg, params)
        step = _Step(model, LOSSES[cfg.loss_function](), dtype, cfg.grad_accumulation_steps,
                     device, scaler)

        def state() -> dict[str, Tensor]:  # copies: training goes on after a snapshot
            return {k: v.to(lora_dtype) for k, v in adapters.state_dict().items()}

        hooks = _Hooks(progress, snapshot_every if on_snapshot else None, on_snapshot, state)
        if group is None:
            losses = _loop(data, cfg, step, optimizer, params, scaler, hooks)
        else:
            losses = _distributed_loop(data, cfg, step, optimizer, params, scaler, hooks, group)
        lora = state()
    return TrainResult(lora, losses, cfg.steps)


def _adapters(unet: nn.Module, cfg: TrainConfig, lora_dtype: torch.dtype,
              existing: dict[str, Tensor] | None):
    """add_adapters; an existing LoRA that does not fit is an error of input existing_lora
    (RankTooLarge passes as it is: the node maps it to input rank)."""
    try:
        # Always the input-side (bypass) form, whatever bypass_mode says: (W + ΔW)x = Wx + ΔWx,
        # so it trains the same function as ComfyUI's weight functions, but no ΔW and no
        # gradient the size of a frozen weight is formed each step (issue 13).
        return add_adapters(unet, cfg.algorithm, cfg.rank, dtype=lora_dtype,
                            generator=_generator(cfg.seed), existing=existing, bypass=True)
    except RankTooLarge:
        raise
    except ValueError as exc:
        if existing is None:
            raise
        raise TrainInputError(str(exc), input_name="existing_lora") from exc


@dataclass
class _Hooks:
    """What the loop calls between iterations: progress (may raise to stop) and snapshots."""

    progress: Callable[[int, int, float], None] | None
    every: int | None
    on_snapshot: Snapshot | None
    state: Callable[[], dict[str, Tensor]]

    def after(self, i: int, cfg: TrainConfig, log: _LossLog) -> None:
        """After iteration i (0-based): maybe a snapshot, then progress (which may stop us);
        both read the losses first, so neither sees adapters trained on a non-finite loss."""
        grad_acc = cfg.grad_accumulation_steps
        done = (i + 1) // grad_acc  # whole optimizer steps so far
        stepped = (i + 1) % grad_acc == 0
        if stepped and self.every and done % self.every == 0 and done < cfg.steps:
            self.on_snapshot(TrainResult(self.state(), list(log.read()), done))
        if self.progress is None or not log.due():
            return
        losses = log.read()
        try:
            self.progress(i + 1, cfg.steps * grad_acc, losses[-1])
        except Exception as exc:  # the caller asked to stop: hand back what was trained
            partial = TrainResult(self.state(), list(losses), done)
            raise TrainingStopped(partial, cfg.steps) from exc


# Optimisers torch can run fused: the whole step in one kernel over every adapter tensor.
_FUSED = {"Adam", "AdamW", "SGD"}


def _optimizer(cfg: TrainConfig, params: list[Tensor]) -> torch.optim.Optimizer:
    """The workflow's optimiser over the adapters, fused where torch has it, else foreach (one
    kernel per op over all tensors; PyTorch enables neither by default on the CPU). AdamW over
    1600 rank-8 tensors on one CPU thread: 44 ms a step foreach, 13 ms fused (the tiny UNet's
    per-tensor default was 52 ms)."""
    kind = "fused" if cfg.optimizer in _FUSED else "foreach"
    return OPTIMIZERS[cfg.optimizer](params, lr=cfg.learning_rate, **{kind: True})


def _loop(data: Dataset, cfg: TrainConfig, step: _Step, optimizer: torch.optim.Optimizer,
          params: list[Tensor], scaler: Any, hooks: _Hooks) -> list[float]:
    total = cfg.steps * cfg.grad_accumulation_steps
    pick = _generator(cfg.seed)
    sizes = torch.tensor([float(g.shape[0]) for g in data.groups])
    log = _LossLog(total, defers_reads(step.device))
    try:
        for i in range(total):
            gen = _generator(cfg.seed + 1000 * i)
            if data.multi_res:
                loss = _multires_iteration(data, cfg, step, pick, gen)
            else:
                g, rel = _draw_batch(data, sizes, pick, cfg.batch_size)
                loss = step(data.groups[g][rel], [data.conds[g][j] for j in rel.tolist()],
                            gen, 1.0)
            log.add(loss)  # on the CPU: raises NonFiniteLoss before the optimizer steps
            if (i + 1) % cfg.grad_accumulation_steps == 0:
                _optimizer_step(optimizer, params, scaler)
            hooks.after(i, cfg, log)
        return log.read()
    except NonFiniteLoss:
        optimizer.zero_grad(set_to_none=True)
        raise


def _draw_batch(data: Dataset, sizes: Tensor, pick: torch.Generator, count: int
                ) -> tuple[int, Tensor]:
    """(group, rows) of one batch: a group drawn by size (buckets), then up to `count` of its
    samples, both from `pick` (the same draws in one process and in every torchrun rank)."""
    g = 0 if len(data.groups) == 1 else int(torch.multinomial(sizes, 1, generator=pick))
    return g, torch.randperm(data.groups[g].shape[0], generator=pick)[:count]


def _multires_iteration(data: Dataset, cfg: TrainConfig, step: _Step,
                        pick: torch.Generator, gen: torch.Generator) -> Tensor:
    idx = torch.randperm(len(data.groups), generator=pick)[:cfg.batch_size].tolist()
    total = torch.zeros((), device=step.device)
    for j in idx:  # one sample at a time: same gradient as one backward of the mean
        loss = step(data.groups[j], data.conds[j], gen, 1.0 / len(idx))
        if not defers_reads(step.device) and not torch.isfinite(loss):
            return loss
        total = total + loss
    return total / len(idx)


def _optimizer_step(optimizer: torch.optim.Optimizer, params: list[Tensor], scaler: Any) -> None:
    if scaler is not None:
        scaler.unscale_(optimizer)
    for p in params:  # gradients in the parameter's dtype (autocast may leave them wider)
        if p.grad is not None and p.grad.dtype != p.dtype:
            p.grad = p.grad.to(p.dtype)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


# -- several processes (torchrun) ---------------------------------------------------------------
# Same global batch, same result: with W ranks and batch_size b, iteration i uses the b*W
# samples a single-process run with batch_size b*W would use, with the same noise and σ, and
# steps the optimizer with the same mean gradient. Every rank draws the whole global batch
# from the same generators (`pick`, seed + 1000*i: as in `_loop`) and keeps its slice
# [r*n/W, (r+1)*n/W) of the n samples drawn; its loss (a mean over its k samples) is weighted
# k*W/n, so DistributedDataParallel's average over ranks is the mean over all n samples. The
# logged loss is that mean too (summed in the status round). Each iteration: forwards, one
# status round (comfyless/distributed.py: a failure on any rank stops every rank here, before
# any rank waits in a gradient all-reduce), then the backward that all-reduces.
class _SharedAdapters(nn.Module):
    """The adapter parameters as one module for DistributedDataParallel, whose forward is the
    network call. The ModelPatcher is held, not registered: the frozen base weights are not
    synchronised (every rank loaded them from the same file)."""

    def __init__(self, model: Any, params: list[Tensor]) -> None:
        super().__init__()
        self.adapters = nn.ParameterList(params)  # the same tensors, not copies
        self._model = (model,)

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        return self._model[0].apply_model(*args, **kwargs)


def _wrap_for_ddp(model: Any, params: list[Tensor], device: torch.device) -> nn.Module:
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(
        _SharedAdapters(model, params),
        device_ids=[device.index] if device.type == "cuda" else None,
        # an adapter whose layer a model's forward skips (a family's unused embedder, an input
        # the workflow does not give) gets no gradient: DDP must not wait for it
        find_unused_parameters=True)


def _rank_slice(n: int, rank: int, world: int) -> slice:
    return slice(rank * n // world, (rank + 1) * n // world)


def _distributed_loop(data: Dataset, cfg: TrainConfig, step: _Step,
                      optimizer: torch.optim.Optimizer, params: list[Tensor], scaler: Any,
                      hooks: _Hooks, group: Any) -> list[float]:
    group.check()  # every rank got here: gradient collectives may start
    with _sharded_base(step, params, group) if group.fsdp else nullcontext():
        with _abandoning(group):  # DDP's constructor broadcasts the parameters
            ddp = _wrap_for_ddp(step.model, params, step.device)
        step.apply = ddp
        try:
            return _shards_loop(data, cfg, step, ddp, optimizer, params, scaler, hooks, group)
        finally:  # the DDP reducer (and its hold on the process group) goes now, not at exit
            step.apply = step.model.apply_model
            del ddp


@contextmanager
def _sharded_base(step: _Step, params: list[Tensor], group: Any):
    """--fsdp: the frozen weights sharded while training (sharding.py), the adapters left to
    DDP. Gathering them back afterwards is a collective, so the ranks first agree in a status
    round that all of them trained: a rank that failed after its last round (its progress
    callback, say) tells the others here rather than leave them waiting in the gather."""
    from .sharding import shard_units, sharded

    unet = step.model.diffusion_model
    units = shard_units(unet, checkpoint_targets(unet, 2))
    with sharded(unet, units, set(params), step.device.type):
        try:
            yield
        except BaseException as exc:
            if group.failures is None:  # the others have not heard of it
                group.check(exc)  # raises exc, once all ranks know
            raise
        group.check()


def _shards_loop(data: Dataset, cfg: TrainConfig, step: _Step, ddp: nn.Module,
                 optimizer: torch.optim.Optimizer, params: list[Tensor], scaler: Any,
                 hooks: _Hooks, group: Any) -> list[float]:
    from ..distributed import RankFailed

    total = cfg.steps * cfg.grad_accumulation_steps
    pick = _generator(cfg.seed)
    sizes = torch.tensor([float(g.shape[0]) for g in data.groups])
    log = _LossLog(total, defers_reads(step.device))
    global_batch = cfg.batch_size * group.world_size
    iteration = _sharded_iteration if group.fsdp else _shard_iteration
    i = 0
    try:
        for i in range(total):
            gen = _generator(cfg.seed + 1000 * i)
            if data.multi_res:
                items, n = _multires_share(data, step, pick, gen, global_batch, group)
            else:
                g, rel = _draw_batch(data, sizes, pick, global_batch)
                items, n = _batch_share(data, g, rel, step, gen, group)
            syncs = (i + 1) % cfg.grad_accumulation_steps == 0
            loss = iteration(step, ddp, group, items, n, syncs)
            log.add(loss)
            if syncs:
                _optimizer_step(optimizer, params, scaler)
            hooks.after(i, cfg, log)
        return log.read()
    except NonFiniteLoss:
        optimizer.zero_grad(set_to_none=True)
        raise
    except RankFailed as exc:
        optimizer.zero_grad(set_to_none=True)
        if not exc.interrupted:
            raise
        # another rank was interrupted: stop here too, with the same whole steps done
        partial = TrainResult(hooks.state(), list(log.values), i // cfg.grad_accumulation_steps)
        raise TrainingStopped(partial, cfg.steps) from Interrupted(
            f"interrupted (on rank {exc.rank})")


# (x0, caption entries, noise, p, samples counted): this rank's pieces of one iteration
_Item = tuple[Tensor, list[Any], Tensor, Tensor, int]


def _batch_share(data: Dataset, g: int, rel: Tensor, step: _Step, gen: torch.Generator,
                 group: Any) -> tuple[list[_Item], int]:
    """Standard / bucket mode: this rank's rows of the global batch `rel` of group g."""
    n = rel.shape[0]
    noise, p = step.draw((n, *data.groups[g].shape[1:]), gen)
    mine = _rank_slice(n, group.rank, group.world_size)
    counted = mine.stop - mine.start
    if counted == 0:  # fewer samples than ranks: run one with weight 0 (DDP needs a backward)
        mine = slice(0, 1)
    rows = rel[mine]
    entries = [data.conds[g][j] for j in rows.tolist()]
    return [(data.groups[g][rows], entries, noise[mine], p[mine], counted)], n


def _multires_share(data: Dataset, step: _Step, pick: torch.Generator, gen: torch.Generator,
                    global_batch: int, group: Any) -> tuple[list[_Item], int]:
    """Multi-resolution: every sample's noise drawn in order (as `_multires_iteration`
    draws it), this rank's samples kept, one item each."""
    idx = torch.randperm(len(data.groups), generator=pick)[:global_batch].tolist()
    draws = [step.draw(data.groups[j].shape, gen) for j in idx]
    mine = _rank_slice(len(idx), group.rank, group.world_size)
    positions = list(range(len(idx)))[mine] or [0]  # none: one with weight 0, as above
    counted = 1 if mine.stop > mine.start else 0
    return [(data.groups[idx[k]], data.conds[idx[k]], *draws[k], counted)
            for k in positions], len(idx)


def _shard_iteration(step: _Step, ddp: nn.Module, group: Any, items: list[_Item], n: int,
                     syncs: bool) -> Tensor:
    """Forward this rank's items (backward of all but the last without gradient sync), a
    status round, then the last backward (synchronised when the optimizer steps). Returns
    the mean loss over the n samples of all ranks."""
    world = group.world_size
    local = torch.zeros((), device=step.device)  # sum of this rank's per-sample losses
    last, error = None, None
    try:
        for index, (x0, entries, noise, p, counted) in enumerate(items):
            final = index == len(items) - 1
            with nullcontext() if syncs and final else ddp.no_sync():
                loss = step.loss(x0, entries, noise, p)
                local = local + loss.detach().float() * counted
                if not final:
                    step.backward(loss, counted * world / n)
            if final:
                last = (loss, counted)
    except Exception as exc:  # told to every rank in the round below, then raised here
        error = exc
    deferred = defers_reads(step.device)
    summed = group.check(error, 0.0 if deferred else float(local))
    if deferred:  # the losses stay on the device: summed there, read later by _LossLog
        import torch.distributed as dist

        dist.all_reduce(local)
        mean = local / n
    else:
        mean = torch.tensor(summed / n, dtype=torch.float32)
        if not math.isfinite(summed):  # every rank sees it: none steps, all raise (log.add)
            return mean
    loss, counted = last
    if not syncs:
        with ddp.no_sync():
            step.backward(loss, counted * world / n)
        return mean
    with _abandoning(group):  # the other ranks wait in this backward's all-reduce
        step.backward(loss, counted * world / n)
    return mean


def _sharded_iteration(step: _Step, ddp: nn.Module, group: Any, items: list[_Item], n: int,
                       syncs: bool) -> Tensor:
    """`_shard_iteration` under --fsdp, where every forward all-gathers weights: no status
    round can follow a forward (a peer would wait in an all-gather), so the round comes first
    (a rank that failed between iterations, on an interrupt say, stops every rank here), and a
    failure inside a forward or backward leaves the group (`_abandoning`), so that the peers'
    next collective fails. The mean loss is one all-reduce after the backwards."""
    import torch.distributed as dist

    group.check()
    world = group.world_size
    local = torch.zeros((), device=step.device)  # sum of this rank's per-sample losses
    with _abandoning(group):
        for index, (x0, entries, noise, p, counted) in enumerate(items):
            final = index == len(items) - 1
            with nullcontext() if syncs and final else ddp.no_sync():
                loss = step.loss(x0, entries, noise, p)
                local = local + loss.detach().float() * counted
                step.backward(loss, counted * world / n)
        dist.all_reduce(local)
    return local / n  # a non-finite mean: every rank raises in log.add, before stepping


@contextmanager
def _abandoning(group: Any):
    """A failure inside a gradient collective: the other ranks are waiting in it, not in a
    status round, so this rank leaves the group (comfyless/distributed.py `abandon`)."""
    try:
        yield
    except Exception:
        group.abandon()
        raise


# -- resume ------------------------------------------------------------------------------------
def steps_from_name(name: str) -> int | None:
    """Prior steps from a SaveLoRA file name (`..._16_steps_00017_.safetensors` -> 16), as
    ComfyUI parses it; None when the name has no `_steps_` part or no number before it."""
    if "_steps_" not in name:
        return None
    token = name.split("_steps_", 1)[0].split("_")[-1]
    try:
        return int(token)
    except ValueError:
        return None
