"""TrainLoraNode ("Train LoRA"): trains LoRA/LoHa/LoKr/OFT adapters on a MODEL.

Inputs, defaults and ranges as ComfyUI's current node (train-nodes.md §4.1); every input arrives
as a list (is_input_list) and scalars take element 0. Outputs are the current layout
`(lora, loss_map, steps)`; workflows made for the legacy layout `(model, lora, loss_map,
steps)` are mapped by the engine through `legacy_outputs`. The loop is comfyless.lora.training.

On CPU `offloading` and `quantized_backward` have no effect (they manage GPU memory and FP8
matmuls); they are accepted so every ComfyUI workflow validates and runs.

Nothing lost: when the run is interrupted (Ctrl-C / SIGTERM, `ctx.interrupt`) the node writes
what was trained so far as `output/<prefix>_<steps>_steps_<counter:05>_.safetensors` (steps =
all steps, a resumed file's included), the name `existing_lora` resumes from, and raises
Interrupted naming it. With `ctx.save_every = N` it writes such a file every N steps and keeps
the newest SNAPSHOTS_KEPT of this run. `<prefix>` is the prefix of the SaveLoRA fed by this
trainer (moved under `loras/` if it is elsewhere, so the LoRA pickers list it), else
`loras/ComfyUI_trained_lora`. Files go through SaveLoRA's writer (train_outputs.write_lora).
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

# torch-free: the one table of the widget inputs (TrainConfig reads it too)
from ..lora.train_options import NO_LORA, TRAIN_OPTIONS, TrainOption
from ..typesys.schema import Input, Node, NodeSchema, Output
from ..typesys.types import (
    BOOLEAN,
    COMBO,
    CONDITIONING,
    FLOAT,
    INT,
    LATENT,
    LORA_MODEL,
    LOSS_MAP,
    MODEL,
)

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "loras/ComfyUI_trained_lora"  # SaveLoRA's default prefix
# --save-every keeps the newest 2 files of a run: the latest state plus the one before it, in
# case the run went bad late (a loss spike), while a long run does not fill the disk. Only files
# this run wrote are ever deleted.
SNAPSHOTS_KEPT = 2

_WIDGET = {int: INT, float: FLOAT, bool: BOOLEAN, str: COMBO}
# What only the node knows about an input (the table has types, defaults, ranges, choices).
_NODE_ONLY: dict[str, dict] = {
    "grad_accumulation_steps": {"added_in": "2025-07-24"},
    "steps": {"tooltip": "number of optimizer steps"},
    "seed": {"control_after_generate": True,
             "tooltip": "noise, timesteps, batch order and adapter initialisation"},
    "training_dtype": {"tooltip": "compute dtype; on a CPU fp32 is much faster than bf16"},
    "quantized_backward": {"added_in": "2026-03-25",
                           "tooltip": "FP8 backward for quantized models (GPU only; no effect "
                                      "on CPU)"},
    "algorithm": {"added_in": "2025-07-24"},
    "gradient_checkpointing": {"added_in": "2025-07-24"},
    "checkpoint_depth": {"added_in": "2026-02-11"},
    "offloading": {"added_in": "2026-02-11",
                   "tooltip": "stream weights to the GPU (no effect on CPU)"},
    "existing_lora": {"choices_from": "loras", "extra_choices": (NO_LORA,),
                      "tooltip": "resume from this LoRA file"},
    "bucket_mode": {"added_in": "2025-12-18", "tooltip": "latents come from ResolutionBucket"},
    "bypass_mode": {"added_in": "2026-01-25",
                    "tooltip": "adapters as forward hooks instead of merged weights"},
}


def _input(option: TrainOption) -> Input:
    """The schema Input of one table row."""
    return Input(option.name, _WIDGET[option.kind], default=option.default, min=option.min,
                 max=option.max, step=option.step, choices=option.choices,
                 **_NODE_ONLY.get(option.name, {}))


class TrainLoraNode(Node):
    """Train a LoRA on latents + captions; returns the weights, the loss history, the steps."""

    schema = NodeSchema(
        "TrainLoraNode",
        display_name="Train LoRA",
        category="model/training",
        inputs=(
            Input("model", MODEL, tooltip="the model to train the LoRA on"),
            Input("latents", LATENT, tooltip="training latents (one batch or a list)"),
            Input("positive", CONDITIONING, tooltip="one caption per latent, or one for all"),
            *(_input(o) for o in TRAIN_OPTIONS),
        ),
        outputs=(
            Output("lora", LORA_MODEL),
            Output("loss_map", LOSS_MAP),
            Output("steps", INT),
        ),
        legacy_outputs=(
            Output("model", MODEL),
            Output("lora", LORA_MODEL),
            Output("loss_map", LOSS_MAP),
            Output("steps", INT),
        ),
        # Older versions' widgets_values / API inputs lack these (train-nodes.md §9): V1 from
        # 2025-07 (with `algorithm`), V1 before 2025-07. They take their defaults.
        older_widget_layouts=(
            ("quantized_backward", "checkpoint_depth", "offloading", "bucket_mode", "bypass_mode"),
            ("quantized_backward", "checkpoint_depth", "offloading", "bucket_mode", "bypass_mode",
             "algorithm"),
        ),
        is_input_list=True,
        # Not not_idempotent, as in ComfyUI: training is deterministic in its seed, so an
        # unchanged training (fixed seed) is a cache hit and its LoRA is reused.
        experimental=True,
    )

    @staticmethod
    def execute(ctx, model: list, latents: list, positive: list, **options: list) -> tuple:
        # every input is a list (is_input_list); offloading / quantized_backward: GPU only
        from ..lora.training import TrainingStopped, train_lora
        from ..lora.weights import LoraWeights

        node = ctx.node_id
        values = {o.name: _unwrap_list(options.get(o.name, (o.default,))) for o in TRAIN_OPTIONS}
        cfg = _config(values, node)
        existing, prior = _existing(ctx, values["existing_lora"])
        model = _unwrap_list(model)

        def progress(step: int, total: int, loss: float) -> None:
            ctx.progress(step, total, loss=loss)  # raises Interrupted when asked to stop

        keeper = _Keeper(ctx, model, cfg, prior)
        try:
            result = train_lora(model, latents, positive, cfg, existing=existing,
                                progress=progress, snapshot_every=ctx.save_every,
                                on_snapshot=keeper.snapshot)
        except TrainingStopped as stop:
            raise keeper.stopped(stop) from stop.__cause__
        except ValueError as exc:
            raise _with_input(exc, node) from exc
        steps = cfg.steps + prior
        lora = LoraWeights(result.lora, _metadata(model, cfg, steps))
        return lora, {"loss": result.losses}, steps


# Named parameters with the table's defaults, so introspection (and the contract test) sees
# every input; values arrive as keywords.
TrainLoraNode.execute.__signature__ = inspect.Signature([
    *(inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD)
      for n in ("ctx", "model", "latents", "positive")),
    *(inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, default=(o.default,))
      for o in TRAIN_OPTIONS)])


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
        from ..typesys.errors import Interrupted

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
        from ..engine.context import ProgressEvent
        from ..lora.weights import LoraWeights
        from .train_outputs import write_lora

        lora = LoraWeights(tensors, _metadata(self.model, self.cfg, steps))
        path = write_lora(self.ctx, lora, self.prefix, steps)
        rel = path.relative_to(self.ctx.paths.folders("output")[0]).as_posix()
        self.ctx.emit(ProgressEvent("message", self.ctx.node_id, self.ctx.class_type,
                                    info={"saved": f"output/{rel}", "steps": steps}))
        return path


def lora_prefix(prompt: dict | None, node_id: str | None) -> str:
    """Prefix for files the trainer writes itself: that of the first SaveLoRA (or legacy
    SaveLoRANode) whose `lora` comes from this trainer, kept under `loras/` so that
    `existing_lora` lists the file; else SaveLoRA's default. `prompt` is the API JSON."""
    from .impl.image_files import expand_prefix

    for nid in sorted(prompt or {}, key=_id_order):
        node = prompt[nid]
        inputs = node.get("inputs", {}) if isinstance(node, dict) else {}
        link = inputs.get("lora")
        if node.get("class_type") not in ("SaveLoRA", "SaveLoRANode") or not (
                isinstance(link, list) and len(link) == 2 and str(link[0]) == str(node_id)):
            continue
        prefix = inputs.get("prefix", DEFAULT_PREFIX)
        if not isinstance(prefix, str) or not prefix.strip("/"):
            return DEFAULT_PREFIX  # linked from another node, or empty
        parts = expand_prefix(prefix).strip("/").split("/")
        if any(p in ("", ".", "..") for p in parts):
            return DEFAULT_PREFIX  # not a plain relative name (validation reports it)
        return "/".join(parts) if parts[0] == "loras" and len(parts) > 1 else "loras/" + parts[-1]
    return DEFAULT_PREFIX


def _id_order(node_id: str) -> tuple:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def _unwrap_list(value: Any) -> Any:
    return value[0] if isinstance(value, list | tuple) else value


def _config(values: dict[str, Any], node_id: str | None):
    from ..lora.training import TrainConfig

    try:
        return TrainConfig(**{k: values[k] for k in TrainConfig.__dataclass_fields__})
    except ValueError as exc:
        raise _with_input(exc, node_id) from exc


def _existing(ctx, name: str) -> tuple[dict | None, int]:
    """(tensors of the file, prior steps parsed from its name); (None, 0) for "[None]"."""
    if name in (None, "", NO_LORA):
        return None, 0
    from safetensors.torch import load_file

    from ..lora.training import steps_from_name

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
    from ..lora.adapters import RankTooLarge
    from ..typesys.errors import InvalidValue

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


NODES = [TrainLoraNode]
