"""Execute of TrainLoraNode (nodes/train.py, whose docstring describes the behaviour): the
inputs into a TrainConfig, the loop (comfyless.lora.training), the files kept on interrupt and
with --save-every, the LORA_MODEL with its metadata."""

from __future__ import annotations

import inspect
import logging
from typing import Any

import torch
from safetensors.torch import load_file

from ... import distributed
from ...lora.adapters import RankTooLarge
from ...lora.train_options import NO_LORA, TRAIN_OPTIONS
from ...lora.training import (
    TrainConfig,
    TrainingStopped,
    compute_dtype,
    steps_from_name,
    train_lora,
)
from ...lora.weights import LoraWeights
from ...models.residency import release_idle
from ...typesys.errors import Interrupted, InvalidValue
from ..train import SNAPSHOTS_KEPT
from ..train_outputs import LORA_PREFIX
from .image_files import expand_prefix
from .train_outputs import write_lora

# The name the node module had when this code lived there; kept so log settings still apply.
log = logging.getLogger("comfyless.nodes.train")


def train_lora_node(ctx, model: list, latents: list, positive: list, **options: list) -> tuple:
    """TrainLoraNode: (lora, loss_map, steps)."""
    # every input is a list (is_input_list); offloading / quantized_backward: GPU only
    node = ctx.node_id
    values = {o.name: _unwrap_list(options.get(o.name, (o.default,))) for o in TRAIN_OPTIONS}
    cfg = _config(values, node)
    existing, prior = _existing(ctx, values["existing_lora"])
    model = _unwrap_list(model)
    warn_slow_bf16(ctx, model, cfg)
    _release_encoders()

    def progress(step: int, total: int, loss: float) -> None:
        ctx.progress(step, total, loss=loss)  # raises Interrupted when asked to stop

    keeper = _Keeper(ctx, model, cfg, prior)
    try:
        result = train_lora(model, latents, positive, cfg, existing=existing,
                            progress=progress, snapshot_every=ctx.save_every,
                            on_snapshot=keeper.snapshot, group=distributed.current())
    except TrainingStopped as stop:
        raise keeper.stopped(stop) from stop.__cause__
    except ValueError as exc:
        raise _with_input(exc, node) from exc
    steps = cfg.steps + prior
    lora = LoraWeights(result.lora, _metadata(model, cfg, steps))
    return lora, {"loss": result.losses}, steps


def _release_encoders() -> None:
    """Text encoders and VAEs are idle while training (latents and prompts are cached in the
    inputs): their weights leave memory and come back from their files when next used (the
    network being trained is never a released one: only encoders are reloadable)."""
    freed = release_idle()
    if freed:
        log.info("released %.0f MiB of idle text encoder / VAE weights for training",
                 freed / 2**20)


# Named parameters with the table's defaults, so introspection (and the contract test) sees
# every input; values arrive as keywords.
train_lora_node.__signature__ = inspect.Signature([
    *(inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
      for n in ("ctx", "model", "latents", "positive")),
    *(inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=(o.default,))
      for o in TRAIN_OPTIONS)])


# Whether this process has told the user about slow bf16 already (once is enough: the advice
# is the same for every run and node).
_bf16_warned = [False]


def warn_slow_bf16(ctx, model: Any, cfg) -> None:
    """Once per process: training on a CPU without bf16 units in bf16 (training_dtype or
    lora_dtype) is much slower than fp32; say by how much and how to switch. The workflow's
    dtypes are kept."""
    if _bf16_warned[0]:
        return
    inputs = _bf16_inputs(model, cfg)
    if not inputs:
        return
    from ...cpu import bf16_slowdown

    ratio = bf16_slowdown()
    if ratio is None:
        return
    _bf16_warned[0] = True
    node = ctx.node_id
    switches = " ".join(f"--set {node}.{name}=fp32" for name in inputs)
    msg = (f"TrainLoraNode {node}: {' and '.join(inputs)} bf16 on a CPU without bf16 units: "
           f"a bf16 matmul runs at 1/{ratio:.0f} of fp32 speed on this CPU, so training will "
           f"be much slower than in fp32; to train in fp32: {switches}")
    log.warning("%s", msg)
    ctx.message(warning=msg)


def _bf16_inputs(model: Any, cfg) -> list[str]:
    """Names of the inputs that make a CPU training run compute or keep adapters in bf16."""
    weight = next(iter(model.diffusion_model.parameters()), None)
    if weight is None or weight.device.type != "cpu":
        return []
    names = []
    if compute_dtype(cfg, weight.dtype) == torch.bfloat16:
        names.append("training_dtype")
    if cfg.lora_dtype == "bf16":
        names.append("lora_dtype")
    return names


class _Keeper:
    """Writes the adapters trained so far as LoRA files named as SaveLoRA names them."""

    def __init__(self, ctx, model: Any, cfg, prior: int) -> None:
        self.ctx, self.model, self.cfg, self.prior = ctx, model, cfg, prior
        self.prefix = lora_prefix(ctx.prompt, ctx.node_id)
        self.written: list[tuple[int, Any]] = []  # (steps, Path) of this run's snapshots

    def snapshot(self, partial) -> None:
        """--save-every: one more file; this run's older ones beyond SNAPSHOTS_KEPT go."""
        steps = self.prior + partial.steps
        self.written.append((steps, self._write(partial.lora, steps)))
        while len(self.written) > SNAPSHOTS_KEPT:
            self.written.pop(0)[1].unlink(missing_ok=True)

    def stopped(self, stop) -> Exception:
        """The exception to raise for a stopped loop: Interrupted naming the file kept."""
        cause = stop.__cause__
        if not isinstance(cause, Interrupted):
            return cause if isinstance(cause, Exception) else stop
        done = stop.partial.steps
        if done == 0:  # nothing new since existing_lora (or since the start)
            return Interrupted(f"interrupted before the first of {self.cfg.steps} training "
                               "steps finished; nothing to save", node_id=self.ctx.node_id)
        steps = self.prior + done
        if self.written and self.written[-1][0] == steps:
            path = self.written[-1][1]  # a snapshot of this very state exists already
        else:
            path = self._write(stop.partial.lora, steps)
        loras = self.ctx.paths.folders("output")[0] / "loras"
        name = path.relative_to(loras).as_posix()
        remaining = self.cfg.steps - done
        return Interrupted(
            f"interrupted after {done} of {self.cfg.steps} training steps; the LoRA trained "
            f"so far ({steps} steps in all) is saved as output/loras/{name}; to resume: "
            f"--set {self.ctx.node_id}.existing_lora={name} "
            f"--set {self.ctx.node_id}.steps={remaining}",
            node_id=self.ctx.node_id, saved_lora=f"loras/{name}", existing_lora=name,
            steps=steps, steps_remaining=remaining)

    def _write(self, tensors: dict, steps: int):
        lora = LoraWeights(tensors, _metadata(self.model, self.cfg, steps))
        path = write_lora(self.ctx, lora, self.prefix, steps)
        rel = path.relative_to(self.ctx.paths.folders("output")[0]).as_posix()
        self.ctx.message(saved=f"output/{rel}", steps=steps)
        return path


def lora_prefix(prompt: dict | None, node_id: str | None) -> str:
    """Prefix for files the trainer writes itself: that of the first SaveLoRA (or legacy
    SaveLoRANode) whose `lora` comes from this trainer, kept under `loras/` so that
    `existing_lora` lists the file; else SaveLoRA's default. `prompt` is the API JSON."""
    for nid in sorted(prompt or {}, key=_id_order):
        node = prompt[nid]
        inputs = node.get("inputs", {}) if isinstance(node, dict) else {}
        link = inputs.get("lora")
        if node.get("class_type") not in ("SaveLoRA", "SaveLoRANode") or not (
                isinstance(link, list) and len(link) == 2 and str(link[0]) == str(node_id)):
            continue
        prefix = inputs.get("prefix", LORA_PREFIX)
        if not isinstance(prefix, str) or not prefix.strip("/"):
            return LORA_PREFIX  # linked from another node, or empty
        parts = expand_prefix(prefix).strip("/").split("/")
        if any(p in ("", ".", "..") for p in parts):
            return LORA_PREFIX  # not a plain relative name (validation reports it)
        return "/".join(parts) if parts[0] == "loras" and len(parts) > 1 else "loras/" + parts[-1]
    return LORA_PREFIX


def _id_order(node_id: str) -> tuple:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def _unwrap_list(value: Any) -> Any:
    return value[0] if isinstance(value, list | tuple) else value


def _config(values: dict[str, Any], node_id: str | None):
    try:
        return TrainConfig(**{k: values[k] for k in TrainConfig.__dataclass_fields__})
    except ValueError as exc:
        raise _with_input(exc, node_id) from exc


def _existing(ctx, name: str) -> tuple[dict | None, int]:
    """(tensors of the file, prior steps parsed from its name); (None, 0) for "[None]"."""
    if name in (None, "", NO_LORA):
        return None, 0
    path = ctx.find("loras", name, input_name="existing_lora")
    prior = steps_from_name(name)
    if prior is None:
        log.warning("TrainLoraNode input 'existing_lora': %r has no '_<steps>_steps_' part in "
                    "its name; counting 0 prior steps", name)
        prior = 0
    return load_file(str(path)), prior


def _with_input(exc: ValueError, node_id: str | None) -> Exception:
    """A ValueError from the loop as an error naming the node and, where known, the input:
    the loop's errors carry `.input_name` (TrainInputError); RankTooLarge is input rank."""
    name = getattr(exc, "input_name", None)
    if name is None and isinstance(exc, RankTooLarge):
        name = "rank"
    if name is None:
        return exc
    text = str(exc)
    prefix = "" if text.startswith("input '") else f"input '{name}': "
    return InvalidValue(f"TrainLoraNode {prefix}{text}", node_id=node_id, input_name=name)


def _metadata(model: Any, cfg, steps: int) -> dict[str, str]:
    source = getattr(model, "source", {}) or {}
    return {
        "training.base_model": str(source.get("file", "")),
        "training.base_model_sha256": str(source.get("sha256", "") if "path" in source
                                          or "sha256" in source else ""),
        "training.steps": str(steps),
        "training.rank": str(cfg.rank),
        "training.alpha": "1.0",
        "training.algorithm": cfg.algorithm,
        "training.optimizer": cfg.optimizer,
        "training.learning_rate": repr(float(cfg.learning_rate)),
        "training.seed": str(cfg.seed),
        "training.dtype": cfg.training_dtype,
        "training.lora_dtype": cfg.lora_dtype,
        "training.loss_function": cfg.loss_function,
    }
